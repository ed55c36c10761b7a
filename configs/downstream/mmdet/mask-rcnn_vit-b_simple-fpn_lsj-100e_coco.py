# Mask R-CNN on COCO with a MIM-pre-trained ViT-B/16 (ViTDet recipe: window attention
# with 4 global blocks, simple feature pyramid, large-scale jitter, 100 epochs, AdamW
# with layer decay 0.7). Runs with mmmim's tools/train.py and with mmdet's own
# tools/train.py (custom_imports brings in what mmdet's pip package lacks).
#
#   tools/dist_train.sh configs/downstream/mmdet/mask-rcnn_vit-b_simple-fpn_lsj-100e_coco.py 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/mae_vit-b/epoch_1600.pth

# the pre-trained checkpoint: an mmmim pre-training checkpoint (its backbone.* is
# used), or mmpretrain / official MAE / timm / mmseg / ViTDet weights (converted on
# load). Override with --cfg-options model.backbone.init_cfg.checkpoint=PATH.
pretrained = 'work_dirs/mae_vit-b_1600e/epoch_1600.pth'

_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::common/lsj-100e_coco-instance.py',
]
custom_imports = dict(imports=['mmmim.models.downstream'], allow_failed_imports=False)
default_scope = 'mmdet'

image_size = (1024, 1024)
norm_cfg = dict(type='LN2d', requires_grad=True)  # registered in mmdet's scope by mmmim

model = dict(
    data_preprocessor=dict(
        pad_size_divisor=32,
        batch_augments=[dict(type='BatchFixedSizePad', size=image_size, pad_mask=True)]),
    backbone=dict(
        _delete_=True,
        type='PlainViTBackbone',
        arch='base',
        img_size=image_size,
        patch_size=16,
        out_indices=(11, ),
        window_size=14,
        global_attn_indices=(2, 5, 8, 11),
        with_cls_token=False,
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(
        _delete_=True,
        type='SimpleFeaturePyramid',
        in_channels=768,
        out_channels=256,
        scale_factors=(4, 2, 1, 0.5),
        num_outs=5,
        norm_cfg=norm_cfg),
    rpn_head=dict(num_convs=2),
    roi_head=dict(
        bbox_head=dict(type='Shared4Conv1FCBBoxHead', conv_out_channels=256, norm_cfg=norm_cfg),
        mask_head=dict(norm_cfg=norm_cfg)))

# AdamW with layer-wise lr decay over the ViT's blocks (neck and heads at the full lr)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='LayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    paramwise_cfg=dict(layer_decay_rate=0.7))

# 25 epochs over the 4x repeated train set = 100 epochs; step decay near the end
max_epochs = 25
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[22, 24],
         gamma=0.1),
]
# 64 images per iteration (e.g. 32 GPUs x 2); --auto-scale-lr adapts the lr to yours
auto_scale_lr = dict(base_batch_size=64)

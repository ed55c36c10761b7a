# UperNet on ADE20K with a MIM-pre-trained ViT-B/16 (the MAE/BEiT recipe): features of
# blocks 4, 6, 8, 12 resampled to strides 4, 8, 16, 32 by mmseg's Feature2Pyramid,
# 512x512 crops, 160k iterations of 16 images, AdamW lr 1e-4 with layer decay 0.65,
# drop path 0.1. Runs with mmmim's tools/train.py and with mmseg's own tools/train.py.
#
#   tools/dist_train.sh configs/downstream/mmseg/upernet_vit-b_8xb2-160k_ade20k-512x512.py 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/mae_vit-b/epoch_1600.pth

# the pre-trained checkpoint (any layout tools/convert_checkpoint.py reads); override
# with --cfg-options model.backbone.init_cfg.checkpoint=PATH
pretrained = 'work_dirs/mae_vit-b_1600e/epoch_1600.pth'

_base_ = [
    'mmseg::_base_/models/upernet_mae.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
custom_imports = dict(imports=['mmmim.models.downstream'], allow_failed_imports=False)
default_scope = 'mmseg'

crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        _delete_=True,
        type='PlainViTBackbone',
        arch='base',
        img_size=crop_size,
        patch_size=16,
        out_indices=(3, 5, 7, 11),
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(embed_dim=768, rescales=[4, 2, 1, 0.5]),
    decode_head=dict(in_channels=[768, 768, 768, 768], channels=768, num_classes=150),
    auxiliary_head=dict(in_channels=768, num_classes=150),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='LayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(layer_decay_rate=0.65))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=1500, end=160000),
]
# 8 GPUs x 2 images
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
auto_scale_lr = dict(base_batch_size=16)

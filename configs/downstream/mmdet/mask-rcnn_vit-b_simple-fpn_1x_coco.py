# The ViT-B Mask R-CNN of mask-rcnn_vit-b_simple-fpn_lsj-100e_coco.py on the standard
# 1x schedule: 12 epochs of single-scale 1333x800 training with flips, lr steps at 8, 11.
pretrained = 'work_dirs/mae_vit-b_1600e/epoch_1600.pth'

_base_ = './mask-rcnn_vit-b_simple-fpn_lsj-100e_coco.py'

data_root = 'data/coco/'
model = dict(
    data_preprocessor=dict(batch_augments=None),
    backbone=dict(init_cfg=dict(checkpoint=pretrained)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(
    batch_size=2,
    dataset=dict(
        _delete_=True,
        type='CocoDataset',
        data_root=data_root,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline))

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, val_interval=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11],
         gamma=0.1),
]
# 16 images per iteration (8 GPUs x 2)
auto_scale_lr = dict(base_batch_size=16)

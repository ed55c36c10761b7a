# ImageNet-1k for MAE-style pre-training: RandomResizedCrop(224, 0.2-1.0, bicubic) + flip.
# 512 images per GPU x 8 GPUs = the paper's batch of 4096.
#
# The fast CPU path (docs/speed.md, "The data path"): LoadRandomResizedCrop loads, crops
# and resizes in one step (reduced JPEG decode when the crop allows it, torch's uint8
# antialiased bicubic resize of the crop only), with the crop distribution of
# mmpretrain's RandomResizedCrop. mmpretrain's own pipeline is kept below as
# `mmpretrain_train_pipeline` (the same crops, slower); the GPU-decode path is
# configs/mae/vit-b_800e_gpu-decode.py.
dataset_type = 'mmpretrain.ImageNet'
data_root = 'data/imagenet/'
train_pipeline = [
    dict(type='LoadRandomResizedCrop', scale=224, crop_ratio_range=(0.2, 1.0),
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
mmpretrain_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, crop_ratio_range=(0.2, 1.0), backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=512,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline))

# ImageNet-1k for the linear probe (MAE protocol): RandomResizedCrop(224, bicubic) and
# flip only; evaluation resizes the short side to 256 and center-crops 224.
# 2048 images per GPU x 8 GPUs = the batch of 16384.
_base_ = './imagenet_finetune.py'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=2048, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=256)
test_dataloader = val_dataloader

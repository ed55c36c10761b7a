# A seconds-long MAE pre-training run for the tools tests: mmpretrain's MAE with a
# 2-layer 32-d ViT on 32x32 images (patch 4). Tests set the data folder with
# --cfg-options train_dataloader.dataset.data_root=<dir of PNGs>.
# No default_scope on purpose: tools/train.py must fall back to 'mmmim'.
model = dict(
    type='mmpretrain.MAE',
    data_preprocessor=dict(type='mmpretrain.SelfSupDataPreprocessor', mean=[127.5] * 3,
                           std=[127.5] * 3, to_rgb=True),
    backbone=dict(type='mmpretrain.MAEViT', img_size=32, patch_size=4, mask_ratio=0.75,
                  arch=dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)),
    neck=dict(type='mmpretrain.MAEPretrainDecoder', num_patches=64, patch_size=4, in_chans=3,
              embed_dim=32, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2,
              mlp_ratio=2.),
    head=dict(type='mmpretrain.MAEPretrainHead', norm_pix=True, patch_size=4,
              loss=dict(type='mmpretrain.PixelReconstructionLoss', criterion='L2')))

train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='mmpretrain.CustomDataset', data_root='data/tiny_images', data_prefix='',
                 with_label=False,
                 pipeline=[dict(type='mmpretrain.LoadImageFromFile'),
                           dict(type='mmpretrain.PackInputs')]))

optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.95), weight_decay=0.05))
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=4)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=4)
auto_scale_lr = dict(base_batch_size=8)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
    sampler_seed=dict(type='DistSamplerSeedHook'))
log_processor = dict(by_epoch=False)
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
randomness = dict(seed=0)
log_level = 'INFO'
load_from = None
resume = False

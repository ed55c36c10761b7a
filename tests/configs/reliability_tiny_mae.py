# A seconds-long mmmim MAE run for the reliability tests: 2-layer 32-d ViT on 32x32 RGB
# PNGs (patch 4), 8 iterations per epoch, 2 epochs, a checkpoint every 2 iterations (so
# most checkpoints are mid-epoch). Tests set the image folder with
# --cfg-options train_dataloader.dataset.data_root=<dir>.
_base_ = ['../../configs/_base_/default_runtime.py']
custom_imports = dict(imports=['mmmim', 'reliability_probe'], allow_failed_imports=False)
model = dict(
    type='MAE',
    data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3,
                           to_rgb=True),
    backbone=dict(type='MaskedViT', img_size=32, patch_size=4, in_channels=3,
                  arch=dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)),
    neck=dict(type='MAEDecoder', decoder_embed_dims=24, decoder_depth=1, decoder_num_heads=2),
    head=dict(type='ReconstructionHead', norm_pix=True),
    masker=dict(type='RandomMasker', ratio=0.75))
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='mmpretrain.CustomDataset', data_root='data/tiny_images', data_prefix='',
                 with_label=False,
                 pipeline=[dict(type='SafeLoadImageFromFile'),
                           dict(type='RandomFlip', prob=0.5),
                           dict(type='PackInputs')]))
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.95), weight_decay=0.05))
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=4)]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=2)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=2, by_epoch=False, max_keep_ckpts=3))
log_processor = dict(window_size=1)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
custom_hooks = [dict(type='HangAtIterHook'), dict(type='RecordHook')]

# GAN-MAE ViT-B/16, 1600 epochs, adversarial scheme, shared backbone (paper Table 3).
_base_ = './vit-b_800e.py'
_schedule = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=40,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=1560, by_epoch=True, begin=40, end=1600,
         convert_to_iter_based=True),
]
param_scheduler = dict(_delete_=True, generator=_schedule, discriminator=_schedule)
train_cfg = dict(max_epochs=1600)
default_hooks = dict(checkpoint=dict(interval=100))

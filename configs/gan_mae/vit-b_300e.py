# GAN-MAE ViT-B/16, 300 epochs, adversarial scheme (the paper: 84.0 fine-tune top-1).
_base_ = './vit-b_800e.py'
_schedule = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=40,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=260, by_epoch=True, begin=40, end=300,
         convert_to_iter_based=True),
]
param_scheduler = dict(_delete_=True, generator=_schedule, discriminator=_schedule)
train_cfg = dict(max_epochs=300)

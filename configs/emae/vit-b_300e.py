# EMAE ViT-B/16, 300 epochs (the paper: beats MAE 1600 epochs).
_base_ = './vit-b_800e.py'
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=40,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=260, by_epoch=True, begin=40, end=300,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=300)

# GAN-MAE ViT-S/16, 800 epochs (the paper: 82.4 fine-tune top-1).
_base_ = './vit-b_800e.py'
model = dict(backbone=dict(arch='small'))

# GAN-MAE ViT-L/16, 800 epochs (the paper: 86.1 fine-tune top-1); the decoder stays 8 x 512.
_base_ = './vit-b_800e.py'
model = dict(backbone=dict(arch='large'))

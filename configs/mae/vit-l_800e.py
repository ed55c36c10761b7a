# ViT-L/16 encoder; the decoder stays 8 x 512 as in the paper.
_base_ = './vit-b_800e.py'
model = dict(backbone=dict(arch='large'))

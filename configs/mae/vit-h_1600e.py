# ViT-H/14 encoder (256 patches at 224), 1600 epochs.
_base_ = './vit-b_1600e.py'
model = dict(backbone=dict(arch='huge', patch_size=14))

_base_ = './vit-b_800e.py'
model = dict(backbone=dict(arch='large'))

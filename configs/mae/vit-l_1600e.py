_base_ = './vit-b_1600e.py'
model = dict(backbone=dict(arch='large'))

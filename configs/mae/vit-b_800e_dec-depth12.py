# MAE Table 1a: decoder depth 12.
_base_ = './vit-b_800e.py'
model = dict(neck=dict(decoder_depth=12))

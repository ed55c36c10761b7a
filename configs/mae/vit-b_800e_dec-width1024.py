# MAE Table 1b: decoder width 1024.
_base_ = './vit-b_800e.py'
model = dict(neck=dict(decoder_embed_dims=1024))

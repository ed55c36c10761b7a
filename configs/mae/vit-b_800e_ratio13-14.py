# MAE with mask ratio 13/14: the single-view counterpart of EMAE with K = 14.
_base_ = './vit-b_800e.py'
model = dict(masker=dict(ratio=13 / 14))

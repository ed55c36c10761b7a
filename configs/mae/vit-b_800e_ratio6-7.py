# MAE with mask ratio 6/7: the single-view counterpart of EMAE with K = 7.
_base_ = './vit-b_800e.py'
model = dict(masker=dict(ratio=6 / 7))

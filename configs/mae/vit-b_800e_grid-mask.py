# MAE Table 1f: grid-wise masking (keep one of every 2x2 patches).
_base_ = './vit-b_800e.py'
model = dict(masker=dict(_delete_=True, type='GridMasker'))

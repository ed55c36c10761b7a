# MAE Table 1f: BEiT-style block-wise masking instead of random.
_base_ = './vit-b_800e.py'
model = dict(masker=dict(_delete_=True, type='BlockMasker', ratio=0.75))

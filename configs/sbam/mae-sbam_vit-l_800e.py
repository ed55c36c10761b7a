# MAE ViT-L/16, 800 epochs, with SBAM masking.
_base_ = '../mae/vit-l_800e.py'
model = dict(masker=dict(_delete_=True, type='SalienceMasker', ratio=0.75, noise=0.5))

# SBAM on Fashion-MNIST with the same model and schedule as mae_vit-mini-p4_4e.py
# (directly comparable): only the masker differs.
#   python tools/train.py configs/fashion_mnist/sbam_vit-mini-p4_4e.py
_base_ = './mae_vit-mini-p4_4e.py'
model = dict(masker=dict(_delete_=True, type='SalienceMasker', ratio=0.75, noise=0.5))

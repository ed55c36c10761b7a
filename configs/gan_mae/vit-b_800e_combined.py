# GAN-MAE ViT-B/16, 800 epochs, combined scheme (paper Table 4): one step on
# L_mae + lambda_disc * L_disc with the generations detached.
_base_ = './vit-b_800e.py'
model = dict(scheme='combined', lambda_disc=1.0)   # the paper's combined loss, lambda_D = 1

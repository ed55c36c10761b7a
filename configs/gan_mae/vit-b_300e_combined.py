# GAN-MAE ViT-B/16, 300 epochs, combined scheme (paper Table 4).
_base_ = './vit-b_300e.py'
model = dict(scheme='combined', lambda_disc=1.0)   # the paper's combined loss, lambda_D = 1

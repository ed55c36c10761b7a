# GAN-MAE on Fashion-MNIST, combined scheme: one step on L_mae + lambda_disc * L_disc with
# the generations detached (no adversarial gradient into the generator).
_base_ = ['./gan-mae_vit-mini-p4_4e.py']
model = dict(scheme='combined', lambda_disc=1.0)   # the paper's combined loss, lambda_D = 1

# GAN-MAE on Fashion-MNIST, the default (adversarial, shared ViT, one-step update) with the
# discriminator's loss weighted 1 on the shared weights (the default until it measured
# ~2 points below lambda_disc=0.1; docs/gan_mae.md, section 5).
_base_ = ['./gan-mae_vit-mini-p4_4e.py']
model = dict(lambda_disc=1.0)

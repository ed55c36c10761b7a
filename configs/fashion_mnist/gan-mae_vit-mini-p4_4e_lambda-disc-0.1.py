# GAN-MAE on Fashion-MNIST, the default (adversarial, shared ViT, one-step update) with the
# discriminator's loss weighted 0.1 on the shared weights instead of 1: how much of the
# shared ViT's L_disc costs the encoder (docs/gan_mae.md, section 5).
_base_ = ['./gan-mae_vit-mini-p4_4e.py']
model = dict(lambda_disc=0.1)

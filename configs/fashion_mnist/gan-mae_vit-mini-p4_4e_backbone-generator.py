# GAN-MAE on Fashion-MNIST, adversarial scheme with separate backbones: the generator's
# encoder (exported as backbone.*) and a discriminator ViT of the same size.
_base_ = ['./gan-mae_vit-mini-p4_4e.py']
model = dict(backbone_mode='generator')

# GAN-MAE on Fashion-MNIST, adversarial scheme with separate backbones: the discriminator
# ViT is the one exported as backbone.* (the generator's encoder is kept as well).
_base_ = ['./gan-mae_vit-mini-p4_4e.py']
model = dict(backbone_mode='discriminator')

# GAN-MAE ViT-B/16, 1600 epochs, separate ViTs, discriminator's ViT exported (Table 3).
_base_ = './vit-b_1600e.py'
model = dict(backbone_mode='discriminator')

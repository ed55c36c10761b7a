# GAN-MAE ViT-B/16, 1600 epochs, separate ViTs, generator's encoder exported (Table 3).
_base_ = './vit-b_1600e.py'
model = dict(backbone_mode='generator')

# GAN-MAE ViT-B/16, 800 epochs, separate generator and discriminator ViTs; the
# generator's encoder is exported (backbone.*) for fine-tuning (paper Table 3).
_base_ = './vit-b_800e.py'
model = dict(backbone_mode='generator')

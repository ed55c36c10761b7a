# GAN-MAE ViT-B/16, 300 epochs, two-stage scheme (paper Table 4): MAE only for the first
# 150 epochs, then the discriminator joins (adversarial scheme).
_base_ = './vit-b_300e.py'
model = dict(scheme='two-stage')
custom_hooks = [dict(type='GANSchemeHook', switch_epoch=150)]

# GAN-MAE ViT-B/16, 800 epochs, two-stage scheme (paper Table 4): MAE only for the first
# 400 epochs, then the discriminator joins (adversarial scheme).
_base_ = './vit-b_800e.py'
model = dict(scheme='two-stage')
custom_hooks = [dict(type='GANSchemeHook', switch_epoch=400)]

# Can a discriminator separate real from generated patches on this data at all?
# A trained MAE generator is frozen (its optimizer has lr 0) and a fresh, separate
# discriminator ViT (the encoder's size) trains on its corrupted images for one epoch.
# Every batch of that epoch is new to the discriminator, so the logged disc_auc,
# disc_bacc and loss_disc (against disc_prior_entropy) are held-out figures.
#   python tools/train.py configs/fashion_mnist/gan-mae-disc-diagnosis_vit-mini-p4_1e.py \
#       --cfg-options load_from=work_dirs/mae_vit-mini-p4_4e/epoch_4.pth
# tools/analysis/gan_disc_diagnosis.py runs it for each L_disc variant and tabulates.
_base_ = ['./gan-mae_vit-mini-p4_4e.py']

model = dict(scheme='combined', backbone_mode='generator')
load_from = None  # an MAE (or GAN-MAE) checkpoint of this model: required, see above
load_from_partial = True  # the fresh discriminator is not in an MAE checkpoint

_frozen = dict(type='AdamW', lr=0., betas=(0.9, 0.95), weight_decay=0.)
optim_wrapper = dict(generator=dict(optimizer=_frozen))
max_epochs = 1
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = dict(
    _delete_=True,
    generator=[dict(type='ConstantLR', factor=1., by_epoch=False, begin=0, end=1)],
    discriminator=[dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=20)])
custom_hooks = [dict(type='GANSchemeHook')]
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=1, max_keep_ckpts=1))

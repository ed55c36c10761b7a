# GAN-MAE on Fashion-MNIST, comparable to mae_vit-mini-p4_4e.py (same encoder, decoder,
# data, epochs and lr), adversarial scheme, shared backbone (CPU):
#   python tools/train.py configs/fashion_mnist/gan-mae_vit-mini-p4_4e.py
# Leaves reconstruction.png and linear_probe.json in the work dir, as the MAE config.
_base_ = ['./mae_vit-mini-p4_4e.py']

model = dict(
    type='GANMAE',
    scheme='adversarial',
    backbone_mode='shared',
    discriminator_head=dict(type='PatchDiscriminatorHead'),
    gamma='adaptive',
    adv_loss='non-saturating')

_no_decay = dict(
    custom_keys={
        'ln': dict(decay_mult=0.0),
        'norm': dict(decay_mult=0.0),
        'bias': dict(decay_mult=0.0),
        'pos_embed': dict(decay_mult=0.),
        'mask_token': dict(decay_mult=0.),
        'cls_token': dict(decay_mult=0.),
    })
optim_wrapper = dict(
    _delete_=True,
    constructor='GANMAEOptimWrapperConstructor',
    generator=dict(type='OptimWrapper',
                   optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.95), weight_decay=0.05)),
    discriminator=dict(type='OptimWrapper',
                       optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.95),
                                      weight_decay=0.05)),
    paramwise_cfg=_no_decay)
_schedule = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end={{_base_.max_epochs}},
         convert_to_iter_based=True),
]
param_scheduler = dict(_delete_=True, generator=_schedule, discriminator=_schedule)
model_wrapper_cfg = dict(type='GANMAEDistributedDataParallel')
custom_hooks = [
    dict(type='GANSchemeHook', switch_epoch=None),
    dict(type='ReconstructionVisHook', dataset={{_base_.probe_test}}, num_images=8),
    dict(type='LinearProbeHook', train_dataset={{_base_.probe_train}},
         test_dataset={{_base_.probe_test}}),
]

# GAN-MAE on Fashion-MNIST, comparable to mae_vit-mini-p4_4e.py (same encoder, decoder,
# data, epochs and lr), adversarial scheme, shared backbone (CPU):
#   python tools/train.py configs/fashion_mnist/gan-mae_vit-mini-p4_4e.py
# Leaves reconstruction.png and linear_probe.json in the work dir, as the MAE config.
_base_ = ['./mae_vit-mini-p4_4e.py']

model = dict(
    type='GANMAE',
    scheme='adversarial',
    backbone_mode='shared',
    shared_update='one-step',        # one AdamW step of the shared ViT on both roles' gradients
    lambda_disc=0.1,                 # L_disc's weight there: 1.0 cost the probe ~2 points
    discriminator_head=dict(type='PatchDiscriminatorHead', class_balanced=True),
    gamma='adaptive',
    gamma_scale=0.1,
    gamma_max=1.0,
    adv_loss='non-saturating',
    adv_warmup_epochs=1,             # the lr warm-up epoch: discriminator only, L_adv off
    flat_patch_std=0.02,             # flat real patches (background, padding) left out
    flat_patch_weight=0.)

# one optim wrapper per role, each with the MAE config's optimizer and schedule
optim_wrapper = dict(
    _delete_=True,
    constructor='GANMAEOptimWrapperConstructor',
    generator=dict(type='OptimWrapper', optimizer={{_base_.optim_wrapper.optimizer}}),
    discriminator=dict(type='OptimWrapper', optimizer={{_base_.optim_wrapper.optimizer}}),
    paramwise_cfg={{_base_.optim_wrapper.paramwise_cfg}})
param_scheduler = dict(_delete_=True, generator={{_base_.param_scheduler}},
                       discriminator={{_base_.param_scheduler}})
model_wrapper_cfg = dict(type='GANMAEDistributedDataParallel')
custom_hooks = [
    dict(type='GANSchemeHook', switch_epoch=None),
    dict(type='ReconstructionVisHook', dataset={{_base_.probe_test}}, num_images=8),
    dict(type='LinearProbeHook', train_dataset={{_base_.probe_train}},
         test_dataset={{_base_.probe_test}}),
]

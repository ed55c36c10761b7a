# GAN-MAE ViT-B/16, 800 epochs, ImageNet-1k, batch 4096 (8 GPUs x 512), adversarial scheme,
# shared backbone (the paper's default and best setting):
#   tools/dist_train.sh configs/gan_mae/vit-b_800e.py 8
# Two optim wrappers, one per role, each with its own lr schedule and (with --amp) loss
# scaler. backbone.* in the checkpoint is the encoder to fine-tune (prefix 'backbone.').
_base_ = ['../mae/vit-b_800e.py']

model = dict(
    type='GANMAE',
    scheme='adversarial',           # 'adversarial' | 'combined' | 'two-stage'
    two_stage_scheme='adversarial',  # what two-stage runs once the discriminator is on
    backbone_mode='shared',         # 'shared' | 'generator' | 'discriminator'
    discriminator_backbone=None,    # separate modes: defaults to a copy of `backbone`
    discriminator_head=dict(type='PatchDiscriminatorHead', class_balanced=True),
    gamma='adaptive',               # or a number for a fixed adversarial weight
    gamma_scale=0.1,                # adaptive gamma = 0.1 x the gradient-norm ratio ...
    gamma_max=1.0,                  # ... capped at 1
    gamma_eps=1e-4,
    adv_loss='non-saturating',      # or 'minimax'
    lambda_disc=0.1,                # weight of L_disc on the shared ViT (one-step update);
                                    # 1.0 costs the encoder ~2 points on Fashion-MNIST
                                    # (docs/gan_mae.md, section 5)
    adv_updates_disc_backbone=False,
    adv_warmup_epochs=40,           # L_adv off (discriminator trains) for MAE's lr warm-up
    flat_patch_std=0.02,            # patches with real std <= 0.02 are left out of the
    flat_patch_weight=0.,           # discriminator's and adversarial losses
    shared_update='one-step',       # shared ViT: one AdamW step on the summed role gradients
)

# One optim wrapper per role, each with MAE's AdamW recipe (lr = 1.5e-4 * batch / 256,
# no weight decay on norms, biases and tokens); the discriminator uses the same.
optim_wrapper = dict(
    _delete_=True,
    constructor='GANMAEOptimWrapperConstructor',
    generator=dict(type='OptimWrapper', optimizer={{_base_.optim_wrapper.optimizer}}),
    discriminator=dict(type='OptimWrapper', optimizer={{_base_.optim_wrapper.optimizer}}),
    paramwise_cfg={{_base_.optim_wrapper.paramwise_cfg}})
# one schedule per role (MAE's: 40 warm-up epochs, then cosine)
param_scheduler = dict(_delete_=True, generator={{_base_.param_scheduler}},
                       discriminator={{_base_.param_scheduler}})

# GANMAE runs its own two-optimizer step and averages gradients itself
model_wrapper_cfg = dict(type='GANMAEDistributedDataParallel')
# start-up checks (optim_wrapper roles, model wrapper); the two-stage switch epoch
custom_hooks = [dict(type='GANSchemeHook', switch_epoch=None)]

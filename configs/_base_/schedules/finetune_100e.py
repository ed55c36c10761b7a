# MAE's end-to-end fine-tuning schedule (ViT-B): AdamW(0.9, 0.999), weight decay 0.05,
# lr = 5e-4 * batch / 256 with batch 1024, layer-wise lr decay 0.65 (block i of N gets
# lr * 0.65 ** (N + 1 - i)), 5 warm-up epochs then cosine, 100 epochs.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4 * 1024 / 256, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
    # the constructor also drops weight decay on 1-D parameters (norms, biases), the cls
    # token and the position embedding (its defaults: flat_decay, no_decay_names)
    paramwise_cfg=dict(layer_decay_rate=0.65))
max_epochs = 100
warmup_epochs = 5
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, eta_min=1e-6, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# --auto-scale-lr rescales lr from this batch size to the one actually used
auto_scale_lr = dict(base_batch_size=1024)

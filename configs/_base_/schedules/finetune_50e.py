# MAE's end-to-end fine-tuning schedule for ViT-L and ViT-H: as finetune_100e.py but
# layer decay 0.75, lr = 1e-3 * batch / 256 and 50 epochs (5 warm-up).
_base_ = './finetune_100e.py'
optim_wrapper = dict(optimizer=dict(lr=1e-3 * 1024 / 256), paramwise_cfg=dict(layer_decay_rate=0.75))
max_epochs = 50
warmup_epochs = 5
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, eta_min=1e-6, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)

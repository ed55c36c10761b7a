# Short pre-training schedule for Fashion-MNIST (batch 256): MAE's optimizer settings
# (AdamW (0.9, 0.95), wd 0.05, no decay on norms, biases and tokens) at lr 2e-3,
# one warm-up epoch, then cosine.
_base_ = './adamw_coslr_800e.py'
optim_wrapper = dict(optimizer=dict(lr=2e-3))
max_epochs = 4
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=256)

# Full-label fine-tune recipe for the main job's ViT "mini" (32x32 padded, 4x4 patches) on
# Fashion-MNIST (issue #18 item 3): layer decay 0.65, drop path 0.1, label smoothing 0.1,
# random crop with 2-pixel padding (the garments sit in a 2-pixel border) + horizontal flip
# (a mirrored garment is the same class), AdamW lr 2e-3 (batch 256), 5 warm-up epochs then
# cosine, 50 epochs. Run by tools/analysis/fmnist_benchmark.py --device cuda from the main
# job's MAE and from scratch (model.backbone.init_cfg=None):
#   python tools/train.py configs/fashion_mnist/benchmark/finetune-recipe_vit-mini-p4.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/mae_vit-mini-p4_4e/epoch_4.pth
# It keeps the base config's checkpoint every epoch (the newest one kept), so that a run
# too long for one sitting (2.5-3.2 h on 2 AVX-512/bf16 CPU cores with --amp) continues
# where it stopped: the same command with --resume and the same --work-dir.
_base_ = ['../finetune_vit-mini-p4.py']
max_epochs = 50
warmup_epochs = 5
train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=2),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
model = dict(backbone=dict(drop_path_rate=0.1))
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
optim_wrapper = dict(optimizer=dict(lr=2e-3), paramwise_cfg=dict(layer_decay_rate=0.65))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=warmup_epochs,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=5)

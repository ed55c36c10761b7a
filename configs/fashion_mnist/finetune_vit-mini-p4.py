# Fine-tune a Fashion-MNIST pre-trained ViT "mini" (128-d, 6 blocks, patch 4, 32x32 grey)
# end to end as a 10-way classifier: global-pooled features, layer decay 0.75, drop
# path 0.1, label smoothing 0.1, AdamW lr 3e-3, warm-up for the first 10% of an epoch
# then cosine, 2 epochs. The recipe of the ImageNet fine-tune
# (configs/_base_/models/vit_base-p16_cls.py) shrunk to a CPU budget: Mixup/CutMix and
# random resized crops are left out because they need far more than 2 epochs to pay off
# (in a 1-epoch fine-tune the pre-training crops cost several points). --amp runs it in bf16
# on a CPU with native bf16 (about 2.5x faster on AVX-512/bf16), in fp32 on an AVX2 CPU.
#   python tools/train.py configs/fashion_mnist/finetune_vit-mini-p4.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/mae_vit-mini-p4_4e/epoch_4.pth
# model.backbone.init_cfg=None trains the same classifier from scratch (the supervised
# baseline of tools/analysis/fmnist_benchmark.py).
_base_ = ['../_base_/datasets/fashion_mnist.py', '../_base_/default_runtime.py']
train_pipeline = [dict(type='RandomFlip', prob=0.5), dict(type='PackInputs')]
checkpoint = 'work_dirs/mae_vit-mini-p4_4e/epoch_4.pth'
model = dict(
    type='mmpretrain.ImageClassifier',
    data_preprocessor=dict(type='mmpretrain.ClsDataPreprocessor', num_classes=10,
                           mean={{_base_.fmnist_mean}}, std={{_base_.fmnist_std}}, to_rgb=False),
    backbone=dict(
        type='MaskedViT',
        arch=dict(embed_dims=128, num_layers=6, num_heads=4, feedforward_channels=512),
        img_size=32,
        patch_size=4,
        in_channels=1,
        drop_path_rate=0.1,
        out_type='avg_featmap',
        final_norm=False,
        fixed_pos_embed=False,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')),
    neck=None,
    head=dict(
        type='mmpretrain.LinearClsHead',
        num_classes=10,
        in_channels=128,
        loss=dict(type='mmpretrain.LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=[dict(type='TruncNormal', layer='Linear', std=2e-5)]),
)

train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=500,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type={{_base_.dataset_type}}, data_root={{_base_.data_root}}, split='test',
                 pipeline={{_base_.test_pipeline}}))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=3e-3, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.75))
max_epochs = 2
param_scheduler = [
    # linear warm-up over the first 10% of an epoch, then cosine to the end; both are
    # in epochs, so they follow the run's length (and tools/analysis/fmnist_benchmark.py's
    # --finetune-epochs / --finetune-train-size)
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=0.1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=0.1, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=256)
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=1, max_keep_ckpts=1))

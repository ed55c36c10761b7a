# ImageNet classifier for end-to-end fine-tuning of a pre-trained ViT-B/16 encoder
# (MAE protocol): global-average-pooled patch tokens (no final norm; a LayerNorm after
# the pooling instead), drop path 0.1, learned position embedding initialised from the
# checkpoint, label smoothing 0.1, Mixup 0.8 / CutMix 1.0 (one of the two per batch).
# Set the encoder weights with the `checkpoint` variable of the benchmark config
# (model.backbone.init_cfg.checkpoint on the command line).
model = dict(
    type='mmpretrain.ImageClassifier',
    data_preprocessor=dict(
        type='mmpretrain.ClsDataPreprocessor',
        num_classes=1000,
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='MaskedViT',
        arch='base',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.1,
        out_type='avg_featmap',
        final_norm=False,
        fixed_pos_embed=False,
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')),
    neck=None,
    head=dict(
        type='mmpretrain.LinearClsHead',
        num_classes=1000,
        in_channels=768,
        loss=dict(type='mmpretrain.LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=[dict(type='TruncNormal', layer='Linear', std=2e-5)]),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]),
)

# ImageNet linear probe of a pre-trained ViT-B/16 encoder (MAE protocol): the whole
# encoder is frozen (frozen_stages = number of blocks also freezes the final norm),
# its cls token goes through a BatchNorm without affine parameters
# (mmpretrain.ClsBatchNormNeck) into one linear layer. Only the BatchNorm statistics
# and the linear layer change. Set the encoder weights with the `checkpoint` variable.
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
        out_type='cls_token',
        frozen_stages=12,
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')),
    neck=dict(type='mmpretrain.ClsBatchNormNeck', input_features=768, affine=False),
    head=dict(
        type='mmpretrain.LinearClsHead',
        num_classes=1000,
        in_channels=768,
        loss=dict(type='mmpretrain.CrossEntropyLoss', loss_weight=1.0),
        init_cfg=[dict(type='TruncNormal', layer='Linear', std=0.01)]),
)

# ImageNet linear probe of a pre-trained ViT-B/16 encoder (MAE protocol): the classifier
# of vit_base-p16_cls.py with the whole encoder frozen (frozen_stages = number of blocks
# also freezes the final norm), its cls token through a BatchNorm without affine
# parameters (mmpretrain.ClsBatchNormNeck) into one linear layer; no drop path, label
# smoothing or Mixup/CutMix. Only the BatchNorm statistics and the linear layer change.
# Set the encoder weights with the `checkpoint` variable.
_base_ = './vit_base-p16_cls.py'
model = dict(
    backbone=dict(out_type='cls_token', final_norm=True, fixed_pos_embed=True, drop_path_rate=0.,
                  frozen_stages=12),
    neck=dict(_delete_=True, type='mmpretrain.ClsBatchNormNeck', input_features=768, affine=False),
    head=dict(
        loss=dict(_delete_=True, type='mmpretrain.CrossEntropyLoss', loss_weight=1.0),
        init_cfg=[dict(type='TruncNormal', layer='Linear', std=0.01)]),
    train_cfg=None,
)

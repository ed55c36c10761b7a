# MAE ViT-L/16: linear probe on ImageNet-1k (frozen encoder, cls token,
# BatchNorm without affine, LARS), 90 epochs, batch 16384 (8 GPUs x 2048):
#   tools/dist_train.sh configs/mae/benchmarks/vit-l_linear-probe_90e.py 8
# The encoder comes from `checkpoint` below: by default what
#   tools/dist_train.sh configs/mae/vit-l_800e.py 8 --work-dir work_dirs/mae_vit-l_800e
# leaves; another one: --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = './vit-b_linear-probe_90e.py'
checkpoint = 'work_dirs/mae_vit-l_800e/epoch_800.pth'
model = dict(
    backbone=dict(arch='large', frozen_stages=24, init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(input_features=1024),
    head=dict(in_channels=1024))

# EMAE ViT-B/16: linear probe on ImageNet-1k (frozen encoder, cls token,
# BatchNorm without affine, LARS), 90 epochs, batch 16384 (8 GPUs x 2048):
#   tools/dist_train.sh configs/emae/benchmarks/vit-b_linear-probe_90e.py 8
# The encoder comes from `checkpoint` below: by default what
#   tools/dist_train.sh configs/emae/vit-b_800e.py 8 --work-dir work_dirs/emae_vit-b_800e
# leaves; another one: --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = [
    '../../_base_/models/vit_base-p16_linear-cls.py',
    '../../_base_/datasets/imagenet_linear.py',
    '../../_base_/schedules/linear_90e.py',
    '../../_base_/default_runtime.py',
]
checkpoint = 'work_dirs/emae_vit-b_800e/epoch_800.pth'
model = dict(backbone=dict(init_cfg=dict(checkpoint=checkpoint)))
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=2, save_best='auto'))

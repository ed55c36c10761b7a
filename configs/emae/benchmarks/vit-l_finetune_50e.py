# EMAE ViT-L/16: end-to-end fine-tuning on ImageNet-1k, 50 epochs, batch 1024
# (8 GPUs x 128), layer decay 0.75:
#   tools/dist_train.sh configs/emae/benchmarks/vit-l_finetune_50e.py 8
# The encoder comes from `checkpoint` below: by default what
#   tools/dist_train.sh configs/emae/vit-l_800e.py 8 --work-dir work_dirs/emae_vit-l_800e
# leaves; another one: --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = [
    '../../_base_/models/vit_base-p16_cls.py',
    '../../_base_/datasets/imagenet_finetune.py',
    '../../_base_/schedules/finetune_50e.py',
    '../../_base_/default_runtime.py',
]
checkpoint = 'work_dirs/emae_vit-l_800e/epoch_800.pth'
model = dict(
    backbone=dict(arch='large', drop_path_rate=0.2, init_cfg=dict(checkpoint=checkpoint)),
    head=dict(in_channels=1024))
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=2, save_best='auto'))

# MAE + SBAM (salience masking) ViT-B/16: end-to-end fine-tuning on ImageNet-1k, 100 epochs, batch 1024
# (8 GPUs x 128), layer decay 0.65, global-pooled features:
#   tools/dist_train.sh configs/sbam/benchmarks/vit-b_finetune_100e.py 8
# The encoder comes from `checkpoint` below: by default what
#   tools/dist_train.sh configs/sbam/mae-sbam_vit-b_800e.py 8 --work-dir work_dirs/mae-sbam_vit-b_800e
# leaves; another one: --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = [
    '../../_base_/models/vit_base-p16_cls.py',
    '../../_base_/datasets/imagenet_finetune.py',
    '../../_base_/schedules/finetune_100e.py',
    '../../_base_/default_runtime.py',
]
checkpoint = 'work_dirs/mae-sbam_vit-b_800e/epoch_800.pth'
model = dict(backbone=dict(init_cfg=dict(checkpoint=checkpoint)))
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=2, save_best='auto'))

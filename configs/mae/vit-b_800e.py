# MAE ViT-B/16, 800 epochs, ImageNet-1k, batch 4096 (8 GPUs x 512):
#   tools/dist_train.sh configs/mae/vit-b_800e.py 8
_base_ = [
    '../_base_/models/mae_vit-base-p16.py',
    '../_base_/datasets/imagenet_mae.py',
    '../_base_/schedules/adamw_coslr_800e.py',
    '../_base_/default_runtime.py',
]
default_hooks = dict(checkpoint=dict(interval=50, max_keep_ckpts=3))

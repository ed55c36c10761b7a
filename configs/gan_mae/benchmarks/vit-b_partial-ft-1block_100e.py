# GAN-MAE ViT-B/16: partial fine-tuning on ImageNet-1k -- only the last
# `trainable_blocks` transformer blocks (plus the pooled-feature norm and the head)
# learn; the patch embedding and the blocks before them stay frozen. Recipe as
# vit-b_finetune_100e.py (MAE paper, partial fine-tuning):
#   tools/dist_train.sh configs/gan_mae/benchmarks/vit-b_partial-ft-1block_100e.py 8
# Other k: --cfg-options model.backbone.frozen_stages=<12 - k>
_base_ = './vit-b_finetune_100e.py'
trainable_blocks = 1
model = dict(backbone=dict(frozen_stages=12 - trainable_blocks))

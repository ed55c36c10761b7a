# ImageNet-A: top-1 of a fine-tuned ViT-B/16 classifier whose 1000 logits are restricted
# to ImageNet-A's 200 classes (metric SubsetAccuracy):
#   tools/test.py configs/robustness/vit-b_imagenet-a.py FINE_TUNED_CHECKPOINT
# Expects data/imagenet-a/<wnid>/*.jpg: all 200 WordNet-id folders of the release, whose
# sorted order gives the labels 0..199. To use your own index list:
#   --cfg-options test_evaluator.subset=None test_evaluator.index_file=PATH
_base_ = ['../_base_/models/vit_base-p16_cls.py', '../_base_/datasets/imagenet_test_pipeline.py',
          '../_base_/default_runtime.py']
model = dict(backbone=dict(init_cfg=None))  # all weights come from the tested checkpoint

data_root = 'data/imagenet-a'
test_dataloader = dict(
    batch_size=128,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='mmpretrain.CustomDataset', data_root=data_root, data_prefix='',
                 pipeline={{_base_.test_pipeline}}))
test_evaluator = dict(type='SubsetAccuracy', subset='imagenet-a', prefix='imagenet-a')
test_cfg = dict()

# ImageNet-R (renditions): top-1 of a fine-tuned ViT-B/16 classifier whose 1000 logits are
# restricted to ImageNet-R's 200 classes (metric SubsetAccuracy):
#   tools/test.py configs/robustness/vit-b_imagenet-r.py FINE_TUNED_CHECKPOINT
# Expects data/imagenet-r/<wnid>/*.jpg: all 200 WordNet-id folders of the release.
_base_ = './vit-b_imagenet-a.py'
data_root = 'data/imagenet-r'
test_dataloader = dict(dataset=dict(data_root=data_root))
test_evaluator = dict(subset='imagenet-r', prefix='imagenet-r')

# ImageNet-Sketch: top-1 / top-5 of a fine-tuned ViT-B/16 classifier on the 1000 classes:
#   tools/test.py configs/robustness/vit-b_imagenet-sketch.py FINE_TUNED_CHECKPOINT
# Expects data/imagenet-sketch/sketch/<wnid>/*.JPEG (all 1000 WordNet-id folders, whose
# sorted order is ImageNet-1k's class order).
_base_ = './vit-b_imagenet-a.py'
data_root = 'data/imagenet-sketch/sketch'
test_dataloader = dict(dataset=dict(type='mmpretrain.ImageNet', data_root=data_root))
test_evaluator = dict(_delete_=True, type='Accuracy', topk=(1, 5), prefix='imagenet-sketch')

# ImageNet-C: mCE of a fine-tuned ViT-B/16 classifier over 15 corruptions x 5 severities,
# each corruption's error normalised by AlexNet's (metric CorruptionError):
#   tools/test.py configs/robustness/vit-b_imagenet-c.py FINE_TUNED_CHECKPOINT
# FINE_TUNED_CHECKPOINT: e.g. what configs/mae/benchmarks/vit-b_finetune_100e.py leaves.
# Expects data/imagenet-c/<corruption>/<severity>/<wnid>/*.JPEG (the released layout; the
# images are already 224 x 224). One corruption only: --cfg-options
# test_dataloader.dataset.datasets=... or link a folder holding just that corruption
# (the metric then reports CE for what it saw and no mCE).
_base_ = ['../_base_/models/vit_base-p16_cls.py', '../_base_/default_runtime.py']
model = dict(backbone=dict(init_cfg=None))  # all weights come from the tested checkpoint

data_root = 'data/imagenet-c'
corruptions = [
    'gaussian_noise', 'shot_noise', 'impulse_noise', 'defocus_blur', 'glass_blur',
    'motion_blur', 'zoom_blur', 'snow', 'frost', 'fog', 'brightness', 'contrast',
    'elastic_transform', 'pixelate', 'jpeg_compression'
]
severities = [1, 2, 3, 4, 5]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
test_dataloader = dict(
    batch_size=256,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='ConcatDataset',
        datasets=[
            dict(type='mmpretrain.ImageNet', data_root=data_root, data_prefix=f'{c}/{s}',
                 pipeline=test_pipeline) for c in corruptions for s in severities
        ]))
test_evaluator = dict(type='CorruptionError')
test_cfg = dict()

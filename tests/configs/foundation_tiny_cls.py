# A seconds-long evaluation for the tools/test.py tests: mmpretrain's ViT classifier
# (2 layers, 32-d, 32x32 input, patch 4) on a folder-per-class image set. Tests set
# the folder with --cfg-options test_dataloader.dataset.data_root=<dir>.
model = dict(
    type='mmpretrain.ImageClassifier',
    data_preprocessor=dict(type='mmpretrain.ClsDataPreprocessor', mean=[127.5] * 3,
                           std=[127.5] * 3, to_rgb=True),
    backbone=dict(type='mmpretrain.VisionTransformer', img_size=32, patch_size=4,
                  arch=dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)),
    head=dict(type='mmpretrain.VisionTransformerClsHead', num_classes=2, in_channels=32))

test_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='mmpretrain.CustomDataset', data_root='data/tiny_classes', data_prefix='',
                 pipeline=[dict(type='mmpretrain.LoadImageFromFile'),
                           dict(type='mmpretrain.PackInputs')]))
test_evaluator = dict(type='mmpretrain.Accuracy', topk=(1, ))
test_cfg = dict()

default_hooks = dict(timer=dict(type='IterTimerHook'), logger=dict(type='LoggerHook', interval=1))
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
log_level = 'INFO'

# Ablation of the main job (mae_vit-mini-p4_4e.py): the 28x28 images unpadded, i.e. a
# 7x7 = 49-patch grid instead of the padded 8x8 = 64, and a warm-up over the first
# quarter of an epoch instead of the first epoch. 23% fewer FLOPs per image, a 0.71x
# training step on the AVX2 code path, but a worse encoder: measured on 2 Intel Xeon
# AVX-512/AMX cores (tools/analysis/main_job_curve.py, all 60k/10k probe images) 4 epochs
# give a linear probe of 83.50 / 82.98% (seeds 0 / 1) against 85.25 / 85.61% for the
# padded main job; 2 epochs 79.78%, 1 epoch 78.11% (seed 0; docs/cpus.md). Kept as the
# record of that measurement.
#   python tools/train.py configs/fashion_mnist/mae_vit-mini-p4-28px_4e.py
_base_ = ['./mae_vit-mini-p4_4e.py']
fmnist_mean = [72.94]  # the unpadded 28x28 training images, 0-255 units
fmnist_std = [90.02]
max_epochs = 4
warmup_epochs = 0.25

model = dict(data_preprocessor=dict(mean=fmnist_mean, std=fmnist_std),
             backbone=dict(img_size=28))
train_pipeline = [
    dict(type='RandomResizedCrop', scale=28, crop_ratio_range=(0.5, 1.0),
         aspect_ratio_range=(3. / 4., 4. / 3.), backend='cv2', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pad_to=None, pipeline=train_pipeline))
probe_train = dict(type='FashionMNISTDataset', data_root={{_base_.data_root}}, split='train',
                   pad_to=None, pipeline={{_base_.test_pipeline}})
probe_test = dict(type='FashionMNISTDataset', data_root={{_base_.data_root}}, split='test',
                  pad_to=None, pipeline={{_base_.test_pipeline}})
custom_hooks = [
    dict(type='ReconstructionVisHook', dataset=probe_test, num_images=8),
    dict(type='LinearProbeHook', train_dataset=probe_train, test_dataset=probe_test),
]
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=warmup_epochs, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)

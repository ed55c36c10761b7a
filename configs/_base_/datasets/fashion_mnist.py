# Fashion-MNIST (real data, CPU-sized): 28x28 grey padded to 32x32 (patch 4 -> 8x8 = 64 patches).
# Reads the idx .gz files from Debian's dataset-fashion-mnist package by default;
# override with --cfg-options data_root=... (and the dataloaders' dataset.data_root).
data_root = '/usr/share/datasets/fashion-mnist'
dataset_type = 'FashionMNISTDataset'
# statistics of the padded 32x32 training images, in 0-255 units
fmnist_mean = [55.8]
fmnist_std = [82.9]
train_pipeline = [
    dict(type='RandomResizedCrop', scale=32, crop_ratio_range=(0.5, 1.0), aspect_ratio_range=(3. / 4., 4. / 3.),
         backend='cv2', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=256,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline))

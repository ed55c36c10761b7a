# MAE ViT-B/16, 800 epochs, with the GPU-decode input path: the data-loader workers only
# read JPEG bytes (LoadJpegBytes); the model's JpegDecodeDataPreprocessor decodes the batch
# on the GPU (torchvision.io.decode_jpeg, nvjpeg), takes RandomResizedCrop(224, 0.2-1.0,
# bicubic) crops with the CPU path's distribution, flips and normalises there.
#   tools/dist_train.sh configs/mae/vit-b_800e_gpu-decode.py 8
# Needs a CUDA build of torchvision; the error says so otherwise. Any ImageNet
# pre-training config switches the same way: copy the two blocks below.
_base_ = './vit-b_800e.py'
train_dataloader = dict(
    num_workers=4,
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(pipeline=[dict(type='LoadJpegBytes'), dict(type='PackInputs')]))
model = dict(
    data_preprocessor=dict(type='JpegDecodeDataPreprocessor', size=224,
                           crop_ratio_range=(0.2, 1.0), interpolation='bicubic',
                           flip_prob=0.5))

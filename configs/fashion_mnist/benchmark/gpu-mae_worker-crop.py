# The GPU grid's MAE cell with RandomResizedCrop and flip back in the loader workers, as the
# cell was before they moved to the model's device (BatchRandomResizedCropDataPreprocessor):
# the other arm of the comparison in docs/benchmark.md ("Crop and flip on the device").
#   python tools/train.py configs/fashion_mnist/benchmark/gpu-mae_worker-crop.py --amp --cfg-options randomness.seed=1
_base_ = ['./gpu/mae.py']
model = dict(data_preprocessor=dict(_delete_=True, type='SelfSupDataPreprocessor',
                                    mean=_base_.grid.model.data_preprocessor.mean,
                                    std=_base_.grid.model.data_preprocessor.std, to_rgb=False))
train_dataloader = dict(dataset=dict(pipeline=_base_.grid.train_dataloader.dataset.pipeline))

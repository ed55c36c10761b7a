# The default real-data run (CPU; 8 min on 2 AMD EPYC AVX-512/bf16 cores, 12 min on 2 Intel
# Xeon AVX-512/AMX cores; see docs/cpus.md for AVX2):
#   python tools/train.py configs/fashion_mnist/mae_vit-mini-p4_4e.py
# Leaves in the work dir: the checkpoint, reconstruction.png (masked / reconstruction /
# reconstruction + visible / original), and linear_probe.json (printed at the end).
_base_ = [
    '../_base_/models/mae_vit-mini-p4_fmnist.py',
    '../_base_/datasets/fashion_mnist.py',
    '../_base_/schedules/fmnist_adamw_cos.py',
    '../_base_/default_runtime.py',
]
probe_train = dict(type='FashionMNISTDataset', data_root={{_base_.data_root}}, split='train',
                   pipeline={{_base_.test_pipeline}})
probe_test = dict(type='FashionMNISTDataset', data_root={{_base_.data_root}}, split='test',
                  pipeline={{_base_.test_pipeline}})
custom_hooks = [
    dict(type='ReconstructionVisHook', dataset=probe_test, num_images=8),
    dict(type='LinearProbeHook', train_dataset=probe_train, test_dataset=probe_test),
]
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=1, max_keep_ckpts=2))

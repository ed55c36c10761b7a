# tests/configs/reliability_tiny_mae.py with SGD + momentum instead of AdamW: SGD's update is
# linear in the gradient, so two runs whose gradients differ only by float rounding (other
# process count, DDP vs FSDP reduction) end with weights that differ by rounding too.
_base_ = ['./reliability_tiny_mae.py']
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-4))

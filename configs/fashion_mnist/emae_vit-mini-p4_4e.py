# EMAE on Fashion-MNIST with the same model as mae_vit-mini-p4_4e.py (directly comparable):
# K = 4 parallel views of the 64 patches (16 visible each), consistency weight 1.
# A step costs ~4 MAE steps: compare at equal epochs and at equal wall time.
_base_ = './mae_vit-mini-p4_4e.py'
model = dict(
    type='EMAE',
    masker=dict(_delete_=True, type='ParallelMasker', num_parts=4),
    consistency=dict(type='ConsistencyLoss', loss_type='l2', stop_grad=True, loss_weight=1.0),
)

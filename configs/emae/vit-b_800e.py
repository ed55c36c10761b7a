# EMAE ViT-B/16, 800 epochs, ImageNet-1k, batch 4096 (8 GPUs x 512), K = 4 parallel views:
#   tools/dist_train.sh configs/emae/vit-b_800e.py 8
# Each view masks 1 - 1/K = 75%; the 4 views of an image are disjoint and cover it, and run
# through encoder and decoder in one pass (B*K sequences), so a step costs ~K MAE steps.
_base_ = '../mae/vit-b_800e.py'
model = dict(
    type='EMAE',
    masker=dict(_delete_=True, type='ParallelMasker', num_parts=4),
    # L_total = L_whole + lambda * L_consistency; options: loss_type l2/l1/cosine,
    # target 'pairs' (every ordered pair of views; stop_grad) or 'anchor' (the first view
    # masking a patch is the detached target of the others)
    consistency=dict(type='ConsistencyLoss', loss_type='l2', target='pairs', stop_grad=True,
                     loss_weight=1.0),
)

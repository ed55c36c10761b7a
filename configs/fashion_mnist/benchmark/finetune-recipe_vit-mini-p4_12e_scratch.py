# The 10-epoch recipe from scratch, lengthened to the MAE arm's total compute: the main
# job's MAE pre-training (4 epochs x 12.5 TFLOP) costs as many counted FLOPs as 1.8 epochs of
# this fine-tune (27.6 TFLOP per epoch), so from scratch gets 12 epochs (1 warm-up + 11
# cosine) against MAE's 4 + 10. FLOPs are counted with tools/benchmark.py's counter, as in
# the benchmark's equal-compute budgets (docs/benchmark.md).
#   python tools/train.py configs/fashion_mnist/benchmark/finetune-recipe_vit-mini-p4_12e_scratch.py --amp
_base_ = ['./finetune-recipe_vit-mini-p4_10e.py']
max_epochs = 12
__warmup, __cosine = _base_.param_scheduler
param_scheduler = [__warmup, dict(__cosine, end=max_epochs)]
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(checkpoint=dict(interval=max_epochs))
model = dict(backbone=dict(init_cfg=None))

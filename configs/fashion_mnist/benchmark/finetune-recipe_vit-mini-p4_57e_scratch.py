# The 50-epoch recipe from scratch, lengthened to the MAE arm's total compute: the main
# job's MAE pre-trained 16 epochs (mae_vit-mini-p4_16e.py, 12.5 TFLOP per epoch) costs as
# many counted FLOPs as 7.3 epochs of this fine-tune (27.6 TFLOP per epoch), so from
# scratch gets 57 epochs (5 warm-up + 52 cosine) against MAE's 16 + 50. FLOPs are counted
# with tools/benchmark.py's counter, as in the benchmark's equal-compute budgets
# (docs/benchmark.md). It keeps the recipe's checkpoint every epoch, so a CPU run (about
# 1.5-3.5 h) continues where it stopped with --resume and the same --work-dir:
#   python tools/train.py configs/fashion_mnist/benchmark/finetune-recipe_vit-mini-p4_57e_scratch.py --amp
_base_ = ['./finetune-recipe_vit-mini-p4.py']
max_epochs = 57
__warmup, __cosine = _base_.param_scheduler
param_scheduler = [__warmup, dict(__cosine, end=max_epochs)]
train_cfg = dict(max_epochs=max_epochs)
model = dict(backbone=dict(init_cfg=None))

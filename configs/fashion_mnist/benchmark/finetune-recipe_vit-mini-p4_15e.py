# The full-label fine-tune recipe at 15 epochs (1 warm-up + 14 cosine): the 10-epoch CPU
# version lengthened by half, to show how the recipe's accuracy grows with its length on a
# CPU (about 48 min per run on 2 AVX-512/bf16 cores with --amp). Results: README, "The
# full-label fine-tune recipe, 10 epochs".
#   python tools/train.py configs/fashion_mnist/benchmark/finetune-recipe_vit-mini-p4_15e.py --amp \
#       --cfg-options randomness.seed=S
_base_ = ['./finetune-recipe_vit-mini-p4_10e.py']
max_epochs = 15
__warmup, __cosine = _base_.param_scheduler
param_scheduler = [__warmup, dict(__cosine, end=max_epochs)]
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(checkpoint=dict(interval=max_epochs))

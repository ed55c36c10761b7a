# The main job's MAE (mae_vit-mini-p4_4e.py) pre-trained 4x longer: 16 epochs, 1 warm-up
# epoch then cosine, nothing else changed. It tests one lever of the full-label fine-tune
# recipe's >= 93% goal (issue #18): a longer pre-training than 4 epochs. README, "The
# full-label fine-tune recipe"; about 0.45 s per iteration (235 per epoch) on 2 AVX-512/bf16
# cores with --amp:
#   bash tools/run_main.sh configs/fashion_mnist/mae_vit-mini-p4_16e.py --amp
#   python tools/train.py configs/fashion_mnist/benchmark/finetune-recipe_vit-mini-p4_10e.py --amp \
#       --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/mae_vit-mini-p4_16e/epoch_16.pth
_base_ = ['./mae_vit-mini-p4_4e.py']
max_epochs = 16
__warmup, __cosine = _base_.param_scheduler
param_scheduler = [__warmup, dict(__cosine, end=max_epochs)]
train_cfg = dict(max_epochs=max_epochs)

# ViT-H/14 MAE, 1600 epochs, trained with FSDP: parameters, gradients and AdamW states are
# sharded over the GPUs (FULL_SHARD), each transformer block is one FSDP unit, compute in
# bf16 with fp32 gradient reduction and fp32 master weights. Checkpoints are full state
# dicts in the DDP layout (backbone.*, neck.*), so ViT-H fine-tuning configs load them.
#   tools/dist_train.sh configs/mae/vit-h_1600e_fsdp.py 8
# --resume, --work-dir, --cfg-options, --auto-scale-lr work as with DDP (--amp adds nothing:
# bf16 is set below). Batch 256 per GPU: the recipe's 4096 on 16 GPUs (2 nodes x 8); on 8
# GPUs add --auto-scale-lr (2048), or keep 4096 with
#   --cfg-options train_dataloader.batch_size=512 model.backbone.with_cp=True
# Memory per GPU, from `python tools/analysis/memory_plan.py CONFIG --gpus N --activations`:
#   exact: sharded state (fp32 params + grads + AdamW moments of 657M parameters)
#     1.22 GiB on 8 GPUs, 0.61 GiB on 16 (DDP keeps 9.79 GiB on every GPU)
#   ESTIMATE (activations measured on a CPU and scaled; no GPU measurement yet):
#     activations at batch 256 ~34 GiB + FSDP buffers ~0.15 GiB: ~35 GiB per GPU plus the
#     CUDA context and allocator slack -> an 80 GB GPU (a 40 GB one is too tight);
#     with model.backbone.with_cp=True ~16 GiB; batch 512 + with_cp ~31 GiB.
_base_ = './vit-h_1600e.py'
custom_imports = dict(imports=['mmmim', 'mmmim.engine.strategies'], allow_failed_imports=False)
strategy = dict(
    type='MIMFSDPStrategy',
    model_wrapper=dict(
        sharding_strategy='FULL_SHARD',
        mixed_precision=dict(param_dtype='bfloat16', reduce_dtype='float32',
                             buffer_dtype='float32')))
train_dataloader = dict(batch_size=256)

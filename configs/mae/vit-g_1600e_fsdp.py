# A ViT-g/14-sized MAE: 1.01B encoder parameters (width 1408, depth 40, 16 heads, MLP 6144,
# patch 14, as ViT-g/14) + the 8 x 512 decoder, 1600 epochs, with FSDP as
# configs/mae/vit-h_1600e_fsdp.py (bf16 compute, fp32 master weights and reduction, one FSDP
# unit per block, full-state-dict checkpoints in the DDP layout).
#   tools/dist_train.sh configs/mae/vit-g_1600e_fsdp.py 8
# Batch 128 per GPU: 4096 on 32 GPUs (4 nodes x 8); on 8 GPUs add --auto-scale-lr (1024).
# Memory per GPU, from `python tools/analysis/memory_plan.py CONFIG --gpus N --activations`:
#   exact: sharded state (fp32 params + grads + AdamW moments of 1.04B parameters)
#     1.93 GiB on 8 GPUs, 0.48 GiB on 32 (DDP keeps 15.46 GiB on every GPU)
#   ESTIMATE (activations measured on a CPU and scaled; no GPU measurement yet):
#     activations at batch 128 ~21.6 GiB + FSDP buffers ~0.19 GiB: ~24 GiB per GPU plus the
#     CUDA context and allocator slack -> a 40 GB GPU; with model.backbone.with_cp=True
#     ~10 GiB.
_base_ = './vit-h_1600e_fsdp.py'
model = dict(backbone=dict(arch=dict(_delete_=True, embed_dims=1408, num_layers=40, num_heads=16,
                                     feedforward_channels=6144)))
train_dataloader = dict(batch_size=128)

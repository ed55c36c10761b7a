"""Per-GPU memory plan of a pre-training config under FSDP (or DDP): what is exact and
what is an estimate, so a config can state the GPU memory it needs.

    python tools/analysis/memory_plan.py configs/mae/vit-g_1600e_fsdp.py --gpus 8
    python tools/analysis/memory_plan.py configs/mae/vit-h_1600e_fsdp.py --gpus 8 \
        --batch-size 128 --activations

Exact (from the model, built on the meta device: no weights are allocated):

- parameters: total, trainable, per FSDP unit (one per transformer block under
  ``MIMFSDPStrategy``, the rest in the root unit);
- sharded training state per GPU with FULL_SHARD over N GPUs: fp32 parameters (4 B),
  fp32 gradients (4 B) and AdamW's two moments (8 B) of the trainable ones, divided by N
  (DDP: the same, not divided).

Estimate (``--activations``, labelled as such in the output): activation memory kept for
the backward pass, measured on the CPU as the bytes of the tensors autograd saves
(``torch.autograd.graph.saved_tensors_hooks``, counted once per storage) in one
forward pass of the config's own model with its encoder cut to 1 and 2 blocks, at a small
batch, in the compute dtype (bf16 when the strategy sets FSDP mixed precision, as FSDP
casts parameters and inputs to it). The difference is one block's share; it is scaled
linearly to the full depth and the requested batch. With activation checkpointing
(``with_cp``) each block keeps only its input plus one block's activations during its
recomputation. Plus FSDP's working buffers: the root unit's gathered parameters and two
gathered blocks (the one running and the one prefetched) with their unsharded gradients.
Not included: the allocator's fragmentation and caching, temporaries inside kernels,
the CUDA context (~0.5-1 GiB), data-loader pinned buffers. A GPU measurement belongs in a
later run (see docs/speed.md).
"""
import argparse
import copy
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

GiB = 1024**3


def build_model(model_cfg, device='meta'):
    """The config's model, on ``device`` (meta: shapes only)."""
    import torch
    from mmengine.registry import DefaultScope

    import mmmim.models  # noqa: F401
    from mmmim.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmmim'), torch.device(device):
        return MODELS.build(copy.deepcopy(model_cfg))


def count_parameters(model):
    """``dict(total, trainable, blocks, block_sizes, root)``: parameter counts, with the
    transformer blocks (FSDP units under MIMFSDPStrategy) listed separately."""
    from mmmim.models.layers import TransformerLayer
    blocks = [m for m in model.modules() if isinstance(m, TransformerLayer)]
    in_blocks = {id(p) for b in blocks for p in b.parameters()}
    params = list(model.parameters())
    return dict(
        total=sum(p.numel() for p in params),
        trainable=sum(p.numel() for p in params if p.requires_grad),
        blocks=len(blocks),
        block_sizes=[sum(p.numel() for p in b.parameters()) for b in blocks],
        root=sum(p.numel() for p in params if id(p) not in in_blocks))


def sharded_state_bytes(counts, gpus: int, shard: bool = True, optimizer_states: int = 2):
    """Bytes per GPU of fp32 parameters, fp32 gradients and ``optimizer_states`` fp32
    moments (AdamW: 2) of the trainable parameters; divided over ``gpus`` when sharded
    (FSDP FULL_SHARD), whole on every GPU otherwise (DDP)."""
    n = gpus if shard else 1
    params = 4 * counts['total'] / n
    grads = 4 * counts['trainable'] / n
    optim = 4 * optimizer_states * counts['trainable'] / n
    return dict(params=params, grads=grads, optimizer=optim, total=params + grads + optim)


def _saved_bytes(model, batch, dtype):
    """Bytes autograd keeps for the backward of one training forward (each storage once;
    the parameters themselves, which autograd also saves, are not activations)."""
    import torch
    model = model.to(dtype).train()
    seen = {p.untyped_storage().data_ptr() for p in model.parameters()}
    total = [0]

    def pack(t):
        try:
            storage = t.untyped_storage()
            key = (storage.data_ptr(), storage.nbytes())
        except (RuntimeError, NotImplementedError):
            key = (id(t), t.numel() * t.element_size())
        if key[0] not in seen and key[0] != 0:
            seen.add(key[0])
            total[0] += key[1]
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        losses = model.loss(batch.to(dtype))
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    return total[0]


def activation_estimate(model_cfg, batch_size, dtype, measure_batch=2, seed=0):
    """Estimated activation bytes at ``batch_size`` for the full-depth model (see the
    module docstring): ``dict(per_block, rest, total, total_with_cp, measured_batch)``."""
    import torch
    measured = []
    for d in (1, 2):
        cfg = copy.deepcopy(model_cfg)
        arch = _arch_dict(cfg['backbone'].get('arch', 'base'))
        arch['num_layers'] = d
        cfg['backbone']['arch'] = arch
        torch.manual_seed(seed)
        model = build_model(cfg, 'cpu')
        img = model.backbone.img_size
        x = torch.randn(measure_batch, model.backbone.in_channels, *img)
        measured.append(_saved_bytes(model, x, dtype))
        del model
    depth = _arch_dict(model_cfg['backbone'].get('arch', 'base'))['num_layers']
    per_block = (measured[1] - measured[0]) / measure_batch
    rest = (measured[0] - per_block * measure_batch) / measure_batch
    total = (rest + depth * per_block) * batch_size
    # checkpointing every encoder block: each keeps its input, one block is live at a time
    full = build_model(model_cfg, 'meta')
    n_keep = _visible_tokens(full)
    block_input = (1 + n_keep) * full.backbone.embed_dims * torch.finfo(dtype).bits // 8
    total_cp = (rest + depth * block_input + per_block) * batch_size
    return dict(per_block=per_block * batch_size, rest=rest * batch_size, total=total,
                total_with_cp=total_cp, measured_batch=measure_batch)


def _visible_tokens(model):
    """Visible tokens per image for the masker's (nominal) ratio."""
    ratio = getattr(model.masker, 'ratio', 0.75)
    ratio = ratio if isinstance(ratio, float) else 0.75
    return int(round(model.backbone.num_patches * (1 - ratio)))


def _arch_dict(arch):
    if isinstance(arch, dict):
        return dict(arch)
    from mmmim.models.backbones.masked_vit import ARCHS
    dims, depth, heads, ffn = ARCHS[arch]
    return dict(embed_dims=dims, num_layers=depth, num_heads=heads, feedforward_channels=ffn)


def compute_dtype(cfg):
    """bf16/fp16 when the strategy sets FSDP mixed precision, else fp32."""
    import torch
    mp = ((cfg.get('strategy') or {}).get('model_wrapper') or {}).get('mixed_precision') or {}
    name = mp.get('param_dtype') if isinstance(mp, dict) else None
    return getattr(torch, str(name).replace('torch.', '')) if name else torch.float32


def fsdp_buffers(counts, dtype_bytes, reduce_bytes=4):
    """FSDP working memory: the root unit's gathered parameters and two gathered blocks
    (running + prefetched) in the compute dtype, with one block's unsharded gradient in
    the reduce dtype."""
    block = max(counts['block_sizes'] or [0])
    return counts['root'] * dtype_bytes + 2 * block * dtype_bytes + block * reduce_bytes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--gpus', type=int, default=8, help='world size N (default 8)')
    parser.add_argument('--batch-size', type=int, help='per-GPU batch (default: the config)')
    parser.add_argument('--activations', action='store_true',
                        help='also estimate activation memory (measured on the CPU, scaled)')
    args = parser.parse_args(argv)

    import torch
    from mmengine.config import Config
    cfg = Config.fromfile(args.config)
    batch = args.batch_size or cfg.train_dataloader.batch_size
    fsdp = 'strategy' in cfg
    model = build_model(cfg.model)
    counts = count_parameters(model)
    enc = sum(p.numel() for p in model.backbone.parameters())
    state = sharded_state_bytes(counts, args.gpus, shard=fsdp)
    dtype = compute_dtype(cfg)
    lines = [f'config: {args.config}',
             f'parameters: {counts["total"]:,} ({counts["trainable"]:,} trainable; encoder '
             f'{enc:,}); {counts["blocks"]} transformer blocks of up to '
             f'{max(counts["block_sizes"] or [0]):,}, root unit {counts["root"]:,}',
             f'{"FSDP FULL_SHARD" if fsdp else "DDP (no sharding)"} over {args.gpus} GPUs, '
             f'per GPU (exact): params {state["params"] / GiB:.2f} GiB + grads '
             f'{state["grads"] / GiB:.2f} GiB + AdamW moments {state["optimizer"] / GiB:.2f} GiB '
             f'= {state["total"] / GiB:.2f} GiB']
    if fsdp:
        buf = fsdp_buffers(counts, torch.finfo(dtype).bits // 8)
        lines.append(f'FSDP working buffers (estimate): {buf / GiB:.2f} GiB')
    else:
        buf = 0
    if args.activations:
        act = activation_estimate(cfg.model, batch, dtype)
        lines.append(
            f'activations at batch {batch}/GPU in {str(dtype).replace("torch.", "")} '
            f'(ESTIMATE: measured on CPU at batch {act["measured_batch"]}, scaled): '
            f'{act["total"] / GiB:.2f} GiB ({act["per_block"] / GiB:.3f} GiB per encoder '
            f'block); with backbone.with_cp=True {act["total_with_cp"] / GiB:.2f} GiB')
        lines.append(f'total per GPU (ESTIMATE): {(state["total"] + buf + act["total"]) / GiB:.1f}'
                     f' GiB; with with_cp {(state["total"] + buf + act["total_with_cp"]) / GiB:.1f}'
                     f' GiB (+ CUDA context and allocator slack)')
    print('\n'.join(lines))
    return dict(counts=counts, state=state)


if __name__ == '__main__':
    main()

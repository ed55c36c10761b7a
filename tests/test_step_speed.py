"""The training-step speed work (issue #21 item 1): the faster layers compute what a
plain reference computes on the same weights, and the speed options keep outputs,
gradients and state-dict keys."""
import copy
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from mmmim.models.backbones.masked_vit import MaskedViT
from mmmim.models.layers import Attention, TransformerLayer
from mmmim.models.maskers.plan import MaskPlan
from mmmim.models.necks.mae_decoder import MAEDecoder

from conftest import build_tiny, load_tool

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def reference_attention(attn, x, key_padding=None):
    """Multi-head attention written out: separate q/k/v projections from slices of the
    qkv weight, an explicit softmax, heads concatenated, the output projection."""
    n, s, d = x.shape
    h = attn.num_heads
    w, b = attn.qkv.weight, attn.qkv.bias
    heads = []
    for i in range(h):
        sl = [slice(j * d + i * d // h, j * d + (i + 1) * d // h) for j in range(3)]
        q, k, v = (F.linear(x, w[part], None if b is None else b[part]) for part in sl)
        scores = q @ k.transpose(1, 2) / (d // h)**0.5
        if key_padding is not None:
            scores = scores.masked_fill(key_padding[:, None, :], float('-inf'))
        heads.append(scores.softmax(-1) @ v)
    return attn.proj(torch.cat(heads, dim=-1))


def reference_layer(layer, x, key_padding=None):
    x = x + reference_attention(layer.attn, layer.ln1(x), key_padding)
    fc1, fc2 = layer.ffn.layers[0][0], layer.ffn.layers[1]
    return x + fc2(F.gelu(fc1(layer.ln2(x))))


def grads(module, *inputs):
    return [t.grad.clone() for t in [*inputs, *module.parameters()]]


def rel_err(a, b):
    return ((a - b).norm() / b.norm().clamp(min=1e-30)).item()


@pytest.mark.parametrize('padded', [False, True])
def test_layer_equals_reference_on_the_same_weights(padded):
    torch.manual_seed(0)
    layer = TransformerLayer(48, 4, 96)
    for p in layer.parameters():  # non-trivial LayerNorm/bias values
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(3, 11, 48, requires_grad=True)
    pad = None
    if padded:
        pad = torch.zeros(3, 11, dtype=torch.bool)
        pad[0, 7:] = True
        pad[2, 3:] = True
    dy = torch.randn(3, 11, 48)

    out = layer(x, pad)
    (out * dy).sum().backward()
    new = grads(layer, x)
    layer.zero_grad()
    x.grad = None
    ref = reference_layer(layer, x, pad)
    (ref * dy).sum().backward()
    old = grads(layer, x)
    assert rel_err(out, ref) < 1e-6
    for a, b in zip(new, old):
        assert rel_err(a, b) < 1e-5, rel_err(a, b)


def _attention_backward_copies(dims=32, heads=4, n=2, s=9):
    attn = Attention(dims, heads)
    x = torch.randn(n, s, dims, requires_grad=True)
    out = attn(x)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        out.sum().backward()
    names = [e.name for e in prof.events()]
    qkv_shape = [n, s, 3, heads, dims // heads]
    copies_of_qkv = [e.name for e in prof.events()
                     if e.name in ('aten::clone', 'aten::copy_', 'aten::contiguous')
                     and e.input_shapes and list(e.input_shapes[0]) == qkv_shape]
    return names.count('aten::stack'), copies_of_qkv


def test_qkv_gradient_is_assembled_with_one_copy():
    # dq, dk, dv are stacked once, straight into the layout of the qkv gradient; the
    # former leading-axis split needed a second copy of the (n, s, 3, heads, d) tensor
    stacks, copies = _attention_backward_copies()
    assert stacks == 1
    assert copies == []


def _plan(num_seq, num_patches, n_keep, padded):
    g = torch.Generator().manual_seed(1)
    ids = torch.stack([torch.randperm(num_patches, generator=g) for _ in range(num_seq)])
    pad = None
    if padded:
        pad = torch.zeros(num_seq, n_keep, dtype=torch.bool)
        pad[1, n_keep - 2:] = True
    return MaskPlan(ids_shuffle=ids, n_keep=n_keep, keep_padding=pad)


def reference_decoder_input(dec, latent, plan):
    """The decoder's sequence before its blocks, assembled the plain way: append mask
    tokens, unshuffle, prepend cls, add the position embedding."""
    x = dec.decoder_embed(latent)
    cls, visible = x[:, :1], x[:, 1:]
    num_seq, n_keep, dims = visible.shape
    if plan.keep_padding is not None:
        visible = torch.where(plan.keep_padding[..., None], dec.mask_token, visible)
    full = torch.cat([visible, dec.mask_token.expand(num_seq, plan.num_patches - n_keep, dims)],
                     1)
    full = torch.gather(full, 1, plan.ids_restore[..., None].expand(-1, -1, dims))
    return torch.cat([cls, full], dim=1) + dec.decoder_pos_embed


@pytest.mark.parametrize('padded', [False, True])
def test_decoder_unshuffle_equals_the_three_step_assembly(padded):
    torch.manual_seed(0)
    dec = MAEDecoder(grid_size=(4, 4), patch_size=2, in_channels=1, embed_dims=16,
                     decoder_embed_dims=12, decoder_depth=1, decoder_num_heads=2)
    dec.init_weights()
    plan = _plan(3, 16, 5, padded)
    latent = torch.randn(3, 6, 16)
    seen = {}
    hook = dec.decoder_blocks[0].register_forward_pre_hook(
        lambda m, args: seen.setdefault('x', args[0]))
    dec(latent, plan)
    hook.remove()
    # pure data movement: bit-identical
    assert torch.equal(seen['x'], reference_decoder_input(dec, latent, plan))


def test_compile_blocks_rejects_bad_options():
    arch = dict(embed_dims=16, num_layers=1, num_heads=2, feedforward_channels=32)
    with pytest.raises(ValueError, match='compile_blocks has unknown keys'):
        MaskedViT(arch=arch, img_size=8, patch_size=4, compile_blocks=dict(mod='max-autotune'))
    with pytest.raises(ValueError, match='compile_blocks='):
        MAEDecoder(grid_size=(2, 2), compile_blocks='yes')


def test_compile_blocks_equals_eager_outputs_gradients_and_keys():
    """One tiny MAE step with every block torch.compile-d against the same step eager.
    (Compiling takes tens of seconds on a CPU; the model is kept as small as it gets.)"""
    eager = build_tiny()
    compiled = build_tiny(backbone=dict(compile_blocks=True), neck=dict(compile_blocks=True))
    assert compiled.backbone.compiled and compiled.neck.compiled
    assert not eager.backbone.compiled
    blocks = [*compiled.backbone.layers, *compiled.neck.decoder_blocks]
    assert all(b._compiled_call_impl is not None for b in blocks)
    assert list(compiled.state_dict()) == list(eager.state_dict())
    compiled.load_state_dict(eager.state_dict())
    img = torch.randn(2, 1, 32, 32)
    plan = eager.masker(eager.backbone.embed(img))
    plan.keep_padding = torch.zeros(plan.ids_shuffle.shape[0], plan.n_keep, dtype=torch.bool)
    plan.keep_padding[1, -3:] = True
    results = []
    for model in (eager, compiled):
        _, latent, pred = model.reconstruct(img, copy.deepcopy(plan))
        loss = model.head.loss(pred, img, plan)['loss_rec']
        loss.backward()
        results.append((latent, pred, [p.grad for p in model.parameters() if p.requires_grad]))
    (lat_e, pred_e, g_e), (lat_c, pred_c, g_c) = results
    assert rel_err(lat_c, lat_e) < 1e-5
    assert rel_err(pred_c, pred_e) < 1e-5
    assert len(g_c) == len(g_e)
    for a, b in zip(g_c, g_e):
        assert rel_err(a, b) < 1e-4, rel_err(a, b)


def test_benchmark_profile_and_new_flags():
    env = {**os.environ, 'PYTHONPATH': REPO}
    proc = subprocess.run(
        [sys.executable, 'tools/benchmark.py', 'configs/fashion_mnist/mae_vit-mini-p4_4e.py',
         '--batch-size', '2', '--steps', '1', '--warmup', '0', '--profile', '1',
         '--profile-rows', '5'], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    out = proc.stdout
    assert 'compile blocks: False, pinned batch: False' in out
    top = re.search(r'top 5 operators by self CPU time:\n((?:  .*\n){5})', out)
    assert top, out
    counts = dict(re.findall(r'(aten::\w+) ([\d.]+)', out.split('copy-type operators per step:')[1]))
    assert set(counts) == {'aten::copy_', 'aten::_to_copy', 'aten::clone', 'aten::cat',
                           'aten::stack'}
    # one stack per attention layer's backward: 6 encoder + 2 decoder layers in this config
    assert float(counts['aten::stack']) >= 8
    # --pin-memory is for CUDA: refused clearly on a CPU
    proc = subprocess.run(
        [sys.executable, 'tools/benchmark.py', 'configs/fashion_mnist/mae_vit-mini-p4_4e.py',
         '--device', 'cpu', '--pin-memory', '--steps', '1'], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and 'pin-memory' in proc.stderr


def test_benchmark_counts_the_same_flops_for_compiled_blocks():
    """MFU's numerator is the model's FLOPs: compiling the blocks must not change it."""
    bench_tool = load_tool('tools/benchmark.py')
    ocfg = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3))
    batch = bench_tool.synthetic_batch(None, 2, 32, 1)
    counts = []
    for compiled in (False, True):
        model = build_tiny(backbone=dict(compile_blocks=compiled),
                           neck=dict(compile_blocks=compiled))
        counts.append(bench_tool.Bench('m', model, ocfg, batch, 'cpu', False).flops())
    assert counts[0] > 0
    assert counts[1] == counts[0]

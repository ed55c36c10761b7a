"""Transformer building blocks shared by the encoder, the decoder and the discriminator.

Why our own block rather than mmpretrain's ``TransformerEncoderLayer``: we need a
key-padding mask in attention (ragged visible sets under per-sample adaptive ratios)
and a lean fused path (``scaled_dot_product_attention``) for speed. The parameter
names follow mmpretrain's layer (``ln1``, ``attn.qkv``, ``attn.proj``, ``ln2``,
``ffn.layers.0.0``, ``ffn.layers.1``) so state dicts load into mmpretrain's
``VisionTransformer`` unchanged.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from mmcv.cnn.bricks import DropPath
from torch import Tensor, nn


def _attention_bf16_cpu(q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor]) -> Tensor:
    """Attention as two batched matmuls and a softmax.

    On CPU in bf16, PyTorch's fused SDPA kernels are several times slower than this for
    the short sequences of masked pre-training (about 50 visible tokens for ViT-B/16):
    measured with ``tools/benchmark.py``; fp32 and CUDA keep the fused kernel.
    """
    attn = (q * q.shape[-1]**-0.5) @ k.transpose(-2, -1)
    if mask is not None:
        attn = attn.masked_fill(~mask, float('-inf'))
    return attn.softmax(dim=-1) @ v


class Attention(nn.Module):
    """Multi-head self-attention. ``key_padding`` ``(N, S)``: True = ignore that key.

    Uses ``scaled_dot_product_attention`` except for bf16 on CPU (see
    :func:`_attention_bf16_cpu`).
    """

    def __init__(self, embed_dims: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims={embed_dims} is not divisible by num_heads={num_heads}')
        self.num_heads = num_heads
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)

    def forward(self, x: Tensor, key_padding: Optional[Tensor] = None) -> Tensor:
        n, s, d = x.shape
        # One matmul; q, k, v are strided views of its output, split on the ``3`` axis of
        # ``(n, s, 3, heads, head_dims)``. The backward pass then stacks dq, dk, dv straight
        # into the ``(n, s, 3 * d)`` layout of the qkv gradient (one copy); splitting on a
        # leading axis (``permute(2, 0, 3, 1, 4).unbind(0)``) needs a second copy there,
        # to make the stacked gradient contiguous again.
        q, k, v = (t.transpose(1, 2) for t in self.qkv(x).view(
            n, s, 3, self.num_heads, d // self.num_heads).unbind(2))
        mask = None if key_padding is None else ~key_padding[:, None, None, :]
        if q.device.type == 'cpu' and q.dtype == torch.bfloat16:
            out = _attention_bf16_cpu(q, k, v, mask)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(n, s, d))


class FFN(nn.Module):
    """Linear - GELU - Linear, with mmcv FFN's parameter names (``layers.0.0``, ``layers.1``)."""

    def __init__(self, embed_dims: int, hidden_dims: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Sequential(nn.Linear(embed_dims, hidden_dims), nn.GELU()),
            nn.Linear(hidden_dims, embed_dims))

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class TransformerLayer(nn.Module):
    """Pre-norm transformer layer: ``x + attn(ln1(x))``, then ``x + ffn(ln2(x))``."""

    def __init__(self, embed_dims: int, num_heads: int, feedforward_channels: int,
                 drop_path_rate: float = 0., qkv_bias: bool = True, eps: float = 1e-6):
        super().__init__()
        self.ln1 = nn.LayerNorm(embed_dims, eps=eps)
        self.attn = Attention(embed_dims, num_heads, qkv_bias)
        self.ln2 = nn.LayerNorm(embed_dims, eps=eps)
        self.ffn = FFN(embed_dims, feedforward_channels)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: Tensor, key_padding: Optional[Tensor] = None) -> Tensor:
        x = x + self.drop_path(self.attn(self.ln1(x), key_padding))
        return x + self.drop_path(self.ffn(self.ln2(x)))


def check_with_cp(with_cp, owner: str) -> int:
    """Activation checkpointing: ``False``/``0`` off, ``True`` every block, an int ``n``
    every ``n``-th block (blocks 0, n, 2n, ...). Returns ``n`` (0 when off)."""
    if isinstance(with_cp, bool):
        return int(with_cp)
    if not isinstance(with_cp, int) or with_cp < 0:
        raise ValueError(f'{owner}: with_cp={with_cp!r}; use False, True (every block) or an '
                         f'integer n >= 1 (every n-th block)')
    return with_cp


_COMPILE_KEYS = ('fullgraph', 'dynamic', 'backend', 'mode', 'options')


def compile_blocks(blocks, option, owner: str) -> bool:
    """``torch.compile`` every block of a stack in place (``nn.Module.compile``), so the
    state dict keys stay as they are (no ``_orig_mod.`` prefix) and activation
    checkpointing still wraps each block.

    ``option``: False (default: eager), True (inductor with ``dynamic=False``), or a dict
    of ``torch.compile`` keyword arguments (``mode``, ``dynamic``, ``fullgraph``,
    ``backend``, ``options``; ``dynamic`` defaults to False). Static shapes: the encoder's
    and the decoder's layers each get a graph specialised to their sequence length and
    width, instead of one dynamic-shape graph after the first shape change.

    Why per block rather than the whole model: the masker, the gathers and the loss
    around the blocks change shape or draw random numbers, which breaks a whole-model
    graph; a block is one static graph that inductor fuses (the LayerNorms with the
    dtype casts around them under autocast, bias + GELU, the residual adds), and every
    block of a stack shares it. The first step compiles (tens
    of seconds on a GPU); a new sequence length (another mask ratio) compiles again, and
    past torch's recompile limit (8 per function) the layer runs eagerly, with a warning.
    Returns whether the blocks were compiled.
    """
    if option is None or option is False:
        return False
    if option is True:
        kwargs = dict(dynamic=False)
    elif isinstance(option, dict):
        unknown = sorted(set(option) - set(_COMPILE_KEYS))
        if unknown:
            raise ValueError(f'{owner}: compile_blocks has unknown keys {unknown}; use True or '
                             f'a dict of torch.compile arguments from {list(_COMPILE_KEYS)}')
        kwargs = dict(dict(dynamic=False), **option)
    else:
        raise ValueError(f'{owner}: compile_blocks={option!r}; use False, True or a dict of '
                         f'torch.compile arguments ({", ".join(_COMPILE_KEYS)})')
    for block in blocks:
        block.compile(**kwargs)
    return True


def run_blocks(blocks, x: Tensor, every: int, *args) -> Tensor:
    """Run ``blocks`` in turn; with ``every = n > 0`` each n-th block is checkpointed
    (its activations are recomputed in the backward pass instead of kept), while
    gradients are being recorded. torch's checkpoint restores the RNG state, so drop
    path draws the same in the recomputation and the gradients equal the plain run's."""
    for i, block in enumerate(blocks):
        x = run_block(block, i, x, every, *args)
    return x


def run_block(block, i: int, x: Tensor, every: int, *args) -> Tensor:
    """Block ``i`` of a stack, checkpointed when ``every > 0`` divides ``i``."""
    if every > 0 and i % every == 0 and torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(block, x, *args, use_reentrant=False)
    return block(x, *args)


def sincos_pos_embed(grid_size: Tuple[int, int], dims: int, cls_token: bool = True) -> Tensor:
    """Fixed 2-D sine-cosine position embedding ``(1, [1 +] h * w, dims)``.

    Half the channels encode the row, half the column; each half is sin/cos of the
    coordinate at frequencies ``10000 ** (-i / (dims / 4))``. The cls slot is zeros.
    """
    if dims % 4:
        raise ValueError(f'sin-cos position embedding needs embed_dims divisible by 4, got {dims}')
    h, w = grid_size
    freqs = 1. / 10000**(torch.arange(dims // 4, dtype=torch.float64) / (dims / 4.))
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float64),
                                torch.arange(w, dtype=torch.float64), indexing='ij')
    parts = []
    for coord in (cols.flatten(), rows.flatten()):
        angles = coord[:, None] * freqs[None]
        parts += [torch.sin(angles), torch.cos(angles)]
    emb = torch.cat(parts, dim=1).float()
    if cls_token:
        emb = torch.cat([torch.zeros(1, dims), emb], dim=0)
    return emb[None]

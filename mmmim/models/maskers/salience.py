"""SBAM: salience-based masking (mask the tokens other tokens attend to most).

The salience idea lives in one place, :func:`patch_salience`; the masker here and the
adaptive ratio policy (:class:`~mmmim.models.maskers.adaptive.AdaptiveRatio`) both use it.
"""
import math
import threading
from contextlib import contextmanager

import torch
from torch import Tensor

from mmmim.registry import MODELS
from .base import BaseMasker

_scope = threading.local()


@contextmanager
def shared_salience(tokens: Tensor):
    """Within this block, :func:`patch_salience` of ``tokens`` is computed at most once.

    A masker whose ordering and ratio policy both need the salience of the same tokens
    (SBAM with AMR) wraps its forward in this, so the ``L x L`` affinity is built once.
    The cache is keyed on the tensor object, holds no reference after the block and is
    per thread.
    """
    previous = getattr(_scope, 'entry', None)
    _scope.entry = [tokens, None]
    try:
        yield
    finally:
        _scope.entry = previous


def patch_salience(tokens: Tensor) -> Tensor:
    """Salience of every patch token, min-max normalised per image: ``(B, L, D) -> (B, L)``.

    ``tokens`` are patch embeddings + position embeddings, before any encoder block and
    without the cls token (``MaskedViT.embed``). With ``X`` the tokens of one image,
    ``A = softmax(X X^T)`` over the last axis (no projection, no ``1/sqrt(D)`` scaling),
    and the salience of token ``j`` is its outgoing weight ``sum_i A[i, j]`` (the column
    sum of the row-softmaxed affinity), then rescaled to ``[0, 1]`` per image (an image
    whose tokens are all equally salient gets zeros).

    Computed without gradient, in float32 even under autocast (the unscaled logits are
    large, and a half-precision ranking would be noisy). Cost: one ``L x L x D`` matmul
    per image.
    """
    entry = getattr(_scope, 'entry', None)
    if entry is not None and entry[0] is tokens:
        if entry[1] is None:
            entry[1] = _salience(tokens)
        return entry[1]
    return _salience(tokens)


@torch.no_grad()
def _salience(tokens: Tensor) -> Tensor:
    if tokens.dim() != 3:
        raise ValueError(f'patch_salience expects tokens of shape (B, L, D), got '
                         f'{tuple(tokens.shape)}')
    with torch.autocast(device_type=tokens.device.type, enabled=False):
        x = tokens.detach().float()
        attn = torch.softmax(torch.bmm(x, x.transpose(1, 2)), dim=-1)
        outgoing = attn.sum(dim=1)  # column sums: sum over queries i of A[i, j]
        low = outgoing.amin(dim=1, keepdim=True)
        span = outgoing.amax(dim=1, keepdim=True) - low
        return (outgoing - low) / span.clamp(min=torch.finfo(span.dtype).tiny)


@MODELS.register_module()
class SalienceMasker(BaseMasker):
    """SBAM: mask the most salient patches, with noise so the masks still vary.

    ``score = patch_salience(tokens) + U[0, noise)``; the ``n_keep`` lowest scores are
    visible and the highest are masked. ``n_keep`` comes from the ratio policy, so
    ``ratio=dict(type='AdaptiveRatio', ...)`` gives SBAM + AMR (per batch or per sample;
    the salience is computed once and shared with the policy).

    As an ordering for EMAE (``dict(type='ParallelMasker', order=dict(type='SalienceMasker'))``)
    :meth:`order` ranks the patches by ascending score and the parallel masker cuts that
    ranking into ``K`` parts; with its default ``split='contiguous'`` view 0 sees the
    least salient ``L / K`` patches, i.e. view 0 is exactly the SBAM mask, and view
    ``K - 1`` sees the most salient ones. ``split='interleaved'`` instead deals the
    ranking out like cards, so every view sees a mix of salience levels. The masker's
    own ``ratio`` is not used there (each view masks ``1 - 1/K``).

    Config keys:
        ratio (float | dict): mask ratio (default 0.75) or a ratio policy config.
        noise (float): width of the uniform noise added to the salience, >= 0
            (default 0.5; 0 masks exactly the most salient patches).

    Masks are reproducible under a seed (global torch generator); no host sync.
    """

    def __init__(self, ratio=0.75, noise: float = 0.5):
        super().__init__(ratio)
        if (isinstance(noise, bool) or not isinstance(noise, (int, float))
                or not math.isfinite(noise) or noise < 0):
            raise ValueError(f'SalienceMasker: noise must be a finite number >= 0, got '
                             f'{noise!r}; use 0.5 (the SBAM default) or 0 for no noise')
        self.noise = float(noise)

    def order(self, tokens: Tensor, n_keep: Tensor) -> Tensor:
        score = patch_salience(tokens)
        if self.noise > 0:
            score = score + self.noise * torch.rand_like(score)
        return torch.argsort(score, dim=1, stable=True)

    @torch.no_grad()
    def forward(self, tokens: Tensor):
        with shared_salience(tokens):
            return super().forward(tokens)

    def extra_repr(self) -> str:
        return f'ratio={self.ratio_policy!r}, noise={self.noise}'

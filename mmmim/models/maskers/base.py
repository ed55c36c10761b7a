"""Masker base class and the fixed mask-ratio policy."""
from typing import Optional, Tuple, Union

import torch
from torch import Tensor, nn

from mmmim.registry import MODELS
from .plan import MaskPlan


@MODELS.register_module()
class FixedRatio:
    """The same mask ratio for every image: ``n_keep = int(L * (1 - ratio))`` (MAE).

    Config keys: ``ratio`` (float in (0, 1), default 0.75).
    """

    def __init__(self, ratio: float = 0.75):
        if not isinstance(ratio, (int, float)) or not 0 < ratio < 1:
            raise ValueError(f'mask ratio must be in (0, 1), got {ratio!r}; '
                             'e.g. ratio=0.75 masks three of every four patches')
        self.ratio = float(ratio)

    def validate(self, num_patches: int) -> None:
        n_keep = int(num_patches * (1 - self.ratio))
        if n_keep < 1:
            raise ValueError(f'mask ratio {self.ratio} keeps {n_keep} of {num_patches} patches; '
                             f'choose a ratio below {1 - 1 / num_patches:.4f}')
        if n_keep == num_patches:
            raise ValueError(f'mask ratio {self.ratio} masks no patch of {num_patches}; '
                             f'choose a ratio of at least {1 / num_patches:.4f}')

    def __call__(self, tokens: Tensor) -> Tuple[int, Optional[Tensor], Tensor]:
        """Return ``(n_keep, per-sample n_keep or None, ratio used)``."""
        n_keep = int(tokens.shape[1] * (1 - self.ratio))
        return n_keep, None, torch.tensor(self.ratio, device=tokens.device)

    def __repr__(self):
        return f'FixedRatio({self.ratio})'


def build_ratio_policy(ratio: Union[float, dict, object]):
    """A float is a :class:`FixedRatio`; a dict is built from the registry (e.g. AMR)."""
    if isinstance(ratio, dict):
        return MODELS.build(ratio)
    if isinstance(ratio, (int, float)):
        return FixedRatio(ratio)
    if callable(ratio) and hasattr(ratio, 'validate'):
        return ratio
    raise TypeError(f'ratio must be a float or a ratio-policy config dict, got {ratio!r}')


class BaseMasker(nn.Module):
    """Decides which patch tokens each view sees; knows nothing of the algorithm.

    A subclass implements :meth:`order`: per image, a permutation of the ``L`` patch
    indices whose first ``n_keep`` entries are the visible ones. The base class applies
    the ratio policy and packs the result into a :class:`MaskPlan`.

    Args:
        ratio (float | dict): mask ratio, or a ratio-policy config such as
            ``dict(type='AdaptiveRatio', ...)``.
    """
    num_views = 1
    #: whether :meth:`order` honours per-sample visible counts (ragged plans)
    supports_ragged = True

    def __init__(self, ratio: Union[float, dict] = 0.75):
        super().__init__()
        self.ratio_policy = build_ratio_policy(ratio)

    def validate(self, grid_size: Tuple[int, int]) -> None:
        """Check at build time that this masker works on a ``(h, w)`` patch grid."""
        if getattr(self.ratio_policy, 'per_sample', False) and not self.supports_ragged:
            raise ValueError(f'{type(self).__name__} cannot give the images of a batch different '
                             f'visible counts; use a per-batch ratio policy (per_sample=False) '
                             f'or a masker that supports it (RandomMasker, SalienceMasker)')
        self.ratio_policy.validate(grid_size[0] * grid_size[1])
        self.grid_size = tuple(grid_size)

    def order(self, tokens: Tensor, n_keep: Tensor) -> Tensor:
        """``(B, L)`` permutation per image, visible patches first.

        Args:
            tokens: ``(B, L, D)`` patch embeddings + position embeddings.
            n_keep: ``(B,)`` long, visible count per image.
        """
        raise NotImplementedError

    @torch.no_grad()
    def forward(self, tokens: Tensor) -> MaskPlan:
        batch = tokens.shape[0]
        n_keep, per_sample, ratio = self.ratio_policy(tokens)
        counts = per_sample if per_sample is not None else torch.full(
            (batch,), n_keep, dtype=torch.long, device=tokens.device)
        ids_shuffle = self.order(tokens, counts)
        padding = None
        if per_sample is not None:
            padding = torch.arange(n_keep, device=tokens.device)[None] >= per_sample[:, None]
        return MaskPlan(ids_shuffle=ids_shuffle, n_keep=n_keep, keep_padding=padding, ratio=ratio)

"""The mask plan: the one object a masker hands to the encoder, decoder and heads."""
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor


@dataclass
class MaskPlan:
    """Which patch tokens each view sees.

    A plan covers ``N = B * K`` sequences: ``K`` views of each of ``B`` images, stored
    image-major (sequence ``b * K + k`` is view ``k`` of image ``b``), so a tensor over
    sequences reshapes to ``(B, K, ...)`` without copying.

    Attributes:
        ids_shuffle (Tensor): ``(N, L)`` long, a permutation of the patch indices per
            sequence; the first ``n_keep`` are the visible ones.
        n_keep (int): number of visible slots per sequence (the padded length when
            ``keep_padding`` is set).
        num_views (int): ``K``.
        keep_padding (Tensor, optional): ``(N, n_keep)`` bool, True where a visible slot
            is padding (per-sample adaptive ratios give ragged visible counts). Padded
            slots point at masked patches; the encoder ignores them through a key-padding
            mask and the decoder replaces them with the mask token.
        ratio (Tensor, optional): the mask ratio used, per batch or per sample, for logs.
    """
    ids_shuffle: Tensor
    n_keep: int
    num_views: int = 1
    keep_padding: Optional[Tensor] = None
    ratio: Optional[Tensor] = None

    def __post_init__(self):
        num_seq, num_patches = self.ids_shuffle.shape
        if num_seq % self.num_views:
            raise ValueError(f'MaskPlan: {num_seq} sequences are not a multiple of '
                             f'num_views={self.num_views}')
        if not 0 < self.n_keep <= num_patches:
            raise ValueError(f'MaskPlan: n_keep={self.n_keep} must be in [1, {num_patches}]')

    @property
    def num_patches(self) -> int:
        return self.ids_shuffle.shape[1]

    @property
    def batch_size(self) -> int:
        return self.ids_shuffle.shape[0] // self.num_views

    @property
    def ids_keep(self) -> Tensor:
        """``(N, n_keep)`` indices of the visible patches (padding slots included)."""
        return self.ids_shuffle[:, :self.n_keep]

    @property
    def ids_restore(self) -> Tensor:
        """``(N, L)``: position of each patch in the shuffled order (inverts ``ids_shuffle``)."""
        return torch.argsort(self.ids_shuffle, dim=1)

    @property
    def mask(self) -> Tensor:
        """``(N, L)`` float, 1 = removed (masked), 0 = seen by the encoder."""
        num_seq, num_patches = self.ids_shuffle.shape
        keep = torch.ones(num_seq, self.n_keep, device=self.ids_shuffle.device)
        if self.keep_padding is not None:
            keep = keep.masked_fill(self.keep_padding, 0.)
        visible = torch.zeros(num_seq, num_patches, device=self.ids_shuffle.device)
        visible.scatter_(1, self.ids_keep, keep)
        return 1. - visible

    def gather(self, tokens: Tensor) -> Tensor:
        """Select the visible tokens of every view: ``(B, L, D) -> (N, n_keep, D)``.

        The ``K`` views index the same ``(B, L, D)`` tensor, so the full token tensor is
        never repeated ``K`` times.
        """
        batch, num_patches, dims = tokens.shape
        if batch != self.batch_size or num_patches != self.num_patches:
            raise ValueError(f'MaskPlan built for {self.batch_size} images x {self.num_patches} '
                             f'patches, got tokens of shape {tuple(tokens.shape)}')
        ids = self.ids_keep.reshape(batch, self.num_views * self.n_keep)
        out = torch.gather(tokens, 1, ids.unsqueeze(-1).expand(-1, -1, dims))
        return out.reshape(batch * self.num_views, self.n_keep, dims)

    def per_view(self, x: Tensor) -> Tensor:
        """Reshape a per-sequence tensor ``(N, ...)`` to ``(B, K, ...)``."""
        return x.reshape(self.batch_size, self.num_views, *x.shape[1:])

"""EMAE's parallel masking: K disjoint visible sets that together cover the image."""
from typing import Optional

import torch
from torch import Tensor

from mmmim.registry import MODELS
from .base import BaseMasker, FixedRatio
from .plan import MaskPlan


@MODELS.register_module()
class ParallelMasker(BaseMasker):
    """Cut one permutation of the patches into ``K`` equal chunks; view ``k`` sees chunk ``k``.

    The ``K`` visible sets are disjoint and their union is every patch, so the whole
    image is used each iteration; each view masks ``1 - 1/K`` of the patches, and every
    patch is masked in exactly ``K - 1`` views.

    Config keys:
        num_parts (int): ``K`` >= 2 (4 gives MAE's 75% ratio).
        order (dict, optional): a masker config whose token ordering is cut into chunks
            (default: a uniformly random permutation, as in EMAE). Any masker that
            implements ``order`` works, so a salience ordering can drive the parts. Its
            own ratio is not used (each view masks ``1 - 1/K``); a ratio policy other
            than a fixed ratio there is refused.
        split (str): how the ordering is cut. 'contiguous' (default): view ``k`` sees
            entries ``k*L/K .. (k+1)*L/K - 1`` of the ordering, so with a salience
            ordering view 0 sees the least salient patches (it is the SBAM mask).
            'interleaved': view ``k`` sees entries ``k, k+K, k+2K, ...``, so every view
            gets a mix along the ordering. Equivalent for the default random ordering.

    Bad input: ``L`` not divisible by ``K`` raises at build time, listing the valid K.
    """

    supports_ragged = False
    SPLITS = ('contiguous', 'interleaved')

    def __init__(self, num_parts: int = 4, order: Optional[dict] = None,
                 split: str = 'contiguous'):
        if not isinstance(num_parts, int) or num_parts < 2:
            raise ValueError(f'ParallelMasker: num_parts must be an integer >= 2, got '
                             f'{num_parts!r}; with one part use RandomMasker (plain MAE)')
        super().__init__(FixedRatio(1 - 1 / num_parts))
        self.num_views = num_parts
        self.orderer = MODELS.build(order) if order is not None else None
        if split not in self.SPLITS:
            raise ValueError(f'ParallelMasker: split must be one of {self.SPLITS}, got {split!r}')
        self.split = split

    @staticmethod
    def valid_parts(num_patches: int):
        return [k for k in range(2, num_patches + 1) if num_patches % k == 0]

    def validate(self, grid_size):
        num_patches = grid_size[0] * grid_size[1]
        if num_patches % self.num_views:
            valid = ', '.join(map(str, self.valid_parts(num_patches)[:12]))
            raise ValueError(f'ParallelMasker: {num_patches} patches are not divisible by '
                             f'K={self.num_views}; choose K in {{{valid}, ...}}')
        self.grid_size = tuple(grid_size)
        if self.orderer is not None:
            policy = getattr(self.orderer, 'ratio_policy', None)
            if policy is not None and not isinstance(policy, FixedRatio):
                raise ValueError(f'ParallelMasker: each of the K={self.num_views} views masks '
                                 f'1 - 1/K of the patches, so the ratio policy {policy!r} of '
                                 f'the order masker would be ignored; remove its ratio key')
            self.orderer.grid_size = tuple(grid_size)

    def order(self, tokens: Tensor, n_keep: Tensor) -> Tensor:
        if self.orderer is not None:
            return self.orderer.order(tokens, n_keep)
        return torch.argsort(torch.rand(tokens.shape[:2], device=tokens.device), dim=1)

    @torch.no_grad()
    def forward(self, tokens: Tensor) -> MaskPlan:
        batch, num_patches = tokens.shape[:2]
        k = self.num_views
        chunk = num_patches // k
        counts = torch.full((batch,), chunk, dtype=torch.long, device=tokens.device)
        perm = self.order(tokens, counts)
        if self.split == 'interleaved':  # view v: entries v, v + K, v + 2K, ...
            perm = perm.reshape(batch, chunk, k).transpose(1, 2)
        else:
            perm = perm.reshape(batch, k, chunk)
        # view v lists chunks v, v+1, ..., v-1 (mod K): its own chunk first = visible
        rot = (torch.arange(k, device=tokens.device)[:, None] +
               torch.arange(k, device=tokens.device)[None, :]) % k
        ids_shuffle = perm[:, rot].reshape(batch * k, num_patches)
        return MaskPlan(ids_shuffle=ids_shuffle, n_keep=chunk, num_views=k,
                        ratio=torch.tensor(1 - 1 / k, device=tokens.device))

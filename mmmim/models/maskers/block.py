"""BEiT-style block-wise masking (MAE paper, Table 1f)."""
import math
import random as _random

import torch
from torch import Tensor

from mmmim.registry import MODELS
from .base import BaseMasker


@MODELS.register_module()
class BlockMasker(BaseMasker):
    """Mask random rectangles of patches until the target count is reached.

    Blocks have an area of at least ``min_block`` patches (at most the patches still to
    mask) and a log-uniform aspect ratio in ``[1 / max_aspect, max_aspect]``, as in BEiT.
    When blocks can no longer add patches, the remainder is filled with random patches
    so every image masks exactly ``L - n_keep`` patches (equal lengths batch without
    padding).

    Config keys: ``ratio`` (default 0.75), ``min_block`` (default 4), ``max_aspect``
    (default 3.0), ``max_tries`` per block (default 10).

    The block layout is drawn on the host (a short Python loop per image, as in BEiT);
    the result is one host-to-device copy per batch, not a synchronisation.
    """

    def __init__(self, ratio=0.75, min_block: int = 4, max_aspect: float = 3.0,
                 max_tries: int = 10):
        super().__init__(ratio)
        if min_block < 1 or max_aspect < 1:
            raise ValueError(f'BlockMasker: need min_block >= 1 and max_aspect >= 1, got '
                             f'{min_block} and {max_aspect}')
        self.min_block, self.max_tries = min_block, max_tries
        self.log_aspect = (-math.log(max_aspect), math.log(max_aspect))

    def _one(self, h: int, w: int, n_mask: int, rng: _random.Random) -> torch.Tensor:
        mask = torch.zeros(h, w, dtype=torch.bool)
        count = 0
        while count < n_mask:
            left = n_mask - count
            added = 0
            for _ in range(self.max_tries):
                area = rng.uniform(min(self.min_block, left), left)
                aspect = math.exp(rng.uniform(*self.log_aspect))
                bh = int(round(math.sqrt(area * aspect)))
                bw = int(round(math.sqrt(area / aspect)))
                if 1 <= bh <= h and 1 <= bw <= w:
                    top, lft = rng.randint(0, h - bh), rng.randint(0, w - bw)
                    region = mask[top:top + bh, lft:lft + bw]
                    new = int(bh * bw - region.sum())
                    if 0 < new <= left:
                        region.fill_(True)
                        added = new
                        break
            if added == 0:
                break
            count += added
        flat = mask.flatten()
        if count < n_mask:  # top up with random single patches
            free = torch.nonzero(~flat).flatten().tolist()
            flat[rng.sample(free, n_mask - count)] = True
        return flat

    def order(self, tokens: Tensor, n_keep: Tensor) -> Tensor:
        h, w = self.grid_size
        num_patches = h * w
        if tokens.shape[1] != num_patches:
            raise ValueError(f'BlockMasker was validated for a {h}x{w} grid, got '
                             f'{tokens.shape[1]} patches')
        # seeded from torch's generator, so the runner's seed makes it reproducible
        rng = _random.Random(int(torch.randint(0, 2**62, (1,)).item()))
        masks = torch.stack([self._one(h, w, num_patches - int(k), rng) for k in n_keep.cpu()])
        # visible (0) first, random order within each group
        key = masks.float() + torch.rand(masks.shape) * 0.5
        return torch.argsort(key, dim=1).to(tokens.device, non_blocking=True)

"""Grid-wise masking: keep one patch of every 2x2 cell (MAE paper, Table 1f)."""
import torch
from torch import Tensor

from mmmim.registry import MODELS
from .base import BaseMasker, FixedRatio


@MODELS.register_module()
class GridMasker(BaseMasker):
    """Keep the patch at a fixed offset of every 2x2 cell of the patch grid (ratio 0.75).

    Config keys: ``random_offset`` (default False: the top-left patch of each cell is
    kept, as in the MAE paper; True draws one of the four offsets per image).
    The ratio is fixed by the geometry; the grid must have even height and width.
    """
    supports_ragged = False

    def __init__(self, random_offset: bool = False):
        super().__init__(FixedRatio(0.75))
        self.random_offset = random_offset

    def validate(self, grid_size):
        h, w = grid_size
        if h % 2 or w % 2:
            raise ValueError(f'GridMasker needs an even patch grid to keep one of every 2x2 '
                             f'patches, got {h}x{w}; change img_size or patch_size')
        super().validate(grid_size)

    def order(self, tokens: Tensor, n_keep: Tensor) -> Tensor:
        h, w = self.grid_size
        batch, device = tokens.shape[0], tokens.device
        rows = torch.arange(h, device=device)[:, None].expand(h, w).flatten()
        cols = torch.arange(w, device=device)[None, :].expand(h, w).flatten()
        if self.random_offset:
            off = torch.randint(0, 2, (batch, 2), device=device)
        else:
            off = torch.zeros(batch, 2, dtype=torch.long, device=device)
        keep = ((rows[None] % 2) == off[:, :1]) & ((cols[None] % 2) == off[:, 1:])
        key = (~keep).float() + torch.rand(batch, h * w, device=device) * 0.5
        return torch.argsort(key, dim=1)

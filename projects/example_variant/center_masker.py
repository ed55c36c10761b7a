"""An example masking policy that lives outside mmmim: mask the image centre more often.

Fashion items (and many photos) put the object in the middle; masking central patches
more often makes the model reconstruct the object rather than the background.
"""
import torch
from torch import Tensor

from mmmim.models.maskers import BaseMasker
from mmmim.registry import MODELS


@MODELS.register_module()
class CenterBiasedMasker(BaseMasker):
    """Random masking whose odds of hiding a patch grow towards the image centre.

    Each patch gets the score ``U[0, 1) + bias * closeness`` (closeness is 1 at the centre
    and 0 at the farthest corner); the highest scores are masked. ``bias=0`` is
    RandomMasker.

    Config keys: ``ratio`` (float or ratio policy, default 0.75), ``bias`` (>= 0, default 0.5).
    """

    def __init__(self, ratio=0.75, bias: float = 0.5):
        super().__init__(ratio)
        if bias < 0:
            raise ValueError(f'CenterBiasedMasker: bias must be >= 0, got {bias}')
        self.bias = bias

    def validate(self, grid_size):
        super().validate(grid_size)
        h, w = grid_size
        rows = torch.arange(h, dtype=torch.float)[:, None].expand(h, w) - (h - 1) / 2
        cols = torch.arange(w, dtype=torch.float)[None, :].expand(h, w) - (w - 1) / 2
        dist = (rows**2 + cols**2).sqrt().flatten()
        self.register_buffer('closeness', 1 - dist / dist.max(), persistent=False)

    def order(self, tokens: Tensor, n_keep: Tensor) -> Tensor:
        noise = torch.rand(tokens.shape[:2], device=tokens.device)
        score = noise + self.bias * self.closeness.to(tokens.device)
        return torch.argsort(score, dim=1)  # lowest scores first = kept

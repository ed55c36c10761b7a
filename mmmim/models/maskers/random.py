"""Uniformly random masking (MAE's default)."""
import torch
from torch import Tensor

from mmmim.registry import MODELS
from .base import BaseMasker


@MODELS.register_module()
class RandomMasker(BaseMasker):
    """Keep a uniformly random subset of patches per image (argsort of uniform noise).

    Config keys: ``ratio`` (float or ratio-policy dict, default 0.75).
    Reproducible under a seed (uses the global torch generator, which the runner seeds);
    runs on the tokens' device with no host synchronisation.
    """

    def order(self, tokens: Tensor, n_keep: Tensor) -> Tensor:
        noise = torch.rand(tokens.shape[:2], device=tokens.device)
        return torch.argsort(noise, dim=1)

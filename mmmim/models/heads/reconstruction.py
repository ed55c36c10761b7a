"""Pixel reconstruction head: targets, the masked MSE loss, patchify/unpatchify."""
from typing import Dict, Optional

import torch
from mmengine.model import BaseModule
from torch import Tensor

from mmmim.registry import MODELS
from ..maskers.plan import MaskPlan


def patchify(img: Tensor, patch_size: int) -> Tensor:
    """``(B, C, H, W) -> (B, L, p*p*C)``, row-major patches, pixel-major then channel."""
    b, c, h, w = img.shape
    p = patch_size
    x = img.reshape(b, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(x: Tensor, patch_size: int, grid_size, in_channels: int) -> Tensor:
    """Inverse of :func:`patchify`."""
    b = x.shape[0]
    (h, w), p, c = grid_size, patch_size, in_channels
    x = x.reshape(b, h, w, p, p, c).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(b, c, h * p, w * p)


@MODELS.register_module()
class ReconstructionHead(BaseModule):
    """MAE's target and loss: MSE per patch, averaged over the masked patches only.

    With ``norm_pix`` each target patch is normalised by its own mean and variance
    (``(x - mean) / sqrt(var + eps)``). The target is computed once per image and
    broadcast over the ``K`` views of a plan, never copied ``K`` times.

    Config keys: ``patch_size``, ``in_channels``, ``norm_pix`` (True), ``eps`` (1e-6),
    ``loss_weight`` (1.0). The algorithm fills ``patch_size``/``in_channels`` from the
    backbone when not given. mmpretrain's ``MAEPretrainHead`` assumes one view and
    recomputes nothing for de-normalisation, which GAN-MAE needs; hence this class.
    """

    def __init__(self, patch_size: int = 16, in_channels: int = 3, norm_pix: bool = True,
                 eps: float = 1e-6, loss_weight: float = 1.0, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.patch_size, self.in_channels = patch_size, in_channels
        self.norm_pix, self.eps, self.loss_weight = norm_pix, eps, loss_weight

    def patch_stats(self, img: Tensor):
        """Patches ``(B, L, P)`` with their mean and std ``(B, L, 1)`` (norm_pix statistics)."""
        patches = patchify(img, self.patch_size)
        mean = patches.mean(dim=-1, keepdim=True)
        std = (patches.var(dim=-1, keepdim=True) + self.eps).sqrt()
        return patches, mean, std

    def target(self, img: Tensor) -> Tensor:
        """``(B, L, P)`` regression target."""
        patches, mean, std = self.patch_stats(img)
        return (patches - mean) / std if self.norm_pix else patches

    def to_pixels(self, pred: Tensor, img: Tensor) -> Tensor:
        """Predictions ``(N, L, P)`` back to pixel space (undo norm_pix with the real stats)."""
        if not self.norm_pix:
            return pred
        _, mean, std = self.patch_stats(img)
        k = pred.shape[0] // img.shape[0]
        return pred * std.repeat_interleave(k, 0) + mean.repeat_interleave(k, 0)

    def patch_errors(self, pred: Tensor, target: Tensor, plan: MaskPlan) -> Tensor:
        """Mean squared error per patch, ``(B, K, L)``."""
        pred = plan.per_view(pred).float()
        return ((pred - target.float()[:, None])**2).mean(dim=-1)

    def loss(self, pred: Tensor, img: Tensor, plan: MaskPlan,
             target: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """``{'loss_rec': mean over the masked patches of every view}``."""
        if target is None:
            target = self.target(img)
        mask = plan.per_view(plan.mask)
        err = self.patch_errors(pred, target, plan)
        loss = (err * mask).sum() / mask.sum().clamp(min=1.)
        return dict(loss_rec=loss * self.loss_weight)

"""GAN-MAE's per-patch discriminator head: real (visible) vs generated (masked)."""
from typing import Dict

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmmim.registry import MODELS


@MODELS.register_module()
class PatchDiscriminatorHead(BaseModule):
    """A linear layer on every patch token of the discriminator's ViT, giving one
    real/generated logit per patch.

    Labels follow the mask plan: a patch the generator's encoder saw (``mask == 0``)
    is real (label 1); a patch the generator produced (``mask == 1``) is fake
    (label 0). :meth:`loss` is the mean binary cross-entropy over all ``L`` patches
    (``L_disc``); :meth:`adversarial_loss` is the generator's ``L_adv``.

    Config keys: ``in_channels`` (the discriminator ViT's width; GANMAE fills it),
    ``loss_weight`` (1.0, multiplies ``L_disc``), ``init_cfg``.
    """

    def __init__(self, in_channels: int = 768, loss_weight: float = 1.0, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.fc = nn.Linear(in_channels, 1)
        self.loss_weight = loss_weight

    def init_weights(self):
        super().init_weights()
        if self.init_cfg is None:
            nn.init.xavier_uniform_(self.fc.weight)
            nn.init.zeros_(self.fc.bias)

    def forward(self, feats: Tensor) -> Tensor:
        """``(B, 1 + L, D)`` ViT output (cls token first) -> ``(B, L)`` float logits."""
        return self.fc(feats[:, 1:]).squeeze(-1).float()

    @staticmethod
    def labels(mask: Tensor) -> Tensor:
        """``(B, L)`` targets from a plan's mask (1 = removed): visible 1, masked 0."""
        return 1. - mask.float()

    def loss(self, logits: Tensor, mask: Tensor) -> Dict[str, Tensor]:
        """``loss_disc`` (weighted mean BCE over all patches) and, for logs only,
        ``acc_real`` / ``acc_fake``: the fraction of visible / generated patches the
        discriminator classifies correctly."""
        labels = self.labels(mask)
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        with torch.no_grad():
            fake = mask.float()
            real = 1. - fake
            acc_real = ((logits > 0).float() * real).sum() / real.sum().clamp(min=1.)
            acc_fake = ((logits <= 0).float() * fake).sum() / fake.sum().clamp(min=1.)
        return dict(loss_disc=loss * self.loss_weight, acc_real=acc_real, acc_fake=acc_fake)

    def adversarial_loss(self, logits: Tensor, mask: Tensor, kind: str) -> Tensor:
        """The generator's ``L_adv``.

        ``'non-saturating'``: ``-mean over generated patches of log D(x_bar)_k``
        (the generator wants its patches called real). ``'minimax'``: the
        discriminator's log-likelihood ``mean over all patches of
        y log D + (1 - y) log(1 - D)``, i.e. ``-L_disc`` before the weight.
        """
        if kind == 'non-saturating':
            fake = mask.float()
            per_patch = F.binary_cross_entropy_with_logits(
                logits, torch.ones_like(logits), reduction='none')
            return (per_patch * fake).sum() / fake.sum().clamp(min=1.)
        if kind == 'minimax':
            return -F.binary_cross_entropy_with_logits(logits, self.labels(mask))
        raise ValueError(f"PatchDiscriminatorHead: adversarial loss {kind!r} is unknown; use "
                         f"'non-saturating' or 'minimax'")

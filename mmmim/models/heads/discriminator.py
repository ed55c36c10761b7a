"""GAN-MAE's per-patch discriminator head: real (visible) vs generated (masked)."""
import math
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmmim.registry import MODELS


def binary_entropy(p: Tensor) -> Tensor:
    """Entropy (nats) of a Bernoulli(p): the BCE of always predicting the prior ``p``."""
    p = p.clamp(1e-12, 1 - 1e-12)
    return -(p * p.log() + (1 - p) * (1 - p).log())


def roc_auc(scores: Tensor, labels: Tensor) -> Tensor:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (1 = positive), the
    Mann-Whitney statistic with tied scores given their average rank; 0.5 (chance)
    when a class is absent, so a log never shows NaN (which the NaN guard would treat as
    a diverged run). Needed per iteration on the patches of a batch, which neither mmengine nor
    mmpretrain compute (their metrics are evaluation-loop metrics)."""
    scores, labels = scores.detach().float().flatten(), labels.flatten().bool()
    n_pos, n = labels.sum(), labels.numel()
    n_neg = n - n_pos
    if n_pos == 0 or n_neg == 0:
        return torch.tensor(0.5, device=scores.device)
    sorted_scores, order = scores.sort()
    ranks = torch.empty_like(sorted_scores)
    ranks[order] = torch.arange(1, n + 1, device=scores.device, dtype=scores.dtype)
    # average ranks over ties
    uniq, inverse, counts = torch.unique_consecutive(sorted_scores, return_inverse=True,
                                                     return_counts=True)
    if len(uniq) < n:
        first = torch.cumsum(counts, 0) - counts + 1
        mean_rank = first.to(scores.dtype) + (counts.to(scores.dtype) - 1) / 2
        ranks[order] = mean_rank[inverse]
    u = ranks[labels].sum() - n_pos.to(scores.dtype) * (n_pos + 1).to(scores.dtype) / 2
    return u / (n_pos.to(scores.dtype) * n_neg.to(scores.dtype))


@MODELS.register_module()
class PatchDiscriminatorHead(BaseModule):
    """A linear layer on every patch token of the discriminator's ViT, giving one
    real/generated logit per patch.

    Labels follow the mask plan: a patch the generator's encoder saw (``mask == 0``)
    is real (label 1); a patch the generator produced (``mask == 1``) is fake
    (label 0). :meth:`loss` is the binary cross-entropy over the patches (``L_disc``);
    :meth:`adversarial_loss` is the generator's ``L_adv``. Both take optional per-patch
    ``weight`` (B, L): GANMAE gives patches whose real content is flat weight 0 (left
    out) or a reduced weight, because their generated version equals the real one.

    With ``class_balanced=True`` (default) ``L_disc`` is the mean of the real patches'
    mean BCE and the generated patches' mean BCE, so both classes count equally whatever
    the mask ratio: at 75% masking the plain mean would reward a discriminator that
    calls everything generated (its loss, the prior's entropy, is 0.562 nats instead of
    ln 2 = 0.693). ``class_balanced=False`` is the plain (weighted) mean over patches.

    Config keys: ``in_channels`` (the discriminator ViT's width; GANMAE fills it),
    ``loss_weight`` (1.0, multiplies ``L_disc``), ``class_balanced`` (True),
    ``init_cfg``.
    """

    def __init__(self, in_channels: int = 768, loss_weight: float = 1.0,
                 class_balanced: bool = True, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.fc = nn.Linear(in_channels, 1)
        self.loss_weight = loss_weight
        self.class_balanced = class_balanced

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

    def patch_weights(self, mask: Tensor, weight: Optional[Tensor] = None) -> Tensor:
        """Per-patch weights of ``L_disc`` (B, L): each class's weights sum to 1/2 with
        ``class_balanced``, all weights sum to 1 without."""
        fake = mask.float()
        real = 1. - fake
        w = torch.ones_like(fake) if weight is None else weight.float()
        if not self.class_balanced:
            return w / w.sum().clamp(min=1e-12)
        w_real, w_fake = (w * real).sum(), (w * fake).sum()
        n_classes = (w_real > 0).float() + (w_fake > 0).float()
        return w * (real / (n_classes * w_real).clamp(min=1e-12)
                    + fake / (n_classes * w_fake).clamp(min=1e-12))

    def loss(self, logits: Tensor, mask: Tensor,
             weight: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """``loss_disc`` and, for logs only: ``disc_prior_entropy`` (the value of
        ``loss_disc`` for a discriminator that only knows the class prior: ln 2 when
        balanced, the entropy of the real share otherwise), ``disc_bacc`` (balanced
        accuracy at logit 0), ``disc_auc`` (ROC AUC, threshold-free) and ``acc_real`` /
        ``acc_fake`` (the fraction of real / generated patches classified correctly),
        all over the patches with weight > 0."""
        labels = self.labels(mask)
        w = self.patch_weights(mask, weight)
        bce = F.binary_cross_entropy_with_logits(logits, labels, reduction='none')
        loss = (bce * w).sum()
        with torch.no_grad():
            keep = torch.ones_like(labels) if weight is None else (weight > 0).float()
            fake = mask.float() * keep
            real = (1. - mask.float()) * keep
            acc_real = ((logits > 0).float() * real).sum() / real.sum().clamp(min=1.)
            acc_fake = ((logits <= 0).float() * fake).sum() / fake.sum().clamp(min=1.)
            if self.class_balanced:
                prior = torch.tensor(math.log(2.), device=logits.device)
            else:
                prior = binary_entropy((w * labels).sum())
            kept = keep.bool()
            auc = roc_auc(logits[kept], labels[kept])
        return dict(loss_disc=loss * self.loss_weight, disc_prior_entropy=prior,
                    disc_bacc=(acc_real + acc_fake) / 2, disc_auc=auc,
                    acc_real=acc_real, acc_fake=acc_fake)

    def adversarial_loss(self, logits: Tensor, mask: Tensor, kind: str,
                         weight: Optional[Tensor] = None) -> Tensor:
        """The generator's ``L_adv``.

        ``'non-saturating'``: ``-`` the (weighted) mean over generated patches of
        ``log D(x_bar)_k`` (the generator wants its patches called real). ``'minimax'``:
        the discriminator's log-likelihood, i.e. ``-L_disc`` before ``loss_weight``.
        """
        if kind == 'non-saturating':
            fake = mask.float() if weight is None else mask.float() * weight.float()
            per_patch = F.binary_cross_entropy_with_logits(
                logits, torch.ones_like(logits), reduction='none')
            return (per_patch * fake).sum() / fake.sum().clamp(min=1e-12)
        if kind == 'minimax':
            w = self.patch_weights(mask, weight)
            return -(F.binary_cross_entropy_with_logits(
                logits, self.labels(mask), reduction='none') * w).sum()
        raise ValueError(f"PatchDiscriminatorHead: adversarial loss {kind!r} is unknown; use "
                         f"'non-saturating' or 'minimax'")

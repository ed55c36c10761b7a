"""AMR: a mask ratio that follows how much of the image is salient."""
import math
from typing import Optional, Tuple

import torch
from torch import Tensor

from mmmim.registry import MODELS
from .base import FixedRatio
from .salience import patch_salience


def _number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


@MODELS.register_module()
class AdaptiveRatio:
    """Adaptive mask ratio (AMR): ``R = r - dr + 2 * dr * mean(1[S > delta])``.

    ``S`` is the normalised patch salience (:func:`patch_salience`, before any noise),
    so images with many salient patches are masked more, within ``[r - dr, r + dr]``.
    Each image keeps ``n_keep = int(L * (1 - R))`` patches (rounded down, with a 1e-6
    tolerance against float error). A ratio policy: any masker takes it as
    ``ratio=dict(type='AdaptiveRatio', ...)``, e.g. ``RandomMasker`` or ``SalienceMasker``.

    Config keys:
        ratio (float): ``r``, the centre ratio, in (0, 1) (default 0.75).
        ratio_delta (float): ``dr``, in ``[0, min(r, 1 - r))`` (default 0.1).
        threshold (float): ``delta``, the salience above which a patch counts as
            salient, in [0, 1] (default 0.5).
        per_sample (bool): False (default, as the public SBAM code): one ratio per
            batch, the mean taken over all patches of all images. True: one ratio per
            image; the visible sets are then ragged and padded to the longest, and the
            encoder ignores the padding through a key-padding mask (the masker must
            support ragged plans; GridMasker and ParallelMasker do not).

    The ratio used (scalar per batch, ``(B,)`` per sample) goes into ``MaskPlan.ratio``
    and MAE logs its mean as ``mask_ratio``.

    Cost: both modes need ONE host synchronisation per step (``.item()``), because the
    number of visible tokens (per batch, or the padded length per sample) decides tensor
    shapes. The salience itself is one ``L x L x D`` matmul per image.
    """

    def __init__(self, ratio: float = 0.75, ratio_delta: float = 0.1, threshold: float = 0.5,
                 per_sample: bool = False):
        if not _number(ratio) or not 0 < ratio < 1:
            raise ValueError(f'AdaptiveRatio: ratio (r) must be in (0, 1), got {ratio!r}; '
                             'e.g. ratio=0.75')
        limit = min(ratio, 1 - ratio)
        if not _number(ratio_delta) or not 0 <= ratio_delta < limit:
            raise ValueError(f'AdaptiveRatio: ratio_delta (dr) must be in [0, min(r, 1 - r)) '
                             f'= [0, {limit:g}) for ratio={ratio}, so that r - dr and r + dr '
                             f'stay inside (0, 1); got {ratio_delta!r} (default 0.1)')
        if not _number(threshold) or not 0 <= threshold <= 1:
            raise ValueError(f'AdaptiveRatio: threshold (delta) must be in [0, 1], the range '
                             f'of the normalised salience; got {threshold!r} (default 0.5)')
        if not isinstance(per_sample, bool):
            raise TypeError(f'AdaptiveRatio: per_sample must be True or False, got '
                            f'{per_sample!r}')
        self.ratio, self.ratio_delta = float(ratio), float(ratio_delta)
        self.threshold, self.per_sample = float(threshold), per_sample

    def validate(self, num_patches: int) -> None:
        """Both extreme ratios ``r - dr`` and ``r + dr`` must keep and mask a patch."""
        for extreme in (self.ratio - self.ratio_delta, self.ratio + self.ratio_delta):
            try:
                FixedRatio(extreme).validate(num_patches)
            except ValueError as err:
                raise ValueError(f'AdaptiveRatio(ratio={self.ratio}, ratio_delta='
                                 f'{self.ratio_delta}) reaches {err}; narrow ratio_delta or '
                                 f'move ratio') from None

    def ratios(self, salience: Tensor) -> Tensor:
        """The formula: ``(B,)`` per sample or a scalar per batch, float64."""
        salient = (salience > self.threshold).double()
        share = salient.mean(dim=1) if self.per_sample else salient.mean()
        return self.ratio - self.ratio_delta + 2 * self.ratio_delta * share

    def __call__(self, tokens: Tensor) -> Tuple[int, Optional[Tensor], Tensor]:
        """Return ``(n_keep, per-sample n_keep or None, ratio used)``."""
        ratio = self.ratios(patch_salience(tokens))
        counts = torch.floor(tokens.shape[1] * (1 - ratio) + 1e-6).long()
        if self.per_sample:
            return int(counts.max()), counts, ratio.float()  # the one host sync
        return int(counts), None, ratio.float()  # the one host sync

    def __repr__(self):
        return (f'AdaptiveRatio(ratio={self.ratio}, ratio_delta={self.ratio_delta}, '
                f'threshold={self.threshold}, per_sample={self.per_sample})')

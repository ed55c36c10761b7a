"""EMAE: K parallel views per image in one pass, plus self-consistency."""
from typing import Dict

from mmmim.registry import MODELS
from .mae import MAE


@MODELS.register_module()
class EMAE(MAE):
    """MAE over ``K`` disjoint views per image (a :class:`ParallelMasker`), stacked on
    the batch axis so encoder and decoder run once on ``B * K`` sequences.

    ``loss_rec`` is the MAE loss of every view over its own masked patches, averaged
    over views; ``loss_consistency`` is ``lambda *`` :class:`ConsistencyLoss` over pairs
    of views on the patches masked in both. Both are logged.

    Config keys (beyond :class:`MAE`'s): ``masker`` (default
    ``dict(type='ParallelMasker', num_parts=4)``; must make >= 2 views),
    ``consistency`` (a :class:`ConsistencyLoss` config, default l2 + stop-grad, weight 1).
    """
    multi_view = True

    def __init__(self, *args, masker=dict(type='ParallelMasker', num_parts=4),
                 consistency=dict(type='ConsistencyLoss'), **kwargs):
        super().__init__(*args, masker=masker, **kwargs)
        if self.masker.num_views < 2:
            raise ValueError(
                f'EMAE needs several views per image, but masker {type(self.masker).__name__} '
                f'makes {self.masker.num_views}; use dict(type="ParallelMasker", num_parts=K) '
                f'with K >= 2, or type="MAE" for single-view training')
        self.consistency = MODELS.build(consistency)

    def loss(self, inputs, data_samples=None, **kwargs) -> Dict:
        img = self._images(inputs)
        plan, _, pred = self.reconstruct(img)
        losses = self.head.loss(pred, img, plan)
        losses['loss_consistency'] = self.consistency(plan.per_view(pred),
                                                      plan.per_view(plan.mask))
        losses['mask_ratio'] = plan.ratio.detach().float().mean()  # logged, not a loss
        return losses

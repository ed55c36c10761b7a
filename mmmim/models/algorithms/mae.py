"""MAE: the algorithm every other method extends."""
from typing import Dict, List, Optional, Union

import torch
from mmpretrain.models.selfsup import BaseSelfSupervisor
from torch import Tensor

from mmmim.registry import MODELS
from ..maskers.plan import MaskPlan


def _fill(cfg: Optional[dict], name: str, **values) -> Optional[dict]:
    """Fill keys the backbone determines; refuse a config that contradicts it."""
    if cfg is None or not isinstance(cfg, dict):
        return cfg
    cfg = dict(cfg)
    for key, value in values.items():
        if key in cfg and cfg[key] is not None and tuple(
                cfg[key] if isinstance(cfg[key], (list, tuple)) else [cfg[key]]) != tuple(
                    value if isinstance(value, (list, tuple)) else [value]):
            raise ValueError(f'{name}.{key}={cfg[key]!r} does not match the backbone '
                             f'({value!r}); remove the key or make them agree')
        cfg[key] = value
    return cfg


@MODELS.register_module()
class MAE(BaseSelfSupervisor):
    """Masked autoencoder: mask, encode the visible tokens, decode all, regress pixels.

    The step is ``tokens = backbone.embed(img)``, ``plan = masker(tokens)``,
    ``latent = backbone.encode(tokens, plan)``, ``pred = neck(latent, plan)``,
    ``head.loss(pred, img, plan)``. Any masker works (random, block, grid, salience,
    parallel, with any ratio policy); the number of views comes from the plan.

    Config keys: ``backbone`` (a :class:`MaskedViT` config), ``neck``
    (:class:`MAEDecoder`), ``head`` (:class:`ReconstructionHead`), ``masker``
    (default ``dict(type='RandomMasker', ratio=0.75)``), ``data_preprocessor``,
    ``init_cfg``. The masker is validated against the backbone's patch grid when the
    model is built, so a bad ratio or K fails before training starts.
    """
    #: whether this algorithm accepts a masker with more than one view
    multi_view = False

    def __init__(self, backbone: dict, neck: dict, head: dict,
                 masker: Union[dict, torch.nn.Module] = dict(type='RandomMasker', ratio=0.75),
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None,
                 **kwargs):
        backbone = MODELS.build(backbone) if isinstance(backbone, dict) else backbone
        grid = tuple(backbone.patch_resolution)
        neck = MODELS.build(_fill(neck, 'neck', grid_size=grid, patch_size=backbone.patch_size,
                                  in_channels=backbone.in_channels,
                                  embed_dims=backbone.embed_dims))
        head = MODELS.build(_fill(head, 'head', patch_size=backbone.patch_size,
                                  in_channels=backbone.in_channels))
        super().__init__(backbone=backbone, neck=neck, head=head,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg, **kwargs)
        self.masker = MODELS.build(masker) if isinstance(masker, dict) else masker
        self.masker.validate(grid)
        if self.masker.num_views > 1 and not self.multi_view:
            raise ValueError(
                f'{type(self).__name__} trains one view per image, but masker '
                f'{type(self.masker).__name__} makes {self.masker.num_views}; use '
                f"type='EMAE' for parallel masks, or a single-view masker")

    def extract_feat(self, inputs: Tensor):
        """Features of the unmasked image (the backbone's out_type)."""
        return self.backbone(inputs)

    def reconstruct(self, img: Tensor, plan: Optional[MaskPlan] = None):
        """Run the masked autoencoder: returns ``(plan, latent, pred)``."""
        tokens = self.backbone.embed(img)
        if plan is None:
            plan = self.masker(tokens)
        latent = self.backbone.encode(tokens, plan)
        return plan, latent, self.neck(latent, plan)

    @staticmethod
    def _images(inputs: Union[Tensor, List[Tensor]]) -> Tensor:
        return inputs[0] if isinstance(inputs, (list, tuple)) else inputs

    def loss(self, inputs, data_samples=None, **kwargs) -> Dict[str, Tensor]:
        img = self._images(inputs)
        plan, _, pred = self.reconstruct(img)
        losses = self.head.loss(pred, img, plan)
        if plan.ratio is not None:
            losses['mask_ratio'] = plan.ratio.detach().float().mean()  # logged, not a loss
        return losses

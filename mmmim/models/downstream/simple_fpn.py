"""ViTDet's simple feature pyramid and a channel LayerNorm for ``(B, C, H, W)`` maps."""
from typing import Optional, Sequence, Tuple

import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor, nn

from .registry import register_downstream


# mmpretrain registers its own 'LN2d' (seen from mmmim's scope); mmdet and mmseg have
# none, and their heads build norms from their own registry (norm_cfg=dict(type='LN2d'))
@register_downstream(name='LN2d', scopes=('mmdet', 'mmseg'))
class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a ``(B, C, H, W)`` map, at every position.

    Registered as ``'LN2d'`` in mmdet's and mmseg's scopes (neither ships one), so
    their heads accept ``norm_cfg=dict(type='LN2d')`` as in ViTDet's Mask R-CNN.
    Config keys: ``num_features`` (int, C), ``eps`` (float, default 1e-6).
    """
    _abbr_ = 'ln'

    def __init__(self, num_features: int, eps: float = 1e-6, **kwargs):
        super().__init__(num_features, eps=eps, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f'LayerNorm2d expects (B, C, H, W) maps, got shape {tuple(x.shape)}')
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                         self.eps)
        return x.permute(0, 3, 1, 2).contiguous()


def _norm(cfg: dict, channels: int) -> nn.Module:
    cfg = dict(cfg)
    if cfg.get('type') in ('LN2d', 'LayerNorm2d'):
        cfg.pop('type')
        cfg.pop('requires_grad', None)
        return LayerNorm2d(channels, **cfg)
    return build_norm_layer(cfg, channels)[1]


@register_downstream()
class SimpleFeaturePyramid(BaseModule):
    """Multi-scale maps from one single-scale ViT map (ViTDet's simple pyramid).

    A plain ViT gives a single stride-p map; mmdet's FPN expects a hierarchy of
    strides, and mmdet's pip package does not ship ViTDet's pyramid. Each scale
    factor turns the map into one level: 4 -> two stride-2 transposed convolutions
    (with a norm and GELU between, channels C/2 then C/4), 2 -> one (C/2),
    1 -> identity, 0.5 / 0.25 -> max pooling; then a 1x1 and a 3x3 convolution, each
    followed by the norm, bring every level to ``out_channels``. Levels beyond the
    scale factors (``num_outs``) are stride-2 subsamplings of the coarsest one (for
    the RPN's extra level).

    Config keys:
        in_channels (int): channels of the ViT map (embed dims).
        out_channels (int): channels of every output level (256 for mmdet heads).
        scale_factors (sequence of float): default (4, 2, 1, 0.5): strides p/4 .. 2p.
        num_outs (int | None): number of outputs (default: one per scale factor).
        in_index (int): which backbone output to use (default -1, the last).
        norm_cfg (dict): default ``dict(type='LN2d', eps=1e-6)``; any mmcv norm works.
    """

    def __init__(self, in_channels: int, out_channels: int = 256,
                 scale_factors: Sequence[float] = (4, 2, 1, 0.5),
                 num_outs: Optional[int] = None, in_index: int = -1,
                 norm_cfg: Optional[dict] = None, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        norm_cfg = norm_cfg or dict(type='LN2d', eps=1e-6)
        self.scale_factors = tuple(scale_factors)
        self.num_outs = num_outs or len(self.scale_factors)
        if self.num_outs < len(self.scale_factors):
            raise ValueError(f'SimpleFeaturePyramid: num_outs={self.num_outs} is fewer than the '
                             f'{len(self.scale_factors)} scale_factors {self.scale_factors}')
        self.in_index = in_index
        self.rescale = nn.ModuleList()
        self.lateral = nn.ModuleList()
        self.output = nn.ModuleList()
        c = in_channels
        for factor in self.scale_factors:
            if factor == 4:
                if c % 4:
                    raise ValueError(f'SimpleFeaturePyramid: scale 4 needs in_channels divisible '
                                     f'by 4, got {c}')
                stage = nn.Sequential(nn.ConvTranspose2d(c, c // 2, 2, stride=2),
                                      _norm(norm_cfg, c // 2), nn.GELU(),
                                      nn.ConvTranspose2d(c // 2, c // 4, 2, stride=2))
                dims = c // 4
            elif factor == 2:
                stage, dims = nn.ConvTranspose2d(c, c // 2, 2, stride=2), c // 2
            elif factor == 1:
                stage, dims = nn.Identity(), c
            elif factor in (0.5, 0.25):
                k = int(round(1 / factor))
                stage, dims = nn.MaxPool2d(k, stride=k), c
            else:
                raise ValueError(f'SimpleFeaturePyramid: scale factor {factor} is not one of '
                                 '4, 2, 1, 0.5, 0.25')
            self.rescale.append(stage)
            self.lateral.append(nn.Sequential(nn.Conv2d(dims, out_channels, 1, bias=False),
                                              _norm(norm_cfg, out_channels)))
            self.output.append(nn.Sequential(
                nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
                _norm(norm_cfg, out_channels)))

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        x = inputs[self.in_index] if isinstance(inputs, (list, tuple)) else inputs
        outs = [out(lat(stage(x)))
                for stage, lat, out in zip(self.rescale, self.lateral, self.output)]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))
        return tuple(outs)

"""mmmim's ViT as a detection / segmentation backbone (ViTDet-style windows)."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import Tensor

from mmmim.utils.convert import load_vit_checkpoint, match_state_dict
from ..backbones.masked_vit import MaskedViT
from ..layers import TransformerLayer
from .registry import register_downstream


def window_partition(x: Tensor, window: int) -> Tuple[Tensor, Optional[Tensor], Tuple[int, int]]:
    """``(B, h, w, D)`` -> windows ``(B * nW, window**2, D)``, padding bottom/right.

    Also returns the key-padding mask ``(B * nW, window**2)`` (True = padded token, so
    attention ignores it; None when nothing was padded) and the padded size.
    """
    b, h, w, d = x.shape
    ph, pw = (-h) % window, (-w) % window
    if ph or pw:
        x = F.pad(x, (0, 0, 0, pw, 0, ph))
    hp, wp = h + ph, w + pw
    nh, nw = hp // window, wp // window
    wins = x.reshape(b, nh, window, nw, window, d).transpose(2, 3).reshape(-1, window**2, d)
    padding = None
    if ph or pw:
        pad = torch.ones(hp, wp, dtype=torch.bool, device=x.device)
        pad[:h, :w] = False
        padding = pad.reshape(nh, window, nw, window).transpose(1, 2).reshape(-1, window**2)
        padding = padding.repeat(b, 1)
    return wins, padding, (hp, wp)


def window_unpartition(wins: Tensor, window: int, padded: Tuple[int, int], hw: Tuple[int, int],
                       batch: int) -> Tensor:
    """Inverse of :func:`window_partition`: back to ``(B, h, w, D)``, padding removed."""
    (hp, wp), (h, w) = padded, hw
    d = wins.shape[-1]
    x = wins.reshape(batch, hp // window, wp // window, window, window, d).transpose(2, 3)
    return x.reshape(batch, hp, wp, d)[:, :h, :w]


@register_downstream()
class PlainViTBackbone(MaskedViT):
    """A plain (non-hierarchical) ViT for mmdet detectors and mmseg segmentors.

    The parameters are those of :class:`MaskedViT` (same names), so the ``backbone.*``
    tensors of an mmmim pre-training checkpoint load directly; checkpoints in the
    mmpretrain, mmseg (MAE/BEiT), official MAE / timm and ViTDet layouts are
    converted on load. What mmdet's pip package lacks (ViTDet lives in its
    repository's projects/) and this class adds:

    - window attention in most blocks, global attention in a few
      (``window_size``, ``global_attn_indices``; ViTDet-B: 14 and (2, 5, 8, 11)).
      Windows are cut from the patch grid, padded at the bottom/right; padded tokens
      are masked out of attention, so the padding never changes real tokens.
    - position embeddings for any input size: the checkpoint's grid is interpolated
      to ``img_size // patch_size`` at load time, and at run time to the actual grid.
    - feature maps ``(B, D, H/p, W/p)`` from every block in ``out_indices`` (mmseg's
      UperNet takes 4 of them through ``Feature2Pyramid``; mmdet's Mask R-CNN the last
      through :class:`SimpleFeaturePyramid`).
    - strict loading of the pre-trained weights: with
      ``init_cfg=dict(type='Pretrained', checkpoint=PATH, prefix='backbone.')`` a
      checkpoint of another architecture or patch size is refused with the keys and
      shapes that differ and how to convert it; missing or unexpected keys are refused
      unless ``allow_partial_load=True``.

    Config keys (besides MaskedViT's ``arch``, ``img_size``, ``patch_size``,
    ``in_channels``, ``out_indices``, ``final_norm``, ``drop_path_rate``,
    ``qkv_bias``, ``frozen_stages``, ``interpolate_mode``):
        window_size (int): 0 (default) = global attention everywhere.
        global_attn_indices (sequence of int): blocks that keep global attention when
            ``window_size > 0`` (negative indices count from the end).
        with_cls_token (bool): keep the cls token in the sequence (default True).
            Window attention needs False, as in ViTDet; the cls token is then unused
            and frozen, but kept so checkpoints load unchanged.
        fixed_pos_embed (bool): default False (position embeddings are fine-tuned).
        init_cfg.backbone (str): which encoder of a checkpoint holding several (GAN-MAE):
            'auto' (default), 'generator', 'discriminator' or a key prefix.
        allow_partial_load (bool): accept missing/unexpected keys (default False).
    """

    def __init__(self, arch: Union[str, dict] = 'base', img_size=224, patch_size: int = 16,
                 in_channels: int = 3, out_indices: Union[int, Sequence[int]] = -1,
                 window_size: int = 0, global_attn_indices: Sequence[int] = (),
                 with_cls_token: bool = True, final_norm: bool = True,
                 drop_path_rate: float = 0., qkv_bias: bool = True,
                 fixed_pos_embed: bool = False, frozen_stages: int = -1,
                 interpolate_mode: str = 'bicubic', allow_partial_load: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(arch=arch, img_size=img_size, patch_size=patch_size,
                         in_channels=in_channels, out_type='featmap', out_indices=out_indices,
                         final_norm=final_norm, drop_path_rate=drop_path_rate,
                         qkv_bias=qkv_bias, fixed_pos_embed=fixed_pos_embed,
                         frozen_stages=frozen_stages, interpolate_mode=interpolate_mode,
                         init_cfg=init_cfg)
        if window_size < 0:
            raise ValueError(f'PlainViTBackbone: window_size={window_size} must be >= 0 '
                             '(0 = global attention in every block)')
        if window_size and with_cls_token:
            raise ValueError('PlainViTBackbone: window attention cannot place the cls token '
                             'in a window; set with_cls_token=False (as ViTDet does) or '
                             'window_size=0')
        self.window_size = window_size
        self.global_attn_indices = sorted({i % self.num_layers for i in global_attn_indices})
        self.with_cls_token = with_cls_token
        self.allow_partial_load = allow_partial_load
        if not with_cls_token:
            self.cls_token.requires_grad = False  # unused: keep DDP free of unused params

    def uses_window(self, index: int) -> bool:
        """Whether block ``index`` attends within windows."""
        return self.window_size > 0 and index not in self.global_attn_indices

    # ------------------------------------------------------------------ loading
    def init_weights(self):
        cfg = self.init_cfg
        if not (isinstance(cfg, dict) and cfg.get('type') == 'Pretrained'):
            super().init_weights()
            return
        # random init first (what nothing in the checkpoint covers), then the weights
        self.init_cfg = None
        try:
            super().init_weights()
        finally:
            self.init_cfg = cfg
        self.load_pretrained(cfg['checkpoint'], backbone=cfg.get('backbone', 'auto'))
        self._is_init = True

    def load_pretrained(self, filename: str, backbone: str = 'auto') -> dict:
        """Load the encoder of ``filename`` (any supported layout) strictly; returns the
        report (loaded / missing / unexpected / resized keys)."""
        ckpt_sd, info = load_vit_checkpoint(filename, backbone)
        optional = [] if self.with_cls_token else ['cls_token']
        optional += ['ln2.weight', 'ln2.bias']
        sd, report = match_state_dict(
            self.state_dict(), ckpt_sd, model_grid=self.patch_resolution, optional=optional,
            strict=not self.allow_partial_load,
            source=f'checkpoint {filename!r} (encoder {info["prefix"]!r}, {info["layout"]} layout)')
        self.load_state_dict(sd, strict=False)
        print_log(f'PlainViTBackbone: loaded {len(report["loaded"])} tensors from {filename} '
                  f'(encoder {info["prefix"]!r}, {info["layout"]} layout); resized: '
                  f'{report["resized"] or "none"}; missing: {report["missing"] or "none"}; '
                  f'unexpected: {report["unexpected"] or "none"}', logger='current')
        return report

    # ------------------------------------------------------------------ forward
    def forward(self, img: Tensor, plan=None) -> Tuple[Tensor, ...]:
        """A tuple of ``(B, D, H / p, W / p)`` maps, one per ``out_indices`` entry."""
        if plan is not None:
            raise ValueError('PlainViTBackbone is for fine-tuning and takes no mask plan; '
                             'use MaskedViT for pre-training')
        b = img.shape[0]
        hw = (img.shape[-2] // self.patch_size, img.shape[-1] // self.patch_size)
        x = self.embed(img)
        if self.with_cls_token:
            x = torch.cat([self._cls(b), x], dim=1)
        outs: List[Tensor] = []
        for i, layer in enumerate(self.layers):
            x = self._run_layer(layer, x, hw, i)
            if i == self.num_layers - 1 and self.final_norm:
                x = self.ln1(x)
            if i in self.out_indices:
                patches = x[:, 1:] if self.with_cls_token else x
                outs.append(patches.transpose(1, 2).reshape(b, -1, *hw).contiguous())
        return tuple(outs)

    def _run_layer(self, layer: TransformerLayer, x: Tensor, hw: Tuple[int, int],
                   index: int) -> Tensor:
        if not self.uses_window(index):
            return layer(x)
        # LayerNorms and the MLP act per token, so running the whole block on windows
        # equals window attention inside a global block
        b, d = x.shape[0], x.shape[-1]
        wins, padding, padded = window_partition(x.reshape(b, *hw, d), self.window_size)
        wins = layer(wins, padding)
        return window_unpartition(wins, self.window_size, padded, hw, b).reshape(b, -1, d)

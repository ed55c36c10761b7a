"""The one masked ViT encoder every algorithm uses."""
from typing import Optional, Sequence, Union

import numpy as np
import torch
from mmengine.model import BaseModule
from mmcv.cnn.bricks.transformer import PatchEmbed
from mmpretrain.models.utils import resize_pos_embed, to_2tuple
from torch import Tensor, nn

from mmmim.registry import MODELS
from ..layers import TransformerLayer, check_with_cp
from ..layers import compile_blocks as _compile_blocks
from ..layers import run_block, run_blocks, sincos_pos_embed
from ..maskers.plan import MaskPlan

ARCHS = {
    # name: (embed_dims, num_layers, num_heads, feedforward_channels)
    'tiny': (192, 12, 3, 768),
    'small': (384, 12, 6, 1536),
    'base': (768, 12, 12, 3072),
    'large': (1024, 24, 16, 4096),
    'huge': (1280, 32, 16, 5120),
}


def init_mae_weights(module: nn.Module) -> None:
    """MAE's initialisation: xavier-uniform linears, zero biases, unit LayerNorms."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@MODELS.register_module()
class MaskedViT(BaseModule):
    """Vision Transformer that runs on the visible tokens of a :class:`MaskPlan` only.

    Without a plan it is a plain ViT whose outputs follow mmpretrain's
    ``VisionTransformer`` (``out_type``, ``out_indices``), and its state dict has the
    same keys (``cls_token``, ``pos_embed``, ``patch_embed.projection.*``,
    ``layers.{i}.{ln1,attn.qkv,attn.proj,ln2,ffn.layers.0.0,ffn.layers.1}.*``, ``ln1.*``),
    so ``backbone.*`` weights load into an mmpretrain ``ImageClassifier``.
    mmpretrain's ViT cannot skip masked tokens, take a key-padding mask, or hand its
    tokens to a masker before the blocks, which is why this class exists.

    Config keys:
        arch (str | dict): 'tiny', 'small', 'base', 'large', 'huge' or a dict with
            embed_dims, num_layers, num_heads, feedforward_channels.
        img_size (int | tuple): default 224. patch_size (int): default 16.
        in_channels (int): default 3 (1 for grey images).
        out_type (str): 'cls_token' (default), 'avg_featmap', 'featmap' or 'raw'.
        out_indices (int | sequence): layers whose output is returned, default -1.
        final_norm (bool): LayerNorm after the last layer, default True.
        drop_path_rate (float): default 0. qkv_bias (bool): default True.
        fixed_pos_embed (bool): 2-D sin-cos position embedding that is not trained
            (default True, MAE pre-training); False makes it a learned parameter
            initialised to sin-cos (fine-tuning).
        frozen_stages (int): freeze patch embedding and the first N layers (-1: none).
        with_cp (bool | int): activation checkpointing: False (default), True (every
            block) or n (every n-th block). Trades a recomputed forward of those blocks in
            the backward pass for their activation memory; gradients are unchanged.
        compile_blocks (bool | dict): ``torch.compile`` each transformer layer in place
            (False by default; True or a dict of ``torch.compile`` arguments, see
            :func:`mmmim.models.layers.compile_blocks`). Same outputs and state dict
            keys; faster on a GPU once compiled.
    """
    OUT_TYPES = {'raw', 'cls_token', 'featmap', 'avg_featmap'}

    def __init__(self, arch: Union[str, dict] = 'base', img_size=224, patch_size: int = 16,
                 in_channels: int = 3, out_type: str = 'cls_token',
                 out_indices: Union[int, Sequence[int]] = -1, final_norm: bool = True,
                 drop_path_rate: float = 0., qkv_bias: bool = True,
                 fixed_pos_embed: bool = True, frozen_stages: int = -1,
                 interpolate_mode: str = 'bicubic', with_cp: Union[bool, int] = False,
                 compile_blocks: Union[bool, dict] = False, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.cp_every = check_with_cp(with_cp, 'MaskedViT')
        if isinstance(arch, str):
            if arch not in ARCHS:
                raise ValueError(f'MaskedViT: unknown arch {arch!r}; choose from '
                                 f'{sorted(ARCHS)} or pass a dict')
            dims, depth, heads, ffn = ARCHS[arch]
        else:
            missing = {'embed_dims', 'num_layers', 'num_heads', 'feedforward_channels'} - set(arch)
            if missing:
                raise ValueError(f'MaskedViT: arch dict lacks {sorted(missing)}')
            dims, depth, heads, ffn = (arch['embed_dims'], arch['num_layers'], arch['num_heads'],
                                       arch['feedforward_channels'])
        if out_type not in self.OUT_TYPES:
            raise ValueError(f'MaskedViT: out_type {out_type!r} not in {sorted(self.OUT_TYPES)}')
        self.img_size = to_2tuple(img_size)
        for size in self.img_size:
            if size % patch_size:
                raise ValueError(f'MaskedViT: image size {self.img_size} is not divisible by '
                                 f'patch_size={patch_size}; pad or resize the images, or choose '
                                 f'a patch size that divides it')
        self.embed_dims, self.num_layers, self.patch_size = dims, depth, patch_size
        self.in_channels = in_channels
        self.patch_embed = PatchEmbed(in_channels=in_channels, input_size=self.img_size,
                                      embed_dims=dims, conv_type='Conv2d',
                                      kernel_size=patch_size, stride=patch_size)
        self.patch_resolution = tuple(self.patch_embed.init_out_size)
        self.num_patches = self.patch_resolution[0] * self.patch_resolution[1]
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dims))
        self.pos_embed = nn.Parameter(sincos_pos_embed(self.patch_resolution, dims),
                                      requires_grad=not fixed_pos_embed)
        self.interpolate_mode = interpolate_mode
        dpr = np.linspace(0, drop_path_rate, depth)
        self.layers = nn.ModuleList(
            TransformerLayer(dims, heads, ffn, float(dpr[i]), qkv_bias) for i in range(depth))
        self.final_norm = final_norm
        if final_norm:
            self.ln1 = nn.LayerNorm(dims, eps=1e-6)
        self.out_type = out_type
        if out_type == 'avg_featmap':
            self.ln2 = nn.LayerNorm(dims, eps=1e-6)
        out_indices = [out_indices] if isinstance(out_indices, int) else list(out_indices)
        self.out_indices = [i + depth if i < 0 else i for i in out_indices]
        for i in self.out_indices:
            if not 0 <= i < depth:
                raise ValueError(f'MaskedViT: out_indices {out_indices} outside 0..{depth - 1}')
        self.frozen_stages = frozen_stages
        self._freeze()
        self.compiled = _compile_blocks(self.layers, compile_blocks, 'MaskedViT')

    # ------------------------------------------------------------------ set-up
    def init_weights(self):
        super().init_weights()
        if self.init_cfg is not None and self.init_cfg.get('type') == 'Pretrained':
            return
        init_mae_weights(self)
        w = self.patch_embed.projection.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=.02)
        with torch.no_grad():
            self.pos_embed.copy_(sincos_pos_embed(self.patch_resolution, self.embed_dims))

    def _freeze(self):
        if self.frozen_stages < 0:
            return
        frozen = [self.patch_embed, self.cls_token, self.pos_embed]
        frozen += list(self.layers[:self.frozen_stages])
        if self.frozen_stages >= self.num_layers and self.final_norm:
            frozen.append(self.ln1)
        for item in frozen:
            params = [item] if isinstance(item, nn.Parameter) else item.parameters()
            for p in params:
                p.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.frozen_stages >= 0:
            for layer in self.layers[:self.frozen_stages]:
                layer.eval()
        return self

    def get_layer_depth(self, param_name: str, prefix: str = ''):
        """Layer index for layer-wise lr decay: 0 = stem, 1..N = blocks, N+1 = the rest."""
        total = self.num_layers + 2
        if not param_name.startswith(prefix):
            return total - 1, total
        name = param_name[len(prefix):]
        if name in ('cls_token', 'pos_embed') or name.startswith('patch_embed'):
            return 0, total
        if name.startswith('layers.'):
            return int(name.split('.')[1]) + 1, total
        return total - 1, total

    # ---------------------------------------------------------------- forward
    def embed(self, img: Tensor) -> Tensor:
        """Patch embeddings + position embeddings, no cls token: ``(B, L, D)``.

        This is what maskers see (SBAM's salience is computed from it).
        """
        x, hw = self.patch_embed(img)
        pos = self.pos_embed
        if tuple(hw) != self.patch_resolution:
            pos = resize_pos_embed(pos, self.patch_resolution, hw, self.interpolate_mode, 1)
        return x + pos[:, 1:]

    def _cls(self, n: int) -> Tensor:
        return (self.cls_token + self.pos_embed[:, :1]).expand(n, -1, -1)

    def encode(self, tokens: Tensor, plan: Optional[MaskPlan] = None) -> Tensor:
        """Run the blocks on the visible tokens (all tokens without a plan).

        Returns ``(N, 1 + n_keep, D)`` after the final norm (``N = B * K``).
        """
        padding = None
        if plan is not None:
            tokens = plan.gather(tokens)
            if plan.keep_padding is not None:
                padding = torch.cat([plan.keep_padding.new_zeros(tokens.shape[0], 1),
                                     plan.keep_padding], dim=1)
        x = torch.cat([self._cls(tokens.shape[0]), tokens], dim=1)
        x = run_blocks(self.layers, x, self.cp_every, padding)
        return self.ln1(x) if self.final_norm else x

    def forward(self, img: Tensor, plan: Optional[MaskPlan] = None):
        """With a plan: the latent of the visible tokens ``(N, 1 + n_keep, D)``.

        Without: a tuple with one output per ``out_indices`` entry, as mmpretrain's ViT.
        """
        tokens = self.embed(img)
        if plan is not None:
            return self.encode(tokens, plan)
        hw = (img.shape[-2] // self.patch_size, img.shape[-1] // self.patch_size)
        x = torch.cat([self._cls(tokens.shape[0]), tokens], dim=1)
        outs = []
        for i, layer in enumerate(self.layers):
            x = run_block(layer, i, x, self.cp_every)
            if i == self.num_layers - 1 and self.final_norm:
                x = self.ln1(x)
            if i in self.out_indices:
                outs.append(self._format(x, hw))
        return tuple(outs)

    def _format(self, x: Tensor, hw) -> Tensor:
        if self.out_type == 'raw':
            return x
        if self.out_type == 'cls_token':
            return x[:, 0]
        patches = x[:, 1:]
        if self.out_type == 'featmap':
            return patches.reshape(x.shape[0], *hw, -1).permute(0, 3, 1, 2)
        return self.ln2(patches.mean(dim=1))

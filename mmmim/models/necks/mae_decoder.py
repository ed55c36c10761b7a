"""MAE's lightweight decoder."""
import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmmim.registry import MODELS
from ..backbones.masked_vit import init_mae_weights
from ..layers import TransformerLayer, check_with_cp
from ..layers import compile_blocks as _compile_blocks
from ..layers import run_blocks, sincos_pos_embed
from ..maskers.plan import MaskPlan


@MODELS.register_module()
class MAEDecoder(BaseModule):
    """Predict the pixels of every patch from the latent of the visible ones.

    Projects the encoder latent to the decoder width, puts a shared learnable mask
    token at every masked position (unshuffles with ``plan.ids_restore``), adds a fixed
    sin-cos position embedding, runs ``decoder_depth`` transformer layers and a linear
    layer to ``patch_size**2 * in_channels`` values per patch. mmpretrain's
    ``MAEPretrainDecoder`` takes a bare ``ids_restore`` and cannot handle padded (ragged)
    visible sets or K stacked views, hence this class.

    Config keys: ``num_patches`` / ``grid_size`` (patch grid ``(h, w)``), ``patch_size``,
    ``in_channels``, ``embed_dims`` (encoder width), ``decoder_embed_dims`` (512),
    ``decoder_depth`` (8), ``decoder_num_heads`` (16), ``mlp_ratio`` (4), ``with_cp``
    (activation checkpointing, as :class:`MaskedViT`'s: False, True or every n-th
    block), ``compile_blocks`` (False; True or ``torch.compile`` arguments: compile
    each decoder layer in place, as :class:`MaskedViT`'s). The algorithm
    fills ``grid_size``, ``patch_size``, ``in_channels`` and ``embed_dims`` from the
    backbone when they are not given, and checks them when they are.
    """

    def __init__(self, grid_size=(14, 14), patch_size: int = 16, in_channels: int = 3,
                 embed_dims: int = 768, decoder_embed_dims: int = 512, decoder_depth: int = 8,
                 decoder_num_heads: int = 16, mlp_ratio: float = 4., with_cp=False,
                 compile_blocks=False, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.cp_every = check_with_cp(with_cp, 'MAEDecoder')
        self.grid_size = tuple(grid_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.decoder_embed = nn.Linear(embed_dims, decoder_embed_dims)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dims))
        self.decoder_pos_embed = nn.Parameter(
            sincos_pos_embed(self.grid_size, decoder_embed_dims), requires_grad=False)
        self.decoder_blocks = nn.ModuleList(
            TransformerLayer(decoder_embed_dims, decoder_num_heads,
                             int(decoder_embed_dims * mlp_ratio)) for _ in range(decoder_depth))
        self.decoder_norm = nn.LayerNorm(decoder_embed_dims, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_embed_dims, patch_size**2 * in_channels)
        self.compiled = _compile_blocks(self.decoder_blocks, compile_blocks, 'MAEDecoder')

    def init_weights(self):
        super().init_weights()
        if self.init_cfg is not None and self.init_cfg.get('type') == 'Pretrained':
            return
        init_mae_weights(self)
        nn.init.normal_(self.mask_token, std=.02)

    def forward(self, latent: Tensor, plan: MaskPlan) -> Tensor:
        """``(N, 1 + n_keep, D)`` latent -> ``(N, L, p*p*C)`` predictions."""
        x = self.decoder_embed(latent)
        cls, visible = x[:, :1], x[:, 1:]
        num_seq, n_keep, dims = visible.shape
        mask_token = self.mask_token.to(visible.dtype)
        if plan.keep_padding is not None:
            visible = torch.where(plan.keep_padding[..., None], mask_token, visible)
        # [cls, visible, mask tokens] in shuffled order, then one gather puts every patch
        # back in place (cls stays at 0): two copies of the sequence instead of three
        # (concatenate, unshuffle, prepend cls).
        x = torch.cat([cls, visible, mask_token.expand(num_seq, plan.num_patches - n_keep, dims)],
                      dim=1)
        order = torch.cat([plan.ids_restore.new_zeros(num_seq, 1), plan.ids_restore + 1], dim=1)
        x = torch.gather(x, 1, order[..., None].expand(-1, -1, dims)) + self.decoder_pos_embed
        x = run_blocks(self.decoder_blocks, x, self.cp_every)
        return self.decoder_pred(self.decoder_norm(x[:, 1:]))

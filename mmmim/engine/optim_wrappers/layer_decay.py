"""Layer-wise learning-rate decay for any model that contains a ViT.

Fine-tuning a MIM-pre-trained ViT works best when the blocks near the input learn
more slowly than those near the output. The constructors that ship with the
dependencies each cover only part of the models we fine-tune: mmpretrain's asks the
model for ``get_layer_depth`` (segmentors and detectors have none), mmseg's accepts
only backbones whose class name contains 'BEiT' or 'MAE', and mmdet's only knows its
own backbones. This one finds the ViT(s) inside any model (classifier, detector,
segmentor, a bare backbone) and assigns each parameter a depth from its name.
"""
import re
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.optim import DefaultOptimWrapperConstructor
from torch import nn

from mmmim.registry import OPTIM_WRAPPER_CONSTRUCTORS

__all__ = ['LayerDecayOptimWrapperConstructor', 'vit_layer_depth']

#: parameter names (relative to the ViT) that sit before the first block: depth 0
STEM_NAMES = ('cls_token', 'pos_embed', 'mask_token', 'dist_token', 'patch_embed', 'pre_norm')
_BLOCK_RE = re.compile(r'^(?:layers|blocks)\.(\d+)\.')


def vit_layer_depth(rel_name: str, num_layers: int) -> int:
    """Depth of a ViT parameter from its name relative to the ViT module.

    0 for the stem (``cls_token``, ``pos_embed``, ``patch_embed.*``, ...), ``i + 1`` for
    block ``i`` (``layers.{i}.*`` or ``blocks.{i}.*``), ``num_layers + 1`` for the rest
    (final norm). The learning-rate scale is then
    ``decay_rate ** (num_layers + 1 - depth)``.
    """
    head = rel_name.split('.', 1)[0]
    if head in STEM_NAMES:
        return 0
    match = _BLOCK_RE.match(rel_name)
    if match:
        return int(match.group(1)) + 1
    return num_layers + 1


def find_vits(model: nn.Module) -> List[Tuple[str, int]]:
    """``(prefix, num_layers)`` of every ViT inside ``model``, outermost first.

    A ViT is a module with a ``get_layer_depth`` method and a ``layers`` ModuleList
    (mmmim's ``MaskedViT`` and its downstream wrapper, mmpretrain's
    ``VisionTransformer``/``MAEViT``). A ViT nested in another is not listed twice.
    """
    found = []
    for name, module in model.named_modules():
        if not (callable(getattr(module, 'get_layer_depth', None))
                and isinstance(getattr(module, 'layers', None), nn.ModuleList)):
            continue
        prefix = f'{name}.' if name else ''
        if any(prefix.startswith(p) for p, _ in found):
            continue
        found.append((prefix, len(module.layers)))
    return found


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Parameter groups with ``lr * layer_decay_rate ** (num_layers + 1 - depth)``.

    Depth is 0 for the ViT's stem, ``i + 1`` for block ``i``, ``num_layers + 1`` for
    its final norm and for every parameter outside the ViT (neck, heads), which
    therefore train at the full lr. Found by parameter names, so it works for any
    model that contains the ViT.

    Config (``optim_wrapper=dict(constructor='LayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=..., weight_decay=...), paramwise_cfg=dict(...))``;
    from an mmdet/mmseg config the same name works after
    ``custom_imports=dict(imports=['mmmim.models.downstream'])``):

    paramwise_cfg keys:
        layer_decay_rate (float): required, e.g. 0.65 (ADE20K), 0.7 (COCO).
        vit_prefix (str | None): the ViT's module path, e.g. ``'backbone.'``; by
            default every module with ``get_layer_depth`` and a ``layers`` ModuleList.
        num_layers (int | None): override the block count found on the module
            (needed with ``vit_prefix`` when that module is not a ViT class).
        no_decay_names (sequence of str): parameters matching any of these names get
            weight decay 0; default ``('cls_token', 'pos_embed', 'mask_token',
            'rel_pos')``.
        flat_decay (bool): also no weight decay for 1-D parameters (biases, norms);
            default True, the MAE/BEiT fine-tuning recipe.
        custom_keys (dict): ``{name_substring: dict(lr_mult=, decay_mult=)}``
            multiplied on top, as in mmengine's default constructor.

    Every group records ``layer_id``, ``lr_scale`` and ``param_names``.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        paramwise_cfg = dict(paramwise_cfg or {})
        if 'layer_decay_rate' not in paramwise_cfg:
            raise ValueError(
                'LayerDecayOptimWrapperConstructor: paramwise_cfg.layer_decay_rate is '
                'missing; add e.g. paramwise_cfg=dict(layer_decay_rate=0.65) to optim_wrapper')
        rate = paramwise_cfg['layer_decay_rate']
        if not 0 < rate <= 1:
            raise ValueError(f'LayerDecayOptimWrapperConstructor: layer_decay_rate={rate} '
                             'must be in (0, 1] (1 disables the decay)')
        # mmengine's validation knows only its own keys: hand it the custom keys alone
        super().__init__(optim_wrapper_cfg,
                         {k: v for k, v in paramwise_cfg.items() if k == 'custom_keys'})
        self.paramwise_cfg = paramwise_cfg
        self.decay_rate = float(rate)
        self.no_decay_names: Sequence[str] = tuple(paramwise_cfg.get(
            'no_decay_names', ('cls_token', 'pos_embed', 'mask_token', 'rel_pos')))
        self.flat_decay = paramwise_cfg.get('flat_decay', True)
        self.custom_keys: Dict[str, dict] = dict(paramwise_cfg.get('custom_keys', {}))

    def _vits(self, model: nn.Module) -> List[Tuple[str, int]]:
        prefix = self.paramwise_cfg.get('vit_prefix')
        override = self.paramwise_cfg.get('num_layers')
        if prefix is not None:
            if prefix and not prefix.endswith('.'):
                prefix += '.'
            if override is None:
                module = model.get_submodule(prefix.rstrip('.')) if prefix else model
                if not isinstance(getattr(module, 'layers', None), nn.ModuleList):
                    raise ValueError(
                        f'LayerDecayOptimWrapperConstructor: {prefix!r} has no `layers` '
                        'ModuleList; set paramwise_cfg.num_layers to its block count')
                override = len(module.layers)
            return [(prefix, int(override))]
        vits = find_vits(model)
        if not vits:
            raise ValueError(
                f'LayerDecayOptimWrapperConstructor: found no ViT in {type(model).__name__} '
                '(a module with get_layer_depth() and a `layers` ModuleList); set '
                "paramwise_cfg.vit_prefix (e.g. 'backbone.') and num_layers")
        return [(p, int(override) if override is not None else n) for p, n in vits]

    def depth_of(self, name: str, vits: List[Tuple[str, int]]) -> Tuple[int, int]:
        """``(depth, num_layers)`` for a full parameter name."""
        for prefix, num_layers in vits:
            if name.startswith(prefix):
                return vit_layer_depth(name[len(prefix):], num_layers), num_layers
        num_layers = max(n for _, n in vits)
        return num_layers + 1, num_layers

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '',
                   **kwargs) -> None:
        vits = self._vits(module)
        groups: Dict[tuple, dict] = {}
        for name, param in module.named_parameters(prefix=prefix.rstrip('.')):
            if not param.requires_grad:
                continue
            depth, num_layers = self.depth_of(name, vits)
            scale = self.decay_rate**(num_layers + 1 - depth)
            no_decay = (any(key in name for key in self.no_decay_names)
                        or (self.flat_decay and param.ndim == 1))
            lr_mult = decay_mult = 1.
            for key in sorted(self.custom_keys, key=len, reverse=True):
                if key in name:
                    lr_mult = self.custom_keys[key].get('lr_mult', 1.)
                    decay_mult = self.custom_keys[key].get('decay_mult', 1.)
                    break
            weight_decay = 0. if no_decay else (self.base_wd or 0.) * decay_mult
            key = (depth, num_layers, weight_decay, lr_mult)
            if key not in groups:
                groups[key] = dict(params=[], param_names=[], layer_id=depth, lr_scale=scale,
                                   lr=self.base_lr * scale * lr_mult, weight_decay=weight_decay)
            groups[key]['params'].append(param)
            groups[key]['param_names'].append(name)
        params.extend(groups[k] for k in sorted(groups, key=lambda k: (k[0], k[2], k[3])))


def _register_in_downstream_scopes():
    """Make the constructor buildable from mmdet/mmseg configs (default_scope 'mmdet'
    or 'mmseg'), whose registries do not see mmmim's."""
    for module_name in ('mmdet.registry', 'mmseg.registry'):
        try:
            registry = __import__(module_name, fromlist=['OPTIM_WRAPPER_CONSTRUCTORS'])
        except ImportError:  # that library is not installed: nothing to register in
            continue
        target = registry.OPTIM_WRAPPER_CONSTRUCTORS
        if 'LayerDecayOptimWrapperConstructor' not in target.module_dict:
            target.register_module(module=LayerDecayOptimWrapperConstructor)


_register_in_downstream_scopes()

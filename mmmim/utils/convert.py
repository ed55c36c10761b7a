"""ViT checkpoint conversion between key layouts, and strict loading into a ViT.

A pre-trained encoder reaches users in several key layouts. mmmim's ``MaskedViT``
uses mmpretrain's ``VisionTransformer`` names, so those two are one layout; the
others differ:

========== ================================ =====================================
layout     where it comes from              block keys (block ``i``)
========== ================================ =====================================
mmmim      mmmim, mmpretrain (= mmpretrain) ``layers.i.{ln1,attn.qkv,attn.proj,ln2,
                                            ffn.layers.0.0,ffn.layers.1}``
mmseg      mmseg's ``BEiT`` (``qv_bias``)  as mmmim, but ``attn.q_bias``,
                                            ``attn.v_bias`` (no k bias) and
                                            layer-scale ``gamma_1``/``gamma_2``
mmseg-mae  mmseg's ``MAE``                  mmmim keys plus layer scales
                                            ``gamma_1``/``gamma_2`` (and a zero-
                                            initialised relative-position table)
timm       timm, official MAE (``model``)   ``blocks.i.{norm1,attn.qkv,attn.proj,
                                            norm2,mlp.fc1,mlp.fc2}``, ``norm``
vitdet     detectron2 ViTDet                timm names under ``backbone.net.``,
                                            no cls token, ``attn.rel_pos_{h,w}``
========== ================================ =====================================

All conversions are exact as functions: a k bias adds the same amount to every
attention logit of a query and cancels in the softmax, so dropping it for mmseg is
lossless; mmseg's layer scales are folded into the projection that precedes them.

GAN-MAE checkpoints store the encoder chosen for transfer (the shared one, or the
generator's or discriminator's in the separate-backbone modes) under ``backbone.``;
the other one, if stored, lives under a prefix that names its role (``generator``,
``discriminator``). :func:`select_backbone` picks by that rule.
"""
import math
import os.path as osp
from collections import OrderedDict
from typing import Dict, Iterable, List, Optional, Tuple

import torch
from torch import Tensor

from .checkpoint import CheckpointError, load_checkpoint_safely

__all__ = ['LAYOUTS', 'CheckpointMismatchError', 'extract_state_dict', 'select_backbone',
           'detect_layout', 'to_mmmim', 'from_mmmim', 'interpolate_pos_embed',
           'match_state_dict', 'load_vit_checkpoint', 'convert_checkpoint']

LAYOUTS = ('mmmim', 'mmpretrain', 'mmseg', 'mmseg-mae', 'timm', 'mae', 'vitdet')
_ALIASES = {'mmpretrain': 'mmmim', 'mae': 'timm'}
_PATCH_KEYS = ('patch_embed.projection.weight', 'patch_embed.proj.weight')
HOW_TO_CONVERT = ('convert it with `python tools/convert_checkpoint.py IN OUT --img-size H W '
                  '--patch-size P` (see --help), or build the backbone with the checkpoint\'s '
                  'arch/patch size')


class CheckpointMismatchError(CheckpointError):
    """The checkpoint does not fit the model (shapes, missing or unexpected keys)."""


# ----------------------------------------------------------------- finding the encoder
def extract_state_dict(ckpt) -> Dict[str, Tensor]:
    """The flat tensor dict of a checkpoint: ``state_dict`` (mmengine), ``model``
    (official MAE, detectron2), ``module`` or the checkpoint itself (timm)."""
    if not isinstance(ckpt, dict):
        raise CheckpointError(f'expected a dict checkpoint, got {type(ckpt).__name__}')
    for key in ('state_dict', 'model', 'module'):
        if isinstance(ckpt.get(key), dict):
            return ckpt[key]
    return ckpt


def _encoder_prefixes(state_dict: Dict[str, Tensor]) -> List[str]:
    """Every prefix under which a ViT patch embedding is stored."""
    found = []
    for key in state_dict:
        for suffix in _PATCH_KEYS:
            if key.endswith(suffix):
                found.append(key[:-len(suffix)])
    return sorted(set(found), key=lambda p: (len(p), p))


def select_backbone(state_dict: Dict[str, Tensor], backbone: str = 'auto') -> str:
    """The key prefix of the encoder to transfer.

    Args:
        backbone: 'auto' (default: ``backbone.`` when present, else the only encoder in
            the file), 'generator' / 'discriminator' (GAN-MAE: the encoder stored under a
            prefix naming that role, else the exported ``backbone.``), or a literal
            prefix such as ``'discriminator.backbone.'`` (``''`` for a bare encoder).
    """
    prefixes = _encoder_prefixes(state_dict)
    if not prefixes:
        raise CheckpointError(
            'found no ViT in the checkpoint (no key ending in patch_embed.projection.weight '
            'or patch_embed.proj.weight); is it a ViT checkpoint?')
    if backbone not in ('auto', 'generator', 'discriminator'):
        prefix = backbone if backbone == '' or backbone.endswith('.') else backbone + '.'
        if prefix not in prefixes:
            raise CheckpointError(f'no encoder under prefix {prefix!r}; the checkpoint has '
                                  f'encoders under {prefixes}')
        return prefix
    if backbone in ('generator', 'discriminator'):
        word = backbone[:3 if backbone == 'generator' else 4]
        named = [p for p in prefixes if word in p.lower() and p != 'backbone.']
        if len(named) == 1:
            return named[0]
        if len(named) > 1:
            raise CheckpointError(f'several {backbone} encoders {named}; pass the prefix '
                                  'itself as --backbone')
    for prefix in ('backbone.', 'backbone.net.', 'encoder.', ''):
        if prefix in prefixes:
            return prefix
    if len(prefixes) == 1:
        return prefixes[0]
    raise CheckpointError(f'the checkpoint holds several encoders {prefixes} and none under '
                          "'backbone.'; choose one with --backbone PREFIX")


def detect_layout(state_dict: Dict[str, Tensor], prefix: str = '') -> str:
    """'mmmim', 'mmseg', 'timm' or 'vitdet' for the encoder under ``prefix``."""
    keys = [k[len(prefix):] for k in state_dict if k.startswith(prefix)]
    if any(k.startswith('blocks.') for k in keys):
        return 'vitdet' if prefix.endswith('net.') or any('rel_pos_h' in k for k in keys) \
            else 'timm'
    if any(k.endswith('attn.q_bias') or k.endswith('.gamma_1') for k in keys):
        return 'mmseg'
    if any(k.startswith('layers.') for k in keys):
        return 'mmmim'
    raise CheckpointError(f'cannot tell the key layout of the encoder under {prefix!r} '
                          f'(first keys: {keys[:5]}); expected one of {LAYOUTS}')


# ------------------------------------------------------------------------ key mapping
_TIMM_BLOCK = (('norm1.', 'ln1.'), ('attn.qkv.', 'attn.qkv.'), ('attn.proj.', 'attn.proj.'),
               ('norm2.', 'ln2.'), ('mlp.fc1.', 'ffn.layers.0.0.'), ('mlp.fc2.', 'ffn.layers.1.'))
_TIMM_TOP = (('patch_embed.proj.', 'patch_embed.projection.'), ('norm.', 'ln1.'),
             ('fc_norm.', 'ln2.'), ('cls_token', 'cls_token'), ('pos_embed', 'pos_embed'))


def _rename(key: str, table, reverse: bool = False) -> Optional[str]:
    for theirs, ours in table:
        src, dst = (ours, theirs) if reverse else (theirs, ours)
        if key == src or (src.endswith('.') and key.startswith(src)):
            return dst + key[len(src):]
    return None


def _timm_to_mmmim(sd) -> Tuple[Dict, List[str]]:
    out, dropped = OrderedDict(), []
    for key, value in sd.items():
        if key.startswith('blocks.'):
            _, idx, rest = key.split('.', 2)
            new = _rename(rest, _TIMM_BLOCK)
            if new is None and _is_trained_rel_pos(rest, value):
                new = rest
            new = None if new is None else f'layers.{idx}.{new}'
        else:
            new = _rename(key, _TIMM_TOP)
        if new is None:
            dropped.append(key)
        else:
            out[new] = value
    return out, dropped


def _is_trained_rel_pos(key: str, value: Tensor) -> bool:
    """A relative-position table a plain ViT cannot hold and that is not all zeros
    (mmseg's MAE starts from zeros): kept under its name, so that loading reports it as
    unexpected instead of dropping what it learned."""
    return (('rel_pos' in key or 'relative_position_bias_table' in key)
            and torch.is_floating_point(value) and bool(value.abs().max() > 0))


def _mmmim_to_timm(sd) -> Tuple[Dict, List[str]]:
    out, dropped = OrderedDict(), []
    for key, value in sd.items():
        if key.startswith('layers.'):
            _, idx, rest = key.split('.', 2)
            new = _rename(rest, _TIMM_BLOCK, reverse=True)
            new = None if new is None else f'blocks.{idx}.{new}'
        else:
            new = _rename(key, _TIMM_TOP, reverse=True)
        if new is None:
            dropped.append(key)
        else:
            out[new] = value
    return out, dropped


def _mmseg_to_mmmim(sd) -> Tuple[Dict, List[str]]:
    out, dropped = OrderedDict(), []
    gammas = {}
    for key, value in sd.items():
        if key.endswith('.gamma_1') or key.endswith('.gamma_2'):
            gammas[key] = value
        elif key.endswith('attn.q_bias'):
            base = key[:-len('q_bias')]
            v_bias = sd[base + 'v_bias']
            out[base + 'qkv.bias'] = torch.cat([value, torch.zeros_like(value), v_bias])
        elif key.endswith('attn.v_bias'):
            continue
        elif 'relative_position' in key and not _is_trained_rel_pos(key, value):
            dropped.append(key)
        else:
            out[key] = value.clone()
    # layer scale: x + g * proj(y) == x + proj'(y) with proj' rows scaled by g
    for key, gamma in gammas.items():
        base = key[:-len('gamma_1')]
        target = base + ('attn.proj.' if key.endswith('gamma_1') else 'ffn.layers.1.')
        out[target + 'weight'] = out[target + 'weight'] * gamma[:, None]
        if target + 'bias' in out:
            out[target + 'bias'] = out[target + 'bias'] * gamma
    return out, dropped


def _mmmim_to_mmseg(sd, split_bias: bool = True) -> Tuple[Dict, List[str]]:
    out = OrderedDict()
    for key, value in sd.items():
        if split_bias and key.endswith('attn.qkv.bias'):
            base, d = key[:-len('qkv.bias')], value.shape[0] // 3
            out[base + 'q_bias'], out[base + 'v_bias'] = value[:d].clone(), value[2 * d:].clone()
        else:
            out[key] = value
        if key.startswith('layers.') and key.endswith('.ln1.weight'):
            layer = key[:-len('ln1.weight')]
            out[layer + 'gamma_1'] = torch.ones_like(value)
            out[layer + 'gamma_2'] = torch.ones_like(value)
    return out, []


def to_mmmim(state_dict: Dict[str, Tensor], layout: str) -> Tuple[Dict[str, Tensor], List[str]]:
    """Encoder keys (prefix removed) in ``layout`` -> mmmim keys; also the keys that
    have no counterpart in a plain ViT (dropped)."""
    layout = _ALIASES.get(layout, layout)
    if layout == 'mmmim':
        return OrderedDict(state_dict), []
    if layout in ('timm', 'vitdet'):
        return _timm_to_mmmim(state_dict)
    if layout in ('mmseg', 'mmseg-mae'):
        return _mmseg_to_mmmim(state_dict)
    raise ValueError(f'unknown layout {layout!r}; choose from {LAYOUTS}')


def from_mmmim(state_dict: Dict[str, Tensor], layout: str) -> Tuple[Dict[str, Tensor], List[str]]:
    """mmmim encoder keys -> ``layout`` (prefix not added); also the dropped keys."""
    layout = _ALIASES.get(layout, layout)
    if layout == 'mmmim':
        return OrderedDict(state_dict), []
    if layout == 'timm':
        return _mmmim_to_timm(state_dict)
    if layout == 'vitdet':
        out, dropped = _mmmim_to_timm(state_dict)
        # detectron2's ViT has no cls token and no final norm
        for key in [k for k in out if k == 'cls_token' or k.startswith('norm.')]:
            dropped.append(key)
            del out[key]
        return out, dropped
    if layout == 'mmseg':
        return _mmmim_to_mmseg(state_dict)
    if layout == 'mmseg-mae':
        return _mmmim_to_mmseg(state_dict, split_bias=False)
    raise ValueError(f'unknown layout {layout!r}; choose from {LAYOUTS}')


# ------------------------------------------------------------ position embeddings
def interpolate_pos_embed(pos_embed: Tensor, new_grid: Tuple[int, int],
                          num_extra_tokens: Optional[int] = None,
                          old_grid: Optional[Tuple[int, int]] = None,
                          mode: str = 'bicubic') -> Tensor:
    """Resize a ``(1, extra + h*w, D)`` position embedding to ``new_grid`` patches.

    ``num_extra_tokens`` (cls) is inferred when the token count minus 0 or 1 is a
    square; ``old_grid`` is needed for a non-square source grid.
    """
    from mmpretrain.models.utils import resize_pos_embed
    n = pos_embed.shape[1]
    if num_extra_tokens is None:
        num_extra_tokens = 0 if math.isqrt(n)**2 == n else 1
    if old_grid is None:
        side = math.isqrt(n - num_extra_tokens)
        if side * side != n - num_extra_tokens:
            raise ValueError(f'position embedding with {n} tokens ({num_extra_tokens} extra) is '
                             'not a square grid; pass old_grid=(h, w)')
        old_grid = (side, side)
    new_grid = tuple(new_grid)
    if tuple(old_grid) == new_grid:
        return pos_embed
    return resize_pos_embed(pos_embed.float(), tuple(old_grid), new_grid, mode,
                            num_extra_tokens).to(pos_embed.dtype)


# --------------------------------------------------------------- strict matching
def _shape(t) -> str:
    return 'x'.join(map(str, t.shape)) or 'scalar'


def match_state_dict(model_sd: Dict[str, Tensor], ckpt_sd: Dict[str, Tensor],
                     model_grid: Optional[Tuple[int, int]] = None,
                     optional: Iterable[str] = (), strict: bool = True,
                     source: str = 'checkpoint') -> Tuple[Dict[str, Tensor], dict]:
    """Fit mmmim-layout ``ckpt_sd`` to ``model_sd``: interpolate ``pos_embed`` to
    ``model_grid``; refuse other shape differences, naming keys, shapes and the fix;
    refuse missing/unexpected keys unless ``strict=False`` (``optional`` model keys may
    be absent). Returns the state dict to load and a report dict."""
    ckpt_sd = OrderedDict(ckpt_sd)
    report = dict(missing=[], unexpected=[], resized=[], loaded=[])
    pos = ckpt_sd.get('pos_embed')
    if pos is not None and 'pos_embed' in model_sd and pos.shape != model_sd['pos_embed'].shape:
        target = model_sd['pos_embed']
        if pos.shape[-1] == target.shape[-1] and model_grid is not None:
            extra = target.shape[1] - model_grid[0] * model_grid[1]
            src_extra = 0 if math.isqrt(pos.shape[1])**2 == pos.shape[1] else 1
            resized = interpolate_pos_embed(pos, model_grid, src_extra)
            if src_extra != extra:  # add or drop the cls slot
                resized = (torch.cat([torch.zeros_like(resized[:, :1]), resized], 1) if extra
                           else resized[:, src_extra:])
            ckpt_sd['pos_embed'] = resized
            report['resized'].append(f'pos_embed {_shape(pos)} -> {_shape(resized)}')
    bad = [(k, v, model_sd[k]) for k, v in ckpt_sd.items()
           if k in model_sd and v.shape != model_sd[k].shape]
    if bad:
        lines = [f'  {k}: checkpoint {_shape(v)} vs model {_shape(m)}' for k, v, m in bad[:12]]
        hint = []
        pk = 'patch_embed.projection.weight'
        if pk in ckpt_sd and pk in model_sd:
            cw, mw = ckpt_sd[pk], model_sd[pk]
            if cw.shape[0] != mw.shape[0]:
                hint.append(f'embed dims differ ({cw.shape[0]} vs {mw.shape[0]}): the checkpoint '
                            f'is a different architecture; set the backbone arch to match it')
            if cw.shape[2:] != mw.shape[2:]:
                hint.append(f'patch size differs ({cw.shape[-1]} vs {mw.shape[-1]}): set '
                            f'patch_size={cw.shape[-1]} in the backbone config')
            if cw.shape[1] != mw.shape[1]:
                hint.append(f'input channels differ ({cw.shape[1]} vs {mw.shape[1]}): set '
                            f'in_channels={cw.shape[1]}')
        raise CheckpointMismatchError(
            f'{source} does not fit the model; {len(bad)} tensor(s) differ in shape:\n'
            + '\n'.join(lines) + ('\n  ...' if len(bad) > 12 else '') + '\n'
            + ''.join(f'- {h}\n' for h in hint) + 'Build the backbone to match the checkpoint; '
            f'for another layout or input size, {HOW_TO_CONVERT}.')
    optional = set(optional)
    report['missing'] = sorted(k for k in model_sd if k not in ckpt_sd and k not in optional)
    report['unexpected'] = sorted(k for k in ckpt_sd if k not in model_sd)
    if strict and (report['missing'] or report['unexpected']):
        depth_hint = ''
        ck_layers = {int(k.split('.')[1]) for k in ckpt_sd if k.startswith('layers.')}
        md_layers = {int(k.split('.')[1]) for k in model_sd if k.startswith('layers.')}
        if ck_layers and md_layers and len(ck_layers) != len(md_layers):
            depth_hint = (f'\n- the checkpoint has {len(ck_layers)} blocks, the model '
                          f'{len(md_layers)}: set the backbone arch to match it')
        raise CheckpointMismatchError(
            f'{source} would load only partially into the model:\n'
            f'  missing (left at their initialisation): {report["missing"][:12]}'
            f'{" ..." if len(report["missing"]) > 12 else ""}\n'
            f'  unexpected (ignored): {report["unexpected"][:12]}'
            f'{" ..." if len(report["unexpected"]) > 12 else ""}{depth_hint}\n'
            'If this is intended (e.g. a backbone without a final norm), allow it with '
            'allow_partial_load=True in the backbone config (--allow-partial for '
            f'tools/convert_checkpoint.py); otherwise {HOW_TO_CONVERT}.')
    report['loaded'] = sorted(k for k in ckpt_sd if k in model_sd)
    return OrderedDict((k, v) for k, v in ckpt_sd.items() if k in model_sd), report


def load_vit_checkpoint(filename: str, backbone: str = 'auto', layout: str = 'auto'
                        ) -> Tuple[Dict[str, Tensor], dict]:
    """Read a checkpoint safely and return its encoder in mmmim keys, plus info
    (``prefix``, ``layout``, ``dropped``, ``meta``). A directory is read as a Hugging
    Face model (:mod:`mmmim.utils.convert_mae`)."""
    if osp.isdir(filename):
        from .convert_mae import read_mmmim_layout
        sd, found, _ = read_mmmim_layout(filename)
        enc = OrderedDict((k[len('backbone.'):], v) for k, v in sd.items()
                          if k.startswith('backbone.'))
        return enc, dict(prefix='backbone.', layout=found, dropped=[], meta={})
    ckpt = load_checkpoint_safely(filename, map_location='cpu')
    sd = extract_state_dict(ckpt)
    prefix = select_backbone(sd, backbone)
    enc = OrderedDict((k[len(prefix):], v) for k, v in sd.items() if k.startswith(prefix))
    found = detect_layout(sd, prefix) if layout == 'auto' else layout
    enc, dropped = to_mmmim(enc, found)
    meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
    return enc, dict(prefix=prefix, layout=found, dropped=dropped, meta=meta)


def convert_checkpoint(src: str, dst: str, out_layout: str = 'mmmim', backbone: str = 'auto',
                       in_layout: str = 'auto', img_size: Optional[Tuple[int, int]] = None,
                       patch_size: Optional[int] = None, strict: bool = True,
                       log=print) -> dict:
    """Convert the encoder in ``src`` to ``out_layout`` and save it to ``dst``.

    ``img_size``/``patch_size`` interpolate the position embedding to a new input
    size (``patch_size`` defaults to the checkpoint's). Keys of the encoder that
    the target layout cannot hold are listed; unless ``strict=False`` they are refused.
    Returns a report with ``prefix``, ``layout``, ``dropped`` and the output keys.
    """
    enc, info = load_vit_checkpoint(src, backbone, in_layout)
    log(f'encoder: prefix {info["prefix"]!r}, layout {info["layout"]}, {len(enc)} tensors')
    if info['dropped']:
        log(f'not part of a plain ViT (dropped): {info["dropped"]}')
    if img_size is not None and 'pos_embed' in enc:
        p = patch_size or enc['patch_embed.projection.weight'].shape[-1]
        grid = (img_size[0] // p, img_size[1] // p)
        if grid[0] * p != img_size[0] or grid[1] * p != img_size[1]:
            raise ValueError(f'img_size {tuple(img_size)} is not divisible by patch size {p}')
        old = enc['pos_embed']
        enc['pos_embed'] = interpolate_pos_embed(old, grid)
        log(f'pos_embed {_shape(old)} -> {_shape(enc["pos_embed"])} for {tuple(img_size)} input')
    out, dropped = from_mmmim(enc, out_layout)
    if dropped:
        log(f'no place for these keys in the {out_layout} layout: {dropped}')
        if strict:
            raise CheckpointMismatchError(
                f'converting to {out_layout} would silently drop {dropped}; pass '
                '--allow-partial (strict=False) if that is intended')
    layout = _ALIASES.get(out_layout, out_layout)
    if layout == 'mmmim':
        saved = {'state_dict': OrderedDict(('backbone.' + k, v) for k, v in out.items()),
                 'meta': {'converted_from': osp.basename(src), 'layout': 'mmmim'}}
    elif layout in ('mmseg', 'mmseg-mae'):
        saved = {'state_dict': out}  # mmseg's MAE/BEiT load backbone-level keys
    elif out_layout == 'mae':
        saved = {'model': out}
    elif layout == 'timm':
        saved = out
    else:  # vitdet
        saved = {'model': OrderedDict(('backbone.net.' + k, v) for k, v in out.items())}
    from .convert_mae import save_torch
    save_torch(saved, dst)
    log(f'saved {len(out)} tensors in the {out_layout} layout to {dst}')
    return dict(info, out_keys=sorted(out), dropped=info['dropped'] + dropped)

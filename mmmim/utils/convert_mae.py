"""Whole MAE models (encoder + decoder) and Hugging Face layouts.

:mod:`mmmim.utils.convert` moves *encoders* between key layouts. This module adds the
decoder and the Hugging Face ``transformers`` directories, which neither mmpretrain nor
mmengine read or write:

=============  ==========================================  ==============================
layout         what                                        file
=============  ==========================================  ==============================
``mmmim-mae``  an mmmim ``MAE`` (also mmpretrain-style     ``.pth``: ``state_dict`` with
               keys): ``backbone.*`` + ``neck.*``            ``backbone.`` / ``neck.`` keys
``mae-full``   the official MAE pre-training checkpoint    ``.pth``: ``model`` with timm
               (encoder + ``mask_token``, ``decoder_*``)     encoder keys + decoder keys
``hf``         ``transformers``' ``ViTMAEForPreTraining``  a directory: ``config.json`` +
                                                           ``model.safetensors``
``hf-vit``     ``transformers``' ``ViTModel`` (encoder)    a directory, as ``hf``
``hf-vitmae``  ``transformers``' ``ViTMAEModel`` (encoder) a directory, as ``hf``
=============  ==========================================  ==============================

Every mapping is a renaming, except that Hugging Face stores the attention's query, key
and value projections separately where mmmim and timm store one ``qkv`` matrix (rows
``[q; k; v]``): they are split and concatenated, so a round trip is bit-exact.

Hugging Face configs are derived from the weights (widths, depths, patch and image size,
channels). The head counts are not in the weights: they come from the mmmim config
(``--config``, or the one saved in an mmmim checkpoint's ``meta``), else from the
standard ViT widths (192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16 heads; decoder 512: 16),
else the conversion stops and asks for ``--config``.

``transformers`` and ``safetensors`` are imported only when a Hugging Face layout is read
or written (``pip install transformers==4.49.0 safetensors``; the pinned environment of
``tools/setup_env.sh`` has them).
"""
import json
import os
import os.path as osp
import shutil
import tempfile
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from .checkpoint import CheckpointError, load_checkpoint_safely
from .convert import CheckpointMismatchError, _rename, _TIMM_BLOCK, _TIMM_TOP

WHOLE_LAYOUTS = ('mmmim-mae', 'mae-full', 'hf')
HF_ENCODER_LAYOUTS = ('hf-vit', 'hf-vitmae')
HF_LAYOUTS = ('hf', ) + HF_ENCODER_LAYOUTS
STANDARD_HEADS = {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16}
STANDARD_DECODER_HEADS = {128: 4, 256: 8, 512: 16}
HF_WEIGHTS = ('model.safetensors', 'pytorch_model.bin')
INSTALL_HF = ('the Hugging Face layouts need transformers and safetensors: pip install '
              '"transformers==4.49.0" safetensors (tools/setup_env.sh installs both)')

_HF_LAYER = (('layernorm_before.', 'ln1.'), ('attention.output.dense.', 'attn.proj.'),
             ('layernorm_after.', 'ln2.'), ('intermediate.dense.', 'ffn.layers.0.0.'),
             ('output.dense.', 'ffn.layers.1.'))
_HF_QKV = ('query', 'key', 'value')
_HF_EMBED = (('embeddings.cls_token', 'cls_token'), ('embeddings.position_embeddings', 'pos_embed'),
             ('embeddings.patch_embeddings.projection.', 'patch_embed.projection.'),
             ('layernorm.', 'ln1.'))
_DEC_TOP = (('decoder_embed.', 'decoder_embed.'), ('mask_token', 'mask_token'),
            ('decoder_pos_embed', 'decoder_pos_embed'), ('decoder_norm.', 'decoder_norm.'),
            ('decoder_pred.', 'decoder_pred.'))


def _import_hf():
    try:
        import safetensors.torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        raise ImportError(f'{INSTALL_HF} ({e})') from e
    return transformers


# ------------------------------------------------------------------ layer mapping
def _hf_layers_to_mmmim(sd: Dict[str, Tensor], src: str, dst: str, out: dict, used: set):
    """HF layers ``{src}{i}.*`` -> mmmim blocks ``{dst}{i}.*``."""
    idx = sorted({int(k[len(src):].split('.')[0]) for k in sd if k.startswith(src)})
    for i in idx:
        p = f'{src}{i}.'
        for part in ('weight', 'bias'):
            names = [f'{p}attention.attention.{n}.{part}' for n in _HF_QKV]
            if all(n in sd for n in names):
                out[f'{dst}{i}.attn.qkv.{part}'] = torch.cat([sd[n] for n in names], 0)
                used.update(names)
        for key in [k for k in sd if k.startswith(p) and 'attention.attention.' not in k]:
            new = _rename(key[len(p):], _HF_LAYER)
            if new is not None:
                out[f'{dst}{i}.{new}'] = sd[key]
                used.add(key)


def _mmmim_layers_to_hf(sd: Dict[str, Tensor], src: str, dst: str, out: dict, used: set):
    idx = sorted({int(k[len(src):].split('.')[0]) for k in sd if k.startswith(src)})
    for i in idx:
        p = f'{src}{i}.'
        for part in ('weight', 'bias'):
            key = f'{p}attn.qkv.{part}'
            if key in sd:
                for name, chunk in zip(_HF_QKV, sd[key].chunk(3, 0)):
                    out[f'{dst}{i}.attention.attention.{name}.{part}'] = chunk.clone()
                used.add(key)
        for key in [k for k in sd if k.startswith(p) and '.attn.qkv.' not in k]:
            new = _rename(key[len(p):], _HF_LAYER, reverse=True)
            if new is not None:
                out[f'{dst}{i}.{new}'] = sd[key]
                used.add(key)


def _timm_blocks(sd, src, dst, out, used, reverse=False):
    for key in [k for k in sd if k.startswith(src)]:
        idx, rest = key[len(src):].split('.', 1)
        new = _rename(rest, _TIMM_BLOCK, reverse=reverse)
        if new is not None:
            out[f'{dst}{idx}.{new}'] = sd[key]
            used.add(key)


def _top(sd, table, src_prefix, dst_prefix, out, used, reverse=False):
    for key in [k for k in sd if k.startswith(src_prefix)]:
        rest = key[len(src_prefix):]
        if rest.startswith(('layers.', 'blocks.', 'encoder.layer.', 'decoder_layers.',
                            'decoder_blocks.')):
            continue
        new = _rename(rest, table, reverse=reverse)
        if new is not None:
            out[dst_prefix + new] = sd[key]
            used.add(key)


def _leftover(sd, used):
    return sorted(k for k in sd if k not in used)


# ------------------------------------------------------------------ whole models
def mmmim_from_official(sd: Dict[str, Tensor]) -> Tuple[Dict[str, Tensor], list]:
    """Official MAE ``model`` dict -> mmmim ``backbone.*`` / ``neck.*``; and leftover keys."""
    out, used = OrderedDict(), set()
    _top({k: v for k, v in sd.items() if not k.startswith('decoder') and k != 'mask_token'},
         _TIMM_TOP, '', 'backbone.', out, used)
    _timm_blocks(sd, 'blocks.', 'backbone.layers.', out, used)
    _top(sd, _DEC_TOP, '', 'neck.', out, used)
    _timm_blocks(sd, 'decoder_blocks.', 'neck.decoder_blocks.', out, used)
    return out, _leftover(sd, used)


def official_from_mmmim(sd: Dict[str, Tensor]) -> Tuple[Dict[str, Tensor], list]:
    out, used = OrderedDict(), set()
    _top(sd, _TIMM_TOP, 'backbone.', '', out, used, reverse=True)
    _timm_blocks(sd, 'backbone.layers.', 'blocks.', out, used, reverse=True)
    _top(sd, _DEC_TOP, 'neck.', '', out, used, reverse=True)
    _timm_blocks(sd, 'neck.decoder_blocks.', 'decoder_blocks.', out, used, reverse=True)
    return out, _leftover(sd, used)


def mmmim_from_hf(sd: Dict[str, Tensor]) -> Tuple[Dict[str, Tensor], list]:
    """A HF state dict (ViTMAEForPreTraining: ``vit.*`` + ``decoder.*``; ViTModel /
    ViTMAEModel: bare encoder keys) -> mmmim keys; and leftover keys."""
    out, used = OrderedDict(), set()
    enc = 'vit.' if any(k.startswith('vit.') for k in sd) else ''
    _top(sd, _HF_EMBED, enc, 'backbone.', out, used)
    _hf_layers_to_mmmim(sd, f'{enc}encoder.layer.', 'backbone.layers.', out, used)
    _top(sd, _DEC_TOP, 'decoder.', 'neck.', out, used)
    _hf_layers_to_mmmim(sd, 'decoder.decoder_layers.', 'neck.decoder_blocks.', out, used)
    leftover = [k for k in _leftover(sd, used) if not k.startswith('pooler.')]
    return out, leftover


def hf_from_mmmim(sd: Dict[str, Tensor], encoder_prefix: str = 'vit.'
                  ) -> Tuple[Dict[str, Tensor], list]:
    out, used = OrderedDict(), set()
    _top(sd, _HF_EMBED, 'backbone.', encoder_prefix, out, used, reverse=True)
    _mmmim_layers_to_hf(sd, 'backbone.layers.', f'{encoder_prefix}encoder.layer.', out, used)
    if encoder_prefix:
        _top(sd, _DEC_TOP, 'neck.', 'decoder.', out, used, reverse=True)
        _mmmim_layers_to_hf(sd, 'neck.decoder_blocks.', 'decoder.decoder_layers.', out, used)
    return out, _leftover(sd, used)


def has_decoder(sd: Dict[str, Tensor]) -> bool:
    """Whether an mmmim-layout state dict holds an MAE decoder."""
    return 'neck.decoder_pred.weight' in sd


# ------------------------------------------------------------------ architecture
def describe(sd: Dict[str, Tensor]) -> dict:
    """Architecture of an mmmim-layout MAE (or encoder) from its weights alone."""
    try:
        proj = sd['backbone.patch_embed.projection.weight']
    except KeyError:
        raise CheckpointError('found no ViT patch embedding (backbone.patch_embed.projection.'
                              'weight); is this an MAE / ViT checkpoint?') from None
    dims, chans, patch = proj.shape[0], proj.shape[1], proj.shape[-1]
    layers = {int(k.split('.')[2]) for k in sd if k.startswith('backbone.layers.')}
    pos = sd.get('backbone.pos_embed')
    tokens = pos.shape[1] if pos is not None else None
    grid = int(round(((tokens or 1) - 1)**0.5)) if tokens else None
    arch = dict(embed_dims=dims, num_layers=len(layers), in_channels=chans, patch_size=patch,
                feedforward_channels=sd['backbone.layers.0.ffn.layers.0.0.weight'].shape[0]
                if layers else None, img_size=grid * patch if grid else None,
                has_cls=tokens is not None and grid * grid + 1 == tokens)
    if has_decoder(sd):
        dec_layers = {int(k.split('.')[2]) for k in sd if k.startswith('neck.decoder_blocks.')}
        d = sd['neck.decoder_embed.weight'].shape[0]
        arch.update(decoder_embed_dims=d, decoder_depth=len(dec_layers),
                    decoder_feedforward=sd['neck.decoder_blocks.0.ffn.layers.0.0.weight'].shape[0]
                    if dec_layers else 4 * d)
    return arch


def heads_from(arch: dict, model_cfg: Optional[dict]) -> Tuple[int, Optional[int]]:
    """(encoder heads, decoder heads) from a model config, else the standard widths."""
    enc = dec = None
    if model_cfg:
        bb = model_cfg.get('backbone', {})
        a = bb.get('arch')
        if isinstance(a, dict):
            enc = a.get('num_heads')
        elif isinstance(a, str):
            from mmpretrain.models.backbones import VisionTransformer
            zoo = VisionTransformer.arch_zoo
            key = next((k for k in zoo if a in k or k == a), None)
            enc = zoo[key]['num_heads'] if key else None
        dec = model_cfg.get('neck', {}).get('decoder_num_heads')
    enc = enc or STANDARD_HEADS.get(arch['embed_dims'])
    if 'decoder_embed_dims' in arch:
        dec = dec or STANDARD_DECODER_HEADS.get(arch['decoder_embed_dims'])
    missing = [name for name, v in (('encoder', enc), ('decoder', dec))
               if v is None and (name == 'encoder' or 'decoder_embed_dims' in arch)]
    if missing:
        raise CheckpointError(
            f'the number of attention heads of the {" and ".join(missing)} is not in the '
            f'weights (widths {arch["embed_dims"]}' + (f', decoder {arch["decoder_embed_dims"]}'
                                                       if 'decoder_embed_dims' in arch else '')
            + ') and this width is not a standard one: pass the mmmim config with --config')
    return enc, dec


def model_cfg_from_meta(ckpt) -> Optional[dict]:
    """The ``model`` config an mmengine checkpoint saved in its ``meta``, if any."""
    meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
    text = meta.get('cfg') if isinstance(meta, dict) else None
    if not isinstance(text, str):
        return None
    try:
        from mmengine.config import Config
        return Config.fromstring(text, '.py').get('model')
    except Exception:  # an unreadable saved config: fall back to the weights
        return None


def hf_config(sd: Dict[str, Tensor], model_cfg: Optional[dict], layout: str,
              mask_ratio: float = 0.75, norm_pix: Optional[bool] = None):
    """The ``transformers`` config for an mmmim-layout state dict."""
    transformers = _import_hf()
    arch = describe(sd)
    if not arch['has_cls']:
        raise CheckpointError('the Hugging Face ViT layouts need a cls token and a square patch '
                              'grid; this encoder has neither')
    heads, dec_heads = heads_from(arch, model_cfg)
    if model_cfg:
        head = model_cfg.get('head', {})
        norm_pix = head.get('norm_pix', True) if norm_pix is None else norm_pix
        masker = model_cfg.get('masker', {})
        if isinstance(masker.get('ratio'), float):
            mask_ratio = masker['ratio']
    common = dict(hidden_size=arch['embed_dims'], num_hidden_layers=arch['num_layers'],
                  num_attention_heads=heads, intermediate_size=arch['feedforward_channels'],
                  hidden_act='gelu', layer_norm_eps=1e-6, qkv_bias=True,
                  image_size=arch['img_size'], patch_size=arch['patch_size'],
                  num_channels=arch['in_channels'], hidden_dropout_prob=0.,
                  attention_probs_dropout_prob=0.)
    if layout == 'hf-vit':
        return transformers.ViTConfig(**common)
    extra = {}
    if layout == 'hf':
        extra = dict(decoder_hidden_size=arch['decoder_embed_dims'],
                     decoder_num_hidden_layers=arch['decoder_depth'],
                     decoder_num_attention_heads=dec_heads,
                     decoder_intermediate_size=arch['decoder_feedforward'])
    return transformers.ViTMAEConfig(**common, **extra, mask_ratio=mask_ratio,
                                     norm_pix_loss=bool(norm_pix))


# ------------------------------------------------------------------ reading
def read_hf_dir(path: str) -> Tuple[Dict[str, Tensor], dict]:
    """``(state dict, config dict)`` of a Hugging Face model directory."""
    if not osp.isdir(path):
        raise CheckpointError(f'{path} is not a Hugging Face model directory')
    cfg_file = osp.join(path, 'config.json')
    if not osp.exists(cfg_file):
        raise CheckpointError(f'{path} has no config.json: not a Hugging Face model directory '
                              '(expected config.json and model.safetensors)')
    weights = [osp.join(path, w) for w in HF_WEIGHTS if osp.exists(osp.join(path, w))]
    if not weights:
        raise CheckpointError(f'{path} has a config.json but no weights (expected one of '
                              f'{list(HF_WEIGHTS)}); found {sorted(os.listdir(path))}')
    with open(cfg_file) as f:
        config = json.load(f)
    if weights[0].endswith('.safetensors'):
        _import_hf()
        from safetensors.torch import load_file
        try:
            sd = load_file(weights[0])
        except Exception as e:
            raise CheckpointError(f'cannot read {weights[0]}: {e} (truncated or not a '
                                  'safetensors file?)') from e
    else:
        sd = load_checkpoint_safely(weights[0], map_location='cpu')
    return sd, config


def read_mmmim_layout(path: str) -> Tuple[Dict[str, Tensor], str, Optional[dict]]:
    """Any supported file or directory -> ``(mmmim-layout state dict, layout found,
    model config if known)``. Encoder-only inputs give ``backbone.*`` keys only."""
    from .convert import detect_layout, extract_state_dict, select_backbone, to_mmmim
    if osp.isdir(path):
        sd, config = read_hf_dir(path)
        out, leftover = mmmim_from_hf(sd)
        if leftover:
            raise CheckpointMismatchError(f'{path}: keys with no place in an MAE: {leftover[:12]}'
                                          f'{" ..." if len(leftover) > 12 else ""}')
        archs = config.get('architectures') or []
        found = 'hf' if has_decoder(out) else ('hf-vit' if 'ViTModel' in archs else 'hf-vitmae')
        return out, found, None
    ckpt = load_checkpoint_safely(path, map_location='cpu')
    sd = extract_state_dict(ckpt)
    if 'decoder_embed.weight' in sd and 'blocks.0.attn.qkv.weight' in sd:
        out, leftover = mmmim_from_official(sd)
        if leftover:
            raise CheckpointMismatchError(f'{path}: official MAE keys with no place in an mmmim '
                                          f'MAE: {leftover[:12]}')
        return out, 'mae-full', None
    if 'neck.decoder_pred.weight' in sd:
        return OrderedDict(sd), 'mmmim-mae', model_cfg_from_meta(ckpt)
    prefix = select_backbone(sd, 'auto')
    layout = detect_layout(sd, prefix)
    enc, _ = to_mmmim(OrderedDict((k[len(prefix):], v) for k, v in sd.items()
                                  if k.startswith(prefix)), layout)
    return (OrderedDict(('backbone.' + k, v) for k, v in enc.items()), layout,
            model_cfg_from_meta(ckpt))


# ------------------------------------------------------------------ writing
def _write_atomically(dst: str, write) -> None:
    """Write the directory ``dst`` through a temporary sibling and a rename, so a failure
    leaves nothing behind and an existing ``dst`` is replaced only on success (files go
    through the checkpoint hook's atomic writer)."""
    parent = osp.dirname(osp.abspath(dst)) or '.'
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.' + osp.basename(dst) + '.', dir=parent)
    try:
        target = osp.join(tmp, 'out')
        write(target)
        if osp.isdir(dst) and not osp.islink(dst):
            shutil.rmtree(dst)
        os.replace(target, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_hf_dir(sd: Dict[str, Tensor], config, dst: str) -> None:
    _import_hf()
    from safetensors.torch import save_file
    archs = {'ViTMAEConfig': 'ViTMAEForPreTraining' if 'decoder.decoder_pred.weight' in sd
             else 'ViTMAEModel', 'ViTConfig': 'ViTModel'}
    config.architectures = [archs[type(config).__name__]]

    def write(target):
        os.makedirs(target)
        config.save_pretrained(target)
        save_file({k: v.contiguous() for k, v in sd.items()}, osp.join(target, HF_WEIGHTS[0]),
                  metadata={'format': 'pt'})
    _write_atomically(dst, write)


def save_torch(obj, dst: str) -> None:
    """``torch.save`` that never leaves a partly written ``dst``."""
    from mmmim.engine.hooks.atomic_checkpoint import save_checkpoint_atomic
    save_checkpoint_atomic(obj, dst)


def convert_model(src: str, dst: str, out_layout: str, config: Optional[str] = None,
                  strict: bool = True, log=print) -> dict:
    """Convert ``src`` (any supported file or Hugging Face directory) to ``out_layout``,
    one of :data:`WHOLE_LAYOUTS` + :data:`HF_ENCODER_LAYOUTS`. A whole-model layout needs
    a source with a decoder. Keys the target has no place for are refused unless
    ``strict=False``. Nothing is written on failure."""
    sd, found, model_cfg = read_mmmim_layout(src)
    if config is not None:
        from mmengine.config import Config
        model_cfg = Config.fromfile(config).model
    log(f'{src}: layout {found}, {len(sd)} tensors'
        + (', encoder + decoder' if has_decoder(sd) else ', encoder only'))
    if out_layout in WHOLE_LAYOUTS and not has_decoder(sd):
        raise CheckpointMismatchError(
            f'{src} holds an encoder only (layout {found}), but --out-layout {out_layout} is a '
            f'whole MAE (encoder + decoder). Give a pre-training checkpoint with its decoder '
            f'(an mmmim MAE work dir checkpoint, the official MAE pre-training file with '
            f'decoder_* keys, or a ViTMAEForPreTraining directory), or choose an encoder '
            f'layout (mmmim, timm, mae, hf-vit, hf-vitmae, ...)')
    if out_layout == 'mmmim-mae':
        mae_keys = ('backbone.', 'neck.')
        out = OrderedDict((k, v) for k, v in sd.items() if k.startswith(mae_keys))
        dropped = [k for k in sd if not k.startswith(mae_keys)]
    elif out_layout == 'mae-full':
        out, dropped = official_from_mmmim(sd)
    elif out_layout in HF_LAYOUTS:
        prefix = 'vit.' if out_layout == 'hf' else ''
        if out_layout != 'hf':
            sd = OrderedDict((k, v) for k, v in sd.items() if k.startswith('backbone.'))
        out, dropped = hf_from_mmmim(sd, prefix)
        dropped = [k for k in dropped if not k.startswith('neck.') or out_layout == 'hf']
    else:
        raise ValueError(f'unknown whole-model layout {out_layout!r}; choose from '
                         f'{WHOLE_LAYOUTS + HF_ENCODER_LAYOUTS}')
    if dropped:
        log(f'no place for these keys in the {out_layout} layout: {dropped[:12]}')
        if strict:
            raise CheckpointMismatchError(
                f'converting to {out_layout} would drop {dropped[:12]}'
                f'{" ..." if len(dropped) > 12 else ""}; pass --allow-partial if intended')
    if out_layout in HF_LAYOUTS:
        write_hf_dir(out, hf_config(sd, model_cfg, out_layout), dst)
    elif out_layout == 'mae-full':
        save_torch({'model': out}, dst)
    else:
        save_torch({'state_dict': out, 'meta': {'converted_from': osp.basename(src),
                                                'layout': 'mmmim-mae'}}, dst)
    log(f'saved {len(out)} tensors in the {out_layout} layout to {dst}')
    return dict(layout=found, out_keys=sorted(out), dropped=dropped)

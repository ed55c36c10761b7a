"""Convert a ViT or a whole MAE checkpoint between key layouts (and to / from Hugging Face).

    python tools/convert_checkpoint.py IN.pth OUT.pth [--out-layout LAYOUT]
        [--in-layout auto|LAYOUT] [--backbone auto|generator|discriminator|PREFIX]
        [--img-size H [W]] [--patch-size P] [--config CONFIG] [--allow-partial]

Layouts: mmmim (= mmpretrain; saved as ``state_dict`` with ``backbone.`` keys),
mmseg (mmseg's BEiT-style backbone keys with q/v biases and layer scales, in
``state_dict``), mmseg-mae (mmseg's MAE backbone: our keys plus layer scales),
timm (a bare dict), mae (official MAE: ``model``), vitdet (detectron2: ``model`` with
``backbone.net.`` keys).

Whole MAE models (encoder + decoder): mmmim-mae (an mmmim MAE checkpoint: backbone.* and
neck.*), mae-full (the official MAE pre-training checkpoint, decoder included), hf
(a transformers ViTMAEForPreTraining directory: config.json + model.safetensors).
Hugging Face encoders: hf-vit (ViTModel), hf-vitmae (ViTMAEModel). A directory given as
IN is read as a Hugging Face model. Table of layouts and directions: docs/checkpoints.md.

Examples:
    # the released MAE (with its decoder) -> mmmim, to continue pre-training with load_from=
    python tools/convert_checkpoint.py mae_visualize_vit_large.pth vit-l_mae.pth --out-layout mmmim-mae
    # an mmmim MAE -> a Hugging Face ViTMAEForPreTraining directory
    python tools/convert_checkpoint.py work_dirs/mae/epoch_4.pth mae_hf --out-layout hf
    # an mmmim pre-training checkpoint -> mmseg's BEiT-style layout
    python tools/convert_checkpoint.py work_dirs/mae/epoch_800.pth vit_mmseg.pth --out-layout mmseg
    # official MAE weights -> mmmim, position embedding for 1024x1024 detection input
    python tools/convert_checkpoint.py mae_pretrain_vit_base.pth vit-b_1024.pth --img-size 1024
    # GAN-MAE: transfer the discriminator and check it fits a detector config's backbone
    python tools/convert_checkpoint.py ganmae.pth disc.pth --backbone discriminator \\
        --config configs/downstream/mmdet/mask-rcnn_vit-b_simple-fpn_lsj-100e_coco.py

The encoder's keys that a plain ViT has no place for (decoder, heads) and keys the
target layout cannot hold are printed; dropping the latter, or (with --config)
missing or unexpected keys against that config's backbone, is refused unless
--allow-partial is given.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmmim.utils.checkpoint import CheckpointError  # noqa: E402
from mmmim.utils.convert import (LAYOUTS, CheckpointMismatchError,  # noqa: E402
                                 convert_checkpoint, load_vit_checkpoint, match_state_dict)
from mmmim.utils.convert_mae import HF_ENCODER_LAYOUTS, WHOLE_LAYOUTS, convert_model  # noqa: E402

MODEL_LAYOUTS = WHOLE_LAYOUTS + HF_ENCODER_LAYOUTS


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Convert a ViT checkpoint between layouts')
    parser.add_argument('src', help='input checkpoint')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument('--out-layout', default='mmmim', choices=LAYOUTS + MODEL_LAYOUTS)
    parser.add_argument('--in-layout', default='auto', choices=('auto', ) + LAYOUTS
                        + MODEL_LAYOUTS, help='default: detected from the file or directory')
    parser.add_argument('--backbone', default='auto',
                        help="which encoder: 'auto' (backbone.* when present), 'generator' or "
                        "'discriminator' (GAN-MAE), or a key prefix such as 'backbone.'")
    parser.add_argument('--img-size', type=int, nargs='+', metavar='H [W]',
                        help='interpolate the position embedding to this input size')
    parser.add_argument('--patch-size', type=int,
                        help='patch size for --img-size (default: the checkpoint\'s)')
    parser.add_argument('--config', help='also check the encoder against this config\'s '
                        'model.backbone: print missing / unexpected keys, refuse a partial fit; '
                        'for the Hugging Face layouts, the head counts and norm_pix come from it')
    parser.add_argument('--allow-partial', action='store_true',
                        help='accept dropped, missing or unexpected keys')
    args = parser.parse_args(argv)
    if args.img_size is not None:
        if len(args.img_size) not in (1, 2):
            parser.error('--img-size takes H or H W')
        args.img_size = tuple(args.img_size * (3 - len(args.img_size)))
    return args


def backbone_from_config(path):
    """Build ``model.backbone`` of a config (mmmim, mmdet or mmseg scope)."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope, init_default_scope
    from mmengine.utils import import_modules_from_strings
    cfg = Config.fromfile(path)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    import mmmim.models  # noqa: F401
    scope = cfg.get('default_scope', 'mmmim')
    init_default_scope(scope)
    from mmengine.registry import MODELS
    backbone = dict(cfg.model.backbone)
    backbone.pop('init_cfg', None)
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(backbone)


def check_against_config(args):
    backbone = backbone_from_config(args.config)
    enc, info = load_vit_checkpoint(args.src, args.backbone, args.in_layout)
    grid = getattr(backbone, 'patch_resolution', None)
    optional = ['ln2.weight', 'ln2.bias']
    if not getattr(backbone, 'with_cls_token', True):
        optional.append('cls_token')
    _, report = match_state_dict(backbone.state_dict(), enc, model_grid=grid, optional=optional,
                                 strict=not args.allow_partial,
                                 source=f'{args.src} (encoder {info["prefix"]!r})')
    print(f'fits {type(backbone).__name__} of {args.config}: {len(report["loaded"])} tensors; '
          f'resized: {report["resized"] or "none"}; missing: {report["missing"] or "none"}; '
          f'unexpected: {report["unexpected"] or "none"}')


def check_in_layout(args):
    is_dir = osp.isdir(args.src)
    if args.in_layout in ('hf', ) + HF_ENCODER_LAYOUTS and not is_dir:
        raise CheckpointError(f'--in-layout {args.in_layout} reads a Hugging Face model '
                              f'directory (config.json + model.safetensors); {args.src} is not one')
    if is_dir and args.in_layout not in ('auto', 'hf') + HF_ENCODER_LAYOUTS:
        raise CheckpointError(f'{args.src} is a directory; only the Hugging Face layouts '
                              f'(--in-layout hf, hf-vit, hf-vitmae) are read from directories')


def main(argv=None):
    args = parse_args(argv)
    try:
        check_in_layout(args)
        if args.out_layout in MODEL_LAYOUTS:
            convert_model(args.src, args.dst, args.out_layout, config=args.config,
                          strict=not args.allow_partial)
            return 0
        if args.config:
            check_against_config(args)
        convert_checkpoint(args.src, args.dst, out_layout=args.out_layout,
                           backbone=args.backbone, in_layout=args.in_layout,
                           img_size=args.img_size, patch_size=args.patch_size,
                           strict=not args.allow_partial)
    except (CheckpointError, ImportError) as e:
        raise SystemExit(f'error: {e}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""Reconstruction figure of a pre-trained masked autoencoder (the MAE paper's figure).

    python tools/visualize_reconstruction.py CONFIG CKPT IMAGE [IMAGE ...]
        [--seeds 0 1 2] [--out reconstruction.png] [--scale N] [--cfg-options k=v ...]

One row per image and seed: for every view of the masker (EMAE's parallel masks give
several) the masked input, the reconstruction, and the reconstruction with the visible
patches pasted back; the original last. Several ``--seeds`` draw several masks of the
same images (rows grouped by seed), which shows, e.g., whether EMAE's reconstructions
agree across masks. Any mmmim algorithm (MAE, EMAE, GAN-MAE) and masker works.

CKPT is an mmmim checkpoint of CONFIG's model, or any whole MAE checkpoint that
``tools/convert_checkpoint.py`` reads (the official MAE pre-training file with its decoder,
a Hugging Face ``ViTMAEForPreTraining`` directory), converted on the fly. For the released
MAE weights (trained without norm_pix):

    python tools/visualize_reconstruction.py configs/mae/vit-l_800e.py \
        mae_visualize_vit_large.pth photo.jpg --cfg-options model.head.norm_pix=False

Each image is enlarged (nearest neighbour) to cells of at least 128 px and the columns
are titled.

Images: any file OpenCV reads (PNG, JPEG, BMP, TIFF, ...), grey or colour. They are
converted to the model's ``in_channels`` and resized (shorter side) and centre-cropped
to its ``img_size``; a note says when that happens.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from mmengine.utils import ProgressBar  # noqa: E402

import mmmim.datasets  # noqa: E402,F401
import mmmim.engine  # noqa: E402,F401
import mmmim.models  # noqa: E402,F401
from mmmim.datasets.transforms import convert_channels  # noqa: E402
from mmmim.engine.hooks import reconstruction_grid  # noqa: E402
from mmmim.registry import MODELS  # noqa: E402
from mmmim.utils.checkpoint import CheckpointError  # noqa: E402
from mmmim.utils.convert_mae import has_decoder, read_mmmim_layout  # noqa: E402
from mmmim.utils.launch import check_cfg_options, check_checkpoint_file  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Draw masked / reconstructed / original '
                                     'grids of images with a pre-trained mmmim model')
    parser.add_argument('config', help='the pre-training config')
    parser.add_argument('checkpoint', help='its checkpoint (e.g. work_dirs/.../epoch_4.pth), '
                        'or an official MAE / Hugging Face ViTMAEForPreTraining whole model')
    parser.add_argument('images', nargs='+', help='image files (grey or colour)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0],
                        help='draw one mask per seed (default: 0)')
    parser.add_argument('--out', default='reconstruction.png', help='output PNG')
    parser.add_argument('--scale', type=int, default=1,
                        help='enlarge the whole figure N more times (cells are >= 128 px)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. model.masker.ratio=0.5')
    return parser.parse_args(argv)


def read_weights(checkpoint):
    """An mmmim state dict from an mmmim checkpoint, or from any whole MAE layout
    (official, Hugging Face), converted in memory (the file is read once)."""
    if not osp.isdir(checkpoint):
        check_checkpoint_file(checkpoint)
    try:
        state, layout, _ = read_mmmim_layout(checkpoint)
    except (CheckpointError, ImportError) as e:
        raise SystemExit(f'error: {e}')
    if not has_decoder(state):
        raise SystemExit(f'error: {checkpoint} holds an encoder only (layout {layout}); a '
                         f'reconstruction needs the decoder too: give the pre-training '
                         f'checkpoint (e.g. the official mae_visualize_vit_*.pth files)')
    if layout != 'mmmim-mae':
        print(f'{checkpoint}: {layout} layout, converted to mmmim')
    return state


def build_model(cfg, checkpoint, device='cpu'):
    """The config's model with the checkpoint's weights, in eval mode."""
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope') or 'mmmim'):
        model = MODELS.build(cfg.model)
    if not hasattr(model, 'reconstruct') or not hasattr(model, 'masker'):
        raise SystemExit(f'error: model type {cfg.model.get("type")!r} is not an mmmim masked '
                         f'autoencoder (MAE, EMAE, GANMAE); this tool needs one. For a '
                         f'fine-tuning config, pass the pre-training config instead')
    state = read_weights(checkpoint)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    bad = [f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(shapes[k])}'
           for k, v in state.items() if k in shapes and tuple(v.shape) != tuple(shapes[k])]
    if bad:
        raise SystemExit(f'error: {checkpoint} does not fit {cfg.model.type} of the config '
                         f'({len(bad)} shapes differ, e.g. {bad[:3]}); pass the config of '
                         f'the checkpoint\'s architecture')
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing:
        raise SystemExit(f'error: {checkpoint} does not fit {cfg.model.type} of the config: '
                         f'{len(missing)} weights missing (e.g. {missing[:3]}); pass the '
                         f'config the checkpoint was trained with')
    return model.to(device).eval()


def load_image(path, channels, size, notes):
    """A file as an ``(H, W, C)`` uint8 array in the model's channels and size (BGR
    order for colour, as the training pipelines load images)."""
    if not osp.isfile(path):
        raise SystemExit(f'error: image {path!r} does not exist')
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise SystemExit(f'error: {path!r} is not an image OpenCV can read (corrupt, truncated '
                         f'or an unsupported format); convert it to PNG or JPEG')
    if img.dtype != np.uint8:
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    have = 1 if img.ndim == 2 else img.shape[2]
    if have != channels:
        notes.append(f'{path}: {have} channel(s) converted to the model\'s {channels}')
    img = convert_channels(img, channels)
    h, w = img.shape[:2]
    th, tw = size
    if (h, w) != (th, tw):
        notes.append(f'{path}: {w}x{h} resized and centre-cropped to {tw}x{th}')
        scale = max(th / h, tw / w)
        nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1
                         else cv2.INTER_CUBIC)
        if img.ndim == 2:
            img = img[..., None]
        top, left = (nh - th) // 2, (nw - tw) // 2
        img = img[top:top + th, left:left + tw]
    return np.ascontiguousarray(img)


def draw(model, images, seeds, scale=None, gap=4):
    """The figure: one :func:`reconstruction_grid` per seed, stacked top to bottom."""
    from mmpretrain.structures import DataSample

    from mmmim.evaluation import preprocess_items
    items = [dict(inputs=torch.from_numpy(img).permute(2, 0, 1).contiguous(),
                  data_samples=DataSample()) for img in images]
    batch = preprocess_items(model, items)
    grids = []
    bar = ProgressBar(len(seeds))
    for seed in seeds:
        grids.append(reconstruction_grid(model, batch, seed=seed))
        bar.update()
    sys.stdout.write('\n')
    width = grids[0].shape[1]
    sep = np.full((gap, width, 3), 255, np.uint8)
    figure = np.concatenate([part for g in grids for part in (g, sep)][:-1], axis=0)
    if scale and scale > 1:
        figure = cv2.resize(figure, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    return figure


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    check_cfg_options(cfg, args.cfg_options)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = build_model(cfg, args.checkpoint, args.device)
    backbone = model.backbone
    notes = []
    images = [load_image(p, backbone.in_channels, tuple(backbone.img_size), notes)
              for p in args.images]
    for note in notes:
        print(f'note: {note}')
    figure = draw(model, images, args.seeds, args.scale)
    out_dir = osp.dirname(osp.abspath(args.out))
    if not osp.isdir(out_dir):
        raise SystemExit(f'error: the folder of --out ({out_dir}) does not exist')
    cv2.imwrite(args.out, figure[..., ::-1])  # RGB grid -> BGR file
    views = model.masker.num_views
    print(f'wrote {args.out}: {len(images)} image(s) x {len(args.seeds)} seed(s); columns: '
          + ', '.join('[masked, reconstruction, +visible]' for _ in range(views))
          + ', original')
    return figure


if __name__ == '__main__':
    main()

"""Transfer on a CPU: detection and segmentation from a pre-trained vs a random ViT.

    python tools/analysis/transfer_benchmark.py [--work-dir DIR] [--pretrain-images N]
        [--pretrain-iters N] [--pretrain-batch-size N] [--det-iters N] [--seg-iters N]
        [--train-images N] [--val-images N] [--seed S]

Builds two small data sets from Fashion-MNIST items pasted on larger canvases, in the
formats of the real benchmarks: COCO instances (boxes and masks from thresholding each
item) and ADE20K (per-pixel class maps; 0 = unlabelled). Then:

1. pre-trains a tiny MAE (mmmim's, 4 blocks of 64 dims, patch 16) for
   ``--pretrain-iters`` iterations on ``--pretrain-images`` unlabelled canvases drawn
   the same way (in memory, from Fashion-MNIST training items): as with ImageNet before
   COCO, the pre-training set is larger than the labelled one and has no labels;
2. fine-tunes the tiny Mask R-CNN and the tiny UperNet built from the real configs in
   configs/downstream/ (same backbone wrapper, pyramid, heads, layer decay) for a
   fixed budget, once from the pre-trained backbone and once from a random one;
3. prints box AP, mask AP (mmdet's CocoMetric) and mIoU (mmseg's IoUMetric).

The data and model builders here are also what the downstream tests use.
"""
import argparse
import copy
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DET_CONFIG = osp.join(ROOT, 'configs/downstream/mmdet/mask-rcnn_vit-b_simple-fpn_lsj-100e_coco.py')
SEG_CONFIG = osp.join(ROOT, 'configs/downstream/mmseg/upernet_vit-b_8xb2-160k_ade20k-512x512.py')
#: Fashion-MNIST labels used as object classes (distinct silhouettes)
ITEM_LABELS = (1, 5, 8)  # Trouser, Sandal, Bag
TINY_ARCH = dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=128)


# ---------------------------------------------------------------------- data
def _items(split: str, labels: Sequence[int], limit: int = 3000, seed: int = 0):
    from mmmim.datasets import read_idx
    from mmmim.datasets.fashion_mnist import CLASSES, DEFAULT_ROOT, INSTALL_HINT
    prefix = 'train' if split == 'train' else 't10k'
    paths = [osp.join(DEFAULT_ROOT, f'{prefix}-{kind}-ubyte.gz')
             for kind in ('images-idx3', 'labels-idx1')]
    for path in paths:
        if not osp.isfile(path):
            raise FileNotFoundError(f'Fashion-MNIST file {path} is missing; {INSTALL_HINT}')
    images, targets = read_idx(paths[0]), read_idx(paths[1])
    keep = np.flatnonzero(np.isin(targets, labels))[:limit]
    names = tuple(CLASSES[i] for i in labels)
    index = {lab: i for i, lab in enumerate(labels)}
    return images[keep], np.array([index[t] for t in targets[keep]]), names


def _compose(rng, items, classes, canvas: int, max_items: int, threshold: int):
    """One canvas: RGB image, per-instance (class, mask) list."""
    import cv2
    img = np.zeros((canvas, canvas, 3), np.uint8)
    img[:] = rng.integers(0, 40, size=3, dtype=np.uint8)  # a dark, tinted background
    occupied = np.zeros((canvas, canvas), bool)
    instances = []
    for _ in range(rng.integers(1, max_items + 1)):
        k = rng.integers(len(items))
        size = int(rng.integers(canvas // 4, canvas // 2 + 1))
        item = cv2.resize(items[k], (size, size), interpolation=cv2.INTER_LINEAR)
        mask_local = item > threshold
        for _ in range(20):  # try places that do not overlap earlier items
            y, x = rng.integers(0, canvas - size + 1, size=2)
            if not occupied[y:y + size, x:x + size].any():
                break
        else:
            continue
        mask = np.zeros((canvas, canvas), bool)
        mask[y:y + size, x:x + size] = mask_local
        if mask.sum() < 16:
            continue
        occupied[y:y + size, x:x + size] = True
        colour = rng.uniform(0.6, 1.0, size=3)
        patch = (item[..., None] * colour).astype(np.uint8)
        region = img[y:y + size, x:x + size]
        region[mask_local] = patch[mask_local]
        instances.append((int(classes[k]), mask))
    return img, instances


def make_coco_mosaic(root: str, split: str = 'train', num_images: int = 8, canvas: int = 128,
                     max_items: int = 3, labels: Sequence[int] = ITEM_LABELS, seed: int = 0,
                     threshold: int = 40) -> Dict[str, str]:
    """COCO-format instance set: ``root/<split>/*.png`` and ``root/annotations/<split>.json``.

    Each canvas holds 1..max_items Fashion-MNIST items (resized, tinted, not
    overlapping); an item's mask is its pixels above ``threshold``, its box the mask's
    bounding box. Returns the paths and the class names.
    """
    import mmcv
    from pycocotools import mask as mask_utils
    items, classes, names = _items(split, labels, seed=seed)
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, split), exist_ok=True)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    images, annotations = [], []
    for i in range(num_images):
        img, instances = _compose(rng, items, classes, canvas, max_items, threshold)
        name = f'{i:05d}.png'
        mmcv.imwrite(img[..., ::-1], osp.join(root, split, name))  # stored as BGR
        images.append(dict(id=i + 1, file_name=name, height=canvas, width=canvas))
        for cls, mask in instances:
            ys, xs = np.nonzero(mask)
            x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            rle['counts'] = rle['counts'].decode('ascii')
            annotations.append(dict(id=len(annotations) + 1, image_id=i + 1,
                                    category_id=cls + 1, iscrowd=0, area=float(mask.sum()),
                                    bbox=[float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                                    segmentation=rle))
    ann_file = osp.join(root, 'annotations', f'{split}.json')
    with open(ann_file, 'w') as f:
        json.dump(dict(images=images, annotations=annotations,
                       categories=[dict(id=i + 1, name=n) for i, n in enumerate(names)]), f)
    return dict(data_root=root, ann_file=ann_file, img_dir=osp.join(root, split), classes=names)


def make_ade_mosaic(root: str, split: str = 'training', num_images: int = 8, canvas: int = 128,
                    max_items: int = 3, labels: Sequence[int] = ITEM_LABELS, seed: int = 0,
                    threshold: int = 40) -> Dict[str, str]:
    """ADE20K-format semantic set: ``root/images/<split>/*.jpg`` and
    ``root/annotations/<split>/*.png`` class maps.

    As in ADE20K, map value 0 is "unlabelled" (ignored after ``reduce_zero_label``);
    1 is the background canvas and ``2 + c`` an item of class ``c``, so after
    reduction the classes are ``('background', *item names)``.
    """
    import mmcv
    items, classes, names = _items('train' if split == 'training' else 'test', labels, seed=seed)
    rng = np.random.default_rng(seed + 1)
    img_dir, ann_dir = osp.join(root, 'images', split), osp.join(root, 'annotations', split)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    for i in range(num_images):
        img, instances = _compose(rng, items, classes, canvas, max_items, threshold)
        seg = np.ones((canvas, canvas), np.uint8)
        for cls, mask in instances:
            seg[mask] = cls + 2
        mmcv.imwrite(img[..., ::-1], osp.join(img_dir, f'{i:05d}.jpg'))
        mmcv.imwrite(seg, osp.join(ann_dir, f'{i:05d}.png'))
    return dict(data_root=root, img_dir=img_dir, ann_dir=ann_dir,
                classes=('background', ) + tuple(names))


# --------------------------------------------------------------------- models
def tiny_backbone(cfg_backbone: dict, checkpoint: Optional[str], **kw) -> dict:
    """Shrink a config's ViT-B to the tiny ViT (patch 16, 128x128 input)."""
    bb = copy.deepcopy(dict(cfg_backbone))
    bb.update(arch=dict(TINY_ARCH), img_size=128, patch_size=16, drop_path_rate=0., **kw)
    bb['init_cfg'] = (dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')
                      if checkpoint else None)
    return bb


def _common_runtime(cfg, work_dir: str, max_iters: int, lr: float, val_interval: int):
    cfg.work_dir = work_dir
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                         val_interval=val_interval)
    cfg.optim_wrapper.optimizer.lr = lr
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
             end=max(1, max_iters // 10)),
        dict(type='CosineAnnealingLR', by_epoch=False, begin=max(1, max_iters // 10),
             end=max(2, max_iters), eta_min=lr * 0.01)]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=10**9, by_epoch=False,
                                        save_last=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=max(1, min(50, max_iters // 5)),
                                    log_metric_by_epoch=False)
    cfg.default_hooks.pop('visualization', None)
    cfg.env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork',
                                                           opencv_num_threads=0),
                       dist_cfg=dict(backend='gloo'))
    cfg.log_processor = dict(by_epoch=False)
    cfg.pop('auto_scale_lr', None)
    cfg.randomness = dict(seed=0)
    return cfg


def tiny_det_cfg(data: Dict[str, Dict], work_dir: str, checkpoint: Optional[str] = None,
                 max_iters: int = 2, lr: float = 2e-4, batch_size: int = 2,
                 val_interval: Optional[int] = None):
    """The real Mask R-CNN config, shrunk: tiny ViT (windows of 3 with padding, global
    blocks 1 and 3), 64-channel pyramid and heads, 128x128 LSJ, the mosaic set."""
    from mmengine.config import Config
    cfg = Config.fromfile(DET_CONFIG)
    train, val = data['train'], data['val']
    classes = tuple(train['classes'])
    m = cfg.model
    m.backbone = tiny_backbone(m.backbone, checkpoint, out_indices=(3, ), window_size=3,
                               global_attn_indices=(1, 3))
    m.neck.update(in_channels=TINY_ARCH['embed_dims'], out_channels=64)
    m.data_preprocessor.batch_augments = [dict(type='BatchFixedSizePad', size=(128, 128),
                                               pad_mask=True)]
    m.rpn_head.update(in_channels=64, feat_channels=64)
    m.rpn_head.anchor_generator.scales = [4]
    m.roi_head.bbox_roi_extractor.out_channels = 64
    m.roi_head.bbox_head.update(in_channels=64, conv_out_channels=64, fc_out_channels=128,
                                num_classes=len(classes))
    m.roi_head.mask_roi_extractor.out_channels = 64
    m.roi_head.mask_head.update(in_channels=64, conv_out_channels=64, num_classes=len(classes))
    m.train_cfg.rcnn.sampler.num = 64
    m.train_cfg.rpn.sampler.num = 64
    m.test_cfg.rcnn.max_per_img = 20
    train_pipeline = copy.deepcopy(cfg.train_pipeline)
    for t in train_pipeline:
        if t['type'] == 'RandomResize':
            t.update(scale=(128, 128), ratio_range=(0.5, 1.5))
        elif t['type'] == 'RandomCrop':
            t['crop_size'] = (128, 128)
    test_pipeline = copy.deepcopy(cfg.test_pipeline)
    for t in test_pipeline:
        if t['type'] == 'Resize':
            t['scale'] = (128, 128)
    metainfo = dict(classes=classes)
    cfg.train_dataloader = dict(
        batch_size=batch_size, num_workers=0, persistent_workers=False,
        sampler=dict(type='InfiniteSampler', shuffle=True),
        dataset=dict(type='CocoDataset', data_root=train['data_root'], metainfo=metainfo,
                     ann_file=train['ann_file'], data_prefix=dict(img=train['img_dir'] + '/'),
                     filter_cfg=dict(filter_empty_gt=True), pipeline=train_pipeline))
    cfg.val_dataloader = dict(
        batch_size=1, num_workers=0, persistent_workers=False, drop_last=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type='CocoDataset', data_root=val['data_root'], metainfo=metainfo,
                     ann_file=val['ann_file'], data_prefix=dict(img=val['img_dir'] + '/'),
                     test_mode=True, pipeline=test_pipeline))
    cfg.test_dataloader = cfg.val_dataloader
    cfg.val_evaluator = dict(type='CocoMetric', ann_file=val['ann_file'], metric=['bbox', 'segm'])
    cfg.test_evaluator = cfg.val_evaluator
    return _common_runtime(cfg, work_dir, max_iters, lr, val_interval or 10**9)


def tiny_seg_cfg(data: Dict[str, Dict], work_dir: str, checkpoint: Optional[str] = None,
                 max_iters: int = 2, lr: float = 2e-4, batch_size: int = 2,
                 val_interval: Optional[int] = None):
    """The real UperNet config, shrunk: tiny ViT (blocks 0-3 out), BN instead of SyncBN,
    64-channel heads, 128x128 crops, the ADE-format mosaic set."""
    from mmengine.config import Config
    cfg = Config.fromfile(SEG_CONFIG)
    train, val = data['train'], data['val']
    classes = tuple(train['classes'])
    m = cfg.model
    m.backbone = tiny_backbone(m.backbone, checkpoint, out_indices=(0, 1, 2, 3))
    m.data_preprocessor.size = (128, 128)
    bn = dict(type='BN', requires_grad=True)
    m.neck.update(embed_dim=TINY_ARCH['embed_dims'], norm_cfg=bn)
    m.decode_head.update(in_channels=[TINY_ARCH['embed_dims']] * 4, channels=64,
                         num_classes=len(classes), norm_cfg=bn)
    m.auxiliary_head.update(in_channels=TINY_ARCH['embed_dims'], channels=32,
                            num_classes=len(classes), norm_cfg=bn)
    m.test_cfg = dict(mode='whole')
    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='RandomResize', scale=(128, 128), ratio_range=(0.75, 1.5), keep_ratio=True),
        dict(type='RandomCrop', crop_size=(128, 128), cat_max_ratio=0.95),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackSegInputs')]
    test_pipeline = [dict(type='LoadImageFromFile'),
                     dict(type='LoadAnnotations', reduce_zero_label=True),
                     dict(type='PackSegInputs')]

    def dataset(d, pipeline, test_mode):
        # ADE20KDataset only accepts its own 150 class names; the generic dataset with
        # ADE's on-disk conventions reads the same files
        return dict(type='BaseSegDataset', data_root=d['data_root'],
                    metainfo=dict(classes=classes), img_suffix='.jpg', seg_map_suffix='.png',
                    reduce_zero_label=True, test_mode=test_mode,
                    data_prefix=dict(img_path=d['img_dir'], seg_map_path=d['ann_dir']),
                    pipeline=pipeline)
    cfg.train_dataloader = dict(batch_size=batch_size, num_workers=0, persistent_workers=False,
                                sampler=dict(type='InfiniteSampler', shuffle=True),
                                dataset=dataset(train, train_pipeline, False))
    cfg.val_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              dataset=dataset(val, test_pipeline, True))
    cfg.test_dataloader = cfg.val_dataloader
    cfg.val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
    cfg.test_evaluator = cfg.val_evaluator
    return _common_runtime(cfg, work_dir, max_iters, lr, val_interval or 10**9)


def pretrain_tiny_mae(images: np.ndarray, out: str, iters: int, seed: int = 0,
                      batch_size: int = 32, lr: float = 1.5e-3) -> str:
    """Pre-train mmmim's MAE with the tiny ViT on ``images`` (N, H, W, 3) uint8 and save
    a pre-training checkpoint (``state_dict`` with ``backbone.*``) to ``out``."""
    import torch
    from mmengine.runner import save_checkpoint
    import mmmim.models  # noqa: F401
    from mmmim.registry import MODELS
    torch.manual_seed(seed)
    model = MODELS.build(dict(
        type='MAE',
        backbone=dict(type='MaskedViT', arch=dict(TINY_ARCH), img_size=128, patch_size=16,
                      in_channels=3),
        neck=dict(type='MAEDecoder', decoder_embed_dims=64, decoder_depth=1,
                  decoder_num_heads=4),
        head=dict(type='ReconstructionHead', norm_pix=True),
        masker=dict(type='RandomMasker', ratio=0.75)))
    model.init_weights()
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    data = (torch.from_numpy(images).permute(0, 3, 1, 2).float() - mean) / std
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(iters, 1),
                                                pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    for it in range(iters):
        idx = torch.randint(0, len(data), (batch_size, ), generator=gen)
        batch = data[idx]
        batch = torch.where(torch.rand(batch_size, 1, 1, 1, generator=gen) < 0.5, batch,
                            batch.flip(-1))
        loss = model.loss(batch)['loss_rec']
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (it + 1) % max(1, iters // 5) == 0:
            print(f'  pre-train iter {it + 1}/{iters}: loss_rec {loss.item():.4f}', flush=True)
    save_checkpoint({'state_dict': model.state_dict(), 'meta': {'iters': iters}}, out)
    return out


def make_unlabelled_canvases(num_images: int, canvas: int = 128, max_items: int = 3,
                             labels: Sequence[int] = ITEM_LABELS, seed: int = 0,
                             threshold: int = 40) -> np.ndarray:
    """``(N, canvas, canvas, 3)`` uint8 RGB canvases drawn like the labelled sets, in
    memory and without annotations: the pre-training images. They are composed from
    Fashion-MNIST training items, so none of the validation canvases' items is seen."""
    items, classes, _ = _items('train', labels, limit=6000, seed=seed)
    rng = np.random.default_rng(seed + 7919)
    return np.stack([_compose(rng, items, classes, canvas, max_items, threshold)[0]
                     for _ in range(num_images)])


def load_canvases(img_dir: str) -> np.ndarray:
    import mmcv
    files = sorted(f for f in os.listdir(img_dir) if f.endswith(('.png', '.jpg')))
    return np.stack([mmcv.imread(osp.join(img_dir, f), channel_order='rgb') for f in files])


def run(cfg) -> Dict[str, float]:
    """Train with mmengine's Runner from ``cfg``, then evaluate on the val set."""
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner.val_loop.run()


# ------------------------------------------------------------------------ main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--work-dir', default='work_dirs/transfer_benchmark')
    p.add_argument('--train-images', type=int, default=600)
    p.add_argument('--val-images', type=int, default=100)
    p.add_argument('--pretrain-images', type=int, default=6000,
                   help='unlabelled canvases for the MAE (drawn like the labelled ones, '
                        'from Fashion-MNIST training items, kept in memory)')
    p.add_argument('--pretrain-iters', type=int, default=2000)
    p.add_argument('--pretrain-batch-size', type=int, default=64)
    p.add_argument('--checkpoint', default=None,
                   help='skip pre-training and fine-tune from this checkpoint (any layout '
                        'the backbone loads: mmmim, mmpretrain, timm/MAE, ViTDet) with the '
                        'tiny ViT\'s shapes, e.g. the mae_tiny.pth of an earlier run')
    p.add_argument('--frozen-backbone', action='store_true',
                   help='freeze the whole backbone in both runs (only the pyramid and heads '
                        'train): shows how much the task needs the backbone at all')
    p.add_argument('--layer-decay', type=float, default=None,
                   help='layer-wise lr decay rate for both models (default: the configs\' '
                        '0.65; 1.0 = none)')
    p.add_argument('--det-iters', type=int, default=600)
    p.add_argument('--seg-iters', type=int, default=400)
    p.add_argument('--det-lr', type=float, default=4e-4)
    p.add_argument('--seg-lr', type=float, default=4e-4)
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--skip', choices=('det', 'seg'), nargs='*', default=[])
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import torch
    import mmmim.models.downstream  # noqa: F401
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    wd = osp.abspath(args.work_dir)
    data_dir = osp.join(wd, 'data')
    det_data = dict(
        train=make_coco_mosaic(osp.join(data_dir, 'coco'), 'train', args.train_images,
                               seed=args.seed),
        val=make_coco_mosaic(osp.join(data_dir, 'coco'), 'val', args.val_images,
                             seed=args.seed + 100))
    seg_data = dict(
        train=make_ade_mosaic(osp.join(data_dir, 'ade'), 'training', args.train_images,
                              seed=args.seed),
        val=make_ade_mosaic(osp.join(data_dir, 'ade'), 'validation', args.val_images,
                            seed=args.seed + 100))
    if args.checkpoint:
        ckpt = args.checkpoint
        print(f'using the pre-trained checkpoint {ckpt} (no pre-training)', flush=True)
    else:
        ckpt = osp.join(wd, 'mae_tiny.pth')
        print(f'pre-training the tiny MAE on {args.pretrain_images} unlabelled canvases for '
              f'{args.pretrain_iters} iterations of {args.pretrain_batch_size} ...', flush=True)
        canvases = make_unlabelled_canvases(args.pretrain_images, seed=args.seed)
        pretrain_tiny_mae(canvases, ckpt, args.pretrain_iters, seed=args.seed,
                          batch_size=args.pretrain_batch_size)
    def adjust(cfg):
        if args.frozen_backbone:
            cfg.model.backbone.frozen_stages = TINY_ARCH['num_layers']
        if args.layer_decay is not None:
            cfg.optim_wrapper.paramwise_cfg.layer_decay_rate = args.layer_decay
        return cfg

    results: List[tuple] = []
    for init, checkpoint in (('MAE pre-trained', ckpt), ('random init', None)):
        if 'det' not in args.skip:
            cfg = adjust(tiny_det_cfg(det_data, osp.join(wd, f'det_{init.split()[0]}'),
                                      checkpoint, max_iters=args.det_iters, lr=args.det_lr,
                                      batch_size=args.batch_size))
            m = run(cfg)
            results.append((init, 'Mask R-CNN', f'box AP {100 * m["coco/bbox_mAP"]:.1f}  '
                            f'mask AP {100 * m["coco/segm_mAP"]:.1f}'))
        if 'seg' not in args.skip:
            cfg = adjust(tiny_seg_cfg(seg_data, osp.join(wd, f'seg_{init.split()[0]}'),
                                      checkpoint, max_iters=args.seg_iters, lr=args.seg_lr,
                                      batch_size=args.batch_size))
            m = run(cfg)
            results.append((init, 'UperNet', f'mIoU {m["mIoU"]:.1f}'))
    pre = (f'checkpoint {args.checkpoint}' if args.checkpoint else
           f'MAE {args.pretrain_iters} it x {args.pretrain_batch_size} on '
           f'{args.pretrain_images} unlabelled canvases')
    print('\ntransfer on the Fashion-MNIST mosaics '
          f'({args.train_images} train / {args.val_images} val canvases of 128x128; '
          f'{pre}; det {args.det_iters} it, seg {args.seg_iters} it, '
          f'batch {args.batch_size}, seed {args.seed})')
    for init, model, text in results:
        print(f'  {model:<11} {init:<16} {text}')
    return results


if __name__ == '__main__':
    main()

"""Transfer on a CPU: detection and segmentation from a pre-trained vs a random ViT.

    python tools/analysis/transfer_benchmark.py [--work-dir DIR] [--checkpoint CKPT]
        [--pretrain-epochs N] [--probe-iters N] [--linear-iters N] [--seg-iters N]
        [--det-iters N] [--labels L ...] [--train-images N] [--val-images N] [--seed S]
        [--skip ...]

The ImageNet -> COCO / ADE20K protocol in miniature. The MAE is pre-trained on
object-centric images (Fashion-MNIST items, one per 32x32 image: the README's main job,
``configs/fashion_mnist/mae_vit-mini-p4_4e.py``, unless ``--checkpoint`` gives its
checkpoint); the downstream sets are scenes: 64x64 canvases holding 1..3 items of
20..32 pixels, in the formats of the real benchmarks: COCO instances (boxes and masks
from thresholding each item) and ADE20K (per-pixel class maps; 0 = unlabelled). The
default classes are the three footwear classes (Sandal, Sneaker, Ankle boot), which
differ by shape only. Then, once from the pre-trained and once from a random backbone:

1. a per-pixel linear probe: the backbone frozen, a 1x1-conv classifier (mmseg's
   ``FCNHead`` with no convs) on its last block, upsampled to the labels; mIoU. This
   measures what the representation itself carries to the dense task;
2. a linear-decoder fine-tune: the same segmentor with the backbone fine-tuned end to
   end (layer decay as in the UperNet config). The head has no capacity of its own, so
   the score is what fine-tuning the backbone reaches from each start;
3. the tiny UperNet and the tiny Mask R-CNN built from the real configs in
   configs/downstream/ (same backbone wrapper, pyramid, heads, layer decay) with the
   pre-training's ViT, fine-tuned for a fixed budget: mIoU (mmseg's IoUMetric), box AP
   and mask AP (mmdet's CocoMetric).

The segmentation rows also give each class's IoU. The data and model builders here are
also what the downstream tests use.
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
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DET_CONFIG = osp.join(ROOT, 'configs/downstream/mmdet/mask-rcnn_vit-b_simple-fpn_lsj-100e_coco.py')
SEG_CONFIG = osp.join(ROOT, 'configs/downstream/mmseg/upernet_vit-b_8xb2-160k_ade20k-512x512.py')
#: the pre-training: the README's main job (MAE, ViT "mini" with 4x4 patches, grey)
PRETRAIN_CONFIG = osp.join(ROOT, 'configs/fashion_mnist/mae_vit-mini-p4_4e.py')
#: Fashion-MNIST labels used as object classes: Sandal, Sneaker, Ankle boot
ITEM_LABELS = (5, 7, 9)
CANVAS = 64
ITEM_SIZES = (20, 32)


def bench_backbone(config: str = PRETRAIN_CONFIG) -> dict:
    """The pre-training config's ViT (arch, patch size, channels) and pixel statistics:
    the downstream models are built with the same, so its checkpoint fits them."""
    from mmengine.config import Config
    model = Config.fromfile(config).model
    bb, pre = model.backbone, model.data_preprocessor
    return dict(arch=dict(bb.arch), patch_size=bb.patch_size, in_channels=bb.in_channels,
                mean=list(pre.mean), std=list(pre.std))


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
    unknown = sorted(set(labels) - set(range(len(CLASSES))))
    if unknown:
        raise ValueError(f'Fashion-MNIST labels {unknown} do not exist; use 0..9 '
                         f'({", ".join(f"{i} {n}" for i, n in enumerate(CLASSES))})')
    images, targets = read_idx(paths[0]), read_idx(paths[1])
    keep = np.flatnonzero(np.isin(targets, labels))[:limit]
    names = tuple(CLASSES[i] for i in labels)
    index = {lab: i for i, lab in enumerate(labels)}
    return images[keep], np.array([index[t] for t in targets[keep]]), names


def _compose(rng, items, classes, canvas: int, max_items: int, threshold: int,
             sizes: Sequence[int] = ITEM_SIZES):
    """One grey canvas (black, as the pre-training images' background) and its
    per-instance (class, mask) list; items are resized to ``sizes`` and do not overlap."""
    import cv2
    img = np.zeros((canvas, canvas), np.uint8)
    occupied = np.zeros((canvas, canvas), bool)
    instances = []
    for _ in range(rng.integers(1, max_items + 1)):
        k = rng.integers(len(items))
        size = int(rng.integers(sizes[0], min(sizes[1], canvas) + 1))
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
        img[y:y + size, x:x + size][mask_local] = item[mask_local]
        instances.append((int(classes[k]), mask))
    return img, instances


def make_coco_mosaic(root: str, split: str = 'train', num_images: int = 8, canvas: int = CANVAS,
                     max_items: int = 3, labels: Sequence[int] = ITEM_LABELS, seed: int = 0,
                     threshold: int = 40) -> Dict[str, str]:
    """COCO-format instance set: ``root/<split>/*.png`` (grey) and
    ``root/annotations/<split>.json``.

    Each canvas holds 1..max_items Fashion-MNIST items (resized, not overlapping); an
    item's mask is its pixels above ``threshold``, its box the mask's bounding box.
    Train canvases use Fashion-MNIST training items, val canvases its test items.
    Returns the paths and the class names.
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
        mmcv.imwrite(img, osp.join(root, split, name))
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


def make_ade_mosaic(root: str, split: str = 'training', num_images: int = 8, canvas: int = CANVAS,
                    max_items: int = 3, labels: Sequence[int] = ITEM_LABELS, seed: int = 0,
                    threshold: int = 40) -> Dict[str, str]:
    """ADE20K-format semantic set: ``root/images/<split>/*.png`` (grey) and
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
        mmcv.imwrite(img, osp.join(img_dir, f'{i:05d}.png'))
        mmcv.imwrite(seg, osp.join(ann_dir, f'{i:05d}.png'))
    return dict(data_root=root, img_dir=img_dir, ann_dir=ann_dir,
                classes=('background', ) + tuple(names))


# --------------------------------------------------------------------- models
def tiny_backbone(cfg_backbone: dict, checkpoint: Optional[str], backbone: dict,
                  canvas: int = CANVAS, **kw) -> dict:
    """Shrink a config's ViT-B to ``backbone`` (:func:`bench_backbone`) on the canvas."""
    bb = copy.deepcopy(dict(cfg_backbone))
    bb.update(arch=dict(backbone['arch']), img_size=canvas, patch_size=backbone['patch_size'],
              in_channels=backbone['in_channels'], drop_path_rate=0., **kw)
    bb['init_cfg'] = (dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')
                      if checkpoint else None)
    return bb


def _grey_pipeline(pipeline: list, canvas: int) -> list:
    """The config's pipeline for the grey canvases: images read as one channel, sizes
    set to the canvas."""
    pipeline = copy.deepcopy(pipeline)
    for t in pipeline:
        if t['type'] == 'LoadImageFromFile':
            t['color_type'] = 'grayscale'
        elif t['type'] == 'RandomResize':
            t.update(scale=(canvas, canvas), ratio_range=(0.5, 1.5))
        elif t['type'] == 'Resize':
            t['scale'] = (canvas, canvas)
        elif t['type'] == 'RandomCrop':
            t['crop_size'] = (canvas, canvas)
    return pipeline


def _common_runtime(cfg, work_dir: str, max_iters: int, lr: float,
                    val_interval: Optional[int]):
    cfg.work_dir = work_dir
    # without a val_interval, no validation inside training (mmengine's loop would also
    # validate after the last iteration): run() validates once
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                         val_interval=val_interval or max_iters,
                         val_begin=1 if val_interval else max_iters + 1)
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
                 val_interval: Optional[int] = None, backbone: Optional[dict] = None):
    """The real Mask R-CNN config, shrunk: the pre-training's ViT on the 64x64 canvas
    (windows of 4 patches with padding, global attention in the middle and last blocks),
    64-channel pyramid and heads, LSJ at the canvas size, the mosaic set."""
    from mmengine.config import Config
    cfg = Config.fromfile(DET_CONFIG)
    backbone = backbone or bench_backbone()
    train, val = data['train'], data['val']
    classes = tuple(train['classes'])
    depth, dims = backbone['arch']['num_layers'], backbone['arch']['embed_dims']
    m = cfg.model
    m.backbone = tiny_backbone(m.backbone, checkpoint, backbone, out_indices=(depth - 1, ),
                               window_size=4, global_attn_indices=(depth // 2 - 1, depth - 1))
    # the pyramid at strides p/2 .. 4p (ViT-B/16 on COCO: p/4 .. 2p), so that the items
    # (20..32 pixels) relate to the strides as 32..64-pixel items did at p/4 .. 2p
    factors = (2, 1, 0.5, 0.25)
    strides = [int(backbone['patch_size'] / f) for f in factors]
    m.neck.update(in_channels=dims, out_channels=64, scale_factors=factors)
    m.rpn_head.update(in_channels=64, feat_channels=64)
    m.rpn_head.anchor_generator.update(strides=strides + [2 * strides[-1]], scales=[4])
    m.roi_head.bbox_roi_extractor.update(featmap_strides=strides, out_channels=64)
    m.roi_head.mask_roi_extractor.update(featmap_strides=strides, out_channels=64)
    m.data_preprocessor.update(mean=backbone['mean'], std=backbone['std'], bgr_to_rgb=False)
    m.data_preprocessor.batch_augments = [dict(type='BatchFixedSizePad', size=(CANVAS, CANVAS),
                                               pad_mask=True)]
    m.roi_head.bbox_head.update(in_channels=64, conv_out_channels=64, fc_out_channels=128,
                                num_classes=len(classes))
    m.roi_head.mask_head.update(in_channels=64, conv_out_channels=64, num_classes=len(classes))
    m.train_cfg.rcnn.sampler.num = 64
    m.train_cfg.rpn.sampler.num = 64
    m.test_cfg.rcnn.max_per_img = 20
    train_pipeline = _grey_pipeline(cfg.train_pipeline, CANVAS)
    test_pipeline = _grey_pipeline(cfg.test_pipeline, CANVAS)
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
    return _common_runtime(cfg, work_dir, max_iters, lr, val_interval)


def upernet_indices(depth: int) -> tuple:
    """Four blocks spread over the depth for UperNet (ViT-B's 12: 2, 5, 8, 11)."""
    return tuple(sorted({max(0, round((i + 1) * depth / 4) - 1) for i in range(4)}))


def tiny_seg_cfg(data: Dict[str, Dict], work_dir: str, checkpoint: Optional[str] = None,
                 max_iters: int = 2, lr: float = 2e-4, batch_size: int = 2,
                 val_interval: Optional[int] = None, backbone: Optional[dict] = None):
    """The real UperNet config, shrunk: the pre-training's ViT on the 64x64 canvas
    (four blocks out), BN instead of SyncBN, 64-channel heads, the ADE-format mosaic set."""
    from mmengine.config import Config
    cfg = Config.fromfile(SEG_CONFIG)
    backbone = backbone or bench_backbone()
    train, val = data['train'], data['val']
    classes = tuple(train['classes'])
    depth, dims = backbone['arch']['num_layers'], backbone['arch']['embed_dims']
    out = upernet_indices(depth)
    m = cfg.model
    m.backbone = tiny_backbone(m.backbone, checkpoint, backbone, out_indices=out)
    m.data_preprocessor.update(mean=backbone['mean'], std=backbone['std'], bgr_to_rgb=False,
                               size=(CANVAS, CANVAS))
    bn = dict(type='BN', requires_grad=True)
    m.neck.update(embed_dim=dims, norm_cfg=bn, rescales=[4, 2, 1, 0.5][-len(out):])
    m.decode_head.update(in_channels=[dims] * len(out), in_index=list(range(len(out))),
                         channels=64, num_classes=len(classes), norm_cfg=bn)
    m.auxiliary_head.update(in_channels=dims, in_index=min(2, len(out) - 1), channels=32,
                            num_classes=len(classes), norm_cfg=bn)
    m.test_cfg = dict(mode='whole')
    train_pipeline = [
        dict(type='LoadImageFromFile', color_type='grayscale'),
        dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='RandomResize', scale=(CANVAS, CANVAS), ratio_range=(0.75, 1.5),
             keep_ratio=True),
        dict(type='RandomCrop', crop_size=(CANVAS, CANVAS), cat_max_ratio=0.95),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackSegInputs')]
    test_pipeline = [dict(type='LoadImageFromFile', color_type='grayscale'),
                     dict(type='LoadAnnotations', reduce_zero_label=True),
                     dict(type='PackSegInputs')]

    def dataset(d, pipeline, test_mode):
        # ADE20KDataset only accepts its own 150 class names; the generic dataset with
        # ADE's on-disk conventions (images .png here) reads the same files
        return dict(type='BaseSegDataset', data_root=d['data_root'],
                    metainfo=dict(classes=classes), img_suffix='.png', seg_map_suffix='.png',
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
    return _common_runtime(cfg, work_dir, max_iters, lr, val_interval)


def linear_seg_cfg(data: Dict[str, Dict], work_dir: str, checkpoint: Optional[str] = None,
                   max_iters: int = 2, lr: float = 1e-2, batch_size: int = 2,
                   frozen: bool = True, backbone: Optional[dict] = None):
    """A segmentor with a linear decoder: the segmentor of :func:`tiny_seg_cfg` with no
    neck and no auxiliary head, and as decode head mmseg's ``FCNHead`` with no convs
    (one 1x1 classifier on the last block's patch features, its logits upsampled to
    the labels).

    ``frozen=True`` is the per-pixel linear probe: the whole backbone is frozen and only
    the classifier trains. ``frozen=False`` fine-tunes the backbone end to end under
    the config's layer decay (Segmenter's linear decoder): the head has no capacity of
    its own, so what the fine-tuned model can do comes from the backbone."""
    backbone = backbone or bench_backbone()
    cfg = tiny_seg_cfg(data, work_dir, checkpoint, max_iters, lr, batch_size,
                       backbone=backbone)
    depth, dims = backbone['arch']['num_layers'], backbone['arch']['embed_dims']
    m = cfg.model
    m.backbone.update(out_indices=(depth - 1, ), frozen_stages=depth if frozen else -1)
    m.neck = None
    m.pop('auxiliary_head')
    m.decode_head = dict(type='FCNHead', in_channels=dims, in_index=0, channels=dims,
                         num_convs=0, concat_input=False, dropout_ratio=0.,
                         num_classes=len(data['train']['classes']), align_corners=False,
                         loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                          loss_weight=1.0))
    return cfg


def probe_seg_cfg(data: Dict[str, Dict], work_dir: str, checkpoint: Optional[str] = None,
                  max_iters: int = 2, lr: float = 1e-2, batch_size: int = 2,
                  backbone: Optional[dict] = None):
    """The per-pixel linear probe: :func:`linear_seg_cfg` with the backbone frozen."""
    return linear_seg_cfg(data, work_dir, checkpoint, max_iters, lr, batch_size,
                          frozen=True, backbone=backbone)


def pretrain_mae(work_dir: str, epochs: int, amp: bool = True,
                 num_images: Optional[int] = None, config: str = PRETRAIN_CONFIG) -> str:
    """Pre-train the MAE of ``config`` (the README's main job) with tools/train.py for
    ``epochs`` (its lr schedule stretched or cut to fit), on all 60k Fashion-MNIST
    training images or the first ``num_images``; no probe or visualisation hooks.
    Returns the last checkpoint."""
    from mmengine.config import Config
    from fmnist_benchmark import last_checkpoint, set_epochs, train
    os.makedirs(work_dir, exist_ok=True)
    cfg = Config.fromfile(config)
    set_epochs(cfg, epochs)
    cfg.custom_hooks = []
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=epochs, max_keep_ckpts=1)
    if num_images:
        cfg.train_dataloader.dataset.indices = num_images
    path = osp.join(work_dir, 'pretrain_config.py')
    cfg.dump(path)
    result = train(path, work_dir, amp=amp)
    ckpt = last_checkpoint(work_dir)
    if not result['ok'] or ckpt is None:
        raise RuntimeError(f'MAE pre-training failed; see {result["log"]}')
    print(f'  pre-trained in {result["seconds"]:.0f} s: {ckpt}', flush=True)
    return ckpt


def load_canvases(img_dir: str) -> np.ndarray:
    import mmcv
    files = sorted(f for f in os.listdir(img_dir) if f.endswith(('.png', '.jpg')))
    return np.stack([mmcv.imread(osp.join(img_dir, f), flag='grayscale') for f in files])


def _register_class_iou_metric():
    """mmseg's ``IoUMetric`` logs the per-class IoU table but returns only the means; this
    subclass also returns each class's IoU (``IoU.<class>``), so that the benchmark can
    print and store them (a mean over four classes hides a class that is never
    predicted)."""
    from mmseg.evaluation.metrics import IoUMetric
    from mmseg.registry import METRICS

    class ClassIoUMetric(IoUMetric):

        def compute_metrics(self, results: list) -> Dict[str, float]:
            parts = tuple(zip(*results))
            inter, union = sum(parts[0]).double(), sum(parts[1]).double()
            # NaN for a class absent from labels and predictions, as in mmseg's table
            iou = (100 * inter / union).tolist()
            metrics = super().compute_metrics(results)
            for name, value in zip(self.dataset_meta['classes'], iou):
                metrics[f'IoU.{name}'] = round(value, 2)
            return metrics

    METRICS.register_module(name='TransferBenchClassIoU', module=ClassIoUMetric, force=True)


def run(cfg) -> Dict[str, float]:
    """Train with mmengine's Runner from ``cfg``, then evaluate on the val set (mmseg's
    IoU with the per-class IoU added, see :func:`_register_class_iou_metric`)."""
    from mmengine.runner import Runner
    if cfg.get('val_evaluator', {}).get('type') == 'IoUMetric':
        _register_class_iou_metric()
        cfg.val_evaluator = dict(cfg.val_evaluator, type='TransferBenchClassIoU')
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner.val_loop.run()


# ------------------------------------------------------------------------ main
#: what the benchmark measures, in the order it runs them (names for --skip)
MEASUREMENTS = {'probe': 'linear probe (frozen)', 'linear': 'linear-decoder fine-tune',
                'seg': 'UperNet fine-tune', 'det': 'Mask R-CNN fine-tune'}


def _summary(name: str, metrics: Dict[str, float]) -> Dict[str, float]:
    """The printed figures: mIoU and each class's IoU, or box and mask AP (in %)."""
    if name == 'det':
        return {'box AP': 100 * float(metrics.get('coco/bbox_mAP', 0.)),
                'mask AP': 100 * float(metrics.get('coco/segm_mAP', 0.))}
    out = {'mIoU': float(metrics['mIoU'])}
    out.update({k: float(v) for k, v in metrics.items() if k.startswith('IoU.')})
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--work-dir', default='work_dirs/transfer_benchmark')
    p.add_argument('--checkpoint', default=None,
                   help='skip pre-training and start from this checkpoint (any layout the '
                        'backbone loads) of the pre-training config\'s ViT, e.g. the main '
                        'job\'s work_dirs/mae_vit-mini-p4_4e/epoch_4.pth')
    p.add_argument('--pretrain-epochs', type=int, default=4,
                   help='epochs of the MAE pre-training on Fashion-MNIST (default 4, as the '
                        'main job)')
    p.add_argument('--pretrain-images', type=int, default=None,
                   help='pre-train on the first N Fashion-MNIST training images only')
    p.add_argument('--fp32', action='store_true',
                   help='pre-train in fp32 (default: tools/train.py --amp)')
    p.add_argument('--labels', type=int, nargs='+', default=list(ITEM_LABELS),
                   help='Fashion-MNIST labels used as object classes (default: 5 7 9, '
                        'Sandal, Sneaker, Ankle boot)')
    p.add_argument('--train-images', type=int, default=600)
    p.add_argument('--val-images', type=int, default=200)
    p.add_argument('--frozen-backbone', action='store_true',
                   help='freeze the whole backbone of the fine-tuned models too (only the '
                        'pyramid and heads train)')
    p.add_argument('--layer-decay', type=float, default=None,
                   help='layer-wise lr decay rate of the fine-tuned models (default: the '
                        'configs\' 0.65 / 0.7; 1.0 = none)')
    p.add_argument('--probe-iters', type=int, default=1500)
    p.add_argument('--probe-lr', type=float, default=1e-2)
    p.add_argument('--linear-iters', type=int, default=1500,
                   help='iterations of the linear-decoder fine-tune')
    p.add_argument('--linear-lr', type=float, default=2e-3)
    p.add_argument('--seg-iters', type=int, default=400)
    p.add_argument('--seg-lr', type=float, default=2e-3)
    p.add_argument('--det-iters', type=int, default=400)
    p.add_argument('--det-lr', type=float, default=1e-3)
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--skip', choices=MEASUREMENTS, nargs='*', default=[],
                   help='measurements not to run: probe (linear probe), linear '
                        '(linear-decoder fine-tune), seg (UperNet), det (Mask R-CNN)')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import torch
    import mmmim.models.downstream  # noqa: F401
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    backbone = bench_backbone()
    wd = osp.abspath(args.work_dir)
    data_dir = osp.join(wd, 'data')
    labels = tuple(args.labels)
    det_data = dict(
        train=make_coco_mosaic(osp.join(data_dir, 'coco'), 'train', args.train_images,
                               labels=labels, seed=args.seed),
        val=make_coco_mosaic(osp.join(data_dir, 'coco'), 'val', args.val_images,
                             labels=labels, seed=args.seed + 100))
    seg_data = dict(
        train=make_ade_mosaic(osp.join(data_dir, 'ade'), 'training', args.train_images,
                              labels=labels, seed=args.seed),
        val=make_ade_mosaic(osp.join(data_dir, 'ade'), 'validation', args.val_images,
                            labels=labels, seed=args.seed + 100))
    if args.checkpoint:
        ckpt = args.checkpoint
        print(f'using the pre-trained checkpoint {ckpt} (no pre-training)', flush=True)
    else:
        print(f'pre-training the MAE of {osp.relpath(PRETRAIN_CONFIG, ROOT)} for '
              f'{args.pretrain_epochs} epochs ...', flush=True)
        ckpt = pretrain_mae(osp.join(wd, 'mae_pretrain'), args.pretrain_epochs,
                            amp=not args.fp32, num_images=args.pretrain_images)

    def build(name: str, work_dir: str, checkpoint: Optional[str]):
        """The config of one measurement, with its --NAME-iters / --NAME-lr; the options
        for the fine-tuned models applied to all but the probe."""
        kw = dict(max_iters=getattr(args, f'{name}_iters'), lr=getattr(args, f'{name}_lr'),
                  batch_size=args.batch_size, backbone=backbone)
        if name == 'probe':
            return probe_seg_cfg(seg_data, work_dir, checkpoint, **kw)
        if name == 'linear':
            cfg = linear_seg_cfg(seg_data, work_dir, checkpoint, frozen=False, **kw)
        elif name == 'seg':
            cfg = tiny_seg_cfg(seg_data, work_dir, checkpoint, **kw)
        else:
            cfg = tiny_det_cfg(det_data, work_dir, checkpoint, **kw)
        if args.frozen_backbone:
            cfg.model.backbone.frozen_stages = backbone['arch']['num_layers']
        if args.layer_decay is not None:
            cfg.optim_wrapper.paramwise_cfg.layer_decay_rate = args.layer_decay
        return cfg

    results: List[tuple] = []
    for init, checkpoint in (('MAE pre-trained', ckpt), ('random init', None)):
        tag = init.split()[0]
        for name in MEASUREMENTS:
            if name not in args.skip:
                metrics = run(build(name, osp.join(wd, f'{name}_{tag}'), checkpoint))
                results.append((init, name, _summary(name, metrics)))
    pre = (f'checkpoint {args.checkpoint}' if args.checkpoint else
           f'MAE {args.pretrain_epochs} epochs on Fashion-MNIST')
    budget = ', '.join(f'{MEASUREMENTS[n].split(" (")[0]} {getattr(args, f"{n}_iters")} it'
                       for n in MEASUREMENTS if n not in args.skip)
    print(f'\ntransfer to the Fashion-MNIST mosaics ({", ".join(det_data["train"]["classes"])}; '
          f'{args.train_images} train / {args.val_images} val canvases of {CANVAS}x{CANVAS}; '
          f'{pre}; {budget}; batch {args.batch_size}, seed {args.seed}'
          f'{", backbone frozen" if args.frozen_backbone else ""})')
    for init, name, summary in results:
        text = '  '.join(f'{k.replace("IoU.", "")} {v:.1f}' for k, v in summary.items())
        print(f'  {MEASUREMENTS[name]:<24} {init:<16} {text}')
    with open(osp.join(wd, 'results.json'), 'w') as f:
        json.dump(dict(args=vars(args), checkpoint=ckpt,
                       results=[dict(init=i, model=MEASUREMENTS[n], metrics=m)
                                for i, n, m in results]), f, indent=1)
    return results


if __name__ == '__main__':
    main()

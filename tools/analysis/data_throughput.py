"""Does the data path keep up? data_time as a share of the training step.

Writes synthetic JPEGs (ImageNet-sized, smooth random colour fields) in an image-folder
layout, points a pre-training config's train dataloader at them (its own pipeline:
decode, RandomResizedCrop, flip, pack), trains a few iterations with the MMEngine runner
and reports the median ``data_time`` / ``time`` that mmengine logs, i.e. how long each
step waited for data, with the configured (or given) number of workers.

    python tools/analysis/data_throughput.py configs/mae/vit-b_800e.py --batch-size 16 --amp
    python tools/analysis/data_throughput.py configs/fashion_mnist/mae_vit-mini-p4_4e.py --real

``--real`` keeps the config's own data set (e.g. Fashion-MNIST) instead of JPEGs.
"""
import argparse
import os.path as osp
import statistics
import sys
import tempfile

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config')
    p.add_argument('--batch-size', type=int, default=None, help='default: the config')
    p.add_argument('--workers', type=int, default=None, help='default: the config')
    p.add_argument('--iters', type=int, default=12, help='timed iterations (after 2 warm-up)')
    p.add_argument('--images', type=int, default=256, help='synthetic JPEGs to write')
    p.add_argument('--size', type=int, nargs=2, default=(375, 500), metavar=('H', 'W'))
    p.add_argument('--amp', action='store_true', help='mixed precision, as tools/train.py --amp')
    p.add_argument('--real', action='store_true', help="keep the config's data set")
    p.add_argument('--work-dir', default=None)
    return p.parse_args()


def write_jpegs(root: str, count: int, size, seed: int = 0) -> None:
    """``count`` smooth random RGB images of ``size`` as JPEGs in ``root/class_*/``."""
    import cv2
    from mmengine.utils import ProgressBar, mkdir_or_exist
    rng = np.random.default_rng(seed)
    h, w = size
    bar = ProgressBar(count)
    for i in range(count):
        folder = osp.join(root, f'class_{i % 4}')
        mkdir_or_exist(folder)
        small = rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(osp.join(folder, f'{i:05d}.JPEG'), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        bar.update()
    sys.stdout.write('\n')


def main():
    args = parse_args()
    import mmmim  # noqa: F401
    import mmmim.engine  # noqa: F401
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mmmim.utils.launch import switch_to_amp
    cfg = Config.fromfile(args.config)
    tmp = tempfile.mkdtemp(prefix='mmmim-data-')
    cfg.work_dir = args.work_dir or osp.join(tmp, 'work')
    loader = cfg.train_dataloader
    if not args.real:
        write_jpegs(osp.join(tmp, 'images'), args.images, args.size)
        pipeline = loader.dataset.pipeline
        if not any(t.get('type', '').endswith('LoadImageFromFile') for t in pipeline):
            pipeline = [dict(type='LoadImageFromFile')] + list(pipeline)
        loader.dataset = dict(type='mmpretrain.CustomDataset', data_root=osp.join(tmp, 'images'),
                              with_label=False, pipeline=pipeline)
    if args.batch_size:
        loader.batch_size = args.batch_size
    if args.workers is not None:
        loader.num_workers = args.workers
        loader.persistent_workers = args.workers > 0
    loader.sampler = dict(type='InfiniteSampler', shuffle=True)
    total = args.iters + 2
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=total)
    cfg.param_scheduler = None
    cfg.custom_hooks = []
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=10**9, by_epoch=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_processor = dict(by_epoch=False, window_size=1)
    cfg.visualizer = dict(type='Visualizer', vis_backends=[])
    if args.amp:
        switch_to_amp(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()
    scalars = runner.message_hub.log_scalars
    times = scalars['train/time'].data[0][2:]
    data_times = scalars['train/data_time'].data[0][2:]
    share = [d / t for d, t in zip(data_times, times)]
    print(f'\nconfig: {args.config}; data: '
          f'{"the config" if args.real else f"{args.images} synthetic JPEGs {args.size[1]}x{args.size[0]}"}; '
          f'batch {loader.batch_size}, {loader.num_workers} worker(s), amp: {args.amp}')
    print(f'median step {statistics.median(times) * 1000:.0f} ms, median data_time '
          f'{statistics.median(data_times) * 1000:.1f} ms = '
          f'{statistics.median(share) * 100:.1f}% of the step (max {max(share) * 100:.1f}%) '
          f'over {len(times)} iterations')


if __name__ == '__main__':
    main()

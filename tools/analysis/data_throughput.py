"""Does the data path keep up? Two measurements of a pre-training config's train pipeline.

1. ``--loader``: images/s of the config's train data loader alone (no model, no
   training), per worker process and in total, for each number of workers given, on a
   folder of your own images (``--data DIR``, any layout; files found recursively) or on
   generated 500x375 JPEGs. ``--step-rate IMG_S`` (the training step's rate, e.g. from
   ``tools/benchmark.py``) turns the per-worker rate into CPU cores per GPU.
   ``--compare`` runs mmpretrain's default MAE pipeline (``LoadImageFromFile`` +
   ``RandomResizedCrop(224, (0.2, 1.0), bicubic, pillow)`` + ``RandomFlip`` +
   ``PackInputs``) alternately with the config's on the same files, and prints the ratio.
   For the GPU-decode path (``JpegDecodeDataPreprocessor``) the workers only read bytes,
   and with ``BatchRandomResizedCropDataPreprocessor`` they only pack images; the
   preprocessor's decode/crop rate is timed separately on ``--device``. With ``--real``
   the loader reads the config's own data set (e.g. Fashion-MNIST) through its pipeline:

       python tools/analysis/data_throughput.py configs/fashion_mnist/benchmark/gpu/mae.py \
           --loader --real --workers 0 --batch-size 256

       python tools/analysis/data_throughput.py configs/mae/vit-b_800e.py --loader \
           --workers 0 1 2 --compare --step-rate 3085
       python tools/analysis/data_throughput.py configs/mae/vit-b_800e.py --loader \
           --data /path/to/imagenet/train --workers 8 --step-rate 3085

   One process (``--workers 0``) is one core: torch, OpenCV and Pillow run single-threaded
   there, as they do in data-loader workers.

   ``--breakdown`` (with ``--loader``): where one image's time goes, in process on one
   core, for the config's ``LoadRandomResizedCrop`` (header + box, decode, crop resize)
   and for mmpretrain's ``LoadImageFromFile`` + ``RandomResizedCrop`` (decode, crop +
   Pillow resize), on the same files; and the "decode floor": mmpretrain's time over its
   decode alone, the most any path that decodes the whole image can gain.

       python tools/analysis/data_throughput.py configs/mae/vit-b_800e.py --loader \
           --breakdown --noise 10

2. Default: trains a few iterations through the config's own train pipeline with the
   MMEngine runner on generated JPEGs and reports the median ``data_time`` / ``time``
   that mmengine logs, i.e. how long each step waited for data:

       python tools/analysis/data_throughput.py configs/mae/vit-b_800e.py --batch-size 16 --amp
       python tools/analysis/data_throughput.py configs/fashion_mnist/mae_vit-mini-p4_4e.py --real

   ``--real`` keeps the config's own data set (e.g. Fashion-MNIST) instead of JPEGs.
"""
import argparse
import copy
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
    p.add_argument('--workers', type=int, nargs='+', default=None,
                   help='default: the config; with --loader several, e.g. 0 1 2')
    p.add_argument('--iters', type=int, default=12, help='timed iterations (after 2 warm-up)')
    p.add_argument('--images', type=int, default=256, help='synthetic JPEGs to write')
    p.add_argument('--size', type=int, nargs=2, default=(375, 500), metavar=('H', 'W'))
    p.add_argument('--amp', action='store_true', help='mixed precision, as tools/train.py --amp')
    p.add_argument('--real', action='store_true', help="keep the config's data set")
    p.add_argument('--work-dir', default=None)
    p.add_argument('--pipeline', choices=['config', 'mmpretrain'], default='config',
                   help="training mode: the config's train pipeline, or mmpretrain's "
                        'default MAE pipeline in its place')
    p.add_argument('--noise', type=float, default=0.0,
                   help='generated JPEGs: add Gaussian pixel noise of this sigma (about '
                        '10 gives photo-like file sizes, ~100 KB at 500x375)')
    p.add_argument('--json', default=None, help='also write the results to this JSON file')
    p.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                   help='config overrides, as in tools/train.py')
    g = p.add_argument_group('--loader mode')
    g.add_argument('--loader', action='store_true',
                   help='time the train data loader alone (no model)')
    g.add_argument('--data', default=None, metavar='DIR',
                   help='a folder of images (searched recursively); default: generated JPEGs')
    g.add_argument('--batches', type=int, default=8, help='timed batches per measurement')
    g.add_argument('--rounds', type=int, default=3,
                   help='alternating rounds per pipeline (the median is reported)')
    g.add_argument('--compare', action='store_true',
                   help="also run mmpretrain's default MAE pipeline, alternately")
    g.add_argument('--mmpretrain-backend', choices=['pillow', 'cv2'], default=None,
                   help="--compare and --breakdown: the resize backend of mmpretrain's "
                        "RandomResizedCrop (default: the MAE pipeline's, 'pillow'); 'cv2' "
                        "compares LoadRandomResizedCrop(backend='cv2') with the same resize")
    g.add_argument('--step-rate', type=float, default=None, metavar='IMG_S',
                   help="the training step's img/s on one GPU: prints cores per GPU")
    g.add_argument('--breakdown', action='store_true',
                   help='per-image time of each step of the fast and mmpretrain paths '
                        '(one core, in process), and the decode floor')
    g.add_argument('--device', default='cpu',
                   help='where a decoding data preprocessor runs (GPU-decode path)')
    return p.parse_args()


def write_jpegs(root: str, count: int, size, seed: int = 0, noise: float = 0.0) -> None:
    """``count`` smooth random RGB images of ``size`` as JPEGs in ``root/class_*/``, with
    Gaussian pixel noise of sigma ``noise`` added (0: none)."""
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
        if noise:
            img = np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(osp.join(folder, f'{i:05d}.JPEG'), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        bar.update()
    sys.stdout.write('\n')


def mmpretrain_pipeline(backend=None) -> list:
    """mmpretrain's default MAE pipeline, kept beside the fast one in the ImageNet data config;
    ``backend`` ('pillow' or 'cv2') replaces its RandomResizedCrop's resize backend."""
    from mmengine.config import Config
    base = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
                    'configs', '_base_', 'datasets', 'imagenet_mae.py')
    pipeline = Config.fromfile(base).to_dict()['mmpretrain_train_pipeline']
    for t in pipeline:
        if backend and t['type'] == 'RandomResizedCrop':
            t['backend'] = backend
    return pipeline


LOADERS = ('LoadImageFromFile', 'SafeLoadImageFromFile', 'LoadRandomResizedCrop',
           'LoadJpegBytes')


def with_loader(pipeline):
    """The pipeline, with ``LoadImageFromFile`` in front if it reads no file itself."""
    pipeline = list(pipeline)
    if not any(t.get('type', '').split('.')[-1] in LOADERS for t in pipeline):
        pipeline = [dict(type='LoadImageFromFile')] + pipeline
    return pipeline


def loader_cfg(cfg_loader, root, pipeline, batch_size, workers, collate=None):
    """The timed loader: the images under ``root`` through ``pipeline``, or with ``root``
    None (``--real``) the config's own data set through ``pipeline`` as it is."""
    loader = copy.deepcopy(cfg_loader)
    if root is None:
        loader.dataset.pipeline = pipeline
    else:
        loader.dataset = dict(type='mmpretrain.CustomDataset', data_root=root,
                              with_label=False, pipeline=with_loader(pipeline))
    loader.sampler = dict(type='InfiniteSampler', shuffle=True, seed=0)
    loader.batch_size = batch_size
    loader.num_workers = workers
    loader.persistent_workers = workers > 0
    if workers == 0:
        loader.pop('prefetch_factor', None)
    if collate is not None:
        loader.collate_fn = collate
    return loader


class TimedLoader:
    """An endless iterator over a data loader; :meth:`rate` times ``n`` batches after
    draining what its workers prefetched while another loader was being timed."""

    def __init__(self, name, loader, workers):
        self.name, self.loader, self.workers = name, loader, workers
        self.prefetch = (loader.prefetch_factor or 2) * workers if workers else 0
        self.it = iter(loader)
        self.rates = []
        self.batches = []

    def rate(self, n, keep=0):
        import time
        for _ in range(self.prefetch + 1):
            next(self.it)
        start, images = time.perf_counter(), 0
        for i in range(n):
            batch = next(self.it)
            images += len(batch['inputs'])
            if len(self.batches) < keep:
                self.batches.append(batch)
        self.rates.append(images / (time.perf_counter() - start))
        return self.rates[-1]


def breakdown(files, fast, rounds: int = 3, mmpretrain_backend=None) -> list:
    """Median ms per image of each step of the fast path (``fast``: a
    ``LoadRandomResizedCrop``) and of mmpretrain's ``LoadImageFromFile`` +
    ``RandomResizedCrop`` (its resize backend replaced by ``mmpretrain_backend`` if given)
    on ``files``; one core, in process. Returns ``(step, ms)`` rows, then two
    ``(what, grey levels)`` rows: the mean and the largest absolute difference between the
    fast path's resize and Pillow's (the MAE pipeline's) on the same boxes."""
    import time

    import mmcv
    from mmcv.transforms import LoadImageFromFile
    from mmpretrain.datasets.transforms import RandomResizedCrop
    spec = {t['type']: t for t in mmpretrain_pipeline(mmpretrain_backend)}['RandomResizedCrop']
    rrc = RandomResizedCrop(**{k: v for k, v in spec.items() if k != 'type'})
    load = LoadImageFromFile()
    pillow = copy.copy(fast)  # the same box through Pillow's resize: the reference pixels
    pillow.resize_backend = 'pillow'
    diffs = []
    steps = ('read file', 'fast: header + box', 'fast: decode', 'fast: crop resize',
             'fast: whole transform', 'mmpretrain: decode', 'mmpretrain: crop + resize',
             'mmpretrain: whole transform')
    runs = {k: [] for k in steps}
    for r in range(rounds):
        t = dict.fromkeys(steps, 0.)
        for path in files:
            c0 = time.perf_counter()
            with open(path, 'rb') as f:
                data = f.read()
            c1 = time.perf_counter()
            h, w, _, fmt = fast.read_header(data)
            box = fast.sample_box(h, w)
            factor = fast.reduction(box) if fast.reduced_decode and fmt == 'JPEG' else 1
            c2 = time.perf_counter()
            img = fast.decode(data, factor)
            c3 = time.perf_counter()
            out = fast.resize(img, box, factor)
            c4 = time.perf_counter()
            if r == 0:  # the pixels against Pillow's, once
                diffs.append(np.abs(out.astype(np.int16) - pillow.resize(img, box, factor)))
            fast.transform(dict(img_path=path))
            c5 = time.perf_counter()
            img = mmcv.imfrombytes(data, flag='color', backend='cv2')
            c6 = time.perf_counter()
            rrc.transform(dict(img=img, img_shape=img.shape[:2]))
            c7 = time.perf_counter()
            rrc.transform(load.transform(dict(img_path=path)))
            c8 = time.perf_counter()
            for k, (a, b) in zip(steps, ((c0, c1), (c1, c2), (c2, c3), (c3, c4), (c4, c5),
                                         (c5, c6), (c6, c7), (c7, c8))):
                t[k] += b - a
        for k in steps:
            runs[k].append(t[k] / len(files) * 1e3)
    return [(k, statistics.median(runs[k])) for k in steps] + [
        (PIXEL_ROWS[0], float(np.mean([d.mean() for d in diffs]))),
        (PIXEL_ROWS[1], float(max(d.max() for d in diffs)))]


PIXEL_ROWS = ("fast vs Pillow's resize, same boxes: mean |difference|",
              "fast vs Pillow's resize, same boxes: largest |difference|")


def print_breakdown(rows) -> None:
    ms = dict(rows)
    print('\n| step (one core, in process) | ms per image |')
    print('| --- | --- |')
    for k, v in rows:
        if k not in PIXEL_ROWS:
            print(f'| {k} | {v:.3f} |')
    print(f'{PIXEL_ROWS[0]}: {ms[PIXEL_ROWS[0]]:.2f} grey levels; largest: '
          f'{ms[PIXEL_ROWS[1]]:.0f}')
    whole = ms['mmpretrain: whole transform']
    print(f'fast / mmpretrain (whole transforms): {whole / ms["fast: whole transform"]:.2f}x; '
          f'decode floor (mmpretrain whole / its decode alone): '
          f'{whole / ms["mmpretrain: decode"]:.2f}x')


def loader_mode(args, cfg):
    """``--loader``: images/s of the train data loader per worker process and in total."""
    import cv2
    import torch
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    init_default_scope(cfg.get('default_scope', 'mmmim'))
    torch.set_num_threads(1)  # one process = one core, as in data-loader workers
    cv2.setNumThreads(1)
    fast = [t for t in cfg.train_dataloader.dataset.pipeline
            if t.get('type', '').split('.')[-1] == 'LoadRandomResizedCrop']
    if args.breakdown and not fast:
        raise SystemExit(f'--breakdown times LoadRandomResizedCrop; the train pipeline of '
                         f'{args.config} has none (use e.g. configs/mae/vit-b_800e.py)')
    root = args.data
    if args.real:
        if args.breakdown or args.compare or args.pipeline == 'mmpretrain':
            raise SystemExit('--real times the config\'s own data set and pipeline; '
                             '--breakdown, --compare and --pipeline mmpretrain need JPEG files '
                             '(drop --real)')
        what = 'the config\'s data set'
    elif root is None:
        root = osp.join(tempfile.mkdtemp(prefix='mmmim-data-'), 'images')
        write_jpegs(root, args.images, args.size, noise=args.noise)
        what = f'{args.images} generated {args.size[1]}x{args.size[0]} JPEGs'
    else:
        what = f'images under {root}'
    if args.breakdown:
        import glob

        from mmmim.registry import TRANSFORMS
        files = sorted(f for f in glob.glob(osp.join(root, '**', '*'), recursive=True)
                       if osp.isfile(f))
        print(f'config: {args.config}; data: {what}; {len(files)} files')
        return print_breakdown(breakdown(files, TRANSFORMS.build(fast[0]), args.rounds,
                                         args.mmpretrain_backend))
    batch = args.batch_size or 32
    workers = args.workers if args.workers is not None else [cfg.train_dataloader.num_workers]
    pipelines = [('config', cfg.train_dataloader.dataset.pipeline, None)]
    if args.pipeline == 'mmpretrain':
        pipelines = []
    if args.compare or args.pipeline == 'mmpretrain':
        pipelines.append(('mmpretrain', mmpretrain_pipeline(args.mmpretrain_backend),
                          dict(type='default_collate')))
    pre_cfg = cfg.model.get('data_preprocessor', {})
    # a preprocessor that does the workers' decoding or cropping: its own rate is timed too
    decodes = (pre_cfg.get('type', '').split('.')[-1] in AUGMENTING_PREPROCESSORS
               and args.pipeline == 'config')
    print(f'config: {args.config}; data: {what}; batch {batch}; pin_memory: '
          f'{cfg.train_dataloader.get("pin_memory", False)}')
    rows = []
    for w in workers:
        loaders = []
        for name, pipeline, collate in pipelines:
            lc = loader_cfg(cfg.train_dataloader, root, pipeline, batch, w, collate)
            loaders.append(TimedLoader(name, Runner.build_dataloader(lc, seed=0), w))
        for _ in range(args.rounds):
            for tl in loaders:
                tl.rate(args.batches, keep=2 if decodes and tl.name == 'config' else 0)
        for tl in loaders:
            total = statistics.median(tl.rates)
            rows.append((tl.name, w, total, total / max(w, 1)))
            if tl.name == 'config' and decodes and w == workers[0]:
                rows.append(('config: preprocessor on ' + args.device, 0,
                             preprocess_rate(cfg, tl.batches, args), None))
        del loaders
    print(f'\n| pipeline | workers | img/s total | img/s per worker process |')
    print('| --- | --- | --- | --- |')
    for name, w, total, per in rows:
        per_s = f'{per:.0f}' if per is not None else '-'
        print(f'| {name} | {w} | {total:.0f} | {per_s} |')
    if args.compare and args.pipeline == 'config':
        for w in workers:
            r = {n: t for n, ww, t, _ in rows if ww == w}
            print(f'{w} worker(s): config / mmpretrain = {r["config"] / r["mmpretrain"]:.2f}x')
    if args.json:
        import json
        with open(args.json, 'w') as f:
            json.dump([dict(pipeline=n, workers=w, img_s=t, img_s_per_worker=p)
                       for n, w, t, p in rows], f, indent=1)
    if args.step_rate:
        for name, w, total, per in rows:
            if per:
                print(f'{name}, {w} worker(s): {per:.0f} img/s per process -> '
                      f'{args.step_rate / per:.1f} cores per GPU at {args.step_rate:.0f} img/s')
        if decodes:
            print('(the cores above only read files or pack images; decoding and cropping '
                  'cost device time, the preprocessor row)')


AUGMENTING_PREPROCESSORS = ('JpegDecodeDataPreprocessor',
                            'BatchRandomResizedCropDataPreprocessor')


def preprocess_rate(cfg, batches, args):
    """Images/s of the config's decoding or cropping data preprocessor on ``--device``."""
    import time

    import torch
    from mmmim.registry import MODELS
    pre = MODELS.build(cfg.model.data_preprocessor).to(args.device)
    sync = torch.cuda.synchronize if args.device.startswith('cuda') else (lambda: None)
    pre(batches[0], True)
    sync()
    start, images = time.perf_counter(), 0
    for _ in range(3):
        for b in batches:
            images += len(pre(b, True)['inputs'])
    sync()
    return images / (time.perf_counter() - start)


def main():
    args = parse_args()
    import mmmim  # noqa: F401
    import mmmim.engine  # noqa: F401
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mmmim.utils.launch import switch_to_amp
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        from mmengine.config import DictAction
        opts = {}
        for item in args.cfg_options:
            key, value = item.split('=', 1)
            opts[key] = DictAction._parse_iterable(value)
        cfg.merge_from_dict(opts)
    if args.loader:
        return loader_mode(args, cfg)
    if args.workers is not None and len(args.workers) > 1:
        raise SystemExit('--workers takes several numbers with --loader only')
    tmp = tempfile.mkdtemp(prefix='mmmim-data-')
    cfg.work_dir = args.work_dir or osp.join(tmp, 'work')
    loader = cfg.train_dataloader
    if not args.real:
        root = args.data
        if root is None:
            root = osp.join(tmp, 'images')
            write_jpegs(root, args.images, args.size, noise=args.noise)
        pipeline = with_loader(loader.dataset.pipeline)
        if args.pipeline == 'mmpretrain':
            pipeline = mmpretrain_pipeline()
            loader.collate_fn = dict(type='default_collate')
            cfg.model.data_preprocessor = dict(type='SelfSupDataPreprocessor', mean=[
                123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)
        loader.dataset = dict(type='mmpretrain.CustomDataset', data_root=root,
                              with_label=False, pipeline=pipeline)
    if args.batch_size:
        loader.batch_size = args.batch_size
    if args.workers is not None:
        loader.num_workers = args.workers[0]
        loader.persistent_workers = args.workers[0] > 0
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
    data = ('the config' if args.real else args.data if args.data else
            f'{args.images} synthetic JPEGs {args.size[1]}x{args.size[0]}')
    print(f'\nconfig: {args.config}; pipeline: {args.pipeline}; data: {data}; '
          f'batch {loader.batch_size}, {loader.num_workers} worker(s), amp: {args.amp}')
    print(f'median step {statistics.median(times) * 1000:.0f} ms, median data_time '
          f'{statistics.median(data_times) * 1000:.1f} ms = '
          f'{statistics.median(share) * 100:.1f}% of the step (max {max(share) * 100:.1f}%) '
          f'over {len(times)} iterations')
    sustained = loader.batch_size * len(times) / sum(times)
    print(f'sustained: {sustained:.0f} img/s ({loader.batch_size} x {len(times)} images in '
          f'{sum(times):.1f} s)')
    if args.json:
        import json
        with open(args.json, 'w') as f:
            json.dump(dict(config=args.config, pipeline=args.pipeline, data=data,
                           batch_size=loader.batch_size, workers=loader.num_workers,
                           step_s=[float(t) for t in times],
                           data_time_s=[float(t) for t in data_times],
                           sustained_img_s=sustained), f, indent=1)


if __name__ == '__main__':
    main()

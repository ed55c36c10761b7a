"""Compare every pre-training method on Fashion-MNIST at equal epochs; table + plot.

For each method config in configs/fashion_mnist/ (MAE, EMAE, SBAM, SBAM + AMR,
GAN-MAE; a method without a config is skipped with a note) it

1. pre-trains with tools/train.py for ``--epochs`` epochs in its own work dir and
   records the wall time (the process's, start-up included, final linear probe excluded);
2. reads the linear-probe top-1 the config's ``LinearProbeHook`` writes
   (``linear_probe.json``; the tool adds the hook if a config lacks it);
3. fine-tunes the pre-trained encoder with configs/fashion_mnist/finetune_vit-mini-p4.py
   for ``--finetune-epochs`` epochs and reads the test top-1;

then adds two baselines with the same encoder: *random init* (linear probe of an
untrained encoder; fine-tuned from random weights with the same schedule) and
*supervised from scratch* (the fine-tune recipe from random weights for
``--scratch-epochs`` epochs, default pre-training + fine-tuning epochs), and writes
``results.json``, ``results.md`` (table, command, hardware) and ``accuracy_vs_time.png``
(accuracy versus pre-training wall time) to ``--work-dir``.

    python tools/analysis/fmnist_benchmark.py                    # the README numbers
    python tools/analysis/fmnist_benchmark.py --methods mae,emae --epochs 2
    python tools/analysis/fmnist_benchmark.py --quick            # minutes: smoke test

``--quick`` uses 512 training and 256 test images, one epoch each: it checks that the
pipeline runs end to end; its accuracies mean nothing.

Budget: the defaults (4 pre-training epochs, as the main job; 1 fine-tuning epoch on all
60k images; every run through ``tools/train.py --amp``, i.e. bf16 on a CPU with native
bf16 and fp32 on one without, e.g. AVX2) are sized for about one hour on 2 AVX-512/bf16
cores, most of it EMAE (K = 4 views per image) and GAN-MAE (generator + discriminator
steps); pass --methods to run fewer, --fp32 for full precision everywhere.
"""
import argparse
import copy
import glob
import json
import os
import os.path as osp
import platform
import re
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

from mmengine.config import Config  # noqa: E402

CONFIG_DIR = osp.join(ROOT, 'configs', 'fashion_mnist')
FINETUNE_CONFIG = osp.join(CONFIG_DIR, 'finetune_vit-mini-p4.py')
# method name -> file-name pattern of its Fashion-MNIST pre-training config
METHODS = {
    'mae': r'^mae_vit-mini-p4_.*\.py$',
    'emae': r'^emae_vit-mini-p4_.*\.py$',
    'sbam': r'^sbam_vit-mini-p4_.*\.py$',
    'sbam-amr': r'^sbam[-_]amr_vit-mini-p4_.*\.py$',
    'gan-mae': r'^gan[-_]mae_vit-mini-p4_.*\.py$',
}
LABELS = {'mae': 'MAE', 'emae': 'EMAE', 'sbam': 'SBAM', 'sbam-amr': 'SBAM + AMR',
          'gan-mae': 'GAN-MAE'}
QUICK = dict(train=512, probe_train=512, test=256, batch_size=64)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--epochs', type=int, default=None,
                        help='pre-training epochs of every method (default 4; 1 with --quick)')
    parser.add_argument('--finetune-epochs', type=int, default=None,
                        help='fine-tuning epochs (default 1; 1 with --quick)')
    parser.add_argument('--finetune-train-size', type=int, default=60000,
                        help='training images for fine-tuning and the supervised baseline '
                             '(the first N of the 60k; default all 60000)')
    parser.add_argument('--scratch-epochs', type=int, default=None,
                        help='supervised-from-scratch epochs (default epochs + finetune epochs)')
    parser.add_argument('--methods', default=','.join(METHODS),
                        help=f'comma-separated subset of {",".join(METHODS)}')
    parser.add_argument('--work-dir', default=osp.join('work_dirs', 'fmnist_benchmark'))
    parser.add_argument('--data-root', default=None,
                        help='Fashion-MNIST folder (default: the configs\' data_root)')
    parser.add_argument('--no-baselines', action='store_true',
                        help='skip the random-init and supervised-from-scratch runs')
    parser.add_argument('--fp32', dest='amp', action='store_false',
                        help='train in fp32 (default: every run with tools/train.py --amp, '
                             'which is bf16 on a CPU with native bf16 and fp32 elsewhere)')
    parser.add_argument('--quick', action='store_true',
                        help='smoke test: 512 train / 256 test images, 1 epoch each')
    args = parser.parse_args(argv)
    args.epochs = args.epochs or (1 if args.quick else 4)
    args.finetune_epochs = args.finetune_epochs or 1
    args.scratch_epochs = args.scratch_epochs or args.epochs + args.finetune_epochs
    args.methods = [m.strip() for m in args.methods.split(',') if m.strip()]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        parser.error(f'unknown method(s) {unknown}; choose from {list(METHODS)}')
    for name in ('epochs', 'finetune_epochs', 'scratch_epochs'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1')
    return args


def find_config(method: str):
    """The method's Fashion-MNIST config (shortest matching name), or None."""
    pattern = re.compile(METHODS[method])
    found = sorted((f for f in os.listdir(CONFIG_DIR) if pattern.match(f)), key=lambda f: (len(f), f))
    return osp.join(CONFIG_DIR, found[0]) if found else None


# ----------------------------------------------------------------- config edits
def set_epochs(cfg: Config, epochs: int) -> None:
    """Set ``train_cfg.max_epochs`` and stretch or cut the epoch-based lr schedules
    (ends at the old last epoch move to the new one; schedulers that would start
    after the end are dropped). Iteration-based schedulers are kept as they are."""
    old = cfg.train_cfg.max_epochs
    cfg.train_cfg.max_epochs = epochs

    def fix(schedulers):
        if isinstance(schedulers, dict) and 'type' not in schedulers:  # one list per optimizer
            return {k: fix(v) for k, v in schedulers.items()}
        single = isinstance(schedulers, dict)
        out = []
        for s in ([schedulers] if single else list(schedulers or [])):
            s = copy.deepcopy(s)
            if s.get('by_epoch', True):
                end = s.get('end', old)
                end = epochs if end is None or end >= old else min(end, epochs)
                if s.get('begin', 0) >= end:
                    continue
                s['end'] = end
                if 'T_max' in s:
                    s['T_max'] = end - s.get('begin', 0)
            out.append(s)
        return out[0] if single and out else out

    if cfg.get('param_scheduler') is not None:
        cfg.param_scheduler = fix(cfg.param_scheduler)


def fmnist_dataset(cfg: Config, split: str, data_root, n=None) -> dict:
    """A Fashion-MNIST dataset config without augmentation (for probes and tests)."""
    ds = dict(type='FashionMNISTDataset', split=split, pipeline=[dict(type='PackInputs')],
              data_root=data_root or cfg.get('data_root'))
    if ds['data_root'] is None:
        ds.pop('data_root')
    if n is not None:
        ds['indices'] = n
    return ds


def shrink_data(cfg: Config, args) -> None:
    """Point every Fashion-MNIST dataset at ``--data-root`` and, with --quick, cut it."""
    loaders = [cfg.get(k) for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    for loader in filter(None, loaders):
        if args.data_root:
            loader.dataset.data_root = args.data_root
        if args.quick:
            train = loader.dataset.get('split') == 'train'
            loader.dataset.indices = QUICK['train'] if train else QUICK['test']
            loader.batch_size = QUICK['batch_size']
    if args.data_root:
        cfg.data_root = args.data_root
    if args.quick:
        cfg.default_hooks.logger.interval = 1


def prepare_pretrain(path: str, args, work_dir: str) -> str:
    cfg = Config.fromfile(path)
    set_epochs(cfg, args.epochs)
    shrink_data(cfg, args)
    quick = args.quick
    hooks = [h for h in cfg.get('custom_hooks', []) if h.get('type') != 'LinearProbeHook']
    hooks.append(dict(type='LinearProbeHook',
                      train_dataset=fmnist_dataset(cfg, 'train', args.data_root,
                                                   QUICK['probe_train'] if quick else None),
                      test_dataset=fmnist_dataset(cfg, 'test', args.data_root,
                                                  QUICK['test'] if quick else None)))
    cfg.custom_hooks = hooks
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=args.epochs, max_keep_ckpts=1)
    out = osp.join(work_dir, 'pretrain_config.py')
    cfg.dump(out)
    return out


def prepare_finetune(args, work_dir: str, checkpoint, epochs: int) -> str:
    cfg = Config.fromfile(FINETUNE_CONFIG)
    cfg.model.backbone.init_cfg = None if checkpoint is None else dict(
        type='Pretrained', checkpoint=checkpoint, prefix='backbone.')
    set_epochs(cfg, epochs)
    shrink_data(cfg, args)
    if not args.quick and args.finetune_train_size < 60000:
        cfg.train_dataloader.dataset.indices = args.finetune_train_size
    # fractions of an epoch (the warm-up) become iterations here, at least two (mmengine's
    # LinearLR reaches its end factor one step before its end), so a small training set
    # (--quick, --finetune-train-size) still warms up to the configured lr
    n_train = cfg.train_dataloader.dataset.get('indices') or 60000
    epoch_iters = -(-n_train // cfg.train_dataloader.batch_size)

    def to_iters(epoch):
        return 0 if epoch == 0 else max(2, round(epoch * epoch_iters))

    epoch_based = [s for s in cfg.get('param_scheduler') or []
                   if s.get('by_epoch', True) and s.get('convert_to_iter_based')]
    if any(v != int(v) for s in epoch_based for v in (s.get('begin', 0), s.get('end', epochs))):
        for s in epoch_based:
            s.update(by_epoch=False, convert_to_iter_based=False,
                     begin=to_iters(s.get('begin', 0)), end=to_iters(s.get('end', epochs)))
    cfg.train_cfg.val_interval = epochs
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=epochs, max_keep_ckpts=1)
    out = osp.join(work_dir, 'finetune_config.py')
    cfg.dump(out)
    return out


# ----------------------------------------------------------------------- runs
def train(config: str, work_dir: str, amp: bool = False) -> dict:
    """tools/train.py in a subprocess; returns ok / seconds / log path."""
    log = osp.join(work_dir, 'train.log')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get('PYTHONPATH')])))
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), config, '--work-dir', work_dir]
    if amp:
        cmd.append('--amp')
    start = time.time()
    with open(log, 'w') as f:
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    seconds = time.time() - start
    if rc != 0:
        with open(log) as f:
            tail = ''.join(f.readlines()[-15:])
        print(f'  FAILED (exit {rc}); last lines of {log}:\n{tail}', flush=True)
    return dict(ok=rc == 0, seconds=seconds, log=log)


def last_accuracy(work_dir: str):
    logs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    acc = None
    if logs:
        with open(logs[-1]) as f:
            for line in f:
                rec = json.loads(line)
                if 'accuracy/top1' in rec:
                    acc = rec['accuracy/top1']
    return acc


def last_checkpoint(work_dir: str):
    marker = osp.join(work_dir, 'last_checkpoint')
    if osp.exists(marker):
        with open(marker) as f:
            return f.read().strip()
    found = sorted(glob.glob(osp.join(work_dir, 'epoch_*.pth')), key=osp.getmtime)
    return found[-1] if found else None


def random_init_probe(config: str, args) -> dict:
    """Linear probe of the untrained encoder, exactly as LinearProbeHook does it."""
    import torch
    from mmengine.registry import init_default_scope

    from mmengine.logging import MMLogger

    import mmmim.datasets  # noqa: F401  (registers)
    import mmmim.models  # noqa: F401
    from mmmim.evaluation import extract_features, fit_linear_probe
    from mmmim.registry import DATASETS, MODELS
    init_default_scope('mmmim')
    MMLogger.get_instance('fmnist_benchmark', log_level='WARNING')  # no per-weight init log
    cfg = Config.fromfile(config)
    probe = next(h for h in cfg.custom_hooks if h['type'] == 'LinearProbeHook')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    start = time.time()
    train_set = extract_features(model, DATASETS.build(probe['train_dataset']),
                                 probe.get('feature', 'cls+avg'))
    test_set = extract_features(model, DATASETS.build(probe['test_dataset']),
                                probe.get('feature', 'cls+avg'))
    top1 = fit_linear_probe(*train_set, *test_set)
    return dict(top1=round(top1, 2), seconds=round(time.time() - start, 1))


def finetune(args, work_dir: str, checkpoint, epochs: int) -> dict:
    os.makedirs(work_dir, exist_ok=True)
    run = train(prepare_finetune(args, work_dir, checkpoint, epochs), work_dir, args.amp)
    return dict(top1=last_accuracy(work_dir) if run['ok'] else None, epochs=epochs,
                seconds=round(run['seconds'], 1))


def run_method(method: str, config: str, args) -> dict:
    work_dir = osp.abspath(osp.join(args.work_dir, method))
    os.makedirs(work_dir, exist_ok=True)
    result = dict(method=method, label=LABELS[method], config=osp.relpath(config, ROOT),
                  epochs=args.epochs)
    print(f'[{method}] pre-training {result["config"]} for {args.epochs} epoch(s)', flush=True)
    run = train(prepare_pretrain(config, args, work_dir), work_dir, args.amp)
    result['pretrain_total_s'] = round(run['seconds'], 1)
    if not run['ok']:
        result['error'] = f'pre-training failed, see {run["log"]}'
        return result
    probe_s = 0.
    probe_file = osp.join(work_dir, 'linear_probe.json')
    if osp.exists(probe_file):
        with open(probe_file) as f:
            probe = json.load(f)
        result['linear_probe'], probe_s = probe['top1'], probe['seconds']
    result['pretrain_s'] = round(run['seconds'] - probe_s, 1)
    print(f'[{method}] {result["pretrain_s"]} s of training; linear probe '
          f'{result.get("linear_probe")} %; fine-tuning {args.finetune_epochs} epoch(s)', flush=True)
    ft = finetune(args, osp.join(work_dir, 'finetune'), last_checkpoint(work_dir),
                  args.finetune_epochs)
    result['finetune'], result['finetune_s'] = ft['top1'], ft['seconds']
    print(f'[{method}] fine-tune top-1 {ft["top1"]} %', flush=True)
    return result


def run_baselines(args, probe_config) -> list:
    rows = []
    base = osp.abspath(osp.join(args.work_dir, 'baselines'))
    os.makedirs(base, exist_ok=True)
    print('[random init] linear probe of the untrained encoder; fine-tune from random weights',
          flush=True)
    row = dict(method='random-init', label='random init', epochs=0, pretrain_s=0.0)
    if probe_config is not None:
        row['linear_probe'] = random_init_probe(probe_config, args)['top1']
    ft = finetune(args, osp.join(base, 'random-init_finetune'), None, args.finetune_epochs)
    row['finetune'], row['finetune_s'] = ft['top1'], ft['seconds']
    rows.append(row)
    print(f'[supervised] from scratch for {args.scratch_epochs} epoch(s)', flush=True)
    ft = finetune(args, osp.join(base, 'supervised'), None, args.scratch_epochs)
    rows.append(dict(method='supervised', label=f'supervised from scratch ({args.scratch_epochs} ep)',
                     epochs=0, pretrain_s=0.0, finetune=ft['top1'], finetune_s=ft['seconds']))
    return rows


# -------------------------------------------------------------------- reports
def amp_precision() -> str:
    """What ``tools/train.py --amp`` runs in on this CPU, and why."""
    from mmmim.utils.precision import cpu_bf16_decision
    d = cpu_bf16_decision()
    return ('bf16 autocast' if d.fast else 'fp32') + f' (tools/train.py --amp; {d.reason})'


def hardware() -> str:
    from mmmim.utils.precision import describe_cpu
    return f'{describe_cpu()}, Python {platform.python_version()}'


def fmt(value, digits=1):
    return '—' if value is None else f'{value:.{digits}f}'


def write_markdown(path: str, rows: list, skipped: dict, args, command: str, total_s: float):
    lines = [
        f'# Fashion-MNIST: pre-training methods at {args.epochs} epoch(s)',
        '',
        'Encoder: ViT "mini" (128-d, 6 blocks, 4 heads, patch 4, 32x32 grey). Linear probe: '
        'logistic regression on frozen cls+avg features (LinearProbeHook). Fine-tune: '
        f'configs/fashion_mnist/finetune_vit-mini-p4.py for {args.finetune_epochs} epoch(s) on '
        f'{"the quick subset" if args.quick else f"{min(args.finetune_train_size, 60000)} training images"}. '
        'Top-1 on the 10k test images' + (' (--quick: 256 test images; meaningless)' if args.quick else '')
        + '. Training precision: ' + (amp_precision() if args.amp else 'fp32') + '.',
        '',
        '| method | pre-train epochs | pre-train time (s) | linear probe top-1 (%) | '
        'fine-tune top-1 (%) | fine-tune time (s) |',
        '|---|---:|---:|---:|---:|---:|',
    ]
    for r in rows:
        label = r['label'] + (f' ({r["error"]})' if r.get('error') else '')
        lines.append(f'| {label} | {r.get("epochs", 0)} | {fmt(r.get("pretrain_s"))} | '
                     f'{fmt(r.get("linear_probe"), 2)} | {fmt(r.get("finetune"), 2)} | '
                     f'{fmt(r.get("finetune_s"))} |')
    lines += ['']
    for method, why in skipped.items():
        lines.append(f'- {LABELS[method]}: skipped, {why}')
    lines += [
        '',
        f'Command: `{command}`',
        '',
        f'Hardware: {hardware()}. Whole run: {total_s / 60:.1f} min.',
        '',
        'Pre-training time: wall time of the tools/train.py process, start-up included and '
        'the final linear probe excluded; the plot puts each method\'s accuracies at that time.',
    ]
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def write_plot(path: str, rows: list, args) -> bool:
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        print('matplotlib is not installed: no plot (pip install matplotlib)')
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        if r['method'] == 'supervised':
            if r.get('finetune') is not None:
                ax.axhline(r['finetune'], color='grey', ls='--', lw=1, label=r['label'])
            continue
        x = r.get('pretrain_s', 0) / 60
        line = None
        if r.get('linear_probe') is not None:
            line, = ax.plot(x, r['linear_probe'], 'o', ms=8, label=f'{r["label"]}: linear probe')
        if r.get('finetune') is not None:
            kw = dict(color=line.get_color()) if line is not None else {}
            ax.plot(x, r['finetune'], 's', ms=8, mfc='none', mew=2, label=f'{r["label"]}: fine-tune', **kw)
    ax.legend(fontsize=7, loc='lower right', ncol=2)
    return finish_plot(fig, ax, path, 'pre-training wall time (min)',
                       'top-1 on Fashion-MNIST test (%)',
                       f'Fashion-MNIST, ViT-mini, {args.epochs} pre-training epoch(s)'
                       + (' [--quick]' if args.quick else ''))


def finish_plot(fig, ax, path: str, xlabel: str, ylabel: str, title: str, **title_kw) -> bool:
    """Label, grid and save a figure of the analysis tools (shared with main_job_curve)."""
    import matplotlib.pyplot as plt
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, **title_kw)
    ax.grid(alpha=.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv=None):
    args = parse_args(argv)
    command = 'python tools/analysis/fmnist_benchmark.py ' + ' '.join(
        sys.argv[1:] if argv is None else argv)
    os.makedirs(args.work_dir, exist_ok=True)
    if not osp.exists(FINETUNE_CONFIG):
        raise FileNotFoundError(f'{FINETUNE_CONFIG} is missing; the fine-tune step needs it')
    start = time.time()
    rows, skipped = [], {}
    probe_config = None
    for index, method in enumerate(args.methods):
        if index:  # progress: methods done, elapsed, and an ETA from their average
            done = time.time() - start
            left = done / index * (len(args.methods) - index)
            print(f'== progress: {index}/{len(args.methods)} methods in {done / 60:.1f} min; '
                  f'about {left / 60:.0f} min to go before the baselines', flush=True)
        config = find_config(method)
        if config is None:
            skipped[method] = (f'no config matching {METHODS[method]} in '
                               f'{osp.relpath(CONFIG_DIR, ROOT)}')
            print(f'[{method}] {skipped[method]}', flush=True)
            continue
        rows.append(run_method(method, config, args))
        if probe_config is None and 'error' not in rows[-1]:
            probe_config = osp.join(args.work_dir, method, 'pretrain_config.py')
    if not args.no_baselines:
        rows += run_baselines(args, probe_config)
    total = time.time() - start
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(dict(rows=rows, skipped=skipped, args=vars(args), hardware=hardware(),
                       total_s=round(total, 1)), f, indent=2)
    md = osp.join(args.work_dir, 'results.md')
    write_markdown(md, rows, skipped, args, command, total)
    write_plot(osp.join(args.work_dir, 'accuracy_vs_time.png'), rows, args)
    with open(md) as f:
        print(f.read())
    return rows


if __name__ == '__main__':
    main()

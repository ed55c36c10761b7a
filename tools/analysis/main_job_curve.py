"""Linear-probe accuracy against wall time for a Fashion-MNIST pre-training config.

Runs ``tools/train.py CONFIG`` once per (epochs, seed), each a complete run with its
own schedule stretched or cut to that many epochs (the warm-up keeps its length, the
cosine ends at the new last epoch), ends with the config's own LinearProbeHook (all 60k
training / 10k test images unless the config says otherwise), and gathers the
whole-process wall time, the probe's time and top-1. Prints a table, writes
``results.json``, ``results.md`` and ``accuracy_vs_time.png`` into ``--work-dir``, and
names the CPU it ran on.

    python tools/analysis/main_job_curve.py                                # the main job, 1-4 epochs
    python tools/analysis/main_job_curve.py --epochs 2 3 --seeds 0 1
    python tools/analysis/main_job_curve.py --config configs/fashion_mnist/mae_vit-mini-p4-28px_4e.py \\
        --epochs 1 2 4

The curve of the main job and of its ablations is in docs/cpus.md.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from mmengine.config import Config, DictAction  # noqa: E402

from fmnist_benchmark import finish_plot, set_epochs, train  # noqa: E402

MAIN_CONFIG = osp.join(ROOT, 'configs', 'fashion_mnist', 'mae_vit-mini-p4_4e.py')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--config', default=MAIN_CONFIG, help='default: the main job')
    p.add_argument('--epochs', type=int, nargs='+', default=[1, 2, 3, 4])
    p.add_argument('--seeds', type=int, nargs='+', default=[0])
    p.add_argument('--amp', action='store_true', help='tools/train.py --amp')
    p.add_argument('--work-dir', default=osp.join('work_dirs', 'main_job_curve'))
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                   help='overrides applied to every run, as in tools/train.py')
    args = p.parse_args(argv)
    if min(args.epochs) < 1:
        p.error('--epochs must be >= 1')
    return args


def prepare(args, epochs: int, seed: int, work_dir: str) -> str:
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if not any(h.get('type') == 'LinearProbeHook' for h in cfg.get('custom_hooks', [])):
        raise SystemExit(f'{args.config} has no LinearProbeHook: nothing to measure')
    set_epochs(cfg, epochs)
    cfg.randomness = dict(cfg.get('randomness', {}), seed=seed)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=epochs, max_keep_ckpts=1)
    os.makedirs(work_dir, exist_ok=True)
    out = osp.join(work_dir, 'config.py')
    cfg.dump(out)
    return out


def run_one(args, epochs: int, seed: int) -> dict:
    work_dir = osp.abspath(osp.join(args.work_dir, f'{epochs}e_seed{seed}'))
    run = train(prepare(args, epochs, seed, work_dir), work_dir, args.amp)
    row = dict(epochs=epochs, seed=seed, total_s=round(run['seconds'], 1), ok=run['ok'])
    probe = osp.join(work_dir, 'linear_probe.json')
    if run['ok'] and osp.exists(probe):
        with open(probe) as f:
            result = json.load(f)
        row.update(top1=result['top1'], probe_s=result['seconds'])
    return row


def summarise(rows):
    """One line per epoch count: mean (and spread over seeds) of time and top-1."""
    out = []
    for e in sorted({r['epochs'] for r in rows}):
        ok = [r for r in rows if r['epochs'] == e and 'top1' in r]
        if not ok:
            out.append(dict(epochs=e, runs=0))
            continue
        accs = [r['top1'] for r in ok]
        out.append(dict(epochs=e, runs=len(ok),
                        total_min=round(statistics.mean(r['total_s'] for r in ok) / 60, 2),
                        probe_min=round(statistics.mean(r['probe_s'] for r in ok) / 60, 2),
                        top1=round(statistics.mean(accs), 2),
                        spread=round(max(accs) - min(accs), 2)))
    return out


def write_plot(path, rows, title):
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    pts = [r for r in rows if 'top1' in r]
    ax.plot([r['total_s'] / 60 for r in pts], [r['top1'] for r in pts], 'o')
    for r in pts:
        ax.annotate(f'{r["epochs"]} ep', (r['total_s'] / 60, r['top1']), fontsize=7,
                    xytext=(4, -8), textcoords='offset points')
    return finish_plot(fig, ax, path, 'whole run, wall time (min)', 'linear probe top-1 (%)',
                       title, fontsize=8)


def main(argv=None):
    args = parse_args(argv)
    from mmmim.utils.precision import describe_cpu
    cpu = describe_cpu()
    os.makedirs(args.work_dir, exist_ok=True)
    print(f'CPU: {cpu}\nconfig: {osp.relpath(args.config, ROOT)}', flush=True)
    runs = [(e, s) for e in args.epochs for s in args.seeds]
    rows, start = [], time.time()
    for i, (epochs, seed) in enumerate(runs):
        print(f'[{i + 1}/{len(runs)}] {epochs} epoch(s), seed {seed}', flush=True)
        rows.append(run_one(args, epochs, seed))
        print(f'  {rows[-1]}', flush=True)
        done = time.time() - start
        print(f'  {done / 60:.1f} min elapsed', flush=True)
    summary = summarise(rows)
    lines = [f'CPU: {cpu}', f'config: {osp.relpath(args.config, ROOT)}'
             + (f', --cfg-options {args.cfg_options}' if args.cfg_options else '')
             + (', --amp' if args.amp else ''), '',
             '| epochs | runs | whole run (min) | of which probe (min) | probe top-1 (%) | spread |',
             '|---:|---:|---:|---:|---:|---:|']
    for s in summary:
        if s['runs']:
            lines.append(f'| {s["epochs"]} | {s["runs"]} | {s["total_min"]:.2f} | '
                         f'{s["probe_min"]:.2f} | {s["top1"]:.2f} | {s["spread"]:.2f} |')
        else:
            lines.append(f'| {s["epochs"]} | 0 (failed) | | | | |')
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(dict(cpu=cpu, config=args.config, cfg_options=args.cfg_options, rows=rows,
                       summary=summary), f, indent=2)
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    write_plot(osp.join(args.work_dir, 'accuracy_vs_time.png'), rows,
               f'{osp.basename(args.config)} on {cpu.split(",")[0]}')
    print('\n'.join(lines))
    return rows


if __name__ == '__main__':
    main()

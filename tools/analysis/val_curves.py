"""Validation curves of finished or running ``tools/train.py`` runs, grouped into arms:
each run's metric at every validated epoch, each arm's mean ± std over its runs, and the
difference of two arms' means, called only beyond the spread.

    python tools/analysis/val_curves.py \\
        --arm MAE work_dirs/recipe_50e/mae_seed0 work_dirs/recipe_50e/mae-pseed1_seed1 \\
        --arm scratch work_dirs/recipe_50e/scratch_seed0 work_dirs/recipe_50e/scratch_seed1

It only reads what the runs wrote: every sitting's ``<timestamp>/vis_data/scalars.json``
in a work dir, oldest first, so a run continued with ``--resume`` reads as one curve (an
epoch validated again in a later sitting keeps the later value). A run that has not
reached an epoch yet leaves its cell empty, and the arm's mean at that epoch says over how
many runs it is taken. The first arm is compared with each other arm
(``fmnist_benchmark.verdict``: a difference is called only where it exceeds the sum of the
two standard deviations, and not at all with one run per arm).

Why a tool: the README's tables of the long fine-tune recipe (several sittings per run, one
row per run and arm) are gathered by this command instead of by hand. ``--out`` also
writes the table as Markdown and the curves as JSON.
"""
import argparse
import glob
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from fmnist_benchmark import cell, verdict  # noqa: E402


def read_curve(work_dir: str, metric: str = 'accuracy/top1') -> dict:
    """``{epoch: value}`` of ``metric`` over every sitting of the run in ``work_dir``."""
    logs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not logs:
        raise SystemExit(f'val_curves: no */vis_data/scalars.json under {work_dir}: pass the '
                         f'--work-dir of a tools/train.py run (it writes one per sitting)')
    curve = {}
    for log in logs:
        with open(log) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                rec = json.loads(line)
                if metric in rec:
                    curve[int(rec['step'])] = float(rec[metric])
    return curve


def gather(arms, metric='accuracy/top1') -> dict:
    """``arms``: ``[(name, [work_dir, ...]), ...]`` -> ``{name: {work_dir: curve}}``."""
    names = [name for name, _ in arms]
    if len(set(names)) != len(names):
        raise SystemExit(f'val_curves: arm names repeat ({names}); give each --arm its own name')
    return {name: {d: read_curve(d, metric) for d in dirs} for name, dirs in arms}


def table(curves: dict, epochs=None) -> str:
    """Markdown: one row per run, a mean ± std row per arm, one difference row per arm
    after the first (first arm minus that arm)."""
    seen = sorted({e for runs in curves.values() for c in runs.values() for e in c})
    epochs = seen if not epochs else [e for e in epochs if e in seen]
    rows = ['| run | ' + ' | '.join(str(e) for e in epochs) + ' |',
            '|---|' + '---:|' * len(epochs)]

    def values(runs, e):
        return [c[e] for c in runs.values() if e in c]

    for name, runs in curves.items():
        for d, c in runs.items():
            rows.append(f'| {name}: {d} | ' + ' | '.join(
                f'{c[e]:.2f}' if e in c else '' for e in epochs) + ' |')
        rows.append(f'| **{name}**, mean ± std | ' + ' | '.join(
            (cell(values(runs, e)) + (f' (n={len(values(runs, e))})'
                                      if 1 < len(values(runs, e)) < len(runs) else ''))
            if values(runs, e) else '' for e in epochs) + ' |')
    names = list(curves)
    for other in names[1:]:
        rows.append(f'| {names[0]} minus {other} | ' + ' | '.join(
            verdict(values(curves[names[0]], e), values(curves[other], e))
            if values(curves[names[0]], e) and values(curves[other], e) else ''
            for e in epochs) + ' |')
    return '\n'.join(rows)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--arm', nargs='+', action='append', required=True, metavar=('NAME', 'DIR'),
                   help='an arm: its name, then the work dirs of its runs (repeat --arm)')
    p.add_argument('--metric', default='accuracy/top1')
    p.add_argument('--epochs', type=int, nargs='+', default=None,
                   help='only these epochs (default: every validated one)')
    p.add_argument('--out', default=None,
                   help='also write OUT.md (the table) and OUT.json (the curves)')
    args = p.parse_args(argv)
    for arm in args.arm:
        if len(arm) < 2:
            p.error(f'--arm {arm[0]} names no work dir: --arm NAME DIR [DIR ...]')
    return args


def main(argv=None):
    args = parse_args(argv)
    curves = gather([(arm[0], arm[1:]) for arm in args.arm], args.metric)
    text = table(curves, args.epochs)
    print(f'{args.metric} by epoch\n\n{text}')
    if args.out:
        with open(args.out + '.md', 'w') as f:
            f.write(text + '\n')
        with open(args.out + '.json', 'w') as f:
            json.dump({name: {d: {str(e): v for e, v in sorted(c.items())}
                              for d, c in runs.items()} for name, runs in curves.items()},
                      f, indent=1)
    return curves


if __name__ == '__main__':
    main()

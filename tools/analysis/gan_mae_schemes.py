"""GAN-MAE's schemes and backbone modes against MAE on Fashion-MNIST, at equal epochs.

Each cell is one ``tools/train.py`` run of a config under ``configs/fashion_mnist/`` with
a seed (the configs' own schedule, LinearProbeHook and all), cached in
``--work-dir/<cell>_seed<s>``: a finished cell is read back, not rerun. Gathers the
linear probe's top-1, the wall time and, from the run's scalar log, how the
discriminator ended (the mean over the last ``--tail`` iterations of ``disc_auc``,
``disc_bacc``, ``loss_disc`` and ``disc_prior_entropy``) and the adaptive gamma (its mean
over the last epoch, its largest logged value, the share of logged windows at the cap).
Writes ``results.md`` and ``results.json``.

    python tools/analysis/gan_mae_schemes.py --amp                  # every cell, seed 0
    python tools/analysis/gan_mae_schemes.py --amp --cells mae gan-mae --seeds 0 1

The table and its reading are in docs/gan_mae.md.
"""
import argparse
import glob
import json
import os
import os.path as osp
import statistics
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from mmengine.config import Config  # noqa: E402

from fmnist_benchmark import hardware, train  # noqa: E402
from gan_disc_diagnosis import write_results  # noqa: E402

CFG = osp.join(ROOT, 'configs', 'fashion_mnist')
CELLS = {
    'mae': 'mae_vit-mini-p4_4e.py',
    'gan-mae': 'gan-mae_vit-mini-p4_4e.py',
    'combined': 'gan-mae_vit-mini-p4_4e_combined.py',
    'two-stage': 'gan-mae_vit-mini-p4_4e_two-stage.py',
    'backbone-generator': 'gan-mae_vit-mini-p4_4e_backbone-generator.py',
    'backbone-discriminator': 'gan-mae_vit-mini-p4_4e_backbone-discriminator.py',
    'lambda-disc-1': 'gan-mae_vit-mini-p4_4e_lambda-disc-1.py',
}
DISC_KEYS = ('disc_auc', 'disc_bacc', 'loss_disc', 'disc_prior_entropy', 'loss_rec')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--cells', nargs='+', choices=list(CELLS), default=list(CELLS))
    p.add_argument('--seeds', type=int, nargs='+', default=[0])
    p.add_argument('--amp', action='store_true', help='tools/train.py --amp')
    p.add_argument('--tail', type=int, default=50)
    p.add_argument('--quick', action='store_true',
                   help='a smoke run: 1 epoch of 1024 images per cell, a 500 + 500 probe')
    p.add_argument('--work-dir', default=osp.join('work_dirs', 'gan_mae_schemes'))
    return p.parse_args(argv)


def make_quick(cfg: Config) -> None:
    from fmnist_benchmark import set_epochs
    set_epochs(cfg, 1)
    cfg.train_dataloader.dataset['indices'] = 1024
    for hook in cfg.custom_hooks:
        if hook['type'] == 'LinearProbeHook':
            hook.update(max_train=500, max_test=500)
        if hook['type'] == 'GANSchemeHook' and hook.get('switch_epoch'):
            hook['switch_epoch'] = 0
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)


def records(work_dir: str) -> list:
    logs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not logs:
        return []
    with open(logs[-1]) as f:
        return [json.loads(line) for line in f if line.strip()]


def summary(recs: list, tail: int, iters_per_epoch: int) -> dict:
    """Discriminator and gamma figures from a run's scalar records."""
    train = [r for r in recs if 'loss_rec' in r]
    if not train:
        return {}
    last = max(r['step'] for r in train)
    out = {}
    end = [r for r in train if r['step'] > last - tail]
    for key in DISC_KEYS:
        if all(key in r for r in end):
            out[key] = statistics.mean(r[key] for r in end)
    gam = [r for r in train if 'gamma' in r]
    if gam:
        out['gamma_last_epoch'] = statistics.mean(
            r['gamma'] for r in gam if r['step'] > last - iters_per_epoch)
        out['gamma_max'] = max(r['gamma'] for r in gam)
        caps = [r.get('gamma_at_cap', 0.) for r in gam]
        out['gamma_at_cap'] = statistics.mean(caps)
    return out


def run_cell(cell: str, seed: int, args) -> dict:
    work_dir = osp.abspath(osp.join(args.work_dir, f'{cell}_seed{seed}'))
    result_file = osp.join(work_dir, 'cell.json')
    if osp.exists(result_file):
        with open(result_file) as f:
            return json.load(f)
    cfg = Config.fromfile(osp.join(CFG, CELLS[cell]))
    cfg.randomness = dict(cfg.get('randomness', {}), seed=seed)
    if args.quick:
        make_quick(cfg)
    os.makedirs(work_dir, exist_ok=True)
    config = osp.join(work_dir, 'config.py')
    cfg.dump(config)
    run = train(config, work_dir, args.amp)
    row = dict(cell=cell, config=CELLS[cell], seed=seed, ok=run['ok'],
               minutes=round(run['seconds'] / 60, 2))
    probe = osp.join(work_dir, 'linear_probe.json')
    if run['ok'] and osp.exists(probe):
        with open(probe) as f:
            row['top1'] = json.load(f)['top1']
        n_images = cfg.train_dataloader.dataset.get('indices') or 60000
        iters = -(-n_images // cfg.train_dataloader.batch_size)
        row.update(summary(records(work_dir), args.tail, iters))
        with open(result_file, 'w') as f:
            json.dump(row, f, indent=1)
    return row


def fmt(row, key, digits=3):
    return f'{row[key]:.{digits}f}' if key in row else '—'


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    print(f'CPU: {hardware()}', flush=True)
    rows = []
    for seed in args.seeds:
        for cell in args.cells:
            print(f'{cell}, seed {seed}: {CELLS[cell]}', flush=True)
            rows.append(run_cell(cell, seed, args))
            print(f'  {rows[-1]}', flush=True)
    lines = [f'CPU: {hardware()}' + (', tools/train.py --amp' if args.amp else ''), '',
             '| cell | seeds | probe top-1 (%) | spread | disc AUC | disc balanced acc | '
             'loss_disc / prior | gamma (last epoch) | gamma max | at cap | loss_rec | min |',
             '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for cell in args.cells:
        ok = [r for r in rows if r['cell'] == cell and 'top1' in r]
        if not ok:
            lines.append(f'| {cell} | 0 | failed | | | | | | | | | |')
            continue
        accs = [r['top1'] for r in ok]

        def mean(key):
            vals = [r[key] for r in ok if key in r]
            return statistics.mean(vals) if vals else None
        m = {k: mean(k) for k in ('disc_auc', 'disc_bacc', 'loss_disc', 'disc_prior_entropy',
                                  'gamma_last_epoch', 'gamma_max', 'gamma_at_cap', 'loss_rec',
                                  'minutes')}
        m = {k: v for k, v in m.items() if v is not None}
        ratio = (f"{m['loss_disc']:.3f} / {m['disc_prior_entropy']:.3f}"
                 if 'loss_disc' in m else '—')
        lines.append(
            f"| {cell} | {len(ok)} ({', '.join(str(r['seed']) for r in ok)}) "
            f"| {statistics.mean(accs):.2f} | {max(accs) - min(accs):.2f} "
            f"| {fmt(m, 'disc_auc')} | {fmt(m, 'disc_bacc')} | {ratio} "
            f"| {fmt(m, 'gamma_last_epoch')} | {fmt(m, 'gamma_max')} | {fmt(m, 'gamma_at_cap', 2)} "
            f"| {fmt(m, 'loss_rec')} | {fmt(m, 'minutes', 1)} |")
    write_results(args.work_dir, lines, dict(hardware=hardware(), amp=args.amp, rows=rows))


if __name__ == '__main__':
    main()

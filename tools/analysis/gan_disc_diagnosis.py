"""Can a discriminator separate real from generated patches? A frozen MAE generator and
a fresh discriminator, for each form of ``L_disc``.

Runs ``configs/fashion_mnist/gan-mae-disc-diagnosis_vit-mini-p4_1e.py`` (a trained MAE
generator frozen at lr 0; a separate, freshly initialised discriminator ViT trained for
one epoch) once per variant of the discriminator loss, and gathers the mean of the
logged ``loss_disc``, ``disc_prior_entropy``, ``disc_bacc``, ``disc_auc``, ``acc_real``
and ``acc_fake`` over the last ``--tail`` iterations. Every batch of the one epoch is new
to the discriminator, so these are held-out figures. Variants:

- ``plain``: mean BCE over all patches (the loss before class balancing), flat patches in;
- ``balanced``: class-balanced BCE, flat patches in;
- ``balanced-flat-out``: class-balanced BCE, patches whose real content is flat left out.

    python tools/analysis/gan_disc_diagnosis.py --mae-checkpoint work_dirs/mae/epoch_4.pth
    python tools/analysis/gan_disc_diagnosis.py          # trains the MAE main job first

Findings and the reading of each GAN-MAE suspect: docs/gan_mae.md.
"""
import argparse
import glob
import json
import os
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from mmengine.config import Config  # noqa: E402

from fmnist_benchmark import hardware, last_checkpoint, train  # noqa: E402

CONFIG = osp.join(ROOT, 'configs', 'fashion_mnist', 'gan-mae-disc-diagnosis_vit-mini-p4_1e.py')
MAE_CONFIG = osp.join(ROOT, 'configs', 'fashion_mnist', 'mae_vit-mini-p4_4e.py')
FLAT_STD = 0.02
VARIANTS = {
    'plain': dict(class_balanced=False, flat_patch_std=0.),
    'balanced': dict(class_balanced=True, flat_patch_std=0.),
    'balanced-flat-out': dict(class_balanced=True, flat_patch_std=FLAT_STD),
}
KEYS = ('loss_disc', 'disc_prior_entropy', 'disc_bacc', 'disc_auc', 'acc_real', 'acc_fake',
        'flat_patches')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--mae-checkpoint', help='a trained MAE checkpoint of the Fashion-MNIST '
                   'model (default: train configs/fashion_mnist/mae_vit-mini-p4_4e.py first)')
    p.add_argument('--variants', nargs='+', choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument('--tail', type=int, default=50, help='iterations averaged at the end')
    p.add_argument('--max-iters', type=int, default=None,
                   help='stop each variant after this many iterations (default: one epoch)')
    p.add_argument('--amp', action='store_true', help='tools/train.py --amp')
    p.add_argument('--work-dir', default=osp.join('work_dirs', 'gan_disc_diagnosis'))
    return p.parse_args(argv)


def variant_config(name: str, checkpoint: str, work_dir: str, max_iters=None) -> str:
    cfg = Config.fromfile(CONFIG)
    opts = VARIANTS[name]
    cfg.model.discriminator_head = dict(cfg.model.discriminator_head,
                                        class_balanced=opts['class_balanced'])
    cfg.model.flat_patch_std = opts['flat_patch_std']
    cfg.load_from = checkpoint
    if max_iters:  # a shorter epoch-based run: fewer training images
        cfg.train_dataloader.dataset['indices'] = max_iters * cfg.train_dataloader.batch_size
    path = osp.join(work_dir, 'config.py')
    os.makedirs(work_dir, exist_ok=True)
    cfg.dump(path)
    return path


def tail_means(work_dir: str, keys=KEYS, tail: int = 50) -> dict:
    """Means of the logged ``keys`` over the records of the last ``tail`` iterations of
    a run's ``vis_data/scalars.json`` (each record is the logger window's mean)."""
    logs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not logs:
        raise FileNotFoundError(f'no scalars.json under {work_dir}: did the run start?')
    with open(logs[-1]) as f:
        records = [json.loads(line) for line in f if line.strip()]
    records = [r for r in records if 'loss_disc' in r]
    last = max(r['step'] for r in records)
    kept = [r for r in records if r['step'] > last - tail]
    return {k: sum(r[k] for r in kept) / len(kept) for k in keys if all(k in r for r in kept)}


def main(argv=None):
    args = parse_args(argv)
    checkpoint = args.mae_checkpoint
    if checkpoint is None:
        mae_dir = osp.join(args.work_dir, 'mae')
        print(f'training the MAE generator: {MAE_CONFIG} -> {mae_dir}', flush=True)
        run = train(MAE_CONFIG, mae_dir, args.amp)
        if not run['ok']:
            raise SystemExit('the MAE run failed; see ' + run['log'])
        checkpoint = last_checkpoint(mae_dir)
    rows = []
    for name in args.variants:
        work_dir = osp.join(args.work_dir, name)
        print(f'{name}: training a fresh discriminator -> {work_dir}', flush=True)
        run = train(variant_config(name, checkpoint, work_dir, args.max_iters), work_dir,
                    args.amp)
        if not run['ok']:
            raise SystemExit(f'{name} failed; see {run["log"]}')
        rows.append(dict(variant=name, minutes=run['seconds'] / 60, **VARIANTS[name],
                         **tail_means(work_dir, tail=args.tail)))
        print(json.dumps(rows[-1]), flush=True)
    lines = [f'CPU: {hardware()}', f'generator: {checkpoint}', '',
             '| L_disc | loss_disc | prior entropy | balanced acc | AUC | acc_real | acc_fake '
             '| flat share left out | min |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|']
    for r in rows:
        lines.append(f"| {r['variant']} | {r['loss_disc']:.3f} | {r['disc_prior_entropy']:.3f} "
                     f"| {r['disc_bacc']:.3f} | {r['disc_auc']:.3f} | {r['acc_real']:.3f} "
                     f"| {r['acc_fake']:.3f} | {r.get('flat_patches', 0.):.3f} "
                     f"| {r['minutes']:.1f} |")
    write_results(args.work_dir, lines, dict(hardware=hardware(), checkpoint=checkpoint,
                                             rows=rows))


def write_results(work_dir: str, lines, payload: dict) -> None:
    """Print the table and write ``results.md`` and ``results.json`` into ``work_dir``."""
    text = '\n'.join(lines) + '\n'
    print(text)
    with open(osp.join(work_dir, 'results.md'), 'w') as f:
        f.write(text)
    with open(osp.join(work_dir, 'results.json'), 'w') as f:
        json.dump(payload, f, indent=1)


if __name__ == '__main__':
    main()

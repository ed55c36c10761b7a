"""End to end on one GPU: sustained training img/s from JPEG files on disk with each input
path, against the synthetic-batch step rate, and the CPU cores per GPU each path needs.

    python tools/analysis/gpu_input_e2e.py                       # ViT-B/16 MAE, bf16, batch 512
    python tools/analysis/gpu_input_e2e.py --images 64 --batch-size 8 --iters 2 --workers 2 \\
        --device cpu --tiny                                       # the CPU smoke run the tests use

It schedules the repo's own tools, one process each, and gathers their results:

1. writes ``--images`` 500x375 JPEGs with photo-like file sizes (smooth colour fields plus
   pixel noise) to ``--data-dir``;
2. ``tools/benchmark.py CONFIG --amp bf16``: the step rate on a synthetic uint8 batch;
3. ``tools/analysis/data_throughput.py CONFIG --data DIR`` (training mode) for each path:
   ``mmpretrain`` (mmpretrain's default MAE pipeline), ``cpu`` (the config's
   LoadRandomResizedCrop pipeline) and ``gpu`` (configs/mae/vit-b_800e_gpu-decode.py):
   sustained img/s of real training iterations reading the files, with ``--workers``
   data-loader workers;
4. ``data_throughput.py --loader`` with 1 worker per path: img/s per worker process ->
   CPU cores per GPU at the step rate (for the GPU path the workers only read bytes).

The table at the end gives each path's sustained img/s as a share of the step rate (the
GPU path's goal: within 10%). ``--tiny`` shrinks the model (CPU smoke test only).
"""
import argparse
import json
import os
import os.path as osp
import re
import subprocess
import sys
import tempfile
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'analysis', 'data_throughput.py')
PATHS = dict(mmpretrain=('configs/mae/vit-b_800e.py', 'mmpretrain'),
             cpu=('configs/mae/vit-b_800e.py', 'config'),
             gpu=('configs/mae/vit-b_800e_gpu-decode.py', 'config'))
TINY = ("_base_ = {base!r}\n"
        "model = dict(backbone=dict(arch=dict(_delete_=True, embed_dims=32, num_layers=1,\n"
        "    num_heads=2, feedforward_channels=32)), neck=dict(decoder_depth=1))\n")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--images', type=int, default=6144)
    p.add_argument('--batch-size', type=int, default=512)
    p.add_argument('--iters', type=int, default=24, help='timed training iterations per path')
    p.add_argument('--workers', type=int, default=14, help='data-loader workers per path')
    p.add_argument('--paths', nargs='+', default=list(PATHS), choices=list(PATHS))
    p.add_argument('--data-dir', default=None, help='default: a new temporary folder')
    p.add_argument('--device', default='cuda')
    p.add_argument('--tiny', action='store_true', help='shrink the model (CPU smoke test)')
    p.add_argument('--json', default=None, help='write the results here too')
    return p.parse_args()


def run(cmd, what):
    print(f'\n>>> {what}: {" ".join(cmd)}', flush=True)
    start = time.time()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    tail = (out.stdout + out.stderr)[-3000:]
    if out.returncode != 0:
        print(tail)
        raise SystemExit(f'{what} failed (exit {out.returncode})')
    print('\n'.join(out.stdout.strip().splitlines()[-6:]), f'[{time.time() - start:.0f} s]',
          flush=True)
    return out.stdout


def main():
    args = parse_args()
    py = sys.executable
    work = tempfile.mkdtemp(prefix='mmmim-e2e-')
    data = args.data_dir or osp.join(work, 'images')
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    from data_throughput import write_jpegs
    if not osp.isdir(data) or not os.listdir(data):
        print(f'writing {args.images} JPEGs to {data}', flush=True)
        write_jpegs(data, args.images, (375, 500), noise=10.0)
    configs = {name: osp.join(ROOT, cfg) for name, (cfg, _) in PATHS.items()}
    if args.tiny:  # the same configs with a 1-layer, 32-wide model
        for name, cfg in configs.items():
            configs[name] = osp.join(work, f'tiny_{name}.py')
            with open(configs[name], 'w') as f:
                f.write(TINY.format(base=cfg))
    results = dict(device=args.device, batch_size=args.batch_size, workers=args.workers,
                   images=args.images, paths={})

    bench = run([py, 'tools/benchmark.py', configs['cpu'], '--batch-size',
                 str(args.batch_size), '--amp', 'bf16', '--device', args.device,
                 '--steps', '5'], 'synthetic step rate')
    rate = float(re.search(r'mmmim:\s+[\d.]+ ms/step\s+([\d.]+) img/s', bench).group(1))
    results['step_img_s'] = rate
    for name in args.paths:
        config, pipeline = configs[name], PATHS[name][1]
        out = osp.join(work, f'{name}.json')
        run([py, TOOL, config, '--data', data, '--pipeline', pipeline, '--amp',
             '--batch-size', str(args.batch_size), '--workers', str(args.workers),
             '--iters', str(args.iters), '--json', out,
             '--work-dir', osp.join(work, name)],
            f'{name}: training from files')
        with open(out) as f:
            train = json.load(f)
        out = osp.join(work, f'{name}_loader.json')
        run([py, TOOL, config, '--loader', '--data', data, '--pipeline', pipeline,
             '--workers', '1', '--batch-size', str(min(args.batch_size, 64)), '--batches', '4',
             '--rounds', '2', '--device', args.device, '--json', out], f'{name}: loader alone')
        with open(out) as f:
            loader = json.load(f)
        per_worker = next(r['img_s_per_worker'] for r in loader if r['workers'] == 1)
        results['paths'][name] = dict(sustained_img_s=train['sustained_img_s'],
                                      share_of_step=train['sustained_img_s'] / rate,
                                      img_s_per_worker=per_worker,
                                      cores_per_gpu=rate / per_worker)
    print(f'\nstep rate on a synthetic batch: {rate:.0f} img/s (batch {args.batch_size}, '
          f'bf16, {args.device}); {args.workers} workers per path; {args.images} JPEGs')
    print('| path | sustained img/s | share of step rate | img/s per worker | '
          'cores per GPU at the step rate |')
    print('| --- | --- | --- | --- | --- |')
    for name, r in results['paths'].items():
        print(f'| {name} | {r["sustained_img_s"]:.0f} | {100 * r["share_of_step"]:.0f}% | '
              f'{r["img_s_per_worker"]:.0f} | {r["cores_per_gpu"]:.1f} |')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)


if __name__ == '__main__':
    main()

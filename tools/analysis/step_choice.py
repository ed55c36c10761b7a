"""Pick the GPU grid's compile mode from the step timings of ``STEP_COSTS=1 bash
tools/gpu_fmnist.sh`` (its ``step_*.log`` files, written by ``tools/benchmark.py``).

    python tools/analysis/step_choice.py gpu_out --steps mae=1584 recipe=11750

Each mode is timed on two steps: the MAE pre-training cell's and the full-label recipe's
fine-tune (the grid's most frequent step and its longest chain). For every mode whose two
runs both printed a timing, the estimate is ``warm-up + steps x median ms/step`` per step
kind, summed: the warm-up carries the compilation, which every stage of the grid pays
again when it starts. The fastest mode wins if its estimate is at least ``--min-gain``
(10%) below eager's; otherwise eager. The last line, ``compile choice: MODE``, is what
``tools/gpu_fmnist.sh`` hands to ``fmnist_benchmark.py --compile-blocks`` (``eager``: the
option left off). A mode whose run failed or was cut by its time limit is never chosen.
"""
import argparse
import os.path as osp
import re
import sys

# mode -> the step_<name>.log of each step kind (as tools/gpu_fmnist.sh names them); the
# first row of a log ('mmmim') is the config it times
LOGS = {
    'eager': dict(mae='crop', recipe='recipe'),
    'default': dict(mae='compiled', recipe='recipe-compiled'),
    'reduce-overhead': dict(mae='cudagraphs', recipe='recipe-cudagraphs'),
}
ROW = re.compile(r'^\s*mmmim:\s+([\d.]+) ms/step.*?warm-up step\(s\) ([\d.]+) s\)', re.M)


def read_step(path: str):
    """``(ms_per_step, warmup_s)`` of a tools/benchmark.py log's own config, or None."""
    if not osp.isfile(path):
        return None
    with open(path) as f:
        match = ROW.search(f.read())
    return (float(match.group(1)), float(match.group(2))) if match else None


def estimates(out_dir: str, steps: dict) -> dict:
    """mode -> estimated seconds (None where a run is missing or failed)."""
    result = {}
    for mode, logs in LOGS.items():
        total = 0.
        for kind, n in steps.items():
            timing = read_step(osp.join(out_dir, f'step_{logs[kind]}.log'))
            if timing is None:
                total = None
                break
            ms, warmup = timing
            total += warmup + n * ms / 1000
        result[mode] = total
    return result


def choose(est: dict, min_gain: float) -> str:
    eager = est.get('eager')
    timed = {m: t for m, t in est.items() if t is not None}
    if eager is None or not timed:
        return 'eager'
    best = min(timed, key=timed.get)
    return best if timed[best] <= (1 - min_gain) * eager else 'eager'


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('out_dir', help='the folder with the step_*.log files')
    parser.add_argument('--steps', nargs='+', default=['mae=1584', 'recipe=11750'],
                        metavar='KIND=N', help='steps of each kind in one estimate '
                        f'(kinds: {", ".join(LOGS["eager"])})')
    parser.add_argument('--min-gain', type=float, default=0.1,
                        help='the least saving (fraction of eager) that picks a compiled mode')
    args = parser.parse_args(argv)
    steps = {}
    for item in args.steps:
        kind, _, n = item.partition('=')
        if kind not in LOGS['eager'] or not n.isdigit():
            parser.error(f'--steps {item!r}: use KIND=N with KIND one of {list(LOGS["eager"])}')
        steps[kind] = int(n)
    est = estimates(args.out_dir, steps)
    what = ' + '.join(f'{n} {k} steps' for k, n in steps.items())
    for mode, t in est.items():
        print(f'  {mode:>16}: ' + (f'{t:.0f} s for {what}, warm-up included' if t is not None
                                   else 'no timing (a run failed or was cut)'))
    print(f'compile choice: {choose(est, args.min_gain)}')


if __name__ == '__main__':
    sys.exit(main())

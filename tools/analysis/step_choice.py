"""Pick the GPU grid's compile mode and the full-label recipe's batch from the step
timings of ``STEP_COSTS=1 bash tools/gpu_fmnist.sh`` (its ``step_*.log`` files, written by
``tools/benchmark.py``).

    python tools/analysis/step_choice.py gpu_out --steps mae=1584 recipe=11750 recipe1024=2950

Each choice is timed on two steps: the MAE pre-training cell's and the full-label recipe's
fine-tune (the grid's most frequent step and its longest chain). The choices are the
compile modes with the recipe at its batch of 256, and eager with the recipe at 1024 images
a step (``finetune-recipe_vit-mini-p4_b1024.py``: the same 50 epochs in a quarter of the
steps; only eager is timed at that batch, so it is not combined with a compiled mode). For
every choice whose runs all printed a timing, the estimate is ``warm-up + steps x median
ms/step`` per step kind, summed: the warm-up carries the compilation, which every stage of
the grid pays again when it starts. The fastest choice wins if its estimate is at least
``--min-gain`` (10%) below eager's at batch 256; otherwise that. The batch of 1024 is
printed but taken only with ``--allow-recipe-batch-1024``: it is not the same recipe (at
10 epochs on the CPU it showed no difference, with the lr scaled by sqrt(4) it lost 0.5
points, and its 50 epochs have not run; docs/benchmark.md, "The recipe at batch 1024"),
so trading it for time is the user's call. The last two lines,
``compile choice: MODE`` and ``recipe batch choice: N``, are what ``tools/gpu_fmnist.sh``
hands to ``fmnist_benchmark.py --compile-blocks`` (``eager``: the option left off) and
``--recipe-batch``. A choice whose run failed or was cut by its time limit is never taken.
"""
import argparse
import os.path as osp
import re
import sys


# (compile mode, recipe batch) -> the step_<name>.log of each step kind (as
# tools/gpu_fmnist.sh names them; BIG is its larger batch: 1024 on the GPU, 16 in its dry
# run); the first row of a log ('mmmim') is the config it times
def choices(big: int = 1024) -> dict:
    return {
        ('eager', 256): dict(mae='crop', recipe='recipe'),
        ('default', 256): dict(mae='compiled', recipe='recipe-compiled'),
        ('reduce-overhead', 256): dict(mae='cudagraphs', recipe='recipe-cudagraphs'),
        ('eager', 1024): dict(mae='crop', recipe1024=f'recipe-batch{big}'),
    }


STEP_KINDS = ('mae', 'recipe', 'recipe1024')
BASELINE = ('eager', 256)
ROW = re.compile(r'^\s*mmmim:\s+([\d.]+) ms/step.*?warm-up step\(s\) ([\d.]+) s\)', re.M)


def read_step(path: str):
    """``(ms_per_step, warmup_s)`` of a tools/benchmark.py log's own config, or None."""
    if not osp.isfile(path):
        return None
    with open(path) as f:
        match = ROW.search(f.read())
    return (float(match.group(1)), float(match.group(2))) if match else None


def estimates(out_dir: str, steps: dict, big: int = 1024) -> dict:
    """(mode, recipe batch) -> estimated seconds (None where a run is missing or failed)."""
    result = {}
    for choice, logs in choices(big).items():
        total = 0.
        for kind, log in logs.items():
            timing = read_step(osp.join(out_dir, f'step_{log}.log'))
            if timing is None:
                total = None
                break
            ms, warmup = timing
            total += warmup + steps[kind] * ms / 1000
        result[choice] = total
    return result


def choose(est: dict, min_gain: float, batches=(256, )) -> tuple:
    """The fastest timed choice among the recipe ``batches``, if it gains ``min_gain``."""
    base = est.get(BASELINE)
    timed = {c: t for c, t in est.items() if t is not None and c[1] in batches}
    if base is None or not timed:
        return BASELINE
    best = min(timed, key=timed.get)
    return best if timed[best] <= (1 - min_gain) * base else BASELINE


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('out_dir', help='the folder with the step_*.log files')
    parser.add_argument('--steps', nargs='+', default=['mae=1584', 'recipe=11750', 'recipe1024=2950'],
                        metavar='KIND=N', help='steps of each kind in one estimate (kinds: '
                        f'{", ".join(STEP_KINDS)}; recipe1024: the recipe at batch 1024)')
    parser.add_argument('--big-batch', type=int, default=1024,
                        help='the batch of the recipe-batch<N> log that times the batch-1024 '
                             'recipe (gpu_fmnist.sh\'s dry run: 16)')
    parser.add_argument('--allow-recipe-batch-1024', action='store_true',
                        help='also choose the recipe at batch 1024 where it is fastest (it '
                             'changes the recipe\'s result; see the module docstring)')
    parser.add_argument('--min-gain', type=float, default=0.1,
                        help='the least saving (fraction of eager at batch 256) that picks '
                             'another choice')
    args = parser.parse_args(argv)
    steps = {}
    for item in args.steps:
        kind, _, n = item.partition('=')
        if kind not in STEP_KINDS or not n.isdigit():
            parser.error(f'--steps {item!r}: use KIND=N with KIND one of {list(STEP_KINDS)}')
        steps[kind] = int(n)
    missing = [k for k in STEP_KINDS if k not in steps]
    if missing:
        parser.error(f'--steps: give every kind a count; missing {missing}')
    est = estimates(args.out_dir, steps, args.big_batch)
    for (mode, batch), t in est.items():
        what = ' + '.join(f'{steps[k]} {k} steps' for k in choices(args.big_batch)[mode, batch])
        print(f'  {mode:>16}, recipe batch {batch:>4}: '
              + (f'{t:.0f} s for {what}, warm-up included' if t is not None
                 else 'no timing (a run failed or was cut)'))
    mode, batch = choose(est, args.min_gain,
                         (256, 1024) if args.allow_recipe_batch_1024 else (256, ))
    print(f'compile choice: {mode}')
    print(f'recipe batch choice: {batch}')


if __name__ == '__main__':
    sys.exit(main())

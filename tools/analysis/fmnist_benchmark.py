"""Fashion-MNIST benchmark of the pre-training methods: equal compute, frozen and low-label
protocols, seeds; one command for a table, a JSON file and plots (docs/benchmark.md).

Every run is a checked-in config under configs/fashion_mnist/benchmark/<grid>/ that
``tools/train.py`` runs on its own; this tool writes those configs (``--write-configs``),
schedules them per seed, caches each finished stage, and gathers the results:

* pre-training cells (MAE, EMAE, SBAM, SBAM + AMR, GAN-MAE): every method gets the same
  budget of counted training FLOPs, ``max_iters = round(budget / FLOPs per iteration)``;
  the FLOPs of one iteration are counted once per config with ``torch.utils.flop_counter``
  (``tools/benchmark.py``'s count) on the first 32 training images, times 256 / 32; the
  lr schedule (and GAN-MAE's adversarial warm-up) keep the shape of the method's config,
  scaled from its epochs to the cell's iterations;
* at the end of each, ``LinearProbeHook`` makes one frozen feature pass over the 60k/10k
  images and reports kNN top-1 (k=20, cosine, exp(sim/0.07) votes), and linear probes on
  1%, 10% and 100% of the training labels (fixed class-balanced subsets, seed 0);
* ``finetune-10pct.py``: end-to-end fine-tune on the 10% subset from each encoder and
  from random init (same epochs);
* ``random-init.py``: the frozen protocols on an untrained encoder (0 iterations);
* ``raw-pixels.py``: the frozen protocols on the pixels themselves (no encoder): the
  baseline a representation has to beat;
* ``supervised.py``: the fine-tune recipe from scratch on all labels for the FLOPs of a
  pre-training cell plus its 10% fine-tune (equal total compute);
* ``mae_equal-epochs.py``: MAE for as many iterations as EMAE's cell (equal epochs,
  the papers' axis, second table);
* GPU grid only: the full-label fine-tune recipe (configs/fashion_mnist/benchmark/
  finetune-recipe_vit-mini-p4.py) from the main job's MAE pre-trained 16 epochs
  (mae_vit-mini-p4_16e.py) and from scratch, 2 seeds each.

    python tools/analysis/fmnist_benchmark.py                  # the CPU grid, 2 seeds
    python tools/analysis/fmnist_benchmark.py --device cuda    # the GPU grid, 3 seeds
    python tools/analysis/fmnist_benchmark.py --quick          # smoke run, minutes
    python tools/analysis/fmnist_benchmark.py --write-configs  # after a config change
    python tools/analysis/fmnist_benchmark.py --measure-costs  # the cost model's inputs

Rerunning the command continues where it stopped (each finished stage is cached in the
work dir as result.json). ``--jobs N`` runs N stages at once (a stage waits for the encoder
it fine-tunes): one cell of this size leaves a GPU mostly idle, so N processes share it.
On CUDA they need MPS, which ``--mps`` (the default there) starts for the run: on an H200
four MAE cells at once ran at 140-185 ms per iteration each without MPS, against 40 ms
alone, and at 46-64 ms each under MPS (docs/benchmark.md, "On a GPU"). On CUDA
``--phased`` is the default too: every encoder is pre-trained before any fine-tune starts,
except the full-label recipe's chain, the critical path, which never waits.
``--time-limit S`` starts no stage after S seconds and stops the running ones at S, then
writes the report from the finished stages (rerun to continue). ``--quick`` shrinks every
stage (data, iterations, epochs): its accuracies mean nothing.
"""
import argparse
import copy
import glob
import importlib.util
import json
import math
import os
import os.path as osp
import platform
import pprint
import statistics
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

from mmengine.config import Config  # noqa: E402

CONFIG_DIR = osp.join(ROOT, 'configs', 'fashion_mnist')
BENCH_DIR = osp.join(CONFIG_DIR, 'benchmark')
FINETUNE_CONFIG = osp.join(CONFIG_DIR, 'finetune_vit-mini-p4.py')
RECIPE_CONFIG = osp.join(BENCH_DIR, 'finetune-recipe_vit-mini-p4.py')
# --recipe-batch -> the recipe's config: the same 50 epochs at 1024 images a step take a
# quarter of the steps (for a GPU, if a step of this model costs about the same there at
# either batch). At 10 epochs on the CPU it showed no difference; the 50 epochs have not
# run at 1024 (docs/benchmark.md, "The recipe at batch 1024"), so 256 stays the default.
RECIPE_CONFIGS = {256: RECIPE_CONFIG,
                  1024: osp.join(BENCH_DIR, 'finetune-recipe_vit-mini-p4_b1024.py')}
MAIN_JOB_CONFIG = osp.join(CONFIG_DIR, 'mae_vit-mini-p4_4e.py')
# the recipe's pre-trained arm: the main job's MAE for 16 epochs (on the CPU, with the
# 10-epoch recipe, 16 pre-training epochs gave +2.2 points over 4; README)
RECIPE_PRETRAIN_CONFIG = osp.join(CONFIG_DIR, 'mae_vit-mini-p4_16e.py')
# method -> its Fashion-MNIST config (exact names: the GAN-MAE variants are not rows)
METHODS = {
    'mae': 'mae_vit-mini-p4_4e.py',
    'emae': 'emae_vit-mini-p4_4e.py',
    'sbam': 'sbam_vit-mini-p4_4e.py',
    'sbam-amr': 'sbam-amr_vit-mini-p4_4e.py',
    'gan-mae': 'gan-mae_vit-mini-p4_4e.py',
}
LABELS = {'mae': 'MAE', 'emae': 'EMAE', 'sbam': 'SBAM', 'sbam-amr': 'SBAM + AMR',
          'gan-mae': 'GAN-MAE', 'random-init': 'random init',
          'raw-pixels': 'raw pixels (no encoder)',
          'supervised': 'supervised from scratch', 'mae_equal-epochs': 'MAE'}
N_TRAIN, BATCH, COUNT_BATCH = 60000, 256, 32
# The image grid of the benchmark cells: the 28x28 images unpadded with 7x7 patches
# (4x4 = 16 patches; K = 4 EMAE views of 4 patches): a quarter of the main job's tokens,
# chosen from the measured costs (docs/benchmark.md: the 64-patch main-job grid's feature
# pass alone would take ~6 min per cell on the AVX2 CPU).
GRID_MODEL = dict(img_size=28, patch_size=7, mean=[72.94], std=[90.02])
# Budgets (counted training FLOPs per pre-training cell), seeds and fine-tune epochs.
GRIDS = {
    'cpu': dict(budget_tflop=5.0, seeds=2, finetune_epochs=10, recipe=False),
    'gpu': dict(budget_tflop=24.0, seeds=3, finetune_epochs=15, recipe=True, recipe_seeds=2),
}
PROTOCOL = dict(knn=dict(k=20, temperature=0.07), label_fractions=(0.01, 0.1, 1.0),
                finetune_fraction=0.1, subset_seed=0)
# --quick: a smoke run of every row and stage (the accuracies mean nothing): a few
# iterations per cell, a few hundred images for the feature pass and the probes, 1 seed, no
# equal-epochs duplicate of MAE. Each stage is a tools/train.py process (~10-15 s of imports).
QUICK = dict(iters=3, batch_size=64, train=512, probe_train=600, probe_test=300, test=300,
             finetune_fraction=0.01, finetune_epochs=1)


# ------------------------------------------------------------- FLOPs and cell configs
def _tools_benchmark():
    """tools/benchmark.py as a module: its ``Bench.flops`` is the FLOP count of every tool."""
    spec = importlib.util.spec_from_file_location('mmmim_tools_benchmark',
                                                  osp.join(ROOT, 'tools', 'benchmark.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def count_batch(data_root=None, pad_to=None) -> dict:
    """The first ``COUNT_BATCH`` training images as a collated batch: unpadded 28x28 (the
    benchmark's grid) unless ``pad_to`` is given (32: the main job's configs)."""
    from mmengine.dataset import default_collate
    from mmmim.datasets.fashion_mnist import DEFAULT_ROOT, FashionMNISTDataset
    ds = FashionMNISTDataset(data_root=data_root or DEFAULT_ROOT, split='train', pad_to=pad_to,
                             indices=COUNT_BATCH, pipeline=[dict(type='PackInputs')])
    return default_collate([ds[i] for i in range(len(ds))])


def iter_flops(model_cfg: dict, optim_wrapper_cfg: dict, batch: dict) -> float:
    """Training FLOPs (forward + backward, fp32 count) of one 256-image iteration:
    ``tools/benchmark.py``'s count on ``batch`` (the first 32 training images) x 256/32."""
    import torch
    from mmengine.registry import DefaultScope

    import mmmim.engine  # noqa: F401
    import mmmim.models  # noqa: F401
    from mmmim.registry import MODELS
    DefaultScope.get_instance(f'fmnist-benchmark-{time.time_ns()}', scope_name='mmmim')
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(model_cfg))
    bench = _tools_benchmark().Bench('count', model, copy.deepcopy(optim_wrapper_cfg),
                                     copy.deepcopy(batch), 'cpu', False)
    return bench.flops() * BATCH / len(batch['inputs'])


def grid_model(model_cfg: dict, finetune=False) -> dict:
    """The benchmark's image grid on a config's model (28x28 unpadded, 7x7 patches)."""
    cfg = copy.deepcopy(model_cfg)
    cfg['data_preprocessor'].update(mean=GRID_MODEL['mean'], std=GRID_MODEL['std'])
    cfg['backbone'].update(img_size=GRID_MODEL['img_size'], patch_size=GRID_MODEL['patch_size'])
    if finetune:
        cfg['backbone']['init_cfg'] = None
    return cfg


def measure_iter_flops(data_root=None) -> dict:
    """FLOPs per 256-image iteration of every method's cell and of the classifier."""
    batch = count_batch(data_root)
    out = {}
    for method, name in METHODS.items():
        cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
        # (GAN-MAE: Bench counts the steady-state step, after the adversarial warm-up)
        out[method] = iter_flops(grid_model(cfg.model.to_dict()), cfg.optim_wrapper.to_dict(),
                                 batch)
    ft = Config.fromfile(FINETUNE_CONFIG)
    out['classifier'] = iter_flops(grid_model(ft.model.to_dict(), finetune=True),
                                   ft.optim_wrapper.to_dict(), batch)
    return out


def finetune_iters(grid: str) -> int:
    """Iterations of the grid's 10% fine-tune: epochs x ceil(6000 / 256)."""
    return GRIDS[grid]['finetune_epochs'] * math.ceil(PROTOCOL['finetune_fraction'] * N_TRAIN / BATCH)


def cell_plan(grid: str, flops: dict) -> dict:
    """The iterations of every cell of ``grid`` from the FLOP counts (the documented
    formulas): pre-training ``round(budget / flops[method])``; MAE at equal epochs gets
    EMAE's iterations; the supervised baseline ``round((budget + F_ft) / flops[classifier])``
    where ``F_ft`` is the FLOPs of the 10% fine-tune (epochs x ceil(6000 / 256) iterations)."""
    g = GRIDS[grid]
    budget = g['budget_tflop'] * 1e12
    iters = {m: int(round(budget / flops[m])) for m in METHODS}
    iters['mae_equal-epochs'] = iters['emae']
    ft_iters = finetune_iters(grid)
    iters['supervised'] = int(round((budget + ft_iters * flops['classifier']) / flops['classifier']))
    return dict(iters=iters, finetune_iters=ft_iters, budget_tflop=g['budget_tflop'],
                gflop={k: round(v / 1e9, 2) for k, v in flops.items()})


def _scale_schedule(schedulers, old_epochs, iters):
    """An epoch-based schedule moved to iterations in proportion (epoch e -> e / old *
    iters), so a cell keeps its method's schedule shape (warm-up share, cosine)."""
    if isinstance(schedulers, dict) and 'type' not in schedulers:  # one list per optimizer
        return {k: _scale_schedule(v, old_epochs, iters) for k, v in schedulers.items()}
    out = []
    for s in ([schedulers] if isinstance(schedulers, dict) else schedulers):
        s = dict(s)
        if s.get('by_epoch', True):
            begin = int(round(s.get('begin', 0) / old_epochs * iters))
            end = int(round(s.get('end', old_epochs) / old_epochs * iters))
            s.update(by_epoch=False, begin=begin, end=end)
            s.pop('convert_to_iter_based', None)
            if 'T_max' in s:
                s['T_max'] = end - begin
        out.append(s)
    return out


def _py(name, value) -> str:
    return f'{name} = {pprint.pformat(value, width=92, sort_dicts=False)}\n'


HEADER = ('# Generated by `python tools/analysis/fmnist_benchmark.py --write-configs` from {base}\n'
          '# and the grid constants in that tool (tests/test_fmnist_benchmark.py checks it is\n'
          '# up to date: rerun the command after changing either). A cell of the Fashion-MNIST\n'
          '# benchmark, docs/benchmark.md. {what}\n'
          '#   python tools/train.py {path} --cfg-options randomness.seed=1\n')
# The grid block shared by every pre-training cell of both grids (written once, here): its
# cells take the values as ``_base_.grid.<name>`` (mmengine's Python-syntax reference to a
# base variable). mmengine refuses a key defined by two files of one ``_base_`` list, so
# the block is one ``grid`` dict beside the method config's keys, not top-level overrides.
GRID_FILE = 'configs/fashion_mnist/benchmark/grid_28px-p7.py'


def render_grid_block() -> str:
    """The grid block (``GRID_FILE``): the 28x28 / 7x7 model and data, the frozen protocols
    at the end of a cell, the iteration-based loop's hooks, from the MAE config's data."""
    cfg = Config.fromfile(osp.join(CONFIG_DIR, METHODS['mae']))
    text = ('# Generated by `python tools/analysis/fmnist_benchmark.py --write-configs` from the\n'
            '# grid constants in that tool (tests/test_fmnist_benchmark.py checks it is up to date).\n'
            '# The grid block of the Fashion-MNIST benchmark (docs/benchmark.md), shared by the\n'
            '# pre-training cells of both grids: the 28x28 images unpadded with 7x7 patches, the\n'
            '# frozen protocols at the end of a cell (kNN, linear probes on 1/10/100% of the labels)\n'
            '# and the iteration-based loop. Not a config to run: a cell lists it in its _base_\n'
            '# beside its method config and takes the values as _base_.grid.<name>.\n')
    pipeline = _grid_pipeline(cfg)
    probe_train, probe_test = _probe_datasets(cfg)
    text += _py('__probe_train', probe_train) + _py('__probe_test', probe_test)
    grid = dict(
        model=dict(data_preprocessor=dict(mean=GRID_MODEL['mean'], std=GRID_MODEL['std']),
                   backbone=dict(img_size=GRID_MODEL['img_size'],
                                 patch_size=GRID_MODEL['patch_size'])),
        train_dataloader=dict(dataset=dict(pad_to=None, pipeline=pipeline)),
        probe_train='PROBE_TRAIN', probe_test='PROBE_TEST',
        probe_hook=dict(type='LinearProbeHook', train_dataset='PROBE_TRAIN',
                        test_dataset='PROBE_TEST', knn=PROTOCOL['knn'],
                        label_fractions=PROTOCOL['label_fractions'],
                        subset_seed=PROTOCOL['subset_seed']),
        train_cfg=dict(_delete_=True, type='IterBasedTrainLoop'),
        logger=dict(interval=50), checkpoint=dict(by_epoch=False, max_keep_ckpts=1),
        log_processor=dict(by_epoch=False),
        # the gpu cells': the crop and flip in the data preprocessor, the workers only pack
        device_crop=_on_device_crop(pipeline))
    return text + _py('grid', grid).replace("'PROBE_TRAIN'", '__probe_train').replace(
        "'PROBE_TEST'", '__probe_test')


def _grid_pipeline(cfg=None) -> list:
    """The grid's training pipeline: the MAE config's, its 32x32 sizes set to the grid's."""
    cfg = cfg or Config.fromfile(osp.join(CONFIG_DIR, METHODS['mae']))
    pipeline = []
    for t in cfg.train_dataloader.dataset.pipeline:
        t = t.to_dict()
        if t.get('scale') == 32 or t.get('crop_size') == 32:
            t.update({k: GRID_MODEL['img_size'] for k in ('scale', 'crop_size') if k in t})
        pipeline.append(t)
    return pipeline


def _probe_datasets(cfg):
    return [dict(type='FashionMNISTDataset', data_root=cfg.data_root, split=split, pad_to=None,
                 pipeline=[dict(type='PackInputs')]) for split in ('train', 'test')]


def _budget(name, iters) -> str:
    """What ties a cell to its iterations: the loop, the checkpoint at the end."""
    return (_py(name, iters) + f'train_cfg = dict(max_iters={name})\n'
            f'default_hooks = dict(checkpoint=dict(interval={name}))\n')


def _rescheduled(milestones) -> str:
    """``param_scheduler`` of a cell that inherits its schedule's shape from its ``_base_``
    and states only the milestones: ``milestones`` is a list of ``{key: source}`` per
    scheduler, or ``{optimizer: such a list}``."""
    def one(ref, items):
        parts = [f'dict({ref}[{i}], ' + ', '.join(f'{k}={v}' for k, v in m.items()) + ')'
                 for i, m in enumerate(items)]
        if sum(len(p) + 2 for p in parts) < 100:  # one line
            return '[' + ', '.join(parts) + ']'
        return '[' + ',\n    '.join(
            f'dict({ref}[{i}], ' + ', '.join(f'{k}={v}' for k, v in m.items()) + ')'
            for i, m in enumerate(items)) + ']'
    if isinstance(milestones, dict):
        return 'param_scheduler = dict(\n    ' + ',\n    '.join(
            f'{k}=' + one(f'_base_.param_scheduler.{k}', v) for k, v in milestones.items()) + ')\n'
    return 'param_scheduler = ' + one('_base_.param_scheduler', milestones) + '\n'


def _milestones(sched):
    """The begin / end (/ T_max) of an iteration-based schedule, for ``_rescheduled``."""
    if isinstance(sched, dict):
        return {k: _milestones(v) for k, v in sched.items() if k != '_delete_'}
    return [{k: s[k] for k in ('begin', 'end', 'T_max') if k in s and (k, s[k]) != ('begin', 0)}
            for s in sched]


def _merged_groups(optim_wrapper) -> str:
    """The gpu cells' optimizer groups: one per setting instead of one per parameter, the
    same update bit for bit in fewer kernel launches (each launch costs about as much as
    a small kernel's work on a GPU; docs/benchmark.md)."""
    merged = dict(constructor='MergedGroupsOptimWrapperConstructor')
    if 'optimizer' not in optim_wrapper:  # GAN-MAE: one wrapper per role
        merged = {role: merged for role in optim_wrapper
                  if role not in ('constructor', 'paramwise_cfg')}
    return ('# one optimizer group per setting, not per parameter: the same update, fewer launches\n'
            + _py('optim_wrapper', merged))


def _on_device_crop(pipeline) -> dict:
    """The gpu cells' augmentation: the grid pipeline's RandomResizedCrop and RandomFlip
    moved from the loader workers into ``BatchRandomResizedCropDataPreprocessor`` (one
    batched call on the model's device; the same box distribution). One loader worker
    spends ~20 ms of a Xeon core on a batch of 256 with the two transforms (~4 ms
    without), about as long as an MAE step on an H200, so the workers would bound how
    many cells share a GPU.
    Returns the preprocessor and the pipeline left to the workers (the grid block's
    ``device_crop``, which the gpu cells take)."""
    by_type = {t['type']: t for t in pipeline}
    if [t['type'] for t in pipeline] != ['RandomResizedCrop', 'RandomFlip', 'PackInputs'] or \
            by_type['RandomResizedCrop']['scale'] != GRID_MODEL['img_size'] or \
            by_type['RandomFlip'].get('direction', 'horizontal') != 'horizontal':
        raise ValueError(f'the grid pipeline {[t["type"] for t in pipeline]} is not '
                         f'RandomResizedCrop(scale={GRID_MODEL["img_size"]}) + horizontal '
                         f'RandomFlip + PackInputs; update _on_device_crop to move it')
    crop = by_type['RandomResizedCrop']
    preprocessor = dict(type='BatchRandomResizedCropDataPreprocessor',
                        crop_ratio_range=crop['crop_ratio_range'],
                        aspect_ratio_range=crop['aspect_ratio_range'],
                        interpolation=crop['interpolation'],
                        flip_prob=by_type['RandomFlip']['prob'])
    return dict(data_preprocessor=preprocessor, pipeline=[dict(type='PackInputs')])


def render_pretrain(grid: str, method: str, iters: int, gflop: float, budget_tflop: float,
                    name: str = None) -> str:
    """A pre-training cell. The cpu cell of a method is its method config + the grid block
    + its budget; every other cell (the gpu grid's, MAE at equal epochs) is the cpu cell
    of its method with another budget."""
    base = METHODS[method]
    cfg = Config.fromfile(osp.join(CONFIG_DIR, base))
    name = name or method
    path = f'configs/fashion_mnist/benchmark/{grid}/{name}.py'
    what = (f'{LABELS[method]} ({grid} grid): {iters} iterations x {gflop} GFLOP = '
            f'{iters * gflop / 1e3:.2f} TFLOP of training' +
            (f' (budget {budget_tflop} TFLOP).' if name == method else
             ', as many iterations as EMAE\'s cell (equal epochs).'))
    own = grid == 'cpu' and name == method
    parent = f'configs/fashion_mnist/{base}' if own else f'configs/fashion_mnist/benchmark/cpu/{method}.py'
    text = HEADER.format(base=parent, what=what, path=path)
    old_epochs = cfg.train_cfg.max_epochs
    model = {}
    if cfg.model.type == 'GANMAE':
        warm = cfg.model.get('adv_warmup_iters') or int(round(
            cfg.model.get('adv_warmup_epochs', 0) / old_epochs * iters))
        model = dict(adv_warmup_epochs=0, adv_warmup_iters=warm)
    if own:
        text += f"_base_ = ['../../{base}', '../{osp.basename(GRID_FILE)}']\n"
        text += ('model = dict(_base_.grid.model' + ''.join(f', {k}={v!r}' for k, v in model.items())
                 + ')\n' if model else 'model = _base_.grid.model\n')
        text += ('train_dataloader = _base_.grid.train_dataloader\n'
                 'probe_train, probe_test = _base_.grid.probe_train, _base_.grid.probe_test\n')
        hooks = [h.to_dict() for h in cfg.get('custom_hooks', [])
                 if h.type not in ('LinearProbeHook', 'ReconstructionVisHook')]
        text += 'custom_hooks = [' + ''.join(f'{h!r}, ' for h in hooks) + '_base_.grid.probe_hook]\n'
        text += ('log_processor = _base_.grid.log_processor\n'
                 'max_iters = ' + str(iters) + '\n'
                 'train_cfg = dict(_base_.grid.train_cfg, max_iters=max_iters)\n'
                 'default_hooks = dict(logger=_base_.grid.logger,\n'
                 '                     checkpoint=dict(_base_.grid.checkpoint, interval=max_iters))\n')
    else:
        text += f"_base_ = ['{'.' if grid == 'cpu' else '../cpu'}/{method}.py']\n"
        text += _budget('max_iters', iters)
        model = {'adv_warmup_iters': model['adv_warmup_iters']} if model else {}
        if grid == 'gpu':
            text += ('# RandomResizedCrop and flip on the model\'s device, a batch at a time, '
                     'not per image\n# in the loader workers (the same box distribution)\n'
                     'train_dataloader = dict(dataset=dict(pipeline=_base_.grid.device_crop.'
                     'pipeline))\n')
            model['data_preprocessor'] = '_base_.grid.device_crop.data_preprocessor'
        if model:  # values are Python source: numbers, or a reference to the grid block
            text += 'model = dict(' + ', '.join(f'{k}={v}' for k, v in model.items()) + ')\n'
        if grid == 'gpu':
            text += _merged_groups(cfg.optim_wrapper)
    sched = _scale_schedule(cfg.param_scheduler.to_dict() if hasattr(cfg.param_scheduler, 'to_dict')
                            else [s.to_dict() for s in cfg.param_scheduler], old_epochs, iters)
    if not own:
        return text + _rescheduled(_milestones(sched))
    if isinstance(sched, dict):
        sched = dict(_delete_=True, **sched)
    return text + _py('param_scheduler', sched)


def _cpu_cell_copy(name: str, grid: str, what: str) -> str:
    """A non-cpu grid's copy of a cpu cell that spends none of the grid's budget (random
    init, raw pixels): it inherits the cpu cell unchanged."""
    return HEADER.format(base=f'configs/fashion_mnist/benchmark/cpu/{name}.py',
                         path=f'configs/fashion_mnist/benchmark/{grid}/{name}.py',
                         what=what) + f"_base_ = ['../cpu/{name}.py']\n"


def render_random_init(grid: str) -> str:
    path = f'configs/fashion_mnist/benchmark/{grid}/random-init.py'
    what = 'Random init: the frozen protocols on an untrained encoder (0 iterations;\n# the seed draws the init).'
    if grid != 'cpu':  # 0 iterations: nothing of the grid's budget is left
        return _cpu_cell_copy('random-init', grid, what)
    text = HEADER.format(base=f'configs/fashion_mnist/benchmark/{grid}/mae.py', path=path, what=what)
    return text + ("_base_ = ['./mae.py']\nmax_iters = 0\n"
                   "train_cfg = dict(max_iters=max_iters)\nparam_scheduler = []\n"
                   "default_hooks = dict(checkpoint=dict(interval=1))\n")


def render_raw_pixels(grid: str) -> str:
    path = f'configs/fashion_mnist/benchmark/{grid}/raw-pixels.py'
    what = ('Raw pixels: the frozen protocols on the normalised 28x28 pixels themselves\n'
            '# (no encoder; deterministic, the seed changes nothing; no checkpoint is written).')
    if grid != 'cpu':
        return _cpu_cell_copy('raw-pixels', grid, what)
    text = HEADER.format(base=f'configs/fashion_mnist/benchmark/{grid}/random-init.py', path=path,
                         what=what)
    return text + ("_base_ = ['./random-init.py']\n"
                   "custom_hooks = [dict(_base_.grid.probe_hook, feature='pixels')]\n"
                   "default_hooks = dict(checkpoint=dict(save_last=False))\n")


def _finetune_schedule(epochs, grid) -> str:
    text = _py('max_epochs', epochs) + _py(
        'checkpoint', f'work_dirs/fmnist_benchmark/{grid}/mae/seed0/pretrain/last.pth')
    if grid != 'cpu':
        return text + _rescheduled([dict(end='max_epochs / 10'),
                                    dict(begin='max_epochs / 10', end='max_epochs')]) + \
            'train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)\n'
    return (text + "param_scheduler = [\n"
            "    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=max_epochs / 10,\n"
            "         convert_to_iter_based=True),\n"
            "    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=max_epochs / 10,\n"
            "         end=max_epochs, convert_to_iter_based=True),\n]\n"
            "train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)\n")


def render_finetune(grid: str) -> str:
    g = GRIDS[grid]
    epochs = g['finetune_epochs']
    path = f'configs/fashion_mnist/benchmark/{grid}/finetune-10pct.py'
    what = (f'End-to-end fine-tune on the fixed class-balanced\n# {100 * PROTOCOL["finetune_fraction"]:g}% of the training labels '
            f'(subset seed {PROTOCOL["subset_seed"]}), {epochs} epochs; the encoder comes\n'
            '# from model.backbone.init_cfg.checkpoint (None: random init). Random crop\n'
            '# (padding 2) + horizontal flip.')
    if grid != 'cpu':  # the cpu cell with this grid's epochs
        text = HEADER.format(base='configs/fashion_mnist/benchmark/cpu/finetune-10pct.py',
                             path=path, what=what)
        return (text + "_base_ = ['../cpu/finetune-10pct.py']\n" +
                _finetune_schedule(epochs, grid) +
                "model = dict(backbone=dict(init_cfg=dict(checkpoint=checkpoint)))\n"
                "default_hooks = dict(checkpoint=dict(interval=max_epochs))\n")
    text = HEADER.format(base='configs/fashion_mnist/finetune_vit-mini-p4.py', path=path, what=what)
    text += "_base_ = ['../../finetune_vit-mini-p4.py']\n" + _finetune_schedule(epochs, grid)
    text += _py('model', dict(
        data_preprocessor=dict(mean=GRID_MODEL['mean'], std=GRID_MODEL['std']),
        backbone=dict(img_size=GRID_MODEL['img_size'], patch_size=GRID_MODEL['patch_size'],
                      init_cfg=dict(type='Pretrained', checkpoint='CKPT', prefix='backbone.')))
                    ).replace("'CKPT'", 'checkpoint')
    text += _py('train_pipeline', [
        dict(type='RandomCrop', crop_size=GRID_MODEL['img_size'], padding=2),
        dict(type='RandomFlip', prob=0.5), dict(type='PackInputs')])
    text += ("train_dataloader = dict(dataset=dict(\n"
             f"    pad_to=None, label_fraction={PROTOCOL['finetune_fraction']}, "
             f"subset_seed={PROTOCOL['subset_seed']}, pipeline=train_pipeline))\n"
             "val_dataloader = dict(dataset=dict(pad_to=None))\n"
             "test_dataloader = val_dataloader\n"
             "default_hooks = dict(checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))\n")
    return text


def render_supervised(grid: str, iters: int, plan: dict) -> str:
    path = f'configs/fashion_mnist/benchmark/{grid}/supervised.py'
    own = grid == 'cpu'
    text = HEADER.format(
        base=f'configs/fashion_mnist/benchmark/{grid}/finetune-10pct.py' + (
            '' if own else '\n# and configs/fashion_mnist/benchmark/cpu/supervised.py'), path=path,
        what=(f'Supervised from scratch on all labels, {iters} iterations x\n'
              f'# {plan["gflop"]["classifier"]} GFLOP: the pre-training budget '
              f'({plan["budget_tflop"]} TFLOP) + the 10% fine-tune\n# '
              f'({plan["finetune_iters"]} iterations), i.e. the total compute of a pre-trained row.'))
    if not own:  # the cpu cell's recipe with this grid's iterations
        return text + ("_base_ = ['../cpu/supervised.py']\n"
                       "# this grid's fine-tune values (unused by a run from scratch by iterations)\n" +
                       _py('max_epochs', GRIDS[grid]['finetune_epochs']) +
                       _py('checkpoint', f'work_dirs/fmnist_benchmark/{grid}/mae/seed0/pretrain/last.pth') +
                       _py('max_iters', iters) +
                       'train_cfg = dict(max_iters=max_iters, val_interval=max_iters)\n'
                       'default_hooks = dict(checkpoint=dict(interval=max_iters))\n' +
                       _rescheduled([dict(end='max_iters // 10'),
                                     dict(begin='max_iters // 10', end='max_iters')]))
    return text + ("_base_ = ['./finetune-10pct.py']\n" + _py('max_iters', iters) +
                   "model = dict(backbone=dict(init_cfg=None))\n"
                   "train_dataloader = dict(dataset=dict(label_fraction=None))\n"
                   "param_scheduler = [\n"
                   "    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,\n"
                   "         end=max_iters // 10),\n"
                   "    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=False,\n"
                   "         begin=max_iters // 10, end=max_iters),\n]\n"
                   "train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,\n"
                   "                 val_interval=max_iters)\n"
                   "default_hooks = dict(checkpoint=dict(interval=max_iters, by_epoch=False))\n"
                   "log_processor = dict(by_epoch=False)\n")


def render_grid(grid: str, flops: dict) -> dict:
    """``{path relative to ROOT: text}`` of every cell config of ``grid`` (and of the grid
    block they share)."""
    plan = cell_plan(grid, flops)
    out = {GRID_FILE: render_grid_block()}
    rel = f'configs/fashion_mnist/benchmark/{grid}'
    for method in METHODS:
        out[f'{rel}/{method}.py'] = render_pretrain(
            grid, method, plan['iters'][method], plan['gflop'][method], plan['budget_tflop'])
    out[f'{rel}/mae_equal-epochs.py'] = render_pretrain(
        grid, 'mae', plan['iters']['mae_equal-epochs'], plan['gflop']['mae'],
        plan['budget_tflop'], name='mae_equal-epochs')
    out[f'{rel}/random-init.py'] = render_random_init(grid)
    out[f'{rel}/raw-pixels.py'] = render_raw_pixels(grid)
    out[f'{rel}/finetune-10pct.py'] = render_finetune(grid)
    out[f'{rel}/supervised.py'] = render_supervised(grid, plan['iters']['supervised'], plan)
    return out


def write_configs(data_root=None) -> dict:
    flops = measure_iter_flops(data_root)
    for grid in GRIDS:
        for rel, text in render_grid(grid, flops).items():
            os.makedirs(osp.dirname(osp.join(ROOT, rel)), exist_ok=True)
            with open(osp.join(ROOT, rel), 'w') as f:
                f.write(text)
            print('wrote', rel)
    print(json.dumps({g: cell_plan(g, flops) for g in GRIDS}, indent=2))
    return flops


# ----------------------------------------------------------------------- runs
def train(config: str, work_dir: str, amp: bool = False, cfg_options=None, env=None,
          deadline=None) -> dict:
    """tools/train.py in a subprocess; returns ok / seconds / log path. cfg_options:
    extra key=value strings for --cfg-options; env: extra environment variables;
    deadline: a ``time.time()`` at which the run is stopped (``stopped=True``)."""
    log = osp.join(work_dir, 'train.log')
    env = dict(os.environ, **(env or {}), PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get('PYTHONPATH')])))
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), config, '--work-dir', work_dir]
    if amp:
        cmd.append('--amp')
    if cfg_options:
        cmd += ['--cfg-options', *cfg_options]
    start, stopped = time.time(), False
    with open(log, 'w') as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        try:
            rc = proc.wait(None if deadline is None else max(deadline - time.time(), 0.))
        except subprocess.TimeoutExpired:
            stopped = True
            proc.terminate()
            try:
                rc = proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
    seconds = time.time() - start
    if stopped:
        print(f'  stopped at the time limit after {seconds:.0f} s: {log}', flush=True)
        return dict(ok=False, stopped=True, seconds=seconds, log=log)
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
    found = sorted(glob.glob(osp.join(work_dir, '*.pth')), key=osp.getmtime)
    return found[-1] if found else None


def _rescale_iters(cfg, new_iters: int) -> None:
    """Shrink an iteration-based cell (--quick): the loop, its schedule, GAN-MAE's warm-up."""
    old = cfg.train_cfg.max_iters
    cfg.train_cfg.max_iters = new_iters
    if cfg.train_cfg.get('val_interval'):
        cfg.train_cfg.val_interval = new_iters

    def fix(schedulers):
        if isinstance(schedulers, dict) and 'type' not in schedulers:
            return {k: fix(v) for k, v in schedulers.items()}
        for s in schedulers:
            s['begin'] = int(round(s.get('begin', 0) * new_iters / old))
            s['end'] = max(s['begin'] + 1, int(round(s.get('end', old) * new_iters / old)))
            if 'T_max' in s:
                s['T_max'] = s['end'] - s['begin']
        return schedulers

    if old and cfg.get('param_scheduler'):
        cfg.param_scheduler = fix(cfg.param_scheduler)
    if old and cfg.model.get('adv_warmup_iters'):
        cfg.model.adv_warmup_iters = int(round(cfg.model.adv_warmup_iters * new_iters / old))
    if new_iters:
        cfg.default_hooks.checkpoint.interval = new_iters


def compile_mode_of(stage: dict, args):
    """The --compile-blocks mode a stage runs with: None for the probe-only stages (random
    init, raw pixels) and without the option."""
    return getattr(args, 'compile_blocks', None) if stage['kind'] != 'random-init' else None


def prepare_stage(stage: dict, args, checkpoint=None, eager: bool = False) -> str:
    """The stage's checked-in config with its seed (and --data-root / --quick /
    --compile-blocks edits; ``eager`` leaves --compile-blocks out) dumped into its work
    dir: what tools/train.py runs."""
    cfg = Config.fromfile(stage['config'])
    cfg.randomness = dict(seed=stage['seed'], diff_rank_seed=True)
    kind = stage['kind']
    if kind == 'finetune' or kind == 'recipe':
        cfg.model.backbone.init_cfg = None if checkpoint is None else dict(
            type='Pretrained', checkpoint=checkpoint, prefix='backbone.')
    loaders = [cfg.get(k) for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    if args.data_root:
        cfg.data_root = args.data_root
        for loader in filter(None, loaders):
            loader.dataset.data_root = args.data_root
        for hook in cfg.get('custom_hooks', []):
            for key in ('train_dataset', 'test_dataset', 'dataset'):
                if key in hook:
                    hook[key]['data_root'] = args.data_root
    compile_mode = None if eager else compile_mode_of(stage, args)
    if compile_mode:
        from mmmim.utils.benchmark import set_compile_blocks
        set_compile_blocks(cfg.model, compile_mode, '--compile-blocks')
    workers = getattr(args, 'loader_workers', None)
    if workers is not None:  # --loader-workers (on CUDA by default)
        cfg.train_dataloader.num_workers = workers
        cfg.train_dataloader.persistent_workers = workers > 0
    if args.quick:
        for loader in filter(None, loaders):
            loader.batch_size = QUICK['batch_size']
            if loader.dataset.get('split') == 'test':
                loader.dataset.indices = QUICK['test']
        if kind in ('pretrain', 'random-init', 'supervised'):  # iteration-based
            if kind != 'supervised':
                cfg.train_dataloader.dataset.indices = QUICK['train']
            else:
                cfg.train_dataloader.dataset.label_fraction = QUICK['finetune_fraction']
            if cfg.train_cfg.get('max_epochs'):  # the recipe's epoch-based MAE: 1 epoch
                set_epochs(cfg, 1)
                cfg.default_hooks.checkpoint.interval = 1
            else:
                old = cfg.train_cfg.max_iters
                _rescale_iters(cfg, old and QUICK['iters'])
        else:
            cfg.train_dataloader.dataset.label_fraction = QUICK['finetune_fraction']
            set_epochs(cfg, QUICK['finetune_epochs'])
            cfg.train_cfg.val_interval = QUICK['finetune_epochs']
            cfg.default_hooks.checkpoint.interval = QUICK['finetune_epochs']
        for hook in cfg.get('custom_hooks', []):
            if hook.type == 'LinearProbeHook':
                hook.update(max_train=QUICK['probe_train'], max_test=QUICK['probe_test'])
            if hook.type == 'ReconstructionVisHook':
                hook.num_images = 2
        cfg.default_hooks.logger.interval = 1
    os.makedirs(stage['work_dir'], exist_ok=True)
    out = osp.join(stage['work_dir'], 'config.py')
    cfg.dump(out)
    return out


def run_stage(stage: dict, args, checkpoint=None) -> dict:
    """Run one stage (cached: a finished stage's result.json is read back, not rerun)."""
    done = osp.join(stage['work_dir'], 'result.json')
    if osp.exists(done):
        with open(done) as f:
            return dict(json.load(f), cached=True)
    def launch(eager=False):
        return train(prepare_stage(stage, args, checkpoint, eager=eager), stage['work_dir'],
                     args.amp, env=stage_env(args), deadline=getattr(args, 'deadline', None))

    run, fallback = launch(), None
    if compile_mode_of(stage, args) and not run['ok'] and not run.get('stopped'):
        # --compile-blocks: a stage that fails compiled runs again eager (the same
        # function), so that one mode's failure on one cell does not cost the grid a cell;
        # the report lists it, and the compiled run's log is kept beside the new one
        fallback = run['log'] + '.compiled'
        os.replace(run['log'], fallback)
        print(f'  {stage["name"]} seed {stage["seed"]} failed with compiled layers '
              f'({fallback}); running it again eager', flush=True)
        first_s = run['seconds']
        run = launch(eager=True)
        run['seconds'] += first_s
    result = dict(ok=run['ok'], seconds=round(run['seconds'], 1),
                  config=osp.relpath(stage['config'], ROOT), seed=stage['seed'])
    if fallback:
        result['compile_fallback'] = osp.relpath(fallback, ROOT)
    if not run['ok']:
        result['error'] = ('stopped at --time-limit' if run.get('stopped')
                           else f'failed, see {run["log"]}')
        return result
    if stage['kind'] in ('pretrain', 'random-init'):
        with open(osp.join(stage['work_dir'], 'linear_probe.json')) as f:
            probe = json.load(f)
        result.update(knn=probe.get('knn_top1'), probe=probe.get('probe_top1'),
                      linear_probe=probe['top1'], probe_s=probe['seconds'],
                      pretrain_s=round(run['seconds'] - probe['seconds'], 1),
                      iters=Config.fromfile(osp.join(stage['work_dir'], 'config.py')).train_cfg.get('max_iters'),
                      checkpoint=last_checkpoint(stage['work_dir']))
    else:
        result['top1'] = last_accuracy(stage['work_dir'])
    with open(done, 'w') as f:
        json.dump(result, f, indent=2)
    return result


def stage_env(args) -> dict:
    """Environment of a stage's process: ``--device cpu`` hides any GPU (mmengine would
    otherwise train on it); with ``--jobs N`` each process gets cores / N threads unless
    OMP_NUM_THREADS is set, so that N processes do not oversubscribe the cores."""
    env = {}
    if args.device == 'cpu':
        env['CUDA_VISIBLE_DEVICES'] = ''
    if args.jobs > 1 and 'OMP_NUM_THREADS' not in os.environ:
        env['OMP_NUM_THREADS'] = str(max(1, (os.cpu_count() or 1) // args.jobs))
    return env


def plan_stages(args) -> list:
    """Every stage of the grid in run order (seed-major: a stopped run has whole seeds)."""
    g = GRIDS[args.grid]
    cells = osp.join(BENCH_DIR, args.grid)
    stages = []

    def add(name, kind, config, seed, after=None):
        stages.append(dict(name=name, kind=kind, config=config, seed=seed, after=after,
                           work_dir=osp.abspath(osp.join(args.work_dir, name.split('/')[0],
                                                         f'seed{seed}', name.split('/')[-1]))))

    for seed in range(args.seeds):
        for method in args.methods:
            add(f'{method}/pretrain', 'pretrain', osp.join(cells, f'{method}.py'), seed)
            add(f'{method}/finetune-10pct', 'finetune', osp.join(cells, 'finetune-10pct.py'), seed,
                after=f'{method}/pretrain')
        if {'mae', 'emae'} <= set(args.methods) and not args.quick:  # --quick: no duplicate MAE
            add('mae_equal-epochs/pretrain', 'pretrain', osp.join(cells, 'mae_equal-epochs.py'), seed)
            add('mae_equal-epochs/finetune-10pct', 'finetune', osp.join(cells, 'finetune-10pct.py'),
                seed, after='mae_equal-epochs/pretrain')
        if args.baselines:
            add('random-init/pretrain', 'random-init', osp.join(cells, 'random-init.py'), seed)
            add('random-init/finetune-10pct', 'finetune', osp.join(cells, 'finetune-10pct.py'),
                seed, after='random-init/pretrain')
            add('supervised/train', 'supervised', osp.join(cells, 'supervised.py'), seed)
            add('raw-pixels/pretrain', 'random-init', osp.join(cells, 'raw-pixels.py'), seed)
    if g['recipe'] and args.baselines and args.recipe:
        config, leaf = RECIPE_CONFIGS[args.recipe_batch], recipe_stage(args)
        for seed in range(min(g['recipe_seeds'], args.seeds)):
            add('recipe-mae/pretrain', 'pretrain', RECIPE_PRETRAIN_CONFIG, seed)
            add(f'recipe-mae/{leaf}', 'recipe', config, seed, after='recipe-mae/pretrain')
            add(f'recipe-scratch/{leaf}', 'recipe', config, seed)
    for s in stages:
        s['cost'] = predicted_seconds(s, args)
    return stages


# Cost model (docs/benchmark.md): seconds of a stage on the 2-core AVX2 CPU in fp32 =
# start-up + counted training FLOPs / train_gflops + one frozen feature pass (with the kNN
# and the probes) per pre-training cell. Fitted to the stages of a full CPU grid run on a
# 2-core AMD EPYC AVX2 machine (docs/benchmark.md); --measure-costs times the inputs anew.
CLASSIFIER_GFLOP = 30.91  # the classifier's iteration (--write-configs prints it)
COST = dict(startup_s=22.0, train_gflops=33.0, feature_pass_s=95.0)


def predicted_seconds(stage: dict, args) -> float:
    """Predicted seconds of ``stage`` on the 2-core AVX2 CPU in fp32 (also the ETA's
    weights)."""
    g = GRIDS[args.grid]
    rate = COST['train_gflops'] * 1e9
    kind, here = stage['kind'], 0.
    if kind in ('pretrain', 'random-init'):
        if stage['config'] in (MAIN_JOB_CONFIG, RECIPE_PRETRAIN_CONFIG):
            flops = Config.fromfile(stage['config']).train_cfg.max_epochs * 235 * 53.5e9
        else:
            flops = 0 if kind == 'random-init' else g['budget_tflop'] * 1e12
            if 'equal-epochs' in stage['name']:
                flops *= 0.25
        # raw pixels: no encoder pass, only the kNN and the probes on 784-d pixels (seconds)
        here = flops / rate + (0. if stage['name'].startswith('raw-pixels')
                               else COST['feature_pass_s'])
    elif kind == 'finetune':
        here = finetune_iters(args.grid) * CLASSIFIER_GFLOP * 1e9 / rate
    elif kind == 'supervised':  # the pre-training budget + the 10% fine-tune's FLOPs
        here = (g['budget_tflop'] * 1e12 + finetune_iters(args.grid) * CLASSIFIER_GFLOP * 1e9) / rate
    else:  # the full-label recipe (GPU grid): 50 epochs of the main-job model
        here = 50 * 235 * 2 * 53.5e9 / rate
    return COST['startup_s'] + here


def fmt_eta(seconds: float) -> str:
    return f'{seconds / 60:.0f} min' if seconds >= 60 else f'{seconds:.0f} s'


# Stage kinds that pre-train or probe an encoder (--phased runs them all before the
# training stages). In the first H200 run they crawled beside the fine-tunes; the second run
# showed them as slow among themselves without MPS (docs/benchmark.md, "On a GPU").
ENCODER_KINDS = ('pretrain', 'random-init')


def recipe_stage(args) -> str:
    """The recipe fine-tune's stage name (its work dir): a batch other than 256 gets its own,
    so that its runs never take the batch-256 runs' cached results, or the reverse."""
    batch = args.recipe_batch
    return 'finetune' if batch == 256 else f'finetune-b{batch}'


def is_recipe(stage: dict) -> bool:
    """A stage of the full-label recipe's chains (the grid's critical path)."""
    return stage['name'].startswith('recipe-')


def run_order(stages: list, jobs: int, phased: bool = False) -> list:
    """Launch order: the plan's (seed-major, so a stopped sequential run has whole seeds);
    with ``jobs > 1`` the full-label recipe's stages first, the longest chain (pre-training
    then 50 epochs), so that the other slots fill around it. ``phased``: then every other
    encoder stage (pre-training, random init, raw pixels), then the other training stages
    (fine-tunes, supervised). The recipe's stages keep the head of the order in both: a
    recipe fine-tune takes the first free slot once its encoder is trained."""
    if jobs == 1:
        return list(stages)
    first = [s for s in stages if is_recipe(s)]
    rest = [s for s in stages if s not in first]
    if phased:
        rest = ([s for s in rest if s['kind'] in ENCODER_KINDS]
                + [s for s in rest if s['kind'] not in ENCODER_KINDS])
    return first + rest


def waits_for_phase(stage: dict, pending: list, running: list) -> bool:
    """With ``--phased``: a training stage starts only once no encoder stage is left to
    start or still running, so that the two kinds never share the device. The recipe's
    stages never wait: they are the grid's critical path (16 epochs of MAE, then 11750
    fine-tune steps), and holding its fine-tunes until every encoder is trained would
    add the whole encoder phase to it. So they share the device with the encoder phase."""
    return (not is_recipe(stage) and stage['kind'] not in ENCODER_KINDS
            and any(s['kind'] in ENCODER_KINDS for s in pending + running))


def run_grid(args) -> dict:
    """Run every stage, ``args.jobs`` at a time; a fine-tune starts once the encoder it
    starts from is written, and is skipped if that stage failed."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
    stages = plan_stages(args)
    results, start = {}, time.time()
    args.deadline = start + args.time_limit if args.time_limit else None
    total_pred = sum(s['cost'] for s in stages)
    phases = ' (pre-training first, then the fine-tunes)' if args.phased else ''
    print(f'== {len(stages)} stages, {args.seeds} seed(s), grid {args.grid}, {args.jobs} at a '
          f'time{phases}; '
          + ('a smoke run (--quick): the cost model describes the full stages, not these'
                      if args.quick else f'predicted on the AVX2 CPU in fp32, one at a time: '
                      f'{fmt_eta(total_pred)} (cost model, docs/benchmark.md)'), flush=True)
    key = lambda st: f'{st["name"]}@{st["seed"]}'  # noqa: E731
    index = {key(st): i for i, st in enumerate(stages)}
    pending, running = run_order(stages, args.jobs, args.phased), {}
    done_pred, measured = 0., 0.
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        while pending or running:
            for stage in list(pending):
                if len(running) >= args.jobs:
                    break
                k, checkpoint = key(stage), None
                if args.phased and waits_for_phase(stage, pending, list(running.values())):
                    continue
                if stage['after']:
                    dep = f'{stage["after"]}@{stage["seed"]}'
                    if dep not in results:
                        continue  # its encoder is still being trained
                    if not results[dep].get('ok'):
                        pending.remove(stage)
                        results[k] = dict(ok=False, error=f'{stage["after"]} did not finish')
                        continue
                    checkpoint = results[dep].get('checkpoint')
                pending.remove(stage)
                if args.deadline and time.time() >= args.deadline:
                    results[k] = dict(ok=False, error='not started: --time-limit reached')
                    continue
                print(f'[{index[k] + 1}/{len(stages)}] {stage["name"]} seed {stage["seed"]}: '
                      f'{osp.relpath(stage["config"], ROOT)}', flush=True)
                running[pool.submit(run_stage, stage, args, checkpoint)] = stage
            if not running:
                if pending:  # nothing runnable is left (cannot happen with a valid plan)
                    for stage in pending:
                        results[key(stage)] = dict(ok=False, error='never became runnable')
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                stage = running.pop(future)
                r = results[key(stage)] = future.result()
                summary = ', '.join(f'{n}={r[n]}' for n in ('knn', 'linear_probe', 'top1', 'seconds')
                                    if r.get(n) is not None)
                print(f'    {stage["name"]} seed {stage["seed"]}: '
                      f'{"cached: " if r.get("cached") else ""}{summary or r.get("error")}',
                      flush=True)
                done_pred += stage['cost']
                if not r.get('cached'):
                    measured += stage['cost']
            elapsed = time.time() - start
            scale = elapsed / measured if measured and elapsed > 1 else 1.
            print(f'== progress: {len(results)}/{len(stages)} stages, {fmt_eta(elapsed)} '
                  f'elapsed, ETA {fmt_eta((total_pred - done_pred) * scale)}', flush=True)
    return results


# -------------------------------------------------------------------- reports
def mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None, 0
    return (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None,
            len(values))


def cell(values, digits=2) -> str:
    m, s, n = mean_std(values)
    if m is None:
        return '—'
    return f'{m:.{digits}f}' + (f' ± {s:.{digits}f}' if s is not None else '') + \
        ('' if n > 1 else ' (1 seed)')


def verdict(a, b) -> str:
    """``a`` against MAE's ``b``: a difference is called only where it exceeds the spread
    (|mean difference| > std_a + std_b, i.e. the mean ± std ranges do not overlap)."""
    (ma, sa, na), (mb, sb, nb) = mean_std(a), mean_std(b)
    if ma is None or mb is None:
        return '—'
    if na < 2 or nb < 2:
        return f'{ma - mb:+.2f} (1 seed: not called)'
    diff = ma - mb
    return f'{diff:+.2f} ' + ('(better)' if diff > sa + sb else '(worse)' if -diff > sa + sb
                              else '(no difference)')


PROTOCOLS = [('kNN', lambda r: r.get('knn')),
             ('LP 1%', lambda r: (r.get('probe') or {}).get('0.01')),
             ('LP 10%', lambda r: (r.get('probe') or {}).get('0.1')),
             ('LP 100%', lambda r: r.get('linear_probe'))]


def method_label(method: str) -> str:
    if method == 'emae':
        cfg = Config.fromfile(osp.join(CONFIG_DIR, METHODS['emae']))
        k = cfg.model.masker.get('num_parts')
        return f'EMAE (K={k}, target={cfg.model.consistency.get("target", "pairs")})'
    return LABELS[method]


def gather(results: dict, name: str, stage: str, seeds: int) -> list:
    return [results.get(f'{name}/{stage}@{s}', {}) for s in range(seeds)]


def stage_minutes(results: dict) -> float:
    """Minutes the stages took when they ran (a cached stage keeps its first run's time)."""
    return sum(r.get('seconds') or 0. for r in results.values()) / 60


def portable(results: dict) -> dict:
    """The stage results with paths under the repository written relative to it, so the
    JSON names no particular machine's folders."""
    out = {}
    for key, r in results.items():
        r = dict(r)
        path = r.get('checkpoint')
        if path and osp.isabs(path) and not osp.relpath(path, ROOT).startswith('..'):
            r['checkpoint'] = osp.relpath(path, ROOT)
        out[key] = r
    return out


def write_report(path: str, results: dict, args, command: str, total_s: float) -> list:
    n = args.seeds
    rows = []
    lines = [f'# Fashion-MNIST benchmark ({args.grid} grid{", --quick: smoke run, accuracies mean nothing" if args.quick else ""})',
             '',
             f'Equal compute: every method pre-trains for {GRIDS[args.grid]["budget_tflop"]} TFLOP of '
             'counted training FLOPs (docs/benchmark.md). Mean ± std over '
             f'{n} seed(s). Top-1 (%) on the 10k test images'
             + (f' ({QUICK["probe_test"]} with --quick)' if args.quick else '') + '. kNN: k=20, cosine, '
             'exp(sim/0.07) votes; LP: linear probe on 1/10/100% of the labels (fixed '
             'class-balanced subsets); FT 10%: end-to-end fine-tune on the 10% subset.',
             '',
             '| method | iterations | pre-train time (min) | kNN | LP 1% | LP 10% | LP 100% | FT 10% |',
             '|---|---:|---:|---:|---:|---:|---:|---:|']
    names = list(args.methods) + (['random-init', 'raw-pixels'] if args.baselines else [])
    for name in names:
        pre = gather(results, name, 'pretrain', n)
        ft = gather(results, name, 'finetune-10pct', n)
        row = dict(method=name, label=method_label(name) if name in METHODS else LABELS[name],
                   iters=next((r.get('iters') for r in pre if r.get('iters') is not None), None),
                   pretrain_min=[r['pretrain_s'] / 60 for r in pre if r.get('pretrain_s') is not None],
                   finetune_10pct=[r.get('top1') for r in ft])
        for label, get in PROTOCOLS:
            row[label] = [get(r) for r in pre]
        rows.append(row)
        lines.append(f'| {row["label"]} | {row["iters"] if row["iters"] is not None else "—"} | '
                     f'{cell(row["pretrain_min"], 1)} | ' +
                     ' | '.join(cell(row[p]) for p, _ in PROTOCOLS) +
                     f' | {cell(row["finetune_10pct"])} |')
    if args.baselines:
        sup = [r.get('top1') for r in gather(results, 'supervised', 'train', n)]
        rows.append(dict(method='supervised', label=LABELS['supervised'], finetune_100pct=sup))
        lines += ['', f'Supervised from scratch on 100% of the labels, the total compute of a '
                  f'pre-trained row (configs/fashion_mnist/benchmark/{args.grid}/supervised.py): '
                  f'top-1 {cell(sup)}.']
    by_name = {r['method']: r for r in rows}
    if 'mae' in by_name and len(rows) > 1:
        lines += ['', '## Against MAE (difference of means; called only beyond the spread)', '',
                  '| method | ' + ' | '.join(p for p, _ in PROTOCOLS) + ' | FT 10% |',
                  '|---|' + '---:|' * (len(PROTOCOLS) + 1)]
        for r in rows:
            if r['method'] in ('mae', 'supervised'):
                continue
            lines.append(f'| {r["label"]} | ' + ' | '.join(
                verdict(r[p], by_name['mae'][p]) for p, _ in PROTOCOLS) +
                f' | {verdict(r["finetune_10pct"], by_name["mae"]["finetune_10pct"])} |')
    eq = gather(results, 'mae_equal-epochs', 'pretrain', n)
    if any(r.get('ok') for r in eq) and 'emae' in by_name:
        emae = gather(results, 'emae', 'pretrain', n)
        iters = next((r.get('iters') for r in emae if r.get('iters')), 0)
        lines += ['', f'## Equal epochs ({iters * BATCH / N_TRAIN:.2f} epochs = {iters} iterations)',
                  '', '| method | pre-train time (min) | ' + ' | '.join(p for p, _ in PROTOCOLS) + ' | FT 10% |',
                  '|---|---:|' + '---:|' * (len(PROTOCOLS) + 1)]
        eq_ft = [r.get('top1') for r in gather(results, 'mae_equal-epochs', 'finetune-10pct', n)]
        for label, rs, ft in (('MAE', eq, eq_ft),
                              (method_label('emae'), emae, by_name['emae']['finetune_10pct'])):
            lines.append(f'| {label} | {cell([r["pretrain_s"] / 60 for r in rs if r.get("pretrain_s")], 1)} | '
                         + ' | '.join(cell([get(r) for r in rs]) for _, get in PROTOCOLS) + f' | {cell(ft)} |')
        rows.append(dict(method='mae_equal-epochs', label='MAE (equal epochs)', finetune_10pct=eq_ft,
                         **{p: [get(r) for r in eq] for p, get in PROTOCOLS}))
    rec_n = min(GRIDS[args.grid].get('recipe_seeds', 0), n)
    runs = lambda vs: ', '.join('—' if v is None else f'{v:.2f}' for v in vs)  # noqa: E731
    rec = {arm: [r.get('top1') for r in gather(results, arm, recipe_stage(args), rec_n)]
           for arm in ('recipe-mae', 'recipe-scratch')}
    if any(v is not None for arm in rec.values() for v in arm):
        rec_cfg = Config.fromfile(RECIPE_CONFIGS[args.recipe_batch])
        rec_epochs = rec_cfg.train_cfg.max_epochs
        pre_epochs = Config.fromfile(RECIPE_PRETRAIN_CONFIG).train_cfg.max_epochs
        lines += ['', f'## Full-label fine-tune recipe ({rec_epochs} epochs, batch '
                  f'{rec_cfg.train_dataloader.batch_size}, main-job model)', '',
                  f'{osp.relpath(RECIPE_CONFIGS[args.recipe_batch], ROOT)}; seed s '
                  'pre-trains and fine-tunes with seed s.', '',
                  '| start | top-1 | runs |', '|---|---:|---|',
                  f'| MAE ({osp.basename(RECIPE_PRETRAIN_CONFIG)}, {pre_epochs} epochs) | '
                  f'{cell(rec["recipe-mae"])} | {runs(rec["recipe-mae"])} |',
                  f'| from scratch | {cell(rec["recipe-scratch"])} | {runs(rec["recipe-scratch"])} |',
                  '', f'MAE against from scratch: {verdict(rec["recipe-mae"], rec["recipe-scratch"])}.']
        rows.append(dict(method='recipe', label='full-label recipe',
                         mae=rec['recipe-mae'], scratch=rec['recipe-scratch']))
    failed = [k for k, r in results.items() if not r.get('ok')]
    lines += ['', f'Command: `{command}`', '',
              f'Hardware: {hardware(args.device, args.mps_on)}; precision: '
              f'{amp_precision(args.device) if args.amp else "fp32"}; '
              f'{args.jobs} stage(s) at a time'
              f'{", pre-training first (--phased)" if args.phased else ""}'
              f'{f", compiled layers ({args.compile_blocks})" if getattr(args, "compile_blocks", None) else ""}. '
              f'Whole run: {total_s / 60:.1f} min (cached stages not rerun); the stages\' own '
              f'time, cached ones included: {stage_minutes(results):.1f} min.']
    if failed:
        lines += ['', 'Failed stages: ' + ', '.join(failed)]
    fell_back = [k for k, r in results.items() if r.get('compile_fallback')]
    if fell_back:
        lines += ['', 'Failed with compiled layers, then ran eager: ' + ', '.join(fell_back)]
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return rows


def write_plot(path: str, rows: list, args) -> bool:
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        print('matplotlib is not installed: no plot (pip install matplotlib)')
        return False
    panels = [('kNN', 'kNN'), ('LP 10%', 'linear probe, 10% labels'), ('finetune_10pct', 'fine-tune, 10% labels')]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    for ax, (key, title) in zip(axes, panels):
        for r in rows:
            if key not in r or r['method'] == 'mae_equal-epochs':
                continue
            y_m, y_s, _ = mean_std(r[key])
            x_m, x_s, _ = mean_std(r.get('pretrain_min') or [0.])
            if y_m is None:
                continue
            ax.errorbar(x_m, y_m, yerr=y_s or 0, xerr=x_s or 0, fmt='o', capsize=3, label=r['label'])
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=.3)
        ax.set_xlabel('pre-training wall time (min)')
    axes[0].legend(fontsize=7)
    axes[0].set_ylabel('top-1 (%)')
    return finish_plot(fig, axes[1], path, 'pre-training wall time (min)', '',
                       'linear probe, 10% labels\n' f'Fashion-MNIST, equal compute ({GRIDS[args.grid]["budget_tflop"]} TFLOP)'
                       + (' [--quick]' if args.quick else ''), fontsize=10)


def amp_precision(device: str = 'cpu') -> str:
    """What ``tools/train.py --amp`` runs in on this CPU (or CUDA device), and why."""
    if device == 'cuda':
        return 'fp16 autocast with dynamic loss scaling (tools/train.py --amp on CUDA)'
    from mmmim.utils.precision import cpu_bf16_decision
    d = cpu_bf16_decision()
    return ('bf16 autocast' if d.fast else 'fp32') + f' (tools/train.py --amp; {d.reason})'


def hardware(device: str = 'cpu', mps=None) -> str:
    """The machine, for reports; on CUDA with MPS on or off (``mps``: as recorded during the
    run; None: whether a daemon answers now)."""
    from mmmim.utils.precision import describe_cpu
    out = f'{describe_cpu()}, Python {platform.python_version()}'
    if device == 'cuda':
        import torch
        out = (f'{torch.cuda.get_device_name(0)} (torch {torch.__version__}, CUDA '
               f'{torch.version.cuda}, MPS '
               f'{"on" if (mps_active() if mps is None else mps) else "off"}) with '
               f'{os.cpu_count()} CPU threads: {out}')
    return out


def mps_active() -> bool:
    """Whether a CUDA MPS control daemon answers where this process's children will look
    (``CUDA_MPS_PIPE_DIRECTORY``, else CUDA's default /tmp/nvidia-mps)."""
    import stat
    pipe = osp.join(os.environ.get('CUDA_MPS_PIPE_DIRECTORY') or '/tmp/nvidia-mps', 'control')
    try:
        return stat.S_ISFIFO(os.stat(pipe).st_mode)
    except OSError:
        return False


def concurrency_warning(args):
    """The warning for ``--device cuda --jobs N>1`` without MPS, else None: CUDA then
    time-slices the GPU between the stages' processes, and on an H200 four pre-training
    cells at once each ran 3.5-4.6x slower than one alone, less throughput than one at a
    time (docs/benchmark.md, "On a GPU")."""
    if args.device != 'cuda' or args.jobs == 1 or mps_active():
        return None
    return (f'warning: --jobs {args.jobs} on one GPU without CUDA MPS: the processes '
            f'time-slice the GPU and each runs several times slower (four MAE cells at once '
            f'on an H200: 140-185 ms per iteration each, 40 ms alone). Let the tool start '
            f'MPS (--mps, the default here; it needs nvidia-cuda-mps-control), start it '
            f'yourself (`nvidia-cuda-mps-control -d`), or use --jobs 1.')


MPS_SCRIPT = osp.join(ROOT, 'tools', 'gpu_mps.sh')


def start_mps():
    """Start a CUDA MPS daemon for the stages' processes with tools/gpu_mps.sh (the one
    place that knows how, also whether one already answers). Returns the folder of the
    daemon it started (for :func:`stop_mps`), or None: one already ran, or none could start
    and the run goes on without MPS."""
    out = subprocess.run(['bash', '-c', f'source "{MPS_SCRIPT}" && mps_start >&2 && '
                          'echo "${MPS_DIR:-}"'], capture_output=True, text=True)
    print(out.stderr.strip(), flush=True)
    mps_dir = out.stdout.strip()
    if out.returncode != 0 or not mps_dir:
        return None
    os.environ['CUDA_MPS_PIPE_DIRECTORY'] = osp.join(mps_dir, 'pipe')
    os.environ['CUDA_MPS_LOG_DIRECTORY'] = osp.join(mps_dir, 'log')
    return mps_dir


def stop_mps(mps_dir: str) -> None:
    """Stop the daemon :func:`start_mps` started and remove its folder."""
    subprocess.run(['bash', '-c', f'source "{MPS_SCRIPT}" && MPS_STARTED=1 && '
                    'MPS_DIR="$1" && mps_stop', '_', mps_dir])
    for key in ('CUDA_MPS_PIPE_DIRECTORY', 'CUDA_MPS_LOG_DIRECTORY'):
        os.environ.pop(key, None)


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


# ------------------------------------------------------------------ cost inputs
def measure_costs(args) -> dict:
    """The cost model's inputs on this machine, fp32: seconds per 256-image training step
    of every cell's model and of the main job's, and of a frozen feature pass per image.
    Run it with the AVX2 code path (docs/cpus.md) for the AVX2 projection."""
    import torch
    from mmengine.registry import DefaultScope

    from mmmim.evaluation import extract_features
    from mmmim.registry import DATASETS, MODELS
    bench = _tools_benchmark()
    DefaultScope.get_instance('fmnist-benchmark-costs', scope_name='mmmim')
    from mmengine.dataset import default_collate
    from mmmim.datasets.fashion_mnist import DEFAULT_ROOT, FashionMNISTDataset
    root = args.data_root or DEFAULT_ROOT
    def first_batch(**kw):
        ds = FashionMNISTDataset(data_root=root, indices=BATCH, pipeline=[dict(type='PackInputs')], **kw)
        return default_collate([ds[i] for i in range(len(ds))])

    batch28, batch32 = first_batch(pad_to=None), first_batch()
    out = dict(hardware=hardware(), capability=torch.backends.cpu.get_cpu_capability(),
               steps=args.cost_steps, step_s={}, gflop={})
    todo = [(m, grid_model(Config.fromfile(osp.join(CONFIG_DIR, f)).model.to_dict()),
             Config.fromfile(osp.join(CONFIG_DIR, f)).optim_wrapper.to_dict(), batch28)
            for m, f in METHODS.items() if m in args.methods]
    ft = Config.fromfile(FINETUNE_CONFIG)
    todo.append(('classifier', grid_model(ft.model.to_dict(), finetune=True),
                 ft.optim_wrapper.to_dict(), batch28))
    main = Config.fromfile(MAIN_JOB_CONFIG)
    todo.append(('main-job MAE (32px, 4x4 patches)', main.model.to_dict(),
                 main.optim_wrapper.to_dict(), batch32))
    for name, model_cfg, optim, batch in todo:  # (GAN-MAE: timed after its warm-up by Bench)
        torch.manual_seed(0)
        b = bench.Bench(name, MODELS.build(model_cfg), optim, batch, 'cpu', False)
        out['gflop'][name] = round(b.flops() / 1e9, 2)
        b.step(record=False)
        for _ in range(args.cost_steps):
            b.step()
        out['step_s'][name] = round(statistics.median(b.times), 3)
        print(f'{name}: {out["step_s"][name]} s per 256-image step, {out["gflop"][name]} GFLOP '
              f'({out["gflop"][name] / out["step_s"][name]:.1f} GFLOP/s)', flush=True)
        if name == 'mae':
            ds = DATASETS.build(dict(type='FashionMNISTDataset', data_root=root, pad_to=None,
                                     split='test', pipeline=[dict(type='PackInputs')]))
            t = time.perf_counter()
            extract_features(b.model, ds, max_items=args.cost_images, precision='fp32', progress=None)
            per = (time.perf_counter() - t) / args.cost_images
            out['feature_pass_70k_s'] = round(per * 70000, 1)
            print(f'frozen feature pass: {per * 1e3:.2f} ms per image, {per * 70000:.0f} s for '
                  '70k images', flush=True)
    print(json.dumps(out, indent=2))
    return out


# ----------------------------------------------------------------------- main
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu',
                        help='cpu: the CPU grid; cuda: the GPU grid (more compute, 3 seeds, '
                             'the full-label fine-tune recipe)')
    parser.add_argument('--grid', choices=list(GRIDS), default=None,
                        help='override the grid the device picks')
    parser.add_argument('--seeds', type=int, default=None, help='pre-training seeds (default: the grid\'s)')
    parser.add_argument('--methods', default=','.join(METHODS),
                        help=f'comma-separated subset of {",".join(METHODS)}')
    parser.add_argument('--work-dir', default=None,
                        help='default work_dirs/fmnist_benchmark/<grid>[_quick]')
    parser.add_argument('--data-root', default=None, help='Fashion-MNIST folder')
    parser.add_argument('--no-baselines', dest='baselines', action='store_false',
                        help='skip random init, raw pixels, supervised from scratch and the '
                             'full-label recipe')
    parser.add_argument('--no-recipe', dest='recipe', action='store_false',
                        help='skip the full-label fine-tune recipe of the GPU grid (hours on a '
                             'CPU: e.g. --grid gpu on a CPU)')
    parser.add_argument('--recipe-batch', type=int, choices=sorted(RECIPE_CONFIGS), default=256,
                        help='images per step of the full-label recipe (its 50 epochs either way; '
                             '1024: finetune-recipe_vit-mini-p4_b1024.py, a quarter of the steps, '
                             'no difference at 10 epochs on the CPU, not run at 50: '
                             'docs/benchmark.md, "The recipe at batch 1024")')
    parser.add_argument('--fp32', dest='amp', action='store_false',
                        help='fp32 everywhere (default: tools/train.py --amp: bf16 on a CPU with '
                             'native bf16, fp32 elsewhere, e.g. AVX2; fp16 on CUDA)')
    parser.add_argument('--quick', action='store_true', help='smoke run (minutes): tiny data, '
                        'iterations and epochs; 1 seed; the accuracies mean nothing')
    parser.add_argument('--write-configs', action='store_true',
                        help='count the FLOPs and write the cell configs, then stop')
    parser.add_argument('--measure-costs', action='store_true',
                        help='time the cost model\'s inputs on this machine (fp32), then stop')
    parser.add_argument('--jobs', type=int, default=1,
                        help='stages run at once (default 1). A GPU has room for several of '
                             'these small cells, but a pre-training stage beside a long '
                             'fine-tune can be starved (docs/benchmark.md, "On a GPU")')
    parser.add_argument('--phased', action=argparse.BooleanOptionalAction, default=None,
                        help='with --jobs > 1, run every pre-training stage (and random init, '
                             'raw pixels) before any fine-tune, so that the two kinds never '
                             'share the device; the full-label recipe\'s stages, the critical '
                             'path, never wait (default: on with --device cuda and --jobs > 1, '
                             'where pre-training beside fine-tunes was starved; off otherwise)')
    parser.add_argument('--mps', action=argparse.BooleanOptionalAction, default=None,
                        help='start CUDA MPS for the run (tools/gpu_mps.sh) unless a daemon '
                             'already answers, and stop it at the end (default: on with '
                             '--device cuda and --jobs > 1: without MPS the processes '
                             'time-slice the GPU and run slower together than one at a time)')
    parser.add_argument('--time-limit', type=float, default=None, metavar='SECONDS',
                        help='start no stage after SECONDS, stop the running ones then, and '
                             'report the finished stages (rerun the command to continue)')
    parser.add_argument('--loader-workers', type=int, default=None, metavar='N',
                        help='data-loading processes of each stage\'s training loader (default: '
                             'the configs\' 1 on a CPU; on CUDA cores / jobs - 1, at most 8: one '
                             'worker\'s per-image transforms take 30-40 ms per batch of 256 on '
                             'a Xeon core, as long as a whole MAE step on an H200. The gpu '
                             'grid\'s pre-training cells crop and flip on the device, so their '
                             'workers only pack the images, ~4 ms per batch)')
    parser.add_argument('--compile-blocks', choices=['default', 'reduce-overhead',
                                                     'max-autotune'], default=None,
                        help='torch.compile the transformer layers of every stage that trains '
                             '(compile_blocks on the MaskedViT and the MAE decoder; the same '
                             'function, other kernels): a step bound by launching kernels, '
                             'as these small cells are on a GPU, launches fewer. '
                             "'reduce-overhead' replays each compiled layer as a CUDA graph. "
                             'Each stage compiles when it starts (default: eager; '
                             '`STEP_COSTS=1 bash tools/gpu_fmnist.sh` times the modes)')
    parser.add_argument('--cost-steps', type=int, default=3)
    parser.add_argument('--cost-images', type=int, default=2000)
    args = parser.parse_args(argv)
    args.grid = args.grid or ('gpu' if args.device == 'cuda' else 'cpu')
    args.seeds = args.seeds or (1 if args.quick else GRIDS[args.grid]['seeds'])
    args.methods = [m.strip() for m in args.methods.split(',') if m.strip()]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        parser.error(f'unknown method(s) {unknown}; choose from {list(METHODS)}')
    if args.seeds < 1:
        parser.error('--seeds must be >= 1')
    if args.jobs < 1:
        parser.error('--jobs must be >= 1')
    if args.phased is None:
        args.phased = args.device == 'cuda' and args.jobs > 1
    if args.mps is None:
        args.mps = args.device == 'cuda' and args.jobs > 1
    args.mps_on = None  # main() records whether MPS answered during the run
    if args.loader_workers is None and args.device == 'cuda':
        args.loader_workers = min(8, max(1, (os.cpu_count() or 1) // args.jobs - 1))
    if args.loader_workers is not None and args.loader_workers < 0:
        parser.error('--loader-workers must be >= 0')
    if args.time_limit is not None and args.time_limit <= 0:
        parser.error('--time-limit must be a positive number of seconds')
    args.work_dir = args.work_dir or osp.join(
        'work_dirs', 'fmnist_benchmark', args.grid + ('_quick' if args.quick else ''))
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.write_configs:
        return write_configs(args.data_root)
    if args.measure_costs:
        return measure_costs(args)
    if args.device == 'cuda':
        import torch
        if not torch.cuda.is_available():
            raise SystemExit('--device cuda: no CUDA device is visible; run the CPU grid '
                             '(--device cpu) or check CUDA_VISIBLE_DEVICES')
    mps_dir = start_mps() if args.mps else None
    args.mps_on = mps_active()  # for the report, written after the daemon is stopped
    warning = concurrency_warning(args)
    if warning:
        print(warning, flush=True)
    command = 'python tools/analysis/fmnist_benchmark.py ' + ' '.join(
        sys.argv[1:] if argv is None else argv)
    os.makedirs(args.work_dir, exist_ok=True)
    start = time.time()
    try:
        results = run_grid(args)
    finally:
        if mps_dir:
            stop_mps(mps_dir)
    total = time.time() - start
    md = osp.join(args.work_dir, 'results.md')
    rows = write_report(md, results, args, command, total)
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(dict(rows=rows, stages=portable(results), args=vars(args),
                       hardware=hardware(args.device, args.mps_on),
                       grid=GRIDS[args.grid], protocol=PROTOCOL, total_s=round(total, 1)),
                  f, indent=2)
    write_plot(osp.join(args.work_dir, 'accuracy_vs_time.png'), rows, args)
    with open(md) as f:
        print(f.read())
    return rows


if __name__ == '__main__':
    main()

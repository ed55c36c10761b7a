"""tools/analysis/fmnist_benchmark.py: the checked-in benchmark cells match the documented
equal-compute formula, the schedules follow each cell's iterations, the fine-tune recipes
use the configured lrs / layer decay — without running any training."""
import os
import os.path as osp
from unittest import mock

import pytest
from mmengine.config import Config

from conftest import load_tool

bench = load_tool('tools/analysis/fmnist_benchmark.py')
DATA = '/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz'


def test_equal_compute_formula():
    flops = dict(mae=10e9, emae=40e9, sbam=10e9, **{'sbam-amr': 11e9}, **{'gan-mae': 37e9},
                 classifier=20e9)
    plan = bench.cell_plan('cpu', flops)
    budget = bench.GRIDS['cpu']['budget_tflop'] * 1e12
    for m in bench.METHODS:
        assert plan['iters'][m] == round(budget / flops[m])
        assert abs(plan['iters'][m] * flops[m] - budget) <= flops[m] / 2  # same FLOPs, to one step
    assert plan['iters']['mae_equal-epochs'] == plan['iters']['emae']
    ft = bench.GRIDS['cpu']['finetune_epochs'] * 24  # ceil(6000 / 256) = 24 per epoch
    assert plan['finetune_iters'] == ft
    assert plan['iters']['supervised'] == round((budget + ft * 20e9) / 20e9)


@pytest.mark.skipif(not osp.exists(DATA), reason='needs Fashion-MNIST')
def test_checked_in_cells_are_the_formula_applied_to_counted_flops():
    flops = bench.measure_iter_flops()
    for grid in bench.GRIDS:
        for rel, text in bench.render_grid(grid, flops).items():
            with open(osp.join(bench.ROOT, rel)) as f:
                assert f.read() == text, (f'{rel} is out of date: run python '
                                          'tools/analysis/fmnist_benchmark.py --write-configs')
    # EMAE and GAN-MAE steps cost several MAE steps; the budgets compensate
    assert 3 < flops['emae'] / flops['mae'] < 5 and 3 < flops['gan-mae'] / flops['mae'] < 5


@pytest.mark.parametrize('grid', list(bench.GRIDS))
def test_cells_schedule_their_own_iterations(grid):
    # the gpu cells inherit the cpu cells: only the budget may differ, and it must
    for method in bench.METHODS:
        cfg = Config.fromfile(osp.join(bench.BENCH_DIR, grid, f'{method}.py'))
        iters = cfg.train_cfg.max_iters
        assert cfg.train_cfg.type == 'IterBasedTrainLoop' and 'max_epochs' not in cfg.train_cfg
        scheds = cfg.param_scheduler
        lists = scheds.values() if isinstance(scheds, dict) else [scheds]
        for lst in lists:
            assert all(s['by_epoch'] is False for s in lst)
            assert lst[-1]['end'] == iters and lst[0]['begin'] == 0
            # the method config's shape: warm-up over 1 of its 4 epochs -> a quarter
            assert lst[0]['end'] == round(iters / 4)
        if method == 'gan-mae':
            assert cfg.model.adv_warmup_epochs == 0 and cfg.model.adv_warmup_iters == round(iters / 4)
            assert any(h.type == 'GANSchemeHook' for h in cfg.custom_hooks)
        probe = [h for h in cfg.custom_hooks if h.type == 'LinearProbeHook']
        assert len(probe) == 1 and probe[0].knn == dict(k=20, temperature=0.07)
        assert tuple(probe[0].label_fractions) == (0.01, 0.1, 1.0)
        assert cfg.model.backbone.patch_size == 7 and cfg.model.backbone.img_size == 28


@pytest.mark.parametrize('grid', list(bench.GRIDS))
def test_raw_pixel_cells_probe_the_pixels_with_the_method_cells_protocol(grid):
    raw = Config.fromfile(osp.join(bench.BENCH_DIR, grid, 'raw-pixels.py'))
    mae = Config.fromfile(osp.join(bench.BENCH_DIR, grid, 'mae.py'))
    assert raw.train_cfg.max_iters == 0
    (hook,) = [h for h in raw.custom_hooks if h.type == 'LinearProbeHook']
    (ref,) = [h for h in mae.custom_hooks if h.type == 'LinearProbeHook']
    assert hook.feature == 'pixels' and ref.get('feature', 'cls+avg') == 'cls+avg'
    assert dict(hook, feature=None) == dict(ref, feature=None)  # same data, subsets, kNN
    # the same normalisation (the gpu MAE cell's preprocessor also crops, in training only)
    norm = ('mean', 'std', 'to_rgb')
    assert [raw.model.data_preprocessor.get(k) for k in norm] == [
        mae.model.data_preprocessor.get(k) for k in norm]
    stages = bench.plan_stages(bench.parse_args(['--grid', grid, '--no-recipe']))
    assert [s['seed'] for s in stages if s['name'] == 'raw-pixels/pretrain'] == list(
        range(bench.GRIDS[grid]['seeds']))
    assert not any(s['kind'] == 'recipe' for s in stages)
    # no encoder: it writes no checkpoint and is predicted at start-up cost, below random init's
    assert raw.default_hooks.checkpoint.save_last is False
    cost = {s['name']: s['cost'] for s in stages if s['seed'] == 0}
    assert cost['raw-pixels/pretrain'] == bench.COST['startup_s']
    assert cost['random-init/pretrain'] == bench.COST['startup_s'] + bench.COST['feature_pass_s']


def test_results_json_names_checkpoints_relative_to_the_repository(tmp_path):
    inside = osp.join(bench.ROOT, 'work_dirs', 'x', 'iter_4.pth')
    outside = str(tmp_path / 'iter_4.pth')
    out = bench.portable({'a@0': dict(ok=True, checkpoint=inside),
                          'b@0': dict(ok=True, checkpoint=outside), 'c@0': dict(ok=False)})
    assert out['a@0']['checkpoint'] == osp.join('work_dirs', 'x', 'iter_4.pth')
    assert out['b@0']['checkpoint'] == outside and out['c@0'] == dict(ok=False)


def _lrs(cfg_path):
    """lr of the first block's and of the head's parameter groups, as built."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope

    from mmmim.registry import MODELS
    cfg = Config.fromfile(cfg_path)
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmmim'):
        model = MODELS.build(cfg.model)
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    names = {id(p): n for n, p in model.named_parameters()}
    out = {}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            out[names[id(p)]] = group['lr']
    return cfg, out


@pytest.mark.parametrize('method', ['mae', 'gan-mae'])
def test_gpu_cells_merge_optimizer_groups_with_the_cpu_cells_settings(method):
    """The gpu cell's optimizer: a few groups (not one per parameter) that give every
    parameter the lr and weight decay the cpu cell's per-parameter groups give it."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope

    from mmmim.registry import MODELS
    built = {}
    for grid in ('cpu', 'gpu'):
        cfg = Config.fromfile(f'{bench.ROOT}/configs/fashion_mnist/benchmark/{grid}/{method}.py')
        with DefaultScope.overwrite_default_scope('mmmim'):
            model = MODELS.build(cfg.model)
            wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        names = {id(p): n for n, p in model.named_parameters()}
        wrappers = getattr(wrapper, 'optim_wrappers', {'': wrapper})
        built[grid] = {
            role: ({names[id(p)]: (g['lr'], g['weight_decay']) for g in w.optimizer.param_groups
                    for p in g['params']}, len(w.optimizer.param_groups))
            for role, w in wrappers.items()}
    for role, (settings, groups) in built['gpu'].items():
        assert groups <= 4, (role, groups)
        assert built['cpu'][role][1] > 20  # one per parameter
        assert settings == built['cpu'][role][0]


@pytest.mark.parametrize('method', ['mae', 'emae', 'sbam', 'sbam-amr', 'gan-mae',
                                    'mae_equal-epochs'])
def test_gpu_cells_crop_and_flip_on_the_device_as_the_cpu_cells_workers_do(method):
    """The gpu cell moves its cpu cell's RandomResizedCrop + RandomFlip into the data
    preprocessor with the same settings; normalisation and everything else are kept."""
    cells = {grid: Config.fromfile(f'{bench.ROOT}/configs/fashion_mnist/benchmark/{grid}/{method}.py')
             for grid in ('cpu', 'gpu')}
    workers = {t['type']: t for t in cells['cpu'].train_dataloader.dataset.pipeline}
    assert list(workers) == ['RandomResizedCrop', 'RandomFlip', 'PackInputs']
    assert [t['type'] for t in cells['gpu'].train_dataloader.dataset.pipeline] == ['PackInputs']
    pre = cells['gpu'].model.data_preprocessor
    crop, flip = workers['RandomResizedCrop'], workers['RandomFlip']
    assert pre.type == 'BatchRandomResizedCropDataPreprocessor'
    assert crop.scale == bench.GRID_MODEL['img_size']  # the output keeps the image's size
    assert (tuple(pre.crop_ratio_range), tuple(pre.aspect_ratio_range), pre.interpolation,
            pre.flip_prob) == (tuple(crop.crop_ratio_range), tuple(crop.aspect_ratio_range),
                               crop.interpolation, flip.prob)
    cpu_pre = cells['cpu'].model.data_preprocessor
    assert (pre.mean, pre.std) == (cpu_pre.mean, cpu_pre.std)
    for cfg in cells.values():
        del cfg.model['data_preprocessor'], cfg['train_dataloader']['dataset']['pipeline']
        cfg.pop('optim_wrapper')  # merged groups: the test above
        cfg.model.pop('adv_warmup_iters', None)  # GAN-MAE's, from the budget
    assert cells['gpu'].model == cells['cpu'].model
    assert cells['gpu'].train_dataloader == cells['cpu'].train_dataloader


@pytest.mark.parametrize('method', ['mae', 'emae', 'sbam', 'sbam-amr', 'gan-mae'])
def test_gpu_cells_train_on_batches_their_loader_only_packs(method):
    """One training step of each gpu cell from a uint8 batch as its loader gives it: the
    crop happens in the model's data preprocessor and every parameter group moves."""
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope

    from mmmim.registry import MODELS
    cfg = Config.fromfile(f'{bench.ROOT}/configs/fashion_mnist/benchmark/gpu/{method}.py')
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmmim'):
        model = MODELS.build(cfg.model)
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    if hasattr(model, 'set_train_progress'):
        model.set_train_progress(10**9, 1)  # GAN-MAE: past its adversarial warm-up
    calls = []
    real = model.data_preprocessor.crop_flip
    model.data_preprocessor.crop_flip = lambda *a, **k: calls.append(1) or real(*a, **k)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    data = dict(inputs=torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8),
                data_samples=None)
    losses = model.train_step(data, wrapper)
    assert calls == [1]
    assert all(torch.isfinite(v).all() for v in losses.values())
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert {n.split('.')[0] for n in moved} >= {'backbone', 'neck'}


def test_the_worker_crop_arm_is_the_gpu_mae_cell_with_the_cpu_cells_augmentation():
    arm = Config.fromfile(f'{bench.BENCH_DIR}/gpu-mae_worker-crop.py')
    cpu = Config.fromfile(f'{bench.BENCH_DIR}/cpu/mae.py')
    gpu = Config.fromfile(f'{bench.BENCH_DIR}/gpu/mae.py')
    assert arm.model.data_preprocessor == cpu.model.data_preprocessor
    assert arm.train_dataloader == cpu.train_dataloader
    for key in ('train_cfg', 'param_scheduler', 'optim_wrapper', 'custom_hooks'):
        assert arm[key] == gpu[key], key
    assert dict(arm.model, data_preprocessor=None) == dict(gpu.model, data_preprocessor=None)


def test_moving_the_augmentation_refuses_a_pipeline_it_does_not_know():
    pipeline = bench._grid_pipeline()
    assert bench._on_device_crop(pipeline)['data_preprocessor']['flip_prob'] == 0.5
    with pytest.raises(ValueError, match='update _on_device_crop'):
        bench._on_device_crop(pipeline[:1] + [dict(type='ColorJitter')] + pipeline[1:])


@pytest.mark.parametrize('path, lr, decay, layers', [
    ('configs/fashion_mnist/benchmark/cpu/finetune-10pct.py', 3e-3, 0.75, 6),
    ('configs/fashion_mnist/benchmark/finetune-recipe_vit-mini-p4.py', 2e-3, 0.65, 6),
    ('configs/fashion_mnist/benchmark/finetune-recipe_vit-mini-p4_10e.py', 2e-3, 0.65, 6),
    ('configs/fashion_mnist/benchmark/finetune-recipe_vit-mini-p4_12e_scratch.py', 2e-3, 0.65, 6),
    ('configs/fashion_mnist/benchmark/finetune-recipe_vit-mini-p4_15e.py', 2e-3, 0.65, 6),
])
def test_finetune_recipes_use_the_configured_lr_and_layer_decay(path, lr, decay, layers):
    cfg, lrs = _lrs(osp.join(bench.ROOT, path))
    assert cfg.optim_wrapper.optimizer.lr == lr
    assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == decay
    assert cfg.model.backbone.drop_path_rate == 0.1
    assert cfg.model.head.loss.label_smooth_val == 0.1
    head = lrs['head.fc.weight']
    assert head == pytest.approx(lr)
    # block i (0-based) gets decay ** (layers - i); the patch embedding decay ** (layers + 1)
    for i in (0, layers - 1):
        w = f'backbone.layers.{i}.ffn.layers.0.0.weight'
        assert lrs[w] == pytest.approx(lr * decay ** (layers - i), rel=1e-6)
    assert lrs['backbone.patch_embed.projection.weight'] == pytest.approx(lr * decay ** (layers + 1))


def _recipe(name):
    return Config.fromfile(osp.join(bench.ROOT, 'configs/fashion_mnist/benchmark', name))


@pytest.mark.parametrize('name, epochs, pretrained', [
    ('finetune-recipe_vit-mini-p4_10e.py', 10, True),
    ('finetune-recipe_vit-mini-p4_12e_scratch.py', 12, False),
    ('finetune-recipe_vit-mini-p4_15e.py', 15, True),
])
def test_shortened_recipes_keep_the_recipe_but_its_length(name, epochs, pretrained):
    full, cfg = _recipe('finetune-recipe_vit-mini-p4.py'), _recipe(name)
    warm, cos = cfg.param_scheduler
    assert cfg.train_cfg.max_epochs == epochs and (warm.end, cos.begin, cos.end) == (1, 1, epochs)
    for a, b in zip(full.param_scheduler, cfg.param_scheduler):  # the same kinds and factors
        assert {k: v for k, v in a.items() if k not in ('begin', 'end')} == \
            {k: v for k, v in b.items() if k not in ('begin', 'end')}
    assert cfg.train_dataloader.dataset.pipeline == full.train_dataloader.dataset.pipeline
    assert cfg.default_hooks.checkpoint.interval == epochs
    assert (cfg.model.backbone.init_cfg is not None) is pretrained


def test_the_50_epoch_recipe_keeps_a_checkpoint_every_epoch():
    """A CPU run of it takes hours: --resume must find the newest epoch, not start over."""
    full = _recipe('finetune-recipe_vit-mini-p4.py')
    assert full.train_cfg.max_epochs == 50
    assert full.default_hooks.checkpoint.interval == 1
    assert full.default_hooks.checkpoint.max_keep_ckpts == 1


@pytest.mark.parametrize('finetune, mae_config, scratch', [
    ('finetune-recipe_vit-mini-p4_10e.py', 'mae_vit-mini-p4_4e.py',
     'finetune-recipe_vit-mini-p4_12e_scratch.py'),
    ('finetune-recipe_vit-mini-p4.py', 'mae_vit-mini-p4_16e.py',
     'finetune-recipe_vit-mini-p4_57e_scratch.py'),
])
def test_scratch_recipe_gets_the_mae_arms_total_flops(finetune, mae_config, scratch):
    """From scratch = the fine-tune's epochs + the main job's MAE pre-training, in counted
    FLOPs (tools/benchmark.py's counter), to the nearest epoch: 12 = 10 + 1.8 (4-epoch MAE),
    57 = 50 + 7.3 (16-epoch MAE)."""
    batch = bench.count_batch(pad_to=32)  # the configs' padding (the data set's default)
    mae = Config.fromfile(osp.join(bench.ROOT, 'configs/fashion_mnist', mae_config))
    ft, scratch = _recipe(finetune), _recipe(scratch)
    per_epoch = {}
    for key, cfg in (('mae', mae), ('ft', ft)):
        model = cfg.model.to_dict()
        model['backbone']['init_cfg'] = None
        assert cfg.train_dataloader.batch_size == bench.BATCH
        per_epoch[key] = bench.iter_flops(model, cfg.optim_wrapper.to_dict(), batch)
    pretrain_epochs = per_epoch['mae'] * mae.train_cfg.max_epochs / per_epoch['ft']
    assert 0.4 < pretrain_epochs / mae.train_cfg.max_epochs < 0.5  # the comments' 1.8, 7.3
    assert scratch.train_cfg.max_epochs == round(ft.train_cfg.max_epochs + pretrain_epochs)
    assert scratch.model.backbone.init_cfg is None
    warm, cos = scratch.param_scheduler
    assert (warm.end, cos.begin, cos.end) == (ft.param_scheduler[0].end,
                                              ft.param_scheduler[1].begin,
                                              scratch.train_cfg.max_epochs)


class _Done:
    """A finished process (exit 1) for train()'s Popen."""
    def wait(self, timeout=None):
        return 1


def test_runs_use_mixed_precision_unless_told(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(bench.subprocess, 'Popen', lambda cmd, **kw: calls.append(cmd) or _Done())
    for argv, amp in (([], True), (['--fp32'], False)):
        args = bench.parse_args(argv + ['--work-dir', str(tmp_path)])
        assert args.amp is amp
        bench.train(osp.join(str(tmp_path), 'cfg.py'), str(tmp_path), args.amp,
                    cfg_options=['randomness.seed=1'])
        assert ('--amp' in calls[-1]) is amp
        assert calls[-1][-2:] == ['--cfg-options', 'randomness.seed=1']


def test_methods_are_the_default_configs_only():
    assert bench.METHODS['gan-mae'] == 'gan-mae_vit-mini-p4_4e.py'
    stages = bench.plan_stages(bench.parse_args(['--seeds', '2']))
    pre = [s for s in stages if s['kind'] == 'pretrain']
    assert len(pre) == 2 * (len(bench.METHODS) + 1)  # + MAE at equal epochs
    assert {s['seed'] for s in stages} == {0, 1}
    assert len({s['work_dir'] for s in stages}) == len(stages)  # every stage cached apart
    # every pre-trained encoder, MAE at equal epochs included, is also fine-tuned on 10%
    assert {s['name'] for s in pre} <= {s['after'] for s in stages if s['kind'] == 'finetune'}


def test_quick_is_a_small_smoke_run_of_every_row(tmp_path):
    args = bench.parse_args(['--quick', '--work-dir', str(tmp_path)])
    stages = bench.plan_stages(args)
    assert {s['seed'] for s in stages} == {0}
    assert {s['name'].split('/')[0] for s in stages} == set(bench.METHODS) | {
        'random-init', 'supervised', 'raw-pixels'}
    for stage in stages:
        cfg = Config.fromfile(bench.prepare_stage(stage, args))
        if stage['kind'] in ('pretrain', 'supervised'):
            assert cfg.train_cfg.max_iters == bench.QUICK['iters']
            scheds = cfg.param_scheduler
            for lst in (scheds.values() if isinstance(scheds, dict) else [scheds]):
                assert max(s['end'] for s in lst) == bench.QUICK['iters']
        for hook in cfg.get('custom_hooks', []):
            if hook.type == 'LinearProbeHook':
                assert (hook.max_train, hook.max_test) == (bench.QUICK['probe_train'],
                                                           bench.QUICK['probe_test'])
        if stage['name'] == 'gan-mae/pretrain':
            assert 0 < cfg.model.adv_warmup_iters < bench.QUICK['iters']


def test_the_16_epoch_mae_is_the_main_job_but_its_length():
    """The longer pre-training tests one lever only: its cosine must reach the 16th epoch
    (an inherited end=4 would train epochs 5-16 at lr 0) and nothing else may change."""
    base = Config.fromfile(osp.join(bench.ROOT, 'configs/fashion_mnist/mae_vit-mini-p4_4e.py'))
    cfg = Config.fromfile(osp.join(bench.ROOT, 'configs/fashion_mnist/mae_vit-mini-p4_16e.py'))
    warm, cos = cfg.param_scheduler
    assert cfg.train_cfg.max_epochs == 16
    assert (warm.begin, warm.end, cos.begin, cos.end) == (0, 1, 1, 16)
    assert warm == base.param_scheduler[0]
    for key in ('model', 'optim_wrapper', 'train_dataloader', 'custom_hooks', 'randomness'):
        assert cfg[key] == base[key], key


def _fake_stages(monkeypatch, fail=(), hold=0.05):
    """Replace run_stage by a recorder: each stage 'runs' for ``hold`` s and writes a
    checkpoint named after itself; stages named in ``fail`` fail."""
    import threading
    import time
    log, lock, live = [], threading.Lock(), [0, 0]  # events; (running now, most at once)

    def fake(stage, args, checkpoint=None):
        with lock:
            live[0] += 1
            live[1] = max(live[1], live[0])
            log.append(('start', stage['name'], stage['seed'], checkpoint))
        time.sleep(hold)
        with lock:
            live[0] -= 1
            log.append(('end', stage['name'], stage['seed'], None))
        ok = stage['name'] not in fail
        return dict(ok=ok, checkpoint=f'{stage["name"]}@{stage["seed"]}.pth' if ok else None,
                    error=None if ok else 'failed')

    monkeypatch.setattr(bench, 'run_stage', fake)
    return log, live


def test_parallel_stages_wait_for_their_encoder_and_respect_jobs(tmp_path, monkeypatch):
    log, live = _fake_stages(monkeypatch, fail={'emae/pretrain'})
    args = bench.parse_args(['--device', 'cpu', '--grid', 'gpu', '--seeds', '2', '--jobs', '3',
                             '--work-dir', str(tmp_path)])
    stages = bench.plan_stages(args)
    results = bench.run_grid(args)
    assert set(results) == {f'{s["name"]}@{s["seed"]}' for s in stages}
    assert live[1] == 3  # three at a time, never more
    order = [(e[0], e[1], e[2]) for e in log]
    for s in stages:
        if not s['after']:
            continue
        key = f'{s["name"]}@{s["seed"]}'
        if s['after'] == 'emae/pretrain':  # its encoder failed: never started, said why
            assert ('start', s['name'], s['seed']) not in order
            assert not results[key]['ok'] and 'emae/pretrain' in results[key]['error']
            continue
        start = next(e for e in log if e[:3] == ('start', s['name'], s['seed']))
        # started after its own encoder ended, from that encoder's checkpoint
        assert order.index(('end', s['after'], s['seed'])) < log.index(start)
        assert start[3] == f'{s["after"]}@{s["seed"]}.pth'
    # the recipe's chain (the longest) is started first
    assert [e[1] for e in log if e[0] == 'start'][:2] == ['recipe-mae/pretrain',
                                                          'recipe-scratch/finetune']


def test_phased_runs_never_share_the_device_between_pretraining_and_finetunes(
        tmp_path, monkeypatch):
    log, live = _fake_stages(monkeypatch)
    args = bench.parse_args(['--device', 'cuda', '--jobs', '4', '--seeds', '2',
                             '--work-dir', str(tmp_path)])
    assert args.phased  # the CUDA default with several jobs
    stages = bench.plan_stages(args)
    kind = {(s['name'], s['seed']): s['kind'] for s in stages}
    recipe = {(s['name'], s['seed']) for s in stages if bench.is_recipe(s)}
    assert {n for n, _ in recipe} == {'recipe-mae/pretrain', 'recipe-mae/finetune',
                                      'recipe-scratch/finetune'}
    results = bench.run_grid(args)
    assert len(results) == len(stages) and all(r['ok'] for r in results.values())
    assert live[1] == 4  # the encoder phase still runs four at a time
    running = set()
    for event, name, seed, _ in log:  # no moment has both kinds running (but the recipe)
        if event == 'start':
            running.add((name, seed))
            kinds = {kind[r] in bench.ENCODER_KINDS for r in running if r not in recipe}
            assert len(kinds) <= 1, running
        else:
            running.discard((name, seed))
    starts = [kind[(e[1], e[2])] in bench.ENCODER_KINDS for e in log
              if e[0] == 'start' and (e[1], e[2]) not in recipe]
    assert starts == sorted(starts, reverse=True)  # every encoder stage before any training
    assert starts[0] and not starts[-1]
    # the recipe's chain, the critical path, never waits for the encoder phase: each of its
    # fine-tunes starts before the last other encoder stage has ended
    last_encoder_end = max(i for i, e in enumerate(log) if e[0] == 'end'
                           and kind[(e[1], e[2])] in bench.ENCODER_KINDS
                           and (e[1], e[2]) not in recipe)
    for name, seed in recipe:
        if kind[(name, seed)] == 'recipe':
            assert log.index(('start', name, seed, mock.ANY)) < last_encoder_end, (name, seed)
    # on a CPU, or one at a time, nothing changes
    assert not bench.parse_args(['--device', 'cpu', '--jobs', '4']).phased
    assert not bench.parse_args(['--device', 'cuda']).phased
    assert not bench.parse_args(['--device', 'cuda', '--jobs', '4', '--no-phased']).phased


def test_time_limit_starts_nothing_late_and_stops_a_running_stage(tmp_path, monkeypatch):
    import subprocess
    import sys
    import time
    log, _ = _fake_stages(monkeypatch)
    args = bench.parse_args(['--quick', '--jobs', '2', '--time-limit', '1e-9',
                             '--work-dir', str(tmp_path)])
    stages = bench.plan_stages(args)
    results = bench.run_grid(args)
    assert log == [] and len(results) == len(stages)
    for s in stages:  # nothing ran; the encoders were not started, their fine-tunes wait on them
        error = results[f'{s["name"]}@{s["seed"]}']['error']
        assert error == (f'{s["after"]} did not finish' if s['after']
                         else 'not started: --time-limit reached')
    # a stage still running at the limit is stopped, not waited for
    real = subprocess.Popen
    monkeypatch.setattr(bench.subprocess, 'Popen', lambda cmd, **kw: real(
        [sys.executable, '-c', 'import time; time.sleep(60)'], **kw))
    t = time.time()
    run = bench.train(str(tmp_path / 'cfg.py'), str(tmp_path), deadline=time.time() + 1)
    assert run['stopped'] and not run['ok'] and time.time() - t < 30


def test_stage_environment_hides_the_gpu_on_cpu_and_splits_cores(monkeypatch):
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    monkeypatch.setattr(bench.os, 'cpu_count', lambda: 16)
    env = bench.stage_env(bench.parse_args(['--device', 'cpu']))
    assert env == {'CUDA_VISIBLE_DEVICES': ''}
    env = bench.stage_env(bench.parse_args(['--device', 'cuda', '--jobs', '8']))
    assert env == {'OMP_NUM_THREADS': '2'}


def test_gpu_stages_load_data_with_the_cores_a_job_has(tmp_path, monkeypatch):
    monkeypatch.setattr(bench.os, 'cpu_count', lambda: 16)
    stages = bench.plan_stages(bench.parse_args(['--device', 'cpu']))
    workers = {}
    for argv, want in ((['--device', 'cuda', '--jobs', '4'], 3), (['--device', 'cuda'], 8),
                       (['--device', 'cuda', '--jobs', '32'], 1),
                       (['--device', 'cpu', '--loader-workers', '0'], 0)):
        args = bench.parse_args(argv + ['--work-dir', str(tmp_path)])
        for stage in stages:
            cfg = Config.fromfile(bench.prepare_stage(stage, args))
            workers[stage['kind']] = cfg.train_dataloader.num_workers
            assert cfg.train_dataloader.persistent_workers == (want > 0)
        assert set(workers.values()) == {want}, (argv, workers)
    # on a CPU each stage keeps its config's loader
    args = bench.parse_args(['--device', 'cpu', '--work-dir', str(tmp_path)])
    for stage in stages:
        cfg = Config.fromfile(bench.prepare_stage(stage, args))
        assert cfg.train_dataloader.num_workers == Config.fromfile(
            stage['config']).train_dataloader.num_workers


def test_parallel_gpu_stages_without_mps_are_warned_about(tmp_path, monkeypatch):
    pipe_dir = tmp_path / 'mps'
    pipe_dir.mkdir()
    monkeypatch.setenv('CUDA_MPS_PIPE_DIRECTORY', str(pipe_dir))
    four = bench.parse_args(['--device', 'cuda', '--jobs', '4'])
    assert not bench.mps_active()
    assert 'without CUDA MPS' in bench.concurrency_warning(four)
    (pipe_dir / 'control').write_text('')  # a plain file is not the daemon's pipe
    assert not bench.mps_active() and bench.concurrency_warning(four)
    (pipe_dir / 'control').unlink()
    os.mkfifo(pipe_dir / 'control')
    assert bench.mps_active()
    assert bench.concurrency_warning(four) is None
    monkeypatch.setenv('CUDA_MPS_PIPE_DIRECTORY', str(tmp_path / 'elsewhere'))
    for argv in (['--device', 'cuda'], ['--device', 'cpu', '--jobs', '4']):
        assert bench.concurrency_warning(bench.parse_args(argv)) is None


def test_gpu_grid_recipe_runs_two_seeds_from_the_16_epoch_mae():
    stages = bench.plan_stages(bench.parse_args(['--device', 'cuda']))
    rec = [s for s in stages if s['name'].startswith('recipe-')]
    assert sorted((s['name'], s['seed']) for s in rec) == sorted(
        (n, seed) for n in ('recipe-mae/pretrain', 'recipe-mae/finetune', 'recipe-scratch/finetune')
        for seed in (0, 1))
    for s in rec:
        if s['name'] == 'recipe-mae/pretrain':
            assert s['config'].endswith('mae_vit-mini-p4_16e.py')
        if s['name'] == 'recipe-mae/finetune':
            assert s['after'] == 'recipe-mae/pretrain'
        if s['name'].endswith('finetune'):
            assert s['config'] == bench.RECIPE_CONFIG
    assert not any(s['name'].startswith('recipe-') for s in bench.plan_stages(bench.parse_args([])))


def test_compile_blocks_compiles_the_layers_of_every_stage_that_trains(tmp_path):
    """--compile-blocks MODE puts compile_blocks on each training stage's MaskedViT and
    MAE decoder (True for 'default', the mode otherwise), builds models whose layers are
    compiled, leaves the probe-only stages and the default run eager, and refuses a model
    with nothing to compile."""
    from mmmim.registry import MODELS
    plain = bench.parse_args(['--device', 'cuda', '--jobs', '4', '--work-dir', str(tmp_path / 'a')])
    stages = bench.plan_stages(plain)
    assert {s['kind'] for s in stages} >= {'pretrain', 'finetune', 'recipe', 'supervised',
                                           'random-init'}
    for mode, want in (('reduce-overhead', dict(mode='reduce-overhead')), ('default', True)):
        args = bench.parse_args(['--device', 'cuda', '--jobs', '4', '--compile-blocks', mode,
                                 '--work-dir', str(tmp_path / mode)])
        built = set()
        for stage in stages:
            cfg = Config.fromfile(bench.prepare_stage(stage, args))
            if stage['kind'] == 'random-init':
                assert not cfg.model.backbone.get('compile_blocks'), stage['name']
                continue
            assert cfg.model.backbone.compile_blocks == want, stage['name']
            if cfg.model.get('neck') and cfg.model.neck.type.endswith('MAEDecoder'):
                assert cfg.model.neck.compile_blocks == want, stage['name']
            if mode == 'default' and stage['kind'] not in built:
                cfg.model.backbone.init_cfg = None
                model = MODELS.build(cfg.model)
                assert model.backbone.compiled, stage['name']
                built.add(stage['kind'])
    for stage in stages:  # without the option every stage stays eager
        cfg = Config.fromfile(bench.prepare_stage(stage, plain))
        assert not cfg.model.backbone.get('compile_blocks'), stage['name']
    from mmmim.utils.benchmark import set_compile_blocks
    with pytest.raises(ValueError, match='--compile-blocks: .* has no MaskedViT or MAEDecoder'):
        set_compile_blocks(dict(type='ImageClassifier', backbone=dict(type='ResNet')),
                           'default', '--compile-blocks')


def test_a_stage_that_fails_compiled_runs_again_eager(tmp_path, monkeypatch):
    """With --compile-blocks a stage whose compiled run fails is run again eager (its
    compiled log kept, both runs' seconds counted); one stopped at the time limit is not,
    and without the option a failure stays a failure."""
    calls = []

    def fake_train(config, work_dir, amp=False, cfg_options=None, env=None, deadline=None):
        compiled = bool(Config.fromfile(config).model.backbone.get('compile_blocks'))
        calls.append(compiled)
        log = osp.join(work_dir, 'train.log')
        with open(log, 'w') as f:
            f.write('compiled' if compiled else 'eager')
        if stop_compiled and compiled:
            return dict(ok=False, stopped=True, seconds=7., log=log)
        return dict(ok=not compiled, seconds=10., log=log)

    monkeypatch.setattr(bench, 'train', fake_train)
    monkeypatch.setattr(bench, 'last_accuracy', lambda work_dir: 80.0)
    for mode in ('reduce-overhead', None):
        stop_compiled = False
        calls.clear()
        argv = ['--device', 'cuda', '--jobs', '4', '--work-dir', str(tmp_path / str(mode))]
        args = bench.parse_args(argv + (['--compile-blocks', mode] if mode else []))
        stage = next(s for s in bench.plan_stages(args) if s['kind'] == 'recipe')
        result = bench.run_stage(stage, args)
        if mode is None:  # eager from the start: one run, it succeeded
            assert calls == [False] and result['ok'] and 'compile_fallback' not in result
            continue
        assert calls == [True, False]
        assert result['ok'] and result['top1'] == 80.0 and result['seconds'] == 20.0
        kept = osp.join(bench.ROOT, result['compile_fallback'])
        with open(kept) as f:
            assert f.read() == 'compiled'
        with open(osp.join(stage['work_dir'], 'train.log')) as f:
            assert f.read() == 'eager'
        os.remove(osp.join(stage['work_dir'], 'result.json'))
        stop_compiled, calls[:] = True, []  # stopped at --time-limit: not run again
        result = bench.run_stage(stage, args)
        assert calls == [True] and not result['ok'] and 'time-limit' in result['error']


def test_recipe_batch_1024_is_the_same_recipe_in_its_own_stages(tmp_path, monkeypatch):
    """--recipe-batch 1024 runs finetune-recipe_vit-mini-p4_b1024.py: the batch-256 recipe
    with only the batch (1024) and the lr (scaled linearly, x4) changed, in stages and work
    dirs of its own (a batch-256 run's cached result is never read as its result), and the
    report names it."""
    from mmengine.config import Config
    base, big = (Config.fromfile(bench.RECIPE_CONFIGS[b]) for b in (256, 1024))
    assert big.train_dataloader.batch_size == 1024 == 4 * base.train_dataloader.batch_size
    assert big.optim_wrapper.optimizer.lr == pytest.approx(4 * base.optim_wrapper.optimizer.lr)
    assert big.auto_scale_lr.base_batch_size == 1024
    for cfg in (base, big):
        cfg.train_dataloader.batch_size = cfg.optim_wrapper.optimizer.lr = None
        cfg.auto_scale_lr = None
    assert base.to_dict() == big.to_dict()  # nothing else differs: epochs, schedule, model...

    args = {b: bench.parse_args(['--device', 'cuda', '--work-dir', str(tmp_path)]
                                + (['--recipe-batch', str(b)] if b != 256 else []))
            for b in (256, 1024)}
    rec = {b: [s for s in bench.plan_stages(a) if s['kind'] == 'recipe'] for b, a in args.items()}
    assert {s['config'] for s in rec[256]} == {bench.RECIPE_CONFIG}
    assert {s['config'] for s in rec[1024]} == {bench.RECIPE_CONFIGS[1024]}
    assert sorted(s['name'] for s in rec[1024]) == sorted(
        [f'recipe-{arm}/finetune-b1024' for arm in ('mae', 'scratch')] * 2)
    assert all(s['after'] == 'recipe-mae/pretrain' for s in rec[1024] if 'mae' in s['name'])
    assert not {s['work_dir'] for s in rec[256]} & {s['work_dir'] for s in rec[1024]}

    results = {f'{arm}/finetune-b1024@{s}': dict(ok=True, top1=top1, seconds=1.)
               for arm, tops in (('recipe-mae', (93.1, 93.3)), ('recipe-scratch', (91.0, 91.4)))
               for s, top1 in enumerate(tops)}
    results.update({f'recipe-mae/finetune@{s}': dict(ok=True, top1=10., seconds=1.)
                    for s in range(2)})  # batch-256 results in the same run: not this table
    monkeypatch.setattr(bench, 'hardware', lambda device, mps: 'a GPU')  # none here
    args[1024].mps_on = True
    rows = bench.write_report(str(tmp_path / 'report.md'), results, args[1024], 'cmd', 1.)
    assert next(r for r in rows if r['method'] == 'recipe')['mae'] == [93.1, 93.3]
    text = (tmp_path / 'report.md').read_text()
    assert 'batch 1024' in text and 'finetune-recipe_vit-mini-p4_b1024.py' in text
    assert '93.20 ± 0.14' in text and '91.20 ± 0.28' in text and '10.00' not in text

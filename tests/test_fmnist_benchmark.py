"""tools/analysis/fmnist_benchmark.py: the configs it writes give every run the schedule
it asks for (epochs, warm-up, data size) — without running any training."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import PARAM_SCHEDULERS

from conftest import load_tool

bench = load_tool('tools/analysis/fmnist_benchmark.py')


def lr_trajectory(cfg, iters):
    """The lr of every iteration under ``cfg.param_scheduler`` (iteration-based)."""
    param = torch.nn.Parameter(torch.zeros(1))
    base_lr = cfg.optim_wrapper.optimizer.lr
    opt = torch.optim.SGD([param], lr=base_lr)
    schedulers = []
    for s in cfg.param_scheduler:
        s = dict(s)
        assert s['by_epoch'] is False, 'the benchmark must hand train.py iteration counts'
        s.pop('convert_to_iter_based', None)
        schedulers.append(PARAM_SCHEDULERS.build(dict(s, optimizer=opt)))
    lrs = []
    for _ in range(iters):
        lrs.append(opt.param_groups[0]['lr'])
        opt.step()
        for s in schedulers:
            s.step()
    return base_lr, lrs


@pytest.mark.parametrize('argv, n_train, batch', [
    ([], 60000, 256),                                   # the README run
    (['--finetune-train-size', '20000'], 20000, 256),   # 79 iterations
    (['--quick'], 512, 64),                             # 8 iterations
])
def test_finetune_warms_up_then_reaches_the_base_lr_then_decays(argv, n_train, batch, tmp_path):
    args = bench.parse_args(argv + ['--work-dir', str(tmp_path)])
    cfg = Config.fromfile(bench.prepare_finetune(args, str(tmp_path), None, epochs=1))
    assert (cfg.train_dataloader.dataset.get('indices') or 60000) == n_train
    assert cfg.train_dataloader.batch_size == batch
    iters = -(-n_train // batch)
    base_lr, lrs = lr_trajectory(cfg, iters)
    warmup = cfg.param_scheduler[0]['end']
    assert 2 <= warmup <= max(2, round(0.1 * iters))  # a tenth of the run, at least 2 steps
    # the peak is the configured lr, reached right after the warm-up (a warm-up that
    # multiplies a decaying cosine, or one longer than the run, never gets there)
    assert max(lrs) == pytest.approx(base_lr, rel=1e-6)
    assert lrs[warmup] == pytest.approx(base_lr, rel=1e-6)
    assert lrs[0] < 0.01 * base_lr
    assert all(b <= a + 1e-12 for a, b in zip(lrs[warmup:], lrs[warmup + 1:]))  # cosine down
    assert lrs[-1] < 0.1 * base_lr


def test_pretraining_epochs_stretch_the_epoch_schedule(tmp_path):
    args = bench.parse_args(['--epochs', '2', '--work-dir', str(tmp_path)])
    out = bench.prepare_pretrain(bench.find_config('mae'), args, str(tmp_path))
    cfg = Config.fromfile(out)
    assert cfg.train_cfg.max_epochs == 2
    ends = [s['end'] for s in cfg.param_scheduler]
    assert ends[-1] == 2 and ends[0] <= 2  # the cosine ends with the run, warm-up within it
    hooks = [h['type'] for h in cfg.custom_hooks]
    assert hooks.count('LinearProbeHook') == 1


def test_runs_use_mixed_precision_unless_told(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(bench.subprocess, 'call', lambda cmd, **kw: calls.append(cmd) or 1)
    for argv, amp in (([], True), (['--fp32'], False)):
        args = bench.parse_args(argv + ['--work-dir', str(tmp_path)])
        assert args.amp is amp
        bench.train(osp.join(str(tmp_path), 'cfg.py'), str(tmp_path), args.amp)
        assert ('--amp' in calls[-1]) is amp

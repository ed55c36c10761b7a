"""tools/analysis/main_job_curve.py: each run gets the epochs, schedule and seed it asks
for, and the table reports what the runs' probes wrote (training is faked here)."""
import json
import os.path as osp

import pytest
from mmengine.config import Config

from conftest import load_tool

curve = load_tool('tools/analysis/main_job_curve.py')


def test_each_run_gets_its_epochs_schedule_and_seed(tmp_path):
    args = curve.parse_args(['--work-dir', str(tmp_path)])
    cfg = Config.fromfile(curve.prepare(args, 3, 7, str(tmp_path / 'run')))
    assert cfg.train_cfg.max_epochs == 3 and cfg.randomness.seed == 7
    warmup, cosine = cfg.param_scheduler
    assert warmup.end == 1 and cosine.begin == 1 and cosine.end == 3  # warm-up: 1 epoch
    assert cfg.default_hooks.checkpoint.interval == 3
    probe = [h for h in cfg.custom_hooks if h.type == 'LinearProbeHook']
    assert len(probe) == 1 and probe[0].get('max_train') is None  # all 60k


def test_a_config_without_a_probe_is_refused(tmp_path):
    cfg = osp.join(curve.ROOT, 'configs', 'mae', 'vit-b_800e.py')
    args = curve.parse_args(['--config', cfg, '--work-dir', str(tmp_path)])
    with pytest.raises(SystemExit, match='no LinearProbeHook'):
        curve.prepare(args, 1, 0, str(tmp_path / 'run'))


def test_table_averages_seeds_and_shows_the_spread(tmp_path, monkeypatch):
    def fake_train(config, work_dir, amp=False):
        cfg = Config.fromfile(config)
        top1 = 80 + cfg.train_cfg.max_epochs + cfg.randomness.seed  # seeds 0/1: spread 1
        with open(osp.join(work_dir, 'linear_probe.json'), 'w') as f:
            json.dump(dict(top1=top1, seconds=30.), f)
        return dict(ok=True, seconds=60. * cfg.train_cfg.max_epochs)

    monkeypatch.setattr(curve, 'train', fake_train)
    curve.main(['--epochs', '1', '2', '--seeds', '0', '1', '--work-dir', str(tmp_path)])
    table = (tmp_path / 'results.md').read_text()
    assert '| 1 | 2 | 1.00 | 0.50 | 81.50 | 1.00 |' in table
    assert '| 2 | 2 | 2.00 | 0.50 | 82.50 | 1.00 |' in table
    assert 'CPU: ' in table
    rows = json.loads((tmp_path / 'results.json').read_text())['rows']
    assert sorted((r['epochs'], r['seed'], r['top1']) for r in rows) == [
        (1, 0, 81), (1, 1, 82), (2, 0, 82), (2, 1, 83)]

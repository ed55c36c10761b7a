"""tools/analysis/gan_mae_schemes.py and gan_disc_diagnosis.py: each cell or variant is the
config it names with the seed or loss options asked for, finished cells are cached, and
the tables report what the runs logged (training is faked here)."""
import json
import os
import os.path as osp

import pytest
from mmengine.config import Config

from conftest import load_tool

schemes = load_tool('tools/analysis/gan_mae_schemes.py')
diagnosis = load_tool('tools/analysis/gan_disc_diagnosis.py')


def _write_scalars(work_dir, recs):
    os.makedirs(osp.join(work_dir, 'run', 'vis_data'), exist_ok=True)
    with open(osp.join(work_dir, 'run', 'vis_data', 'scalars.json'), 'w') as f:
        for r in recs:
            f.write(json.dumps(r) + '\n')


def test_summary_reads_the_end_of_the_run_and_the_gamma_history():
    recs = [dict(step=s, loss_rec=1., loss_disc=0.7 - s / 1000, disc_prior_entropy=0.69,
                 disc_auc=0.5 + s / 1000, disc_bacc=0.5, gamma=0.1 * s / 50,
                 gamma_at_cap=float(s == 300)) for s in range(50, 301, 50)]
    recs.append(dict(step=300, **{'accuracy/top1': 80.}))  # the probe's record is skipped
    out = schemes.summary(recs, tail=100, iters_per_epoch=150)
    assert out['disc_auc'] == pytest.approx((0.75 + 0.8) / 2)  # steps 250 and 300
    assert out['gamma_max'] == pytest.approx(0.6)
    assert out['gamma_last_epoch'] == pytest.approx((0.4 + 0.5 + 0.6) / 3)  # steps > 150
    assert out['gamma_at_cap'] == pytest.approx(1 / 6)


def test_cells_get_their_config_and_seed_and_are_cached(tmp_path, monkeypatch):
    calls = []

    def fake_train(config, work_dir, amp=False):
        cfg = Config.fromfile(config)
        calls.append((cfg.model.type, cfg.model.get('scheme'), cfg.randomness.seed, amp))
        with open(osp.join(work_dir, 'linear_probe.json'), 'w') as f:
            json.dump(dict(top1=84. + cfg.randomness.seed, seconds=1.), f)
        _write_scalars(work_dir, [dict(step=10, loss_rec=0.5, gamma=0.2)])
        return dict(ok=True, seconds=120.)

    monkeypatch.setattr(schemes, 'train', fake_train)
    argv = ['--cells', 'mae', 'combined', '--seeds', '0', '1', '--amp', '--work-dir',
            str(tmp_path)]
    schemes.main(argv)
    assert calls == [('MAE', None, 0, True), ('GANMAE', 'combined', 0, True),
                     ('MAE', None, 1, True), ('GANMAE', 'combined', 1, True)]
    table = (tmp_path / 'results.md').read_text()
    assert '| mae | 2 (0, 1) | 84.50 | 1.00 |' in table
    schemes.main(argv)  # cached: nothing reruns
    assert len(calls) == 4


def test_diagnosis_variants_set_the_loss_options(tmp_path):
    path = diagnosis.variant_config('balanced-flat-out', 'ckpt.pth', str(tmp_path / 'v'), 20)
    cfg = Config.fromfile(path)
    assert cfg.load_from == 'ckpt.pth' and cfg.model.backbone_mode == 'generator'
    assert cfg.model.discriminator_head.class_balanced and cfg.model.flat_patch_std > 0
    assert cfg.optim_wrapper.generator.optimizer.lr == 0  # the generator is frozen
    assert cfg.train_dataloader.dataset.indices == 20 * cfg.train_dataloader.batch_size
    plain = Config.fromfile(diagnosis.variant_config('plain', 'c', str(tmp_path / 'p')))
    assert not plain.model.discriminator_head.class_balanced and plain.model.flat_patch_std == 0
    _write_scalars(str(tmp_path / 'p'), [dict(step=s, loss_disc=1. / s, disc_auc=s / 100.)
                                         for s in (10, 20, 30)])
    means = diagnosis.tail_means(str(tmp_path / 'p'), keys=('disc_auc', ), tail=15)
    assert means['disc_auc'] == pytest.approx(0.25)

"""Crash-safe training, the NaN guard and bad inputs.

End-to-end runs use tests/configs/reliability_tiny_mae.py (mmmim MAE, 2-layer 32-d
ViT, 32 random 32x32 PNGs, 8 iterations per epoch, a checkpoint every 2 iterations)
with the test hooks of tests/reliability_probe.py.
"""
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from mmmim.datasets import ImageLoadError, SafeLoadImageFromFile
from mmmim.engine.hooks import NaNGuardHook, NonFiniteTrainingError, save_checkpoint_atomic
from mmmim.registry import MODELS
from mmmim.utils import load_checkpoint_safely

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'tests', 'configs', 'reliability_tiny_mae.py')
ENV = {'PYTHONPATH': os.pathsep.join([REPO, osp.join(REPO, 'tests')])}


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp('images')
    rng = np.random.default_rng(0)
    for i in range(32):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / f'{i}.png')
    return str(root)


def _cmd(work, images, *extra, options=()):
    return [sys.executable, 'tools/train.py', CONFIG, '--work-dir', work, *extra,
            '--cfg-options', f'train_dataloader.dataset.data_root={images}', *options]


# the crop and flip drawn in the main process, by the model's data preprocessor
DEVICE_CROP = ('model.data_preprocessor.type=BatchRandomResizedCropDataPreprocessor',
               'model.data_preprocessor.crop_ratio_range=(0.3,1.0)')


def _run(cmd, **env):
    proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, **ENV, **env}, capture_output=True,
                          text=True, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


def _losses(work):
    with open(osp.join(work, 'probe_rank0.json')) as f:
        return {int(k): v for k, v in json.load(f)['losses'].items()}


# ---------------------------------------------------------------- kill -9 and resume
@pytest.mark.parametrize('options', [(), DEVICE_CROP], ids=['', 'device-crop'])
def test_kill_mid_epoch_then_resume_continues_the_loss_curve(tmp_path, images, options):
    """A run killed (SIGKILL) in the middle of epoch 1, right after its iteration-6
    checkpoint, resumed with --resume, logs the same losses for iterations 7..16 as a
    run that was never interrupted: model, optimizer, scheduler, message hub, the
    sampler position inside the epoch and every random generator are restored (with
    the crops drawn by the data preprocessor too)."""
    ref = str(tmp_path / 'ref')
    rc, log = _run(_cmd(ref, images, options=options))
    assert rc == 0, log[-3000:]
    expected = _losses(ref)
    assert sorted(expected) == list(range(1, 17))

    work = str(tmp_path / 'work')
    proc = subprocess.Popen(_cmd(work, images, options=options), cwd=REPO,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            env={**os.environ, **ENV, 'MMMIM_PROBE_HANG_AT': '7'})
    marker = osp.join(work, 'hanging')
    try:
        for _ in range(1200):  # poll; the probe hook sleeps after iteration 7
            if osp.exists(marker) or proc.poll() is not None:
                break
            time.sleep(0.25)
        assert osp.exists(marker), 'the run did not reach iteration 7'
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert f.read().strip().endswith('iter_6.pth')
    before = set(os.listdir(work))

    rc, log = _run(_cmd(work, images, '--resume', options=options))
    assert rc == 0, log[-3000:]
    if options:
        assert 'BatchRandomResizedCropDataPreprocessor' in log
    assert 'resumed epoch: 0, iter: 6' in log
    assert 'continuing epoch 1 after its first 6 batches' in log
    assert 'Epoch(train) [1][7/8]' in log and 'Epoch(train) [1][1/8]' not in log
    assert 'Epoch(train) [2][8/8]' in log and 'Epoch(train) [3]' not in log
    resumed = _losses(work)
    assert sorted(resumed) == list(range(7, 17))
    for it in resumed:
        assert resumed[it] == pytest.approx(expected[it], rel=1e-5, abs=1e-6), it
    # the message hub's loss history holds iterations 1-6 from before the kill + 7-16
    ckpt = load_checkpoint_safely(osp.join(work, 'iter_16.pth'))
    history = ckpt['message_hub']['log_scalars']['train/loss'].data[0]
    assert history.tolist() == pytest.approx([expected[i] for i in range(1, 17)], rel=1e-5)
    assert len(ckpt['rng_states']) == 1
    # nothing of the killed run was lost (old checkpoints rotate as configured)
    assert {n for n in before if not n.startswith('iter_')} <= set(os.listdir(work))


@pytest.mark.parametrize('persistent', [False, True])
def test_resume_with_dataloader_workers(tmp_path, images, persistent):
    """Augmentation (RandomFlip) in 2 dataloader workers, resumed from iteration
    checkpoints of an uninterrupted run:
    - at an epoch's last batch (iter 8 of 8), the run goes on with epoch 2 (it does not
      train epoch 1 again); with workers started anew each epoch it logs the
      uninterrupted run's losses; persistent workers keep their random streams in the
      worker processes, which no checkpoint holds: the run warns it is not bit-identical;
    - with ``replay_data_loading=True`` (the data already trained on is loaded again, not
      trained on) the losses are the uninterrupted run's, at the end of epoch 1 and in the
      middle of epoch 2 (iter 12: persistent workers replay epoch 1 too), and nothing
      warns."""
    opts = ['train_dataloader.num_workers=2', f'train_dataloader.persistent_workers={persistent}',
            'default_hooks.checkpoint.max_keep_ckpts=10']
    replay = ['default_hooks.resume_state.replay_data_loading=True']
    ref = str(tmp_path / 'ref')
    rc, log = _run(_cmd(ref, images) + opts)
    assert rc == 0, log[-3000:]
    expected = _losses(ref)
    warning = 'ResumeStateHook: the training dataloader runs in workers'
    for name, ckpt, extra, exact in [('plain', 8, [], not persistent),
                                     ('replay', 8, replay, True),
                                     ('replay_mid', 12, replay, True)]:
        work = str(tmp_path / name)
        rc, log = _run(_cmd(work, images, '--resume', osp.join(ref, f'iter_{ckpt}.pth'))
                       + opts + extra)
        assert rc == 0, log[-3000:]
        assert f'resumed epoch: {(ckpt - 1) // 8}, iter: {ckpt}' in log
        resumed = _losses(work)
        assert sorted(resumed) == list(range(ckpt + 1, 17)), name  # no epoch trained twice
        assert 'Epoch(train) [2][8/8]' in log and 'Epoch(train) [3]' not in log
        assert (warning in log) == (not exact), name
        if exact:
            for it in resumed:
                assert resumed[it] == pytest.approx(expected[it], rel=1e-5, abs=1e-6), (name, it)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    """A save that dies half-way leaves the previous file intact and no partial file."""
    path = str(tmp_path / 'iter_2.pth')
    save_checkpoint_atomic({'w': torch.ones(3)}, path)
    original = open(path, 'rb').read()

    def dying_save(obj, f, *a, **k):
        f.write(b'PK\x03\x04 partial')
        raise KeyboardInterrupt('killed while saving')
    monkeypatch.setattr(torch, 'save', dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint_atomic({'w': torch.zeros(3)}, path)
    assert open(path, 'rb').read() == original
    assert os.listdir(tmp_path) == ['iter_2.pth']

    from mmengine.hooks import checkpoint_hook
    from mmengine.runner import checkpoint as mm_ckpt
    from mmengine.runner import runner as mm_runner
    assert mm_ckpt.save_checkpoint is save_checkpoint_atomic
    assert mm_runner.save_checkpoint is save_checkpoint_atomic
    record = str(tmp_path / 'last_checkpoint')
    with checkpoint_hook.open(record, 'w') as f:
        f.write(path)
    with pytest.raises(RuntimeError):
        with checkpoint_hook.open(record, 'w') as f:
            f.write('/half/written')
            raise RuntimeError('killed')
    assert open(record).read() == path  # the record is never half-written


# ---------------------------------------------------------------- NaN / Inf guard
def _runner(tmp_path, images, model=None, hooks=(), max_iters=6, optim_wrapper=None, **guard):
    from mmengine.runner import Runner
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = str(tmp_path)
    cfg.train_dataloader.dataset.data_root = images
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
    cfg.train_dataloader.sampler = dict(type='InfiniteSampler', shuffle=True)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1000, by_epoch=False)
    cfg.default_hooks.nan_guard.update(guard)
    cfg.log_processor = dict(by_epoch=False, window_size=1)
    # a name of its own: runners built within one second would otherwise share mmengine's
    # logger instance (named after the timestamp) and its log file
    cfg.experiment_name = f'reliability-{tmp_path.name}-{id(cfg)}'
    if model:
        cfg.model = model
    if optim_wrapper:
        cfg.optim_wrapper, cfg.param_scheduler = optim_wrapper, None
    runner = Runner.from_cfg(cfg)
    for hook in hooks:
        runner.register_hook(hook)
    return runner


class _Inject:
    """Makes the decoder output (``kind='loss'``) or its gradient (``'grad'``) NaN in
    the given iterations; records whether the weights changed in each iteration."""

    def __init__(self, iters, kind='loss'):
        self.iters, self.kind, self.changed = set(iters), kind, {}

    def hook(self):
        from mmengine.hooks import Hook
        outer = self

        class InjectNaN(Hook):
            priority = 'LOWEST'

            def before_train_iter(self, runner, batch_idx, data_batch=None):
                model = runner.model
                self.before = [p.detach().clone() for p in model.parameters()]
                self.handle = None
                if runner.iter + 1 in outer.iters:
                    self.handle = model.neck.register_forward_hook(outer._poison)

            def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
                if self.handle is not None:
                    self.handle.remove()
                outer.changed[runner.iter + 1] = any(
                    not torch.equal(a, p) for a, p in zip(self.before,
                                                          runner.model.parameters()))
        return InjectNaN()

    def _poison(self, module, args, out):
        if self.kind == 'loss':
            return out * float('nan')
        out.register_hook(lambda g: g * float('inf'))
        return out


@pytest.mark.parametrize('kind', ['loss', 'grad'])
def test_nan_guard_skips_the_step_and_logs_iteration_and_terms(tmp_path, images, kind, caplog):
    inject = _Inject({3}, kind)
    runner = _runner(tmp_path, images, hooks=[inject.hook()])
    runner.train()
    assert inject.changed == {1: True, 2: True, 3: False, 4: True, 5: True, 6: True}
    assert all(torch.isfinite(p).all() for p in runner.model.parameters())
    log = open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()
    if kind == 'loss':
        assert 'NaNGuardHook: iter 3: non-finite loss terms loss, loss_rec' in log
        assert 'Loss terms: loss=nan, loss_rec=nan, mask_ratio=0.75' in log
    else:
        assert 'NaNGuardHook: iter 3: non-finite gradients of' in log
    assert 'skipped the step of optim_wrapper (1 in a row, 1 in total' in log
    history = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(history) == (5 if kind == 'loss' else 6) and np.isfinite(history).all()
    assert runner.message_hub.get_info('nonfinite_iters') == 1


def test_nan_guard_stops_after_max_consecutive(tmp_path, images):
    inject = _Inject({2, 3, 4, 5, 6}, 'loss')
    runner = _runner(tmp_path, images, hooks=[inject.hook()], max_consecutive=3)
    with pytest.raises(NonFiniteTrainingError) as err:
        runner.train()
    msg = str(err.value)
    assert msg.startswith('NaNGuardHook: stopping at iter 4: 3 consecutive iterations')
    assert 'default_hooks.nan_guard.max_consecutive=3' in msg and '--resume' in msg
    assert 'clip_grad' in msg
    assert inject.changed == {1: True, 2: False, 3: False}  # iter 4 raised in its hook


def test_nan_guard_covers_emae_and_both_gan_mae_wrappers(tmp_path, images):
    base = Config.fromfile(CONFIG).model
    emae = dict(base, type='EMAE', masker=dict(type='ParallelMasker', num_parts=2))
    inject = _Inject({2}, 'loss')
    runner = _runner(tmp_path / 'emae', images, model=emae, hooks=[inject.hook()], max_iters=3)
    runner.train()
    assert inject.changed == {1: True, 2: False, 3: True}

    gan = dict(base, type='GANMAE', scheme='adversarial', backbone_mode='generator',
               discriminator_head=dict(type='PatchDiscriminatorHead'))
    wrappers = dict(  # GAN-MAE: one optimizer per role
        constructor='GANMAEOptimWrapperConstructor',
        generator=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3)),
        discriminator=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3)))
    inject = _Inject({2}, 'loss')
    runner = _runner(tmp_path / 'gan', images, model=gan, hooks=[inject.hook()], max_iters=3,
                     optim_wrapper=wrappers)
    runner.train()
    assert inject.changed == {1: True, 2: False, 3: True}
    log = open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()
    assert 'skipped the step of discriminator, generator (1 in a row' in log


def test_nan_guard_leaves_fp16_overflow_to_the_loss_scaler():
    """With an fp16 loss scaler an overflowing gradient is routine: the scaler skips
    the step and lowers the scale; the guard neither skips again nor counts it."""
    from types import SimpleNamespace

    from mmmim.engine.optim_wrappers import MixedPrecisionOptimWrapper
    layer = torch.nn.Linear(2, 1)
    wrapper = MixedPrecisionOptimWrapper(torch.optim.SGD(layer.parameters(), lr=0.1),
                                         dtype='float16', loss_scale=2.**8)
    runner = SimpleNamespace(model=layer, optim_wrapper=wrapper, iter=0,
                             message_hub=SimpleNamespace(update_info=lambda *a: None))
    guard = NaNGuardHook(max_consecutive=1)
    guard.before_train(runner)
    guard.before_train_iter(runner, 0)
    before = layer.weight.detach().clone()
    loss = layer(torch.ones(1, 2)).sum()
    loss.register_hook(lambda g: g * float('inf'))
    wrapper.update_params(loss)
    assert torch.equal(layer.weight, before) and wrapper.loss_scaler.get_scale() < 2.**8
    guard.after_train_iter(runner, 0, outputs=dict(loss=loss.detach()))
    assert guard.consecutive == 0 and guard.total == 0
    # a diagnostic taken at the loss scale (GAN-MAE's grad_norm_adv) may overflow too: it
    # leaves the log but does not count; a non-finite loss still does
    outputs = dict(loss=torch.tensor(1.), grad_norm_adv=torch.tensor(float('inf')))
    guard.after_train_iter(runner, 1, outputs=outputs)
    assert guard.consecutive == 0 and list(outputs) == ['loss']
    with pytest.raises(NonFiniteTrainingError):
        guard.after_train_iter(runner, 2, outputs=dict(loss=torch.tensor(float('nan'))))


def test_nan_guard_config_is_checked():
    with pytest.raises(ValueError, match='max_consecutive must be an integer >= 0'):
        NaNGuardHook(max_consecutive=-1)


# ---------------------------------------------------------------- bad inputs
@pytest.fixture
def bad_files(tmp_path):
    good = tmp_path / 'good.png'
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(good)
    (tmp_path / 'cut.png').write_bytes(good.read_bytes()[:60])
    (tmp_path / 'junk.jpg').write_bytes(b'not an image at all')
    Image.fromarray(np.full((32, 32), 90, np.uint8)).save(tmp_path / 'grey.png')
    Image.fromarray(np.full((20, 24, 3), 9, np.uint8)).save(tmp_path / 'small.png')
    return tmp_path


def test_corrupt_image_fails_naming_the_file_or_is_skipped_and_counted(bad_files):
    load = SafeLoadImageFromFile()
    assert load(dict(img_path=str(bad_files / 'good.png')))['img'].shape == (32, 32, 3)
    for name, what in (('cut.png', 'corrupt or truncated'), ('junk.jpg', 'corrupt or truncated'),
                       ('missing.png', 'cannot be read')):
        with pytest.raises(ImageLoadError) as err:
            load(dict(img_path=str(bad_files / name)))
        assert name in str(err.value) and what in str(err.value)
        assert "on_error='skip'" in str(err.value)
    skip = SafeLoadImageFromFile(on_error='skip')
    assert skip(dict(img_path=str(bad_files / 'cut.png'))) is None
    assert skip(dict(img_path=str(bad_files / 'junk.jpg'))) is None
    assert [osp.basename(p) for p in skip.skipped] == ['cut.png', 'junk.jpg']
    with pytest.raises(ValueError, match="on_error='ignore'; choose one of"):
        SafeLoadImageFromFile(on_error='ignore')


def test_skipped_image_is_replaced_in_training(tmp_path, images):
    """A corrupt file in the image folder with on_error='skip': training runs, the file
    is named in the log."""
    data = tmp_path / 'data'
    data.mkdir()
    for name in sorted(os.listdir(images))[:8]:
        (data / name).write_bytes(open(osp.join(images, name), 'rb').read())
    (data / 'broken.png').write_bytes(b'\x89PNG broken')
    runner = _runner(tmp_path / 'w', str(data), max_iters=4)
    runner.train_dataloader.dataset.pipeline.transforms[0].on_error = 'skip'
    runner.train()
    log = open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()
    assert 'SafeLoadImageFromFile: skipping' in log and 'broken.png' in log


def test_grey_image_in_rgb_pipeline_and_wrong_size(bad_files):
    rgb = SafeLoadImageFromFile(channels=3)
    img = rgb(dict(img_path=str(bad_files / 'grey.png')))['img']
    assert img.shape == (32, 32, 3) and (img == 90).all()
    with pytest.raises(ImageLoadError, match=r'grey\.png: has 1 channel\(s\) but the pipeline '
                       r'expects 3'):
        SafeLoadImageFromFile(channels=3, convert_channels=False)(
            dict(img_path=str(bad_files / 'grey.png')))
    grey = SafeLoadImageFromFile(channels=1)(dict(img_path=str(bad_files / 'good.png')))['img']
    assert grey.shape == (32, 32)
    sized = SafeLoadImageFromFile(expect_size=32)
    with pytest.raises(ImageLoadError, match=r'small\.png: is 20x24 but the pipeline expects '
                       r'32x32; add a Resize'):
        sized(dict(img_path=str(bad_files / 'small.png')))


def test_masker_the_algorithm_cannot_use_is_named():
    from conftest import tiny_cfg
    with pytest.raises(ValueError, match="masker ParallelMasker makes 4; use type='EMAE'"):
        MODELS.build(tiny_cfg(masker=dict(type='ParallelMasker', num_parts=4)))
    with pytest.raises(ValueError, match='EMAE needs several views.*ParallelMasker'):
        MODELS.build(tiny_cfg(type='EMAE', masker=dict(type='RandomMasker', ratio=0.75)))


def test_nan_guard_skips_on_every_rank_when_one_shard_is_bad(monkeypatch):
    """Under FSDP a rank sees only its gradient shard: a non-finite value on another
    rank's shard must skip this rank's step too (the ranks agree through all_reduce)."""
    from types import SimpleNamespace

    from mmengine.optim import OptimWrapper

    import mmmim.engine.hooks.nan_guard as nan_guard
    layer = torch.nn.Linear(2, 1)
    wrapper = OptimWrapper(torch.optim.SGD(layer.parameters(), lr=0.1))
    runner = SimpleNamespace(model=layer, optim_wrapper=wrapper, iter=0,
                             message_hub=SimpleNamespace(update_info=lambda *a: None))
    other_rank_bad = {'value': 1.}

    def fake_all_reduce(tensor, op='sum'):
        assert op == 'max'
        tensor.fill_(max(tensor.item(), other_rank_bad['value']))
    monkeypatch.setattr(nan_guard, 'get_dist_info', lambda: (0, 2))
    monkeypatch.setattr(nan_guard, 'all_reduce', fake_all_reduce)
    guard = NaNGuardHook(max_consecutive=0)
    guard.before_train(runner)
    for bad_elsewhere, expect_step in ((1., False), (0., True)):
        other_rank_bad['value'] = bad_elsewhere
        guard.before_train_iter(runner, 0)
        before = layer.weight.detach().clone()
        wrapper.update_params(layer(torch.ones(1, 2)).sum())   # finite on this rank
        assert torch.equal(layer.weight, before) != expect_step
        guard.after_train_iter(runner, 0, outputs={})
    assert guard.total == 1

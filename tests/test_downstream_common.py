"""Shared pieces of the downstream tests (fixtures, a recording hook, running mmdet's /
mmseg's own train scripts), and tests of those pieces."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.registry import DefaultScope
from mmengine.runner import save_checkpoint

from conftest import build_tiny, load_tool

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


bench = load_tool('tools/analysis/transfer_benchmark.py')


@pytest.fixture(scope='module')
def pretrained(tmp_path_factory):
    """A tiny MAE pre-training checkpoint (the benchmark's ViT) whose encoder differs
    from any fresh initialisation; returns its path and its encoder tensors."""
    with DefaultScope.overwrite_default_scope('mmmim'):  # a Runner may have switched it
        model = build_tiny(backbone=dict(arch=dict(bench.TINY_ARCH), img_size=128,
                                         patch_size=16, in_channels=3))
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = str(tmp_path_factory.mktemp('ckpt') / 'mae_tiny.pth')
    save_checkpoint({'state_dict': model.state_dict(), 'meta': {}}, path)
    return path, {k[len('backbone.'):]: v for k, v in model.state_dict().items()
                  if k.startswith('backbone.')}


class Record(Hook):
    """Keeps the backbone's tensors as training starts, and every iteration's losses."""

    def __init__(self):
        self.start, self.losses = None, []

    def before_train(self, runner):
        self.start = {k: v.clone() for k, v in runner.model.backbone.state_dict().items()}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses.append({k: float(v.detach()) for k, v in outputs.items()})


def run_own_train_script(package, cfg, tmp_path):
    """Dump ``cfg`` and train it with ``package``'s (mmdet's / mmseg's) own
    tools/train.py in a fresh process; returns its output."""
    script = osp.join(osp.dirname(package.__file__), '.mim', 'tools', 'train.py')
    if not osp.isfile(script):
        pytest.skip(f'this {package.__name__} install does not ship tools/train.py')
    cfg_file = str(tmp_path / 'tiny.py')
    cfg.dump(cfg_file)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
    proc = subprocess.run([sys.executable, script, cfg_file, '--work-dir', cfg.work_dir],
                          env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    return out


def test_pretrained_fixture_holds_the_whole_encoder(pretrained):
    path, enc = pretrained
    saved = torch.load(path, weights_only=False)['state_dict']
    assert {'cls_token', 'pos_embed', 'layers.3.ffn.layers.1.bias', 'ln1.weight'} <= set(enc)
    assert all(torch.equal(saved['backbone.' + k], v) for k, v in enc.items())


def test_unlabelled_pretraining_canvases_hold_items_on_flat_backgrounds():
    """The transfer benchmark's MAE pre-training images: drawn like the labelled sets
    (a flat tinted background, 1..3 items), reproducible from the seed."""
    import numpy as np
    imgs = bench.make_unlabelled_canvases(6, seed=0)
    assert imgs.shape == (6, 128, 128, 3) and imgs.dtype == np.uint8
    for img in imgs:
        colours, counts = np.unique(img.reshape(-1, 3), axis=0, return_counts=True)
        background = colours[counts.argmax()]
        assert background.max() < 40                       # the dark tint
        item_fraction = (img != background).any(-1).mean()
        assert 0.01 < item_fraction < 0.75                  # items, but not a full canvas
    assert len({img.tobytes() for img in imgs}) == 6        # every canvas differs
    np.testing.assert_array_equal(imgs, bench.make_unlabelled_canvases(6, seed=0))
    assert not np.array_equal(imgs, bench.make_unlabelled_canvases(6, seed=1))


def test_transfer_benchmark_checkpoint_option_skips_pretraining(tmp_path, monkeypatch):
    """--checkpoint fine-tunes from the given file: no MAE is trained, and the file is
    what the detector and the segmentor are built from."""
    def no_pretraining(*args, **kwargs):
        raise AssertionError('pre-training ran although --checkpoint was given')

    built = []
    monkeypatch.setattr(bench, 'pretrain_tiny_mae', no_pretraining)
    monkeypatch.setattr(bench, 'run', lambda cfg: built.append(cfg) or {
        'coco/bbox_mAP': 0., 'coco/segm_mAP': 0., 'mIoU': 0.})
    ckpt = str(tmp_path / 'given.pth')
    results = bench.main(['--work-dir', str(tmp_path / 'wd'), '--train-images', '2',
                          '--val-images', '1', '--checkpoint', ckpt])
    assert len(results) == 4 and len(built) == 4
    inits = [cfg.model.backbone.init_cfg for cfg in built]
    assert [i['checkpoint'] if i else None for i in inits] == [ckpt, ckpt, None, None]
    assert all(cfg.model.backbone.get('frozen_stages', -1) < 0 for cfg in built)
    # --frozen-backbone / --layer-decay reach every model the benchmark builds
    built.clear()
    bench.main(['--work-dir', str(tmp_path / 'wd'), '--train-images', '2', '--val-images',
                '1', '--checkpoint', ckpt, '--frozen-backbone', '--layer-decay', '1.0'])
    assert len(built) == 4
    for cfg in built:
        assert cfg.model.backbone.frozen_stages == bench.TINY_ARCH['num_layers']
        assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == 1.0

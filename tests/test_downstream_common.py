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
    """An MAE pre-training checkpoint with the benchmark's ViT (the Fashion-MNIST
    config's) on the canvas size, whose encoder differs from any fresh initialisation;
    returns its path and its encoder tensors."""
    bb = bench.bench_backbone()
    with DefaultScope.overwrite_default_scope('mmmim'):  # a Runner may have switched it
        model = build_tiny(backbone=dict(arch=bb['arch'], img_size=bench.CANVAS,
                                         patch_size=bb['patch_size'],
                                         in_channels=bb['in_channels']))
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


def test_benchmark_pretraining_runs_the_main_job_config_and_fits_the_downstream_vit(tmp_path):
    """Without --checkpoint the benchmark pre-trains with the main job's config through
    tools/train.py (here 1 epoch on 64 images); the checkpoint it returns loads strictly
    into the downstream backbone the benchmark builds."""
    from mmengine.config import Config
    from mmmim.models.downstream import PlainViTBackbone
    ckpt = bench.pretrain_mae(str(tmp_path / 'pre'), epochs=1, amp=False, num_images=64)
    cfg = Config.fromfile(str(tmp_path / 'pre' / 'pretrain_config.py'))
    assert cfg.train_cfg.max_epochs == 1 and cfg.custom_hooks == []
    assert cfg.train_dataloader.dataset.indices == 64
    assert cfg.model.backbone.arch == bench.bench_backbone()['arch']
    saved = torch.load(ckpt, weights_only=False)
    assert saved['meta']['epoch'] == 1
    ade = bench.make_ade_mosaic(str(tmp_path / 'ade'), 'training', 1)
    bb_cfg = bench.probe_seg_cfg(dict(train=ade, val=ade), str(tmp_path / 'wd'),
                                 ckpt).model.backbone
    bb_cfg.pop('type')
    backbone = PlainViTBackbone(**bb_cfg)
    backbone.init_weights()  # strict: any missing or unexpected key would raise
    for key, value in backbone.state_dict().items():
        if key != 'pos_embed':  # resized from the 32x32 images' grid to the canvas'
            assert torch.equal(value, saved['state_dict']['backbone.' + key]), key


def test_transfer_benchmark_checkpoint_option_skips_pretraining(tmp_path, monkeypatch):
    """--checkpoint fine-tunes from the given file: no MAE is trained, and the file is
    what the probe, the segmentor and the detector are built from; the probe's backbone
    is always frozen, the fine-tuned ones only with --frozen-backbone."""
    def no_pretraining(*args, **kwargs):
        raise AssertionError('pre-training ran although --checkpoint was given')

    built = []
    monkeypatch.setattr(bench, 'pretrain_mae', no_pretraining)
    monkeypatch.setattr(bench, 'run', lambda cfg: built.append(cfg) or {
        'coco/bbox_mAP': 0., 'coco/segm_mAP': 0., 'mIoU': 0.})
    ckpt = str(tmp_path / 'given.pth')
    depth = bench.bench_backbone()['arch']['num_layers']
    results = bench.main(['--work-dir', str(tmp_path / 'wd'), '--train-images', '2',
                          '--val-images', '1', '--checkpoint', ckpt])
    assert len(results) == 8 and len(built) == 8
    inits = [cfg.model.backbone.init_cfg for cfg in built]
    assert [i['checkpoint'] if i else None for i in inits] == [ckpt] * 4 + [None] * 4
    frozen = [cfg.model.backbone.get('frozen_stages', -1) for cfg in built]
    assert frozen == [depth, -1, -1, -1] * 2  # probe, linear fine-tune, UperNet, Mask R-CNN
    assert [cfg.model.decode_head.type if 'decode_head' in cfg.model else None
            for cfg in built[:4]] == ['FCNHead', 'FCNHead', 'UPerHead', None]
    assert [r[1] for r in results[:4]] == list(bench.MEASUREMENTS)
    # --frozen-backbone / --layer-decay reach every fine-tuned model
    built.clear()
    bench.main(['--work-dir', str(tmp_path / 'wd'), '--train-images', '2', '--val-images',
                '1', '--checkpoint', ckpt, '--frozen-backbone', '--layer-decay', '1.0',
                '--skip', 'probe'])
    assert len(built) == 6
    for cfg in built:
        assert cfg.model.backbone.frozen_stages == depth
        assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == 1.0


def test_unknown_item_labels_are_refused_with_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match=r'labels \[10\] do not exist; use 0..9 \(0 T-shirt'):
        bench.make_ade_mosaic(str(tmp_path), 'training', 1, labels=(5, 10))

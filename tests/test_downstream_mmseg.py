"""UperNet (mmseg) with our ViT: the real config shrunk to a tiny ViT, trained a few
iterations on an ADE-format mosaic set; also through mmseg's own train script."""
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.runner import Runner

from test_downstream_common import Record, bench, pretrained, run_own_train_script  # noqa: F401


@pytest.fixture(scope='module')
def ade(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('ade'))
    return dict(train=bench.make_ade_mosaic(root, 'training', 4, seed=0),
                val=bench.make_ade_mosaic(root, 'validation', 2, seed=1))






def test_ade_mosaic_maps_follow_the_items(ade):
    import mmcv
    ann_dir, img_dir = ade['train']['ann_dir'], ade['train']['img_dir']
    names = sorted(os.listdir(ann_dir))
    assert len(names) == 4 and ade['train']['classes'][0] == 'background'
    for name in names:
        seg = mmcv.imread(osp.join(ann_dir, name), flag='unchanged')
        img = mmcv.imread(osp.join(img_dir, name), flag='grayscale')
        assert img.shape == seg.shape == (bench.CANVAS, bench.CANVAS)
        assert seg.min() >= 1 and seg.max() <= 1 + len(bench.ITEM_LABELS)
        assert (seg > 1).any()  # every canvas holds at least one item
        # item pixels are the bright ones (the canvas is dark)
        assert img[seg > 1].mean() > img[seg == 1].mean() + 40


def test_upernet_trains_from_the_pretrained_backbone(ade, pretrained, tmp_path):
    path, enc = pretrained
    runner = Runner.from_cfg(bench.tiny_seg_cfg(ade, str(tmp_path), path, max_iters=2))
    record = Record()
    runner.register_hook(record)
    runner.train()
    assert set(record.start) == set(enc)
    for key, value in enc.items():
        assert torch.equal(record.start[key], value), key
    assert len(record.losses) == 2
    for losses in record.losses:
        for name in ('decode.loss_ce', 'aux.loss_ce'):
            assert np.isfinite(losses[name]) and losses[name] > 0, (name, losses)
    after = runner.model.backbone.state_dict()
    assert not torch.equal(after['layers.3.ffn.layers.1.weight'],
                           enc['layers.3.ffn.layers.1.weight'])
    groups = runner.optim_wrapper.optimizer.param_groups
    scale = {n: g['lr_scale'] for g in groups for n in g['param_names']}
    depth = bench.bench_backbone()['arch']['num_layers']
    assert scale['backbone.patch_embed.projection.weight'] == pytest.approx(0.65**(depth + 1))
    assert scale['backbone.layers.2.ln1.weight'] == pytest.approx(0.65**(depth - 2))
    assert scale['decode_head.conv_seg.weight'] == 1.0
    metrics = runner.val_loop.run()
    assert 0 <= metrics['mIoU'] <= 100


def test_seg_config_runs_with_mmseg_own_train_script(ade, pretrained, tmp_path):
    """mmseg's tools/train.py knows nothing of mmmim: the config's custom_imports must
    bring in the backbone and the layer-decay constructor."""
    import mmseg
    cfg = bench.tiny_seg_cfg(ade, str(tmp_path / 'wd'), pretrained[0], max_iters=1)
    out = run_own_train_script(mmseg, cfg, tmp_path)
    assert 'PlainViTBackbone: loaded' in out and 'decode.loss_ce' in out


def test_linear_probe_trains_only_a_1x1_classifier_on_the_frozen_pretrained_backbone(
        ade, pretrained, tmp_path):
    path, enc = pretrained
    cfg = bench.probe_seg_cfg(ade, str(tmp_path), path, max_iters=2, lr=1e-2)
    runner = Runner.from_cfg(cfg)
    record = Record()
    runner.register_hook(record)
    runner.train()
    for key, value in enc.items():  # loaded, and not moved by training
        assert torch.equal(record.start[key], value), key
        assert torch.equal(runner.model.backbone.state_dict()[key], value), key
    head = runner.model.decode_head
    assert isinstance(head.convs, torch.nn.Identity)  # no convs: the probe is linear
    trainable = {n for n, p in runner.model.named_parameters() if p.requires_grad}
    assert trainable == {'decode_head.conv_seg.weight', 'decode_head.conv_seg.bias'}
    assert head.conv_seg.in_channels == bench.bench_backbone()['arch']['embed_dims']
    assert head.conv_seg.out_channels == len(ade['train']['classes'])
    assert all(np.isfinite(r['decode.loss_ce']) for r in record.losses)
    assert 0 <= runner.val_loop.run()['mIoU'] <= 100


def test_upernet_takes_four_blocks_spread_over_the_depth():
    assert bench.upernet_indices(12) == (2, 5, 8, 11)
    assert bench.upernet_indices(6) == (1, 2, 3, 5)
    assert bench.upernet_indices(4) == (0, 1, 2, 3)

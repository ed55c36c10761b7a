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


def test_linear_decoder_fine_tune_trains_every_block_under_layer_decay(ade, pretrained,
                                                                      tmp_path):
    """frozen=False: the same 1x1 head, but the backbone is fine-tuned end to end from
    the checkpoint, every block with its layer-decay scale."""
    path, enc = pretrained
    cfg = bench.linear_seg_cfg(ade, str(tmp_path), path, max_iters=2, lr=2e-3, frozen=False)
    runner = Runner.from_cfg(cfg)
    record = Record()
    runner.register_hook(record)
    runner.train()
    for key, value in enc.items():
        assert torch.equal(record.start[key], value), key
    assert isinstance(runner.model.decode_head.convs, torch.nn.Identity)
    assert runner.model.with_neck is False and runner.model.with_auxiliary_head is False
    depth = bench.bench_backbone()['arch']['num_layers']
    after = runner.model.backbone.state_dict()
    moved = ['patch_embed.projection.weight'] + [f'layers.{i}.attn.qkv.weight'
                                                 for i in range(depth)]
    for key in moved:
        assert not torch.equal(after[key], enc[key]), f'{key} did not train'
    scale = {n: g['lr_scale'] for g in runner.optim_wrapper.optimizer.param_groups
             for n in g['param_names']}
    assert scale['backbone.layers.0.attn.qkv.weight'] == pytest.approx(0.65**depth)
    assert scale['decode_head.conv_seg.weight'] == 1.0
    assert all(np.isfinite(r['decode.loss_ce']) for r in record.losses)


def test_per_class_iou_matches_the_definition_and_the_mean():
    """The benchmark's metric adds each class's IoU to mmseg's means: intersection over
    union of predicted and labelled pixels, ignored pixels left out, NaN for a class
    neither labelled nor predicted; their mean is mmseg's mIoU."""
    from mmseg.evaluation.metrics import IoUMetric
    from mmseg.registry import METRICS
    bench._register_class_iou_metric()
    metric = METRICS.build(dict(type='mmseg.TransferBenchClassIoU', iou_metrics=['mIoU']))
    classes = ('background', 'a', 'b', 'c')
    metric.dataset_meta = dict(classes=classes)
    rng = np.random.default_rng(0)
    label = rng.integers(0, 3, (2, 16, 16))  # class 'c' never labelled ...
    label[:, :2] = 255  # ... and two ignored rows
    pred = rng.integers(0, 3, (2, 16, 16))  # ... nor predicted
    pred[0, 4:8] = label[0, 4:8]
    results = [IoUMetric.intersect_and_union(torch.from_numpy(p), torch.from_numpy(t), 4, 255)
               for p, t in zip(pred, label)]
    out = metric.compute_metrics(results)
    valid = label != 255
    for c, name in enumerate(classes[:3]):
        inter = ((pred == c) & (label == c) & valid).sum()
        union = (((pred == c) | (label == c)) & valid).sum()
        assert out[f'IoU.{name}'] == pytest.approx(100 * inter / union, abs=0.01)
    assert np.isnan(out['IoU.c'])
    assert out['mIoU'] == pytest.approx(np.mean([out[f'IoU.{n}'] for n in classes[:3]]),
                                        abs=0.01)


def test_upernet_takes_four_blocks_spread_over_the_depth():
    assert bench.upernet_indices(12) == (2, 5, 8, 11)
    assert bench.upernet_indices(6) == (1, 2, 3, 5)
    assert bench.upernet_indices(4) == (0, 1, 2, 3)

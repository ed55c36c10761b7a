"""Mask R-CNN (mmdet) with our ViT: window attention, simple pyramid, LN2d, the real
config shrunk to a tiny ViT, trained a few iterations on a COCO-format mosaic set."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import DefaultScope
from mmengine.runner import Runner, save_checkpoint

from mmmim.models.downstream import LayerNorm2d, PlainViTBackbone, SimpleFeaturePyramid
from mmmim.utils.convert import CheckpointMismatchError
from conftest import build_tiny
from test_downstream_common import (Record, bench, load_tool, pretrained,  # noqa: F401
                                    run_own_train_script)


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('coco'))
    return dict(train=bench.make_coco_mosaic(root, 'train', 4, seed=0),
                val=bench.make_coco_mosaic(root, 'val', 2, seed=1))






def test_coco_mosaic_boxes_and_masks_agree(coco):
    from pycocotools.coco import COCO
    ann = json.load(open(coco['train']['ann_file']))
    assert len(ann['images']) == 4 and ann['annotations']
    api = COCO(coco['train']['ann_file'])
    for a in ann['annotations']:
        mask = api.annToMask(a).astype(bool)
        ys, xs = np.nonzero(mask)
        assert a['bbox'] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
        assert a['area'] == mask.sum() and 1 <= a['category_id'] <= 3
        img = bench.load_canvases(coco['train']['img_dir'])[a['image_id'] - 1]
        assert img[mask].mean() > img[~mask].mean()  # items are brighter than the canvas


def test_window_attention_is_local_and_padding_is_invisible():
    arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
    torch.manual_seed(0)
    glob = PlainViTBackbone(arch=arch, img_size=64, patch_size=8, with_cls_token=False,
                            out_indices=(0, 1)).eval()
    # one window larger than the 5x6 grid: padded, masked tokens -> the global result
    big = PlainViTBackbone(arch=arch, img_size=64, patch_size=8, with_cls_token=False,
                           window_size=8, out_indices=(0, 1)).eval()
    big.load_state_dict(glob.state_dict())
    x = torch.randn(2, 3, 40, 48)
    for a, b in zip(glob(x), big(x)):
        assert torch.allclose(a, b, atol=1e-5)
    # windows of 2: changing one window's pixels leaves the other windows' tokens alone
    local = PlainViTBackbone(arch=arch, img_size=64, patch_size=8, with_cls_token=False,
                             window_size=2, out_indices=(0, 1)).eval()
    local.load_state_dict(glob.state_dict())
    x2 = x.clone()
    x2[:, :, :16, :16] += 1  # patches (0..1, 0..1): window (0, 0)
    both = local(x)[1], local(x2)[1]
    changed = (both[0] - both[1]).abs().amax(dim=(0, 1)) > 1e-6
    assert changed[:2, :2].all() and not changed[2:].any() and not changed[:, 2:].any()
    # a global block mixes them again
    mixed = PlainViTBackbone(arch=arch, img_size=64, patch_size=8, with_cls_token=False,
                             window_size=2, global_attn_indices=(-1, ), out_indices=(1, )).eval()
    mixed.load_state_dict(glob.state_dict())
    assert ((mixed(x)[0] - mixed(x2)[0]).abs().amax(dim=(0, 1)) > 1e-6).all()
    with pytest.raises(ValueError, match='with_cls_token=False'):
        PlainViTBackbone(arch=arch, img_size=64, patch_size=8, window_size=2)


def test_simple_pyramid_strides_and_layer_norm_2d():
    neck = SimpleFeaturePyramid(in_channels=32, out_channels=16, num_outs=5)
    x = torch.randn(2, 32, 8, 6)
    outs = neck((x, ))
    assert [tuple(o.shape[-2:]) for o in outs] == [(32, 24), (16, 12), (8, 6), (4, 3), (2, 2)]
    assert all(o.shape[1] == 16 for o in outs)
    ln = LayerNorm2d(32)
    with torch.no_grad():
        ln.weight.normal_(), ln.bias.normal_()
    ref = F.layer_norm(x.permute(0, 2, 3, 1), (32, ), ln.weight, ln.bias, 1e-6).permute(0, 3, 1, 2)
    assert torch.allclose(ln(x), ref, atol=1e-6)
    from mmcv.cnn import build_norm_layer
    with DefaultScope.overwrite_default_scope('mmdet'):
        name, layer = build_norm_layer(dict(type='LN2d', requires_grad=True), 16)
    assert isinstance(layer, LayerNorm2d) and name.startswith('ln')


def test_mask_rcnn_trains_from_the_pretrained_backbone(coco, pretrained, tmp_path):
    path, enc = pretrained
    cfg = bench.tiny_det_cfg(coco, str(tmp_path), path, max_iters=2)
    runner = Runner.from_cfg(cfg)
    record = Record()
    runner.register_hook(record)
    runner.train()
    # the weights were really used: every backbone tensor equals the checkpoint's,
    # cls_token included (kept although ViTDet-style windows do not use it)
    assert set(record.start) == set(enc)
    for key, value in enc.items():
        assert torch.equal(record.start[key], value), key
    assert len(record.losses) == 2
    for losses in record.losses:
        for name in ('loss_rpn_cls', 'loss_cls', 'loss_bbox', 'loss_mask'):
            assert np.isfinite(losses[name]) and losses[name] >= 0, (name, losses)
    after = runner.model.backbone.state_dict()
    assert not torch.equal(after['layers.0.attn.qkv.weight'], enc['layers.0.attn.qkv.weight'])
    # layer decay from the mmdet-scope config: block 0 at rate**4, the heads at lr
    groups = runner.optim_wrapper.optimizer.param_groups
    scale = {n: g['lr_scale'] for g in groups for n in g['param_names']}
    depth = bench.bench_backbone()['arch']['num_layers']
    assert scale['backbone.layers.0.attn.qkv.weight'] == pytest.approx(0.7**depth)
    assert scale['roi_head.mask_head.conv_logits.weight'] == 1.0
    assert 'backbone.cls_token' not in scale  # unused with windows: frozen
    # and it evaluates with mmdet's CocoMetric
    metrics = runner.val_loop.run()
    assert 0 <= metrics['coco/bbox_mAP'] <= 1 and 0 <= metrics['coco/segm_mAP'] <= 1


def test_tiny_detector_strides_agree_with_its_pyramid(coco, tmp_path):
    """The anchors and RoI extractors must use the strides the pyramid really has (the
    patch size divided by each scale factor), or proposals land on the wrong cells."""
    m = bench.tiny_det_cfg(coco, str(tmp_path), None).model
    p = bench.bench_backbone()['patch_size']
    strides = [p / f for f in m.neck.scale_factors]
    assert m.roi_head.bbox_roi_extractor.featmap_strides == strides
    assert m.roi_head.mask_roi_extractor.featmap_strides == strides
    assert m.rpn_head.anchor_generator.strides == strides + [2 * strides[-1]]
    assert m.neck.num_outs == len(m.rpn_head.anchor_generator.strides)
    with DefaultScope.overwrite_default_scope('mmdet'):
        from mmdet.registry import MODELS as DET_MODELS
        detector = DET_MODELS.build(m)
    feats = detector.extract_feat(torch.zeros(1, 1, bench.CANVAS, bench.CANVAS))
    assert [bench.CANVAS / f.shape[-1] for f in feats] == strides + [2 * strides[-1]]


def test_det_config_runs_through_tools_train(coco, pretrained, tmp_path):
    cfg = bench.tiny_det_cfg(coco, str(tmp_path / 'wd'), pretrained[0], max_iters=1)
    cfg_file = str(tmp_path / 'tiny_det.py')
    cfg.dump(cfg_file)
    train = load_tool('tools/train.py')
    train.main([cfg_file, '--work-dir', str(tmp_path / 'wd')])
    logs = open(next(p for p in (tmp_path / 'wd').rglob('*.log'))).read()
    assert 'loss_mask' in logs and 'PlainViTBackbone: loaded' in logs


def test_wrong_patch_size_checkpoint_is_refused_by_the_detector(coco, tmp_path):
    bb = bench.bench_backbone()
    assert bb['patch_size'] != 8
    with DefaultScope.overwrite_default_scope('mmmim'):  # a Runner may have switched it
        model = build_tiny(backbone=dict(arch=bb['arch'], img_size=bench.CANVAS,
                                         patch_size=8, in_channels=bb['in_channels']))
    path = str(tmp_path / 'p8.pth')
    save_checkpoint({'state_dict': model.state_dict(), 'meta': {}}, path)
    runner = Runner.from_cfg(bench.tiny_det_cfg(coco, str(tmp_path), path, max_iters=1))
    with pytest.raises(CheckpointMismatchError) as err:
        runner.train()
    msg = str(err.value)
    dims, c, p = bb['arch']['embed_dims'], bb['in_channels'], bb['patch_size']
    assert (f'patch_embed.projection.weight: checkpoint {dims}x{c}x8x8 vs model '
            f'{dims}x{c}x{p}x{p}') in msg
    assert 'patch_size=8' in msg and 'convert_checkpoint.py' in msg


def test_det_config_runs_with_mmdet_own_train_script(coco, pretrained, tmp_path):
    """mmdet's tools/train.py knows nothing of mmmim: the config's custom_imports must
    bring in the backbone, the pyramid, LN2d and the layer-decay constructor."""
    import mmdet
    cfg = bench.tiny_det_cfg(coco, str(tmp_path / 'wd'), pretrained[0], max_iters=1)
    out = run_own_train_script(mmdet, cfg, tmp_path)
    assert 'PlainViTBackbone: loaded' in out and 'loss_mask' in out

"""Evaluation configs (fine-tune, linear probe, partial fine-tune, robustness, Fashion
fine-tune): every one builds, loads a pre-training checkpoint, freezes what it should,
and a tiny linear probe learns on real Fashion-MNIST images."""
import copy
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmengine.optim import build_optim_wrapper

from mmmim.registry import DATASETS, METRICS, MODELS, TRANSFORMS
from conftest import build_tiny

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
BENCHMARKS = sorted(glob.glob(osp.join(ROOT, 'configs', '*', 'benchmarks', '*.py')))
ROBUSTNESS = sorted(glob.glob(osp.join(ROOT, 'configs', 'robustness', '*.py')))
FMNIST_FT = sorted(glob.glob(osp.join(ROOT, 'configs', 'fashion_mnist', 'finetune*.py')))
FMNIST_ROOT = '/usr/share/datasets/fashion-mnist'
TINY_ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=32)


def rel(path):
    return osp.relpath(path, ROOT)


def shrink(model_cfg, fmnist_geometry=False):
    """Same config with a 2-block 32-d encoder; frozen_stages keeps its meaning (all
    blocks frozen stays all, "all but k" stays all but k). No checkpoint is loaded."""
    model_cfg = copy.deepcopy(model_cfg)
    bb = model_cfg.backbone
    depth = {'base': 12, 'large': 24, 'huge': 32}.get(bb.arch) if isinstance(bb.arch, str) \
        else bb.arch['num_layers']
    frozen = bb.get('frozen_stages', -1)
    if frozen >= 0:
        bb.frozen_stages = max(TINY_ARCH['num_layers'] - (depth - frozen), 0)
    bb.arch = dict(TINY_ARCH)
    bb.init_cfg = None
    if fmnist_geometry:
        bb.update(img_size=32, patch_size=4, in_channels=1)
        model_cfg.data_preprocessor.update(mean=[55.8], std=[82.9], to_rgb=False, num_classes=10)
        model_cfg.head.num_classes = 10
    if model_cfg.get('neck'):
        model_cfg.neck.input_features = TINY_ARCH['embed_dims']
    model_cfg.head.in_channels = TINY_ARCH['embed_dims']
    return model_cfg, depth


def trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def check_pipeline(pipeline):
    for step in pipeline:
        TRANSFORMS.build(step)


@pytest.mark.parametrize('path', BENCHMARKS, ids=rel)
def test_benchmark_config_builds(path):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmmim'
    bb = cfg.model.backbone
    # the pre-training checkpoint is one variable that lands in the encoder's init_cfg
    assert bb.init_cfg == dict(type='Pretrained', checkpoint=cfg.checkpoint, prefix='backbone.')
    assert cfg.checkpoint.startswith('work_dirs/') and cfg.checkpoint.endswith('.pth')
    model_cfg, depth = shrink(cfg.model)
    model = MODELS.build(model_cfg)
    model.init_weights()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    for p in (cfg.train_dataloader.dataset.pipeline, cfg.val_dataloader.dataset.pipeline):
        check_pipeline(p)
    METRICS.build(cfg.val_evaluator)
    head_dims = {'base': 768, 'large': 1024, 'huge': 1280}[bb.arch]
    assert cfg.model.head.in_channels == head_dims and cfg.model.head.num_classes == 1000

    name = osp.basename(path)
    blocks = {f'backbone.layers.{i}.' for i in range(TINY_ARCH['num_layers'])}
    if 'linear-probe' in name:
        # frozen encoder (incl. final norm), cls token, BatchNorm without affine, LARS
        assert bb.frozen_stages == depth and bb.out_type == 'cls_token'
        assert cfg.model.neck.type == 'mmpretrain.ClsBatchNormNeck' and not cfg.model.neck.affine
        assert trainable(model) == {'head.fc.weight', 'head.fc.bias'}
        assert type(optim.optimizer).__name__ == 'LARS'
        assert optim.optimizer.defaults['lr'] == pytest.approx(0.1 * 16384 / 256)
        assert cfg.train_cfg.max_epochs == 90
        assert cfg.train_dataloader.batch_size * 8 == 16384
    else:
        assert bb.out_type == 'avg_featmap' and bb.fixed_pos_embed is False
        assert cfg.optim_wrapper.constructor == 'LayerDecayOptimWrapperConstructor'
        large = bb.arch in ('large', 'huge')
        rate = 0.75 if large else 0.65
        assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == rate
        assert bb.drop_path_rate == {'base': 0.1, 'large': 0.2, 'huge': 0.3}[bb.arch]
        assert cfg.train_cfg.max_epochs == (50 if large else 100)
        assert cfg.model.head.loss.label_smooth_val == 0.1
        assert [a['type'] for a in cfg.model.train_cfg.augments] == ['Mixup', 'CutMix']
        base_lr = optim.optimizer.defaults['lr']
        assert base_lr == pytest.approx((1e-3 if large else 5e-4) * 1024 / 256)
        lr_of = {}
        for group in optim.optimizer.param_groups:
            for n in group['param_names']:
                lr_of[n] = group['lr']
        assert lr_of['head.fc.weight'] == pytest.approx(base_lr)
        if 'partial-ft' in name:
            # all but the last `trainable_blocks` blocks frozen (with the stem)
            k = cfg.trainable_blocks
            assert bb.frozen_stages == depth - k
            frozen_blocks = TINY_ARCH['num_layers'] - k
            names = trainable(model)
            assert not any(n.startswith(f'backbone.layers.{i}.') for i in range(frozen_blocks)
                           for n in names)
            assert any(n.startswith(f'backbone.layers.{TINY_ARCH["num_layers"] - 1}.') for n in names)
            assert 'backbone.pos_embed' not in names and 'backbone.cls_token' not in names
        else:
            assert all(any(n.startswith(b) for n in trainable(model)) for b in blocks)
            # block 0 of a 2-block ViT: lr * rate ** (2 + 1 - 1)
            assert lr_of['backbone.layers.0.attn.qkv.weight'] == pytest.approx(base_lr * rate**2)


@pytest.mark.parametrize('path', ROBUSTNESS, ids=rel)
def test_robustness_config_builds(path):
    cfg = Config.fromfile(path)
    assert cfg.model.backbone.init_cfg is None  # weights come from the tested checkpoint
    model_cfg, _ = shrink(cfg.model)
    model_cfg.backbone.init_cfg = None
    MODELS.build(model_cfg)
    metric = METRICS.build(cfg.test_evaluator)
    dataset = cfg.test_dataloader.dataset
    name = osp.basename(path)
    if 'imagenet-c' in name:
        assert dataset.type == 'ConcatDataset' and len(dataset.datasets) == 75
        prefixes = {d.data_prefix for d in dataset.datasets}
        assert 'gaussian_noise/1' in prefixes and 'jpeg_compression/5' in prefixes
        assert type(metric).__name__ == 'CorruptionError'
        check_pipeline(dataset.datasets[0].pipeline)
    else:
        check_pipeline(dataset.pipeline)
        if 'sketch' in name:
            assert type(metric).__name__ == 'Accuracy' and dataset.type == 'mmpretrain.ImageNet'
        else:
            subset = 'imagenet-a' if 'imagenet-a' in name else 'imagenet-r'
            assert type(metric).__name__ == 'SubsetAccuracy' and len(metric.class_indices) == 200
            assert cfg.test_evaluator.subset == subset and dataset.data_root == f'data/{subset}'


def _save_tiny_mae(tmp_path):
    mae = build_tiny()
    path = str(tmp_path / 'mae.pth')
    torch.save(dict(state_dict=mae.state_dict(), meta=dict()), path)
    return mae, path


@pytest.mark.parametrize('path', FMNIST_FT, ids=rel)
def test_fashion_finetune_loads_a_pretraining_checkpoint(path, tmp_path):
    """The classifier's encoder = the pre-trained MAE encoder, tensor for tensor."""
    mae, ckpt = _save_tiny_mae(tmp_path)
    cfg = Config.fromfile(path)
    model_cfg, _ = shrink(cfg.model)
    model_cfg.backbone.init_cfg = dict(type='Pretrained', checkpoint=ckpt, prefix='backbone.')
    torch.manual_seed(1)
    model = MODELS.build(model_cfg)
    model.init_weights()
    for key in ('layers.0.attn.qkv.weight', 'layers.1.ffn.layers.1.bias', 'cls_token',
                'patch_embed.projection.weight'):
        assert torch.equal(model.backbone.state_dict()[key], mae.backbone.state_dict()[key]), key
    # the position embedding is learned when fine-tuning, fixed in pre-training
    assert model.backbone.pos_embed.requires_grad and not mae.backbone.pos_embed.requires_grad
    assert torch.equal(model.backbone.pos_embed, mae.backbone.pos_embed)
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    lrs = {n: g['lr'] for g in optim.optimizer.param_groups for n in g['param_names']}
    base = cfg.optim_wrapper.optimizer.lr
    rate = cfg.optim_wrapper.paramwise_cfg.layer_decay_rate
    assert rate < 1
    assert lrs['head.fc.weight'] == pytest.approx(base)
    assert lrs['backbone.layers.1.attn.qkv.weight'] == pytest.approx(base * rate)
    assert lrs['backbone.patch_embed.projection.weight'] == pytest.approx(base * rate**3)
    check_pipeline(cfg.train_dataloader.dataset.pipeline)


def _batches(dataset, batch_size):
    items = [dataset[i] for i in range(len(dataset))]
    return [default_collate(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]


@pytest.mark.skipif(not osp.isdir(FMNIST_ROOT), reason='Fashion-MNIST files not installed')
def test_tiny_linear_probe_learns_on_fashion_mnist():
    """The ImageNet linear-probe recipe (frozen encoder, BatchNorm without affine, LARS)
    on 1024 real Fashion-MNIST images, a random frozen encoder: well above 10 % chance."""
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'mae', 'benchmarks', 'vit-b_linear-probe_90e.py'))
    model_cfg, _ = shrink(cfg.model, fmnist_geometry=True)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    frozen_before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    optim = build_optim_wrapper(model, cfg.optim_wrapper)  # LARS at the recipe's lr
    pipeline = [dict(type='PackInputs')]
    train = DATASETS.build(dict(type='FashionMNISTDataset', data_root=FMNIST_ROOT, split='train',
                                pipeline=pipeline, indices=1024))
    test = DATASETS.build(dict(type='FashionMNISTDataset', data_root=FMNIST_ROOT, split='test',
                               pipeline=pipeline, indices=500))
    batches = _batches(train, 128)
    model.train()
    for _ in range(12):  # 96 LARS steps: LARS moves each weight by ~lr * 1e-3 of its norm
        for data in batches:
            model.train_step(data, optim)
    model.eval()
    correct = 0
    for data in _batches(test, 250):
        for sample in model.val_step(data):
            correct += int(sample.pred_label == sample.gt_label)
    accuracy = 100. * correct / len(test)
    assert accuracy > 40., f'linear probe top-1 {accuracy:.1f}% (chance 10%)'
    # the encoder did not move
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, frozen_before[k]), k

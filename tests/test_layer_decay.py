"""Layer-wise lr decay: exact rates per parameter, for any model that holds our ViT."""
import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from torch import nn

from mmmim.engine.optim_wrappers.layer_decay import LayerDecayOptimWrapperConstructor
from mmmim.models.backbones import MaskedViT

LR, RATE, WD = 1e-3, 0.75, 0.05


def vit12():
    return MaskedViT(arch=dict(embed_dims=16, num_layers=12, num_heads=2, feedforward_channels=32),
                     img_size=16, patch_size=8, in_channels=1, fixed_pos_embed=False)


class Detectorish(nn.Module):
    """A model that is not a classifier: ViT under ``backbone``, plus a neck and a head."""

    def __init__(self):
        super().__init__()
        self.backbone = vit12()
        self.neck = nn.Conv2d(16, 8, 1)
        self.head = nn.Linear(8, 3)


def expected_depth(name):
    rel = name[len('backbone.'):] if name.startswith('backbone.') else None
    if rel is None:
        return 13  # neck / head: num_layers + 1
    if rel.split('.')[0] in ('cls_token', 'pos_embed', 'patch_embed'):
        return 0
    if rel.startswith('layers.'):
        return int(rel.split('.')[1]) + 1
    return 13  # final norm


def lr_per_param(optim_wrapper, model):
    names = {id(p): n for n, p in model.named_parameters()}
    out = {}
    for group in optim_wrapper.optimizer.param_groups:
        for p in group['params']:
            out[names[id(p)]] = (group['lr'], group['weight_decay'])
    return out


def build(model, scope='mmmim', **paramwise):
    cfg = dict(constructor='LayerDecayOptimWrapperConstructor',
               optimizer=dict(type='AdamW', lr=LR, weight_decay=WD),
               paramwise_cfg=dict(layer_decay_rate=RATE, **paramwise))
    with DefaultScope.overwrite_default_scope(scope):
        return build_optim_wrapper(model, cfg)


def test_rates_are_exact_for_12_block_vit_inside_a_detector_like_model():
    model = Detectorish()
    got = lr_per_param(build(model), model)
    assert set(got) == {n for n, _ in model.named_parameters()}
    for name, param in model.named_parameters():
        depth = expected_depth(name)
        lr, wd = got[name]
        assert lr == pytest.approx(LR * RATE**(12 + 1 - depth), rel=1e-12), name
        no_decay = param.ndim == 1 or 'cls_token' in name or 'pos_embed' in name
        assert wd == (0. if no_decay else WD), name
    # spot values: the stem gets rate**13, block 11 rate**1, the head the full lr
    assert got['backbone.patch_embed.projection.weight'][0] == pytest.approx(LR * RATE**13)
    assert got['backbone.layers.0.attn.qkv.weight'][0] == pytest.approx(LR * RATE**12)
    assert got['backbone.layers.11.ffn.layers.1.weight'][0] == pytest.approx(LR * RATE)
    assert got['head.weight'][0] == LR and got['backbone.ln1.weight'][0] == LR


def test_bare_vit_and_frozen_params_and_custom_keys():
    model = vit12()
    model.patch_embed.projection.weight.requires_grad = False
    ow = build(model, custom_keys={'layers.3.': dict(lr_mult=0.5, decay_mult=0.)})
    got = lr_per_param(ow, model)
    assert 'patch_embed.projection.weight' not in got
    assert got['pos_embed'][0] == pytest.approx(LR * RATE**13)
    assert got['layers.3.attn.qkv.weight'] == (pytest.approx(LR * RATE**9 * 0.5), 0.)
    groups = ow.optimizer.param_groups
    assert all({'layer_id', 'lr_scale', 'param_names'} <= set(g) for g in groups)


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_builds_from_mmdet_and_mmseg_scopes(scope):
    import mmmim.models.downstream  # noqa: F401  (what custom_imports does)
    model = Detectorish()
    got = lr_per_param(build(model, scope=scope), model)
    assert got['backbone.layers.5.ln1.weight'][0] == pytest.approx(LR * RATE**7)


def test_mmpretrain_vit_is_found_by_names_too():
    from mmpretrain.models import VisionTransformer
    model = nn.Module()
    model.backbone = VisionTransformer(
        arch=dict(embed_dims=16, num_layers=3, num_heads=2, feedforward_channels=32),
        img_size=16, patch_size=8)
    model.head = nn.Linear(16, 2)
    got = lr_per_param(build(model), model)
    assert got['backbone.cls_token'][0] == pytest.approx(LR * RATE**4)
    assert got['backbone.layers.2.attn.qkv.weight'][0] == pytest.approx(LR * RATE)


def test_errors_say_what_to_set():
    with pytest.raises(ValueError, match='layer_decay_rate is missing'):
        LayerDecayOptimWrapperConstructor(dict(optimizer=dict(type='AdamW', lr=1.)), {})
    with pytest.raises(ValueError, match=r'must be in \(0, 1\]'):
        LayerDecayOptimWrapperConstructor(dict(optimizer=dict(type='AdamW', lr=1.)),
                                          dict(layer_decay_rate=1.5))
    with pytest.raises(ValueError, match='vit_prefix'):
        build(nn.Linear(2, 2))
    # an explicit prefix with num_layers works for a module that is not a ViT class
    model = nn.Module()
    model.enc = nn.Module()
    model.enc.blocks = nn.ModuleList(nn.Linear(2, 2) for _ in range(2))
    got = lr_per_param(build(model, vit_prefix='enc', num_layers=2), model)
    assert got['enc.blocks.0.weight'][0] == pytest.approx(LR * RATE**2)
    assert torch.is_tensor(model.enc.blocks[0].weight)

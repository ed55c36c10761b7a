"""Merged optimizer groups: the same update per parameter as mmengine's one group per
parameter, with one group per distinct setting; a resume across the switch is refused."""
import copy

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from mmmim.models.backbones import MaskedViT

CUSTOM_KEYS = {'norm': dict(decay_mult=0.), 'bias': dict(decay_mult=0.),
               'pos_embed': dict(decay_mult=0.), 'cls_token': dict(decay_mult=0.),
               'patch_embed': dict(lr_mult=0.5),
               # same lr as the no-decay groups, other decay: must stay apart from them
               'ffn': dict(lr_mult=1., decay_mult=1.)}


def vit():
    torch.manual_seed(0)
    return MaskedViT(arch=dict(embed_dims=16, num_layers=3, num_heads=2, feedforward_channels=32),
                     img_size=16, patch_size=8, in_channels=1, fixed_pos_embed=False)


def build(model, merged, paramwise=True, fused=True):
    cfg = dict(optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.5, betas=(0.9, 0.95),
                              fused=fused))
    if paramwise:
        cfg['paramwise_cfg'] = dict(custom_keys=CUSTOM_KEYS)
    if merged:
        cfg['constructor'] = 'MergedGroupsOptimWrapperConstructor'
    with DefaultScope.overwrite_default_scope('mmmim'):
        return build_optim_wrapper(model, cfg)


def settings(optim_wrapper, model):
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: {k: v for k, v in g.items() if k != 'params'}
            for g in optim_wrapper.optimizer.param_groups for p in g['params']}


def steps(model, optim_wrapper, n, seed=1):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x = torch.randn(4, 1, 16, 16, generator=gen)
        loss = model(x)[0].square().mean()
        optim_wrapper.update_params(loss)


def test_one_group_per_setting_and_the_same_setting_per_parameter():
    model = vit()
    per_param, merged = build(model, False), build(model, True)
    assert len(per_param.optimizer.param_groups) == len(list(model.parameters()))
    # default; no decay (norms, biases, tokens); half lr (patch_embed, decay on its bias
    # too: the longer key wins); ffn weights (explicit lr and decay)
    assert len(merged.optimizer.param_groups) == 4
    assert settings(merged, model) == settings(per_param, model)
    # every parameter exactly once
    ids = [id(p) for g in merged.optimizer.param_groups for p in g['params']]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())


@pytest.mark.parametrize('fused', [True, False])
def test_training_steps_give_the_same_weights(fused):
    a, b = vit(), vit()
    steps(a, build(a, False, fused=fused), 3)
    steps(b, build(b, True, fused=fused), 3)
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0, msg=name)
    # the steps moved the weights (so the comparison is not of two untouched models)
    assert not torch.equal(a.layers[0].ffn.layers[1].weight, vit().layers[0].ffn.layers[1].weight)


def test_a_per_parameter_checkpoint_is_refused_with_the_fix():
    a = vit()
    ow_a = build(a, False)
    steps(a, ow_a, 1)
    ow_b = build(vit(), True)
    with pytest.raises(ValueError, match='one per parameter.*drop optim_wrapper.constructor'):
        ow_b.load_state_dict(copy.deepcopy(ow_a.state_dict()))


def test_a_merged_checkpoint_resumes_into_the_merged_optimizer():
    a = vit()
    ow_a = build(a, True)
    steps(a, ow_a, 2)
    b = vit()
    b.load_state_dict(a.state_dict())
    ow_b = build(b, True)
    ow_b.load_state_dict(copy.deepcopy(ow_a.state_dict()))
    steps(a, ow_a, 1, seed=2)
    steps(b, ow_b, 1, seed=2)
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)


def test_without_paramwise_cfg_there_is_one_group():
    model = vit()
    assert len(build(model, True, paramwise=False).optimizer.param_groups) == 1


def test_a_merged_checkpoint_resumed_without_the_constructor_is_explained():
    from mmmim.utils.launch import explain_resume_error
    a = vit()
    ow_a = build(a, True)
    steps(a, ow_a, 1)
    with pytest.raises(ValueError) as info:  # PyTorch's own refusal, which names no fix
        build(vit(), False).load_state_dict(copy.deepcopy(ow_a.state_dict()))
    cfg = dict(resume=True, optim_wrapper=dict(optimizer=dict(type='AdamW')))
    better = explain_resume_error(info.value, cfg)
    assert 'MergedGroupsOptimWrapperConstructor' in str(better)
    assert "'DefaultOptimWrapperConstructor'" in str(better) and 'load_from' in str(better)
    assert explain_resume_error(info.value, dict(cfg, resume=False)) is None
    assert explain_resume_error(ValueError('other'), cfg) is None

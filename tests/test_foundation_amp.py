"""MixedPrecisionOptimWrapper: bf16 autocast on CPU, fp16 + dynamic loss scaling whose
state survives a checkpoint, and the --amp config switch."""
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import mmmim.engine  # noqa: F401
from mmmim.engine.optim_wrappers import MixedPrecisionOptimWrapper
from mmmim.utils import load_checkpoint_safely
from mmmim.utils.launch import switch_to_amp


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))


def _step(wrapper, model, scale=1.0):
    with wrapper.optim_context(model):
        out = model(torch.randn(4, 8))
    wrapper.update_params(out.float().pow(2).mean() * scale)
    return out


@pytest.fixture
def native_bf16_cpu(monkeypatch):
    """Pretend the CPU runs bf16 natively (the CPU rule itself: tests/test_precision.py)."""
    from mmmim.utils import precision
    monkeypatch.setenv(precision.FORCE_ENV, '1')
    precision.cpu_bf16_decision.cache_clear()
    yield
    precision.cpu_bf16_decision.cache_clear()


def test_cpu_with_native_bf16_defaults_to_bf16_without_scaling(native_bf16_cpu):
    model = _model()
    seen = []
    model[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    with DefaultScope.overwrite_default_scope('mmmim'):
        wrapper = build_optim_wrapper(model, dict(type='MixedPrecisionOptimWrapper',
                                                  optimizer=dict(type='SGD', lr=0.1)))
    assert isinstance(wrapper, MixedPrecisionOptimWrapper)
    before = [p.detach().clone() for p in model.parameters()]
    out = _step(wrapper, model)
    assert seen == [torch.bfloat16] and out.dtype == torch.bfloat16
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32
    assert not wrapper.uses_loss_scaling and 'loss_scaler' not in wrapper.state_dict()
    with torch.no_grad():
        assert model(torch.randn(2, 8)).dtype == torch.float32  # autocast only inside context


def _fp16(model, **kw):
    return MixedPrecisionOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
                                      dtype='float16', **kw)


def test_fp16_scaler_state_round_trips_through_a_checkpoint(tmp_path):
    model = _model()
    wrapper = _fp16(model, loss_scale=dict(init_scale=256., growth_interval=1))
    assert wrapper.uses_loss_scaling and wrapper.cast_dtype == torch.float16
    _step(wrapper, model)
    _step(wrapper, model)
    assert wrapper.loss_scaler.get_scale() == 1024.  # grew once per finite step
    torch.save({'optimizer': wrapper.state_dict()}, tmp_path / 'ckpt.pth')
    state = load_checkpoint_safely(tmp_path / 'ckpt.pth')['optimizer']
    fresh = _fp16(model)
    assert fresh.loss_scaler.get_scale() == 2. ** 16
    fresh.load_state_dict(state)
    assert fresh.loss_scaler.get_scale() == 1024.
    assert fresh.optimizer.state_dict()['param_groups'][0]['lr'] == 0.01


def test_fp16_overflow_skips_the_step_and_lowers_the_scale():
    model = _model()
    wrapper = _fp16(model, loss_scale=1024.)
    before = [p.detach().clone() for p in model.parameters()]
    _step(wrapper, model, scale=float('inf'))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert wrapper.loss_scaler.get_scale() == 512.


def test_fp16_clip_grad_unscales_first():
    model = _model()
    wrapper = _fp16(model, loss_scale=64., clip_grad=dict(max_norm=1e-3))
    before = [p.detach().clone() for p in model.parameters()]
    _step(wrapper, model)
    assert wrapper.loss_scaler.get_scale() == 64.  # finite step: no overflow
    moved = torch.cat([(a - b).flatten() for a, b in zip(model.parameters(), before)])
    # clipped to max_norm after unscaling: |update| = lr * max_norm (not lr * max_norm / 64)
    assert moved.norm().item() == pytest.approx(0.01 * 1e-3, rel=0.02)


def test_bad_dtype_is_named():
    with pytest.raises(ValueError, match="dtype='int8'"):
        MixedPrecisionOptimWrapper(optimizer=torch.optim.SGD(_model().parameters(), lr=0.1),
                                   dtype='int8')


def test_amp_switch_single_and_multi_optimizer_configs():
    cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='SGD'))))
    assert switch_to_amp(cfg).optim_wrapper.type == 'mmmim.MixedPrecisionOptimWrapper'
    cfg = Config(dict(optim_wrapper=dict(
        constructor='MultiOptimWrapperConstructor',
        generator=dict(type='AmpOptimWrapper', optimizer=dict(type='Adam')),
        discriminator=dict(optimizer=dict(type='Adam')))))
    switch_to_amp(cfg)
    assert cfg.optim_wrapper.generator.type == 'mmmim.MixedPrecisionOptimWrapper'
    assert cfg.optim_wrapper.discriminator.type == 'mmmim.MixedPrecisionOptimWrapper'
    assert cfg.optim_wrapper.constructor == 'MultiOptimWrapperConstructor'
    cfg = Config(dict(optim_wrapper=dict(type='ApexOptimWrapper', optimizer=dict(type='SGD'))))
    with pytest.raises(SystemExit, match='ApexOptimWrapper'):
        switch_to_amp(cfg)

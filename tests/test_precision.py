"""Precision chosen for the CPU: bf16 only where it is native, fp32 elsewhere, logged;
an explicit bf16 request honoured with the measured slowdown. The CPU is mocked, so
both outcomes are checked on every machine."""
import pytest
import torch
from mmengine.optim import build_optim_wrapper

from mmmim.engine.hooks import LinearProbeHook
from mmmim.evaluation import extract_features, linear_probe
from mmmim.utils import precision

from conftest import build_tiny


@pytest.fixture
def cpu(monkeypatch):
    """``cpu(capability, flags=(), speedup=None)`` pretends to be that CPU; returns the
    list of logged lines. ``speedup`` is what the timed probe measures (None: it must
    not be run)."""
    logged = []
    monkeypatch.setattr(precision, 'print_log', lambda msg, **kw: logged.append(msg))
    monkeypatch.setattr(linear_probe, 'print_log', lambda msg, **kw: logged.append(msg))
    monkeypatch.delenv(precision.FORCE_ENV, raising=False)

    def pretend(capability, flags=(), speedup=None):
        precision.cpu_bf16_decision.cache_clear()
        precision._logged.clear()
        monkeypatch.setattr(torch.backends.cpu, 'get_cpu_capability', lambda: capability)
        monkeypatch.setattr(precision, '_cpu_flag', lambda name: name in flags)

        def probe(*a, **k):
            if speedup is None:
                raise AssertionError('the timed probe ran where the capability decides')
            return speedup
        monkeypatch.setattr(precision, 'measure_bf16_speedup', probe)
        return logged

    yield pretend
    precision.cpu_bf16_decision.cache_clear()
    precision._logged.clear()


NATIVE = ('AVX512', ('amx_tile',))
AVX2 = ('AVX2',)


@pytest.mark.parametrize('capability,flags,speedup,fast', [
    ('AVX2', (), None, False),                     # emulated bf16: decided without timing
    ('DEFAULT', (), None, False),
    ('AVX512', ('avx512_bf16',), None, True),      # native: decided from the flags
    ('AVX512', ('amx_tile',), None, True),
    ('AVX512', (), 0.3, False),                    # AVX-512 without BF16: timed probe
    ('AVX512', (), 2.5, True),
    ('SVE256', (), 1.1, False),                    # another architecture: timed probe
    ('SVE256', (), 1.5, True),
])
def test_decision(cpu, capability, flags, speedup, fast):
    cpu(capability, flags, speedup)
    decision = precision.cpu_bf16_decision()
    assert decision.fast is fast
    assert capability in decision.reason


def test_environment_forces_either_way(cpu, monkeypatch):
    cpu('AVX2')
    monkeypatch.setenv(precision.FORCE_ENV, '1')
    assert precision.cpu_bf16_is_fast()
    cpu(*NATIVE)
    monkeypatch.setenv(precision.FORCE_ENV, '0')
    assert not precision.cpu_bf16_is_fast()


def _record_dtypes(model):
    seen = []
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
    first.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    return seen


def _wrapper(model, **kw):
    return build_optim_wrapper(model, dict(type='MixedPrecisionOptimWrapper',
                                           optimizer=dict(type='AdamW', lr=1e-3), **kw))


def _train_step(model, wrapper):
    batch = dict(inputs=[torch.randint(0, 256, (4, 1, 32, 32), dtype=torch.uint8)],
                 data_samples=None)
    return model.train_step(batch, wrapper)


@pytest.mark.parametrize('kind,expected', [(NATIVE, torch.bfloat16), (AVX2, torch.float32)])
def test_amp_step_runs_in_the_chosen_precision(cpu, kind, expected):
    """--amp's wrapper on a mocked CPU: the MAE training step's matmuls run in the dtype
    the wrapper reports, bf16 only on the native CPU, and the choice is logged once."""
    logged = cpu(*kind)
    model = build_tiny()
    seen = _record_dtypes(model)
    wrapper = _wrapper(model)
    assert wrapper.cast_dtype == expected
    losses = _train_step(model, wrapper)
    assert seen and set(seen) == {expected}
    assert torch.isfinite(losses['loss'])
    _wrapper(model)  # a second wrapper (GAN-MAE has two) does not log again
    assert len(logged) == 1
    if expected == torch.float32:
        assert 'fp32' in logged[0] and 'AVX2' in logged[0] and precision.FORCE_ENV in logged[0]
    else:
        assert 'bf16' in logged[0] and 'AMX' in logged[0]


def test_explicit_bf16_is_honoured_with_the_measured_slowdown(cpu):
    logged = cpu('AVX2', speedup=1 / 62.)
    model = build_tiny()
    seen = _record_dtypes(model)
    wrapper = _wrapper(model, dtype='bfloat16')
    _train_step(model, wrapper)
    assert set(seen) == {torch.bfloat16}
    assert any('62.0x slower' in line for line in logged), logged


def test_explicit_bf16_on_a_native_cpu_is_silent(cpu):
    logged = cpu(*NATIVE)
    _wrapper(build_tiny(), dtype='bfloat16')
    assert logged == []


@pytest.mark.parametrize('kind,expected', [(NATIVE, torch.bfloat16), (AVX2, torch.float32)])
def test_probe_features_in_the_chosen_precision(cpu, kind, expected):
    """The linear probe's feature pass follows the same rule (it used to be bf16 on
    every CPU) and reports progress."""
    from mmengine.dataset import BaseDataset
    from mmpretrain.structures import DataSample

    class Tiny(BaseDataset):
        def __init__(self):
            self.items = [dict(inputs=torch.randint(0, 256, (1, 32, 32), dtype=torch.uint8),
                               data_samples=DataSample().set_gt_label(i % 3)) for i in range(6)]

        def __len__(self):
            return len(self.items)

        def __getitem__(self, i):
            return self.items[i]

    logged = cpu(*kind)
    model = build_tiny()
    seen = _record_dtypes(model.backbone)
    feats, labels = extract_features(model, Tiny(), batch_size=4, progress='features')
    assert set(seen) == {expected}
    assert feats.dtype == torch.float32 and feats.shape == (6, 64) and labels.tolist()[:3] == [0, 1, 2]
    assert any('features: 6/6 (100%)' in line for line in logged), logged
    seen.clear()
    extract_features(model, Tiny(), precision='fp32', progress=None)
    assert set(seen) == {torch.float32}


@pytest.mark.parametrize('choice,kind,device,result', [
    ('auto', NATIVE, 'cpu', 'bf16'), ('auto', AVX2, 'cpu', 'fp32'),
    ('auto', AVX2, 'cuda', 'bf16'), ('bf16', AVX2, 'cpu', 'bf16'), ('fp32', NATIVE, 'cpu', 'fp32'),
])
def test_benchmark_amp_choice(cpu, choice, kind, device, result):
    logged = cpu(*kind, speedup=0.02)
    assert precision.resolve_amp_choice(choice, device) == result
    if (choice, kind, device) == ('bf16', AVX2, 'cpu'):
        assert any('50.0x slower' in line for line in logged)


def test_probe_hook_refuses_an_unknown_precision():
    with pytest.raises(ValueError, match="precision must be 'auto', 'fp32' or 'bf16'"):
        LinearProbeHook(dict(), dict(), precision='fp16')


def test_the_real_probe_measures_something():
    """Unmocked: the timed probe returns a positive, finite fp32/bf16 time ratio."""
    precision.measure_bf16_speedup.cache_clear()
    ratio = precision.measure_bf16_speedup(n=64, reps=1)
    assert 0 < ratio < float('inf')

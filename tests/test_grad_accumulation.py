"""Gradient accumulation (mmengine's ``accumulative_counts``): N steps at batch B give the
update of one step at batch N*B for MAE and EMAE; GAN-MAE refuses it at start-up."""
import copy
from types import SimpleNamespace

import pytest
import torch
from mmengine.optim import OptimWrapper

from mmmim.engine.hooks import GANSchemeHook
from conftest import build_tiny
from test_gan_mae import wrappers


def _batch(b, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(inputs=torch.randint(0, 256, (b, 1, 32, 32), generator=g, dtype=torch.uint8),
                data_samples=None)


def _optim(model, counts):
    # SGD: its update is the gradient itself, so equal updates mean equal gradients (Adam
    # would turn float noise on zero-gradient parameters, e.g. the k bias, into +-lr)
    return OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=counts)


@pytest.mark.parametrize('kind', ['MAE', 'EMAE'])
def test_accumulated_steps_equal_one_large_batch(kind):
    kw = dict(type='EMAE', masker=dict(type='ParallelMasker', num_parts=4)) if kind == 'EMAE' \
        else {}
    big = build_tiny(**kw)
    init = copy.deepcopy(big)
    small, other = copy.deepcopy(big), copy.deepcopy(big)
    data = _batch(8)
    halves = [dict(inputs=data['inputs'][s], data_samples=None)
              for s in (slice(0, 4), slice(4, 8))]
    # the masks of the 8-image batch are the masks of its two 4-image halves in turn
    torch.manual_seed(1)
    big.train_step(data, _optim(big, 1))
    ow = _optim(small, 2)
    torch.manual_seed(1)
    for half in halves:
        small.train_step(half, ow)
    for (name, p), q in zip(big.named_parameters(), small.parameters()):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-6), name
    assert any(not torch.equal(p, q) for p, q in zip(big.parameters(), init.parameters()))
    # without accumulation the two half-batch steps give another result
    ow = _optim(other, 1)
    torch.manual_seed(1)
    for half in halves:
        other.train_step(half, ow)
    assert any(not torch.allclose(p, q, rtol=1e-4, atol=1e-6)
               for p, q in zip(big.parameters(), other.parameters()))


def test_gan_mae_refuses_accumulation_at_start():
    model = build_tiny(type='GANMAE')
    ows = wrappers(model)
    ows['generator']._accumulative_counts = 2
    runner = SimpleNamespace(model=model, optim_wrapper=ows, epoch=0)
    with pytest.raises(ValueError, match='accumulative_counts'):
        GANSchemeHook().before_run(runner)

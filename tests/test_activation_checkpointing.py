"""Activation checkpointing (``with_cp``) in MaskedViT and MAEDecoder: the gradients equal
the plain model's (drop path included), the checkpointed blocks really recompute, and bad
values are refused."""
import pytest
import torch

from conftest import build_tiny


def _grads(with_cp, dec_cp, seed=3, plan=True):
    model = build_tiny(backbone=dict(drop_path_rate=0.2, with_cp=with_cp),
                       neck=dict(with_cp=dec_cp))
    model.train()
    calls = {'enc0': 0, 'enc1': 0, 'dec0': 0}
    blocks = dict(enc0=model.backbone.layers[0], enc1=model.backbone.layers[1],
                  dec0=model.neck.decoder_blocks[0])
    for name, block in blocks.items():
        block.register_forward_pre_hook(lambda *a, _n=name: calls.__setitem__(_n, calls[_n] + 1))
    img = torch.randn(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(seed)
    if plan:
        loss = model.loss(img)['loss_rec']
    else:  # the plain ViT path (fine-tuning): all tokens, no plan
        loss = model.backbone(img)[0].square().mean()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads, calls


@pytest.mark.parametrize('with_cp,dec_cp', [(True, True), (2, False), (False, True)])
def test_checkpointed_gradients_equal_the_plain_ones(with_cp, dec_cp):
    loss0, grads0, calls0 = _grads(False, False)
    loss1, grads1, calls1 = _grads(with_cp, dec_cp)
    assert torch.equal(loss0, loss1)
    assert grads0.keys() == grads1.keys()
    for name in grads0:
        assert torch.allclose(grads0[name], grads1[name], rtol=1e-6, atol=1e-8), name
    # a checkpointed block starts its forward again in the backward pass (pre-hooks:
    # torch stops the recomputation early once it has what the backward needs)
    assert calls0 == {'enc0': 1, 'enc1': 1, 'dec0': 1}
    every = int(with_cp)
    assert calls1['enc0'] == (2 if every else 1)
    assert calls1['enc1'] == (2 if every == 1 else 1)  # n = 2: blocks 0, 2, ... only
    assert calls1['dec0'] == (2 if dec_cp else 1)


def test_plain_vit_path_checkpoints_too():
    _, grads0, _ = _grads(False, False, plan=False)
    _, grads1, calls = _grads(True, False, plan=False)
    assert calls['enc0'] == 2
    for name in grads0:
        assert torch.allclose(grads0[name], grads1[name], rtol=1e-6, atol=1e-8), name


def test_no_recomputation_without_gradients():
    model = build_tiny(backbone=dict(with_cp=True)).eval()
    calls = []
    model.backbone.layers[0].register_forward_pre_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        model.backbone(torch.randn(2, 1, 32, 32))
    assert calls == [1]


@pytest.mark.parametrize('value', [-1, 1.5, 'yes'])
def test_bad_with_cp_is_named(value):
    with pytest.raises(ValueError, match='with_cp'):
        build_tiny(backbone=dict(with_cp=value))

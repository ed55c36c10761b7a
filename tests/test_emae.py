import itertools

import pytest
import torch
import torch.nn.functional as F

from mmmim.models.losses import ConsistencyLoss
from mmmim.registry import MODELS
from conftest import build_tiny, tiny_cfg

EMAE = dict(type='EMAE', masker=dict(type='ParallelMasker', num_parts=4))


def reference(pred, mask, loss_type, stop_grad):
    """Brute force over ordered pairs, with an explicit detach on the second view."""
    total, count = 0., 0.
    k = pred.shape[1]
    for i, j in itertools.permutations(range(k), 2):
        a, b = pred[:, i], pred[:, j].detach() if stop_grad else pred[:, j]
        both = mask[:, i] * mask[:, j]
        if loss_type == 'l2':
            d = ((a - b)**2).mean(-1)
        elif loss_type == 'l1':
            d = (a - b).abs().mean(-1)
        else:
            d = 1 - F.cosine_similarity(a, b, dim=-1)
        total = total + (d * both).sum()
        count = count + both.sum()
    return total / count


def parallel_mask(b, k, l):
    perm = torch.argsort(torch.rand(b, l), 1).reshape(b, k, l // k)
    mask = torch.ones(b, k, l)
    for v in range(k):
        mask[torch.arange(b)[:, None], v, perm[:, v]] = 0
    return mask


@pytest.mark.parametrize('loss_type', ['l2', 'l1', 'cosine'])
@pytest.mark.parametrize('stop_grad', [True, False])
def test_consistency_matches_pairwise_definition(loss_type, stop_grad):
    torch.manual_seed(0)
    mask = parallel_mask(3, 4, 16)
    pred = torch.randn(3, 4, 16, 5, requires_grad=True)
    loss = ConsistencyLoss(loss_type, stop_grad)(pred, mask)
    (grad,) = torch.autograd.grad(loss, pred)
    pred2 = pred.detach().clone().requires_grad_()
    ref = reference(pred2, mask, loss_type, stop_grad)
    (ref_grad,) = torch.autograd.grad(ref, pred2)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    assert torch.allclose(grad, ref_grad, atol=1e-6)


def test_consistency_zero_when_views_agree_and_positive_otherwise():
    mask = parallel_mask(2, 4, 16)
    same = torch.randn(2, 1, 16, 5).expand(2, 4, 16, 5)
    for loss_type in ConsistencyLoss.TYPES:
        assert ConsistencyLoss(loss_type)(same, mask).item() == pytest.approx(0, abs=1e-5)
        assert ConsistencyLoss(loss_type)(torch.randn(2, 4, 16, 5), mask).item() > 0.1
    # disagreement only on visible patches (never masked in two views) costs nothing
    noisy = same + (1 - mask)[..., None] * torch.randn(2, 4, 16, 5)
    assert ConsistencyLoss()(noisy, mask).item() == pytest.approx(0, abs=1e-5)


def test_stop_grad_side_gets_no_gradient():
    """K=2: with stop-grad each view is pulled only by its own term of the pair."""
    mask = torch.ones(1, 2, 4)
    pred = torch.randn(1, 2, 4, 3, requires_grad=True)
    (grad,) = torch.autograd.grad(ConsistencyLoss(stop_grad=True)(pred, mask), pred)
    p0, p1 = pred.detach()[:, 0], pred.detach()[:, 1]
    # 2 ordered pairs x 4 patches = 8 terms; d/dp0 of mean_P (p0 - sg(p1))^2 = 2 (p0 - p1) / 3
    expected0 = 2 * (p0 - p1) / 3 / 8
    assert torch.allclose(grad[:, 0], expected0, atol=1e-6)
    assert torch.allclose(grad[:, 1], -expected0, atol=1e-6)
    # without stop-grad the (1, 0) term also pulls view 0: twice the gradient
    (grad_both,) = torch.autograd.grad(ConsistencyLoss(stop_grad=False)(pred, mask), pred)
    assert torch.allclose(grad_both[:, 0], 2 * expected0, atol=1e-6)


def test_consistency_bad_type():
    with pytest.raises(ValueError, match='loss_type'):
        ConsistencyLoss('l3')


def test_emae_one_forward_pass_of_b_times_k_sequences():
    model = build_tiny(**EMAE)
    calls = []
    model.backbone.layers[0].register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
    model.neck.decoder_blocks[0].register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
    losses = model.loss(torch.randn(3, 1, 32, 32))
    assert calls == [(12, 1 + 16, 32), (12, 1 + 64, 24)]
    assert set(losses) >= {'loss_rec', 'loss_consistency'}
    assert losses['loss_consistency'] > 0
    (losses['loss_rec'] + losses['loss_consistency']).backward()
    assert model.backbone.layers[0].attn.qkv.weight.grad.abs().sum() > 0


def test_emae_weight_and_options_from_config():
    torch.manual_seed(0)
    a = build_tiny(**EMAE).loss(torch.randn(2, 1, 32, 32))
    torch.manual_seed(0)
    b = build_tiny(**EMAE, consistency=dict(type='ConsistencyLoss', loss_weight=0.5)).loss(
        torch.randn(2, 1, 32, 32))
    assert b['loss_consistency'].item() == pytest.approx(0.5 * a['loss_consistency'].item(),
                                                         rel=1e-4)
    assert b['loss_rec'].item() == pytest.approx(a['loss_rec'].item(), rel=1e-5)


def test_emae_refuses_single_view_masker():
    with pytest.raises(ValueError, match='EMAE needs several views'):
        MODELS.build(tiny_cfg(type='EMAE', masker=dict(type='RandomMasker', ratio=0.75)))


def test_emae_bad_k_lists_valid_values():
    with pytest.raises(ValueError, match=r'64 patches are not divisible by K=3'):
        MODELS.build(tiny_cfg(type='EMAE', masker=dict(type='ParallelMasker', num_parts=3)))


def _consistency_grads(loss, pred, mask):
    pred = pred.clone().requires_grad_()
    loss(pred, mask).backward()
    return pred.grad


def test_stop_grad_in_pairs_form_is_only_a_scale_but_anchor_changes_the_direction():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(2, 4, 16, 5, generator=g)
    mask = torch.ones(2, 4, 16)
    mask[:, 0, :4] = 0  # view 0 sees 4 patches; elsewhere all 4 views mask
    sg = _consistency_grads(ConsistencyLoss('l2', stop_grad=True), pred, mask)
    both = _consistency_grads(ConsistencyLoss('l2', stop_grad=False), pred, mask)
    assert torch.allclose(both, 2 * sg, rtol=1e-5, atol=1e-7)  # today's option: a factor 2
    anchor = _consistency_grads(ConsistencyLoss('l2', target='anchor'), pred, mask)
    cos = torch.nn.functional.cosine_similarity(anchor.flatten(), sg.flatten(), dim=0)
    assert cos < 0.95
    # the anchor (first masking view) gets no consistency gradient: view 0 where it masks,
    # view 1 where view 0 does not
    assert not anchor[:, 0, 4:].any() and not anchor[:, 1, :4].any()
    assert anchor[:, 2].abs().sum() > 0
    # its value against the definition: each non-anchor view's l2 to the anchor
    ref_terms = []
    for b in range(2):
        for patch in range(16):
            views = [k for k in range(4) if mask[b, k, patch]]
            for k in views[1:]:
                ref_terms.append((pred[b, k, patch] - pred[b, views[0], patch]).pow(2).mean())
    value = ConsistencyLoss('l2', target='anchor')(pred, mask)
    assert value.item() == pytest.approx(torch.stack(ref_terms).mean().item(), rel=1e-5)
    with pytest.raises(ValueError, match='target'):
        ConsistencyLoss(target='mean')

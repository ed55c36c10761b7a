"""SBAM (salience-based masking) and AMR (adaptive mask ratio)."""
import pytest
import torch

from conftest import build_tiny
from mmmim.models.maskers import (AdaptiveRatio, BaseMasker, MaskPlan, ParallelMasker,
                                  RandomMasker, SalienceMasker, patch_salience,
                                  shared_salience)
from mmmim.registry import MODELS

GRID = (8, 8)
L = 64


def tokens(batch=4, dims=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, L, dims, generator=gen)


def reference_salience(x: torch.Tensor) -> torch.Tensor:
    """The SBAM salience written out per image and per token, in float64."""
    out = torch.empty(x.shape[:2], dtype=torch.float64)
    for b, img in enumerate(x.double()):
        logits = img @ img.T
        weights = torch.exp(logits - logits.max(dim=1, keepdim=True).values)
        attn = weights / weights.sum(dim=1, keepdim=True)  # row i: how token i attends
        outgoing = torch.stack([attn[:, j].sum() for j in range(img.shape[0])])
        out[b] = (outgoing - outgoing.min()) / (outgoing.max() - outgoing.min())
    return out


def masked_sets(plan: MaskPlan):
    return [set(torch.nonzero(m).flatten().tolist()) for m in plan.mask]


# ----------------------------------------------------------------------------- salience
def test_salience_matches_reference_and_spans_unit_interval():
    x = tokens(dims=8) * 0.5  # moderate logits, so the softmax is not one-hot
    sal = patch_salience(x)
    assert sal.shape == (4, L) and sal.dtype == torch.float32
    torch.testing.assert_close(sal.double(), reference_salience(x), atol=1e-5, rtol=0)
    assert (sal >= 0).all() and (sal <= 1).all()
    # min-max per image: each image reaches exactly 0 and 1
    assert torch.equal(sal.amin(1), torch.zeros(4)) and torch.equal(sal.amax(1), torch.ones(4))


def test_salience_has_no_gradient_and_ignores_autocast():
    x = tokens().requires_grad_()
    sal = patch_salience(x)
    assert not sal.requires_grad
    with torch.autocast('cpu', dtype=torch.bfloat16):
        sal_bf16 = patch_salience(x)
    assert sal_bf16.dtype == torch.float32
    torch.testing.assert_close(sal_bf16, sal)


def test_salience_of_identical_tokens_is_zero():
    x = torch.ones(2, L, 8)
    assert torch.equal(patch_salience(x), torch.zeros(2, L))


def test_salience_is_shared_within_a_masker_step(monkeypatch):
    import mmmim.models.maskers.salience as module
    calls = []
    real = module._salience
    monkeypatch.setattr(module, '_salience', lambda t: calls.append(1) or real(t))
    masker = SalienceMasker(ratio=dict(type='AdaptiveRatio'))
    masker.validate(GRID)
    masker(tokens())
    assert len(calls) == 1  # the policy and the ordering used one computation
    x = tokens()
    with shared_salience(x):
        a = patch_salience(x)
        assert patch_salience(x) is a
        assert patch_salience(x.clone()) is not a  # keyed on the tensor itself
    assert patch_salience(x) is not a  # nothing cached outside the block


# ----------------------------------------------------------------------- SalienceMasker
@pytest.mark.parametrize('ratio', [0.5, 0.75, 0.9])
def test_noise_off_masks_the_top_salience(ratio):
    x = tokens(dims=8) * 0.5
    masker = MODELS.build(dict(type='SalienceMasker', ratio=ratio, noise=0))
    masker.validate(GRID)
    plan = masker(x)
    n_keep = int(L * (1 - ratio))
    assert plan.n_keep == n_keep and plan.keep_padding is None
    expected = reference_salience(x).topk(L - n_keep, dim=1).indices
    assert masked_sets(plan) == [set(row.tolist()) for row in expected]
    # the visible patches are the least salient ones
    sal = reference_salience(x)
    for b in range(x.shape[0]):
        vis, hid = sal[b, plan.ids_keep[b]], sal[b, expected[b]]
        assert vis.max() < hid.min()


def test_noise_on_varies_with_the_seed_and_reproduces():
    x = tokens()
    masker = SalienceMasker(ratio=0.75, noise=0.5)
    masker.validate(GRID)
    torch.manual_seed(1)
    a = masker(x).mask
    torch.manual_seed(1)
    b = masker(x).mask
    torch.manual_seed(2)
    c = masker(x).mask
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # still salience-biased: masked patches are more salient on average than visible ones
    sal = patch_salience(x)
    assert (sal * a).sum() / a.sum() > (sal * (1 - a)).sum() / (1 - a).sum()


def test_noise_wider_than_salience_range_approaches_random():
    """With noise >> 1 the ranking is dominated by the noise (sanity of the noise scale)."""
    x = tokens(batch=16)
    sal = patch_salience(x)
    masker = SalienceMasker(ratio=0.5, noise=1e6)
    masker.validate(GRID)
    torch.manual_seed(0)
    m = masker(x).mask
    share = (sal * m).sum() / m.sum() - (sal * (1 - m)).sum() / (1 - m).sum()
    assert abs(share) < 0.1


@pytest.mark.parametrize('noise', [-0.1, float('nan'), 'big', True])
def test_bad_noise_is_refused_at_build(noise):
    with pytest.raises(ValueError, match='noise must be a finite number >= 0'):
        MODELS.build(dict(type='SalienceMasker', noise=noise))


# ------------------------------------------------------------------------ AdaptiveRatio
def amr_expected(x, r=0.75, dr=0.1, delta=0.5, per_sample=False):
    salient = (reference_salience(x) > delta).double()
    share = salient.mean(1) if per_sample else salient.mean()
    return r - dr + 2 * dr * share


@pytest.mark.parametrize('per_sample', [False, True])
@pytest.mark.parametrize('r,dr,delta', [(0.75, 0.1, 0.5), (0.6, 0.2, 0.3), (0.5, 0.0, 0.5)])
def test_amr_ratio_matches_the_formula(per_sample, r, dr, delta):
    policy = AdaptiveRatio(ratio=r, ratio_delta=dr, threshold=delta, per_sample=per_sample)
    policy.validate(L)
    for seed in range(4):
        x = tokens(batch=5, dims=8, seed=seed) * 0.5
        n_keep, counts, used = policy(x)
        expected = amr_expected(x, r, dr, delta, per_sample)
        torch.testing.assert_close(used.double(), expected, atol=1e-6, rtol=0)
        assert ((used >= r - dr - 1e-6) & (used <= r + dr + 1e-6)).all()
        keep = L * (1 - expected)
        if per_sample:
            assert counts.shape == (5,) and n_keep == int(counts.max())
            assert ((counts.double() <= keep + 1e-6) & (counts.double() > keep - 1)).all()
        else:
            assert counts is None and n_keep <= keep + 1e-6 and n_keep > keep - 1


def test_amr_stays_within_bounds_on_extreme_images():
    policy = AdaptiveRatio(ratio=0.75, ratio_delta=0.1, threshold=0.5, per_sample=True)
    policy.validate(L)
    flat = torch.ones(1, L, 8)  # salience all 0: nothing salient -> r - dr
    spiky = torch.zeros(1, L, 8)
    spiky[0, 0] = 5.  # every token attends to token 0 -> one salient token
    x = torch.cat([flat, spiky, tokens(batch=30, dims=8)])
    _, counts, used = policy(x)
    assert used[0] == pytest.approx(0.65)
    assert used[1] == pytest.approx(0.65 + 0.2 / L)
    assert ((used >= 0.65 - 1e-6) & (used <= 0.85 + 1e-6)).all()
    assert (counts >= int(L * 0.15)).all() and (counts <= int(L * 0.35) + 1).all()


@pytest.mark.parametrize('cfg,message', [
    (dict(ratio_delta=-0.01), r'ratio_delta \(dr\) must be in \[0, min\(r, 1 - r\)\)'),
    (dict(ratio_delta=0.25), r'= \[0, 0.25\) for ratio=0.75'),
    (dict(ratio=0.2, ratio_delta=0.2), r'= \[0, 0.2\) for ratio=0.2'),
    (dict(threshold=-0.1), r'threshold \(delta\) must be in \[0, 1\]'),
    (dict(threshold=1.5), r'threshold \(delta\) must be in \[0, 1\]'),
    (dict(ratio=1.0), r'ratio \(r\) must be in \(0, 1\)'),
])
def test_bad_amr_is_refused_at_build(cfg, message):
    with pytest.raises(ValueError, match=message):
        MODELS.build(dict(type='RandomMasker', ratio=dict(type='AdaptiveRatio', **cfg)))


def test_amr_extremes_checked_against_the_patch_count():
    masker = RandomMasker(ratio=dict(type='AdaptiveRatio', ratio=0.5, ratio_delta=0.45))
    with pytest.raises(ValueError, match=r'reaches mask ratio 0.95 keeps 0 of 16 patches'):
        masker.validate((4, 4))


def test_amr_with_random_masker_and_logging_through_mae():
    model = build_tiny(masker=dict(type='RandomMasker', ratio=dict(
        type='AdaptiveRatio', ratio=0.75, ratio_delta=0.1, per_sample=True)))
    img = torch.randn(3, 1, 32, 32)
    torch.manual_seed(0)
    plan = model.masker(model.backbone.embed(img))
    assert plan.ratio.shape == (3,)
    torch.manual_seed(0)
    losses = model.loss(img)
    assert losses['mask_ratio'] == pytest.approx(float(plan.ratio.mean()))
    losses['loss_rec'].backward()


# ---------------------------------------------------------------- ragged (per sample)
def ragged_plan():
    torch.manual_seed(0)
    model = build_tiny(masker=dict(type='SalienceMasker', noise=0.5, ratio=dict(
        type='AdaptiveRatio', ratio=0.5, ratio_delta=0.2, threshold=0.3, per_sample=True)))
    model.eval()
    img = torch.randn(4, 1, 32, 32)
    img[0] *= 0.01  # different contents, so that the visible counts differ
    img[1, :, :16] = 0
    toks = model.backbone.embed(img)
    plan = model.masker(toks)
    counts = (1 - plan.mask).sum(1).long()
    return model, img, toks, plan, counts


def test_per_sample_plan_is_padded_with_masked_patches():
    _, _, _, plan, counts = ragged_plan()
    assert len(set(counts.tolist())) > 1, 'the test needs ragged visible counts'
    assert plan.n_keep == int(counts.max())
    assert torch.equal((~plan.keep_padding).sum(1), counts)
    # padding slots point at patches that are masked; real slots at visible ones
    at_slots = torch.gather(plan.mask, 1, plan.ids_keep)
    assert torch.equal(at_slots.bool(), plan.keep_padding)


def test_per_sample_padding_leaves_real_tokens_as_if_alone():
    model, img, toks, plan, counts = ragged_plan()
    with torch.no_grad():
        latent = model.backbone.encode(toks, plan)
        pred = model.neck(latent, plan)
    for b in range(img.shape[0]):
        n = int(counts[b])
        alone = MaskPlan(ids_shuffle=plan.ids_shuffle[b:b + 1], n_keep=n)
        with torch.no_grad():
            latent_b = model.backbone.encode(toks[b:b + 1], alone)
            pred_b = model.neck(latent_b, alone)
        torch.testing.assert_close(latent[b:b + 1, :1 + n], latent_b, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(pred[b:b + 1], pred_b, atol=1e-5, rtol=1e-5)


def test_mae_loss_averages_over_real_masked_patches():
    model, img, toks, plan, counts = ragged_plan()
    with torch.no_grad():
        pred = model.neck(model.backbone.encode(toks, plan), plan)
        loss = model.head.loss(pred, img, plan)['loss_rec']
    target = model.head.target(img)
    err = ((pred - target)**2).mean(-1)  # (B, L)
    masked = [sorted(set(range(L)) - set(plan.ids_shuffle[b, :int(counts[b])].tolist()))
              for b in range(img.shape[0])]
    total = sum(err[b, idx].sum() for b, idx in enumerate(masked))
    expected = total / sum(len(idx) for idx in masked)
    torch.testing.assert_close(loss, expected)
    assert sum(len(idx) for idx in masked) == L * img.shape[0] - int(counts.sum())


def test_per_sample_sbam_amr_trains_through_mae():
    model, img, _, _, _ = ragged_plan()
    model.train()
    losses = model.loss(img)
    assert 0.3 - 1e-6 <= float(losses['mask_ratio']) <= 0.7 + 1e-6
    losses['loss_rec'].backward()
    assert model.backbone.layers[0].attn.qkv.weight.grad.abs().sum() > 0


# ------------------------------------------------------------------- refusals, EMAE
class _NoRagged(BaseMasker):
    supports_ragged = False

    def order(self, tokens, n_keep):
        return torch.argsort(torch.rand(tokens.shape[:2]), dim=1)


def test_non_ragged_masker_refuses_per_sample_policy():
    masker = _NoRagged(ratio=dict(type='AdaptiveRatio', per_sample=True))
    with pytest.raises(ValueError, match='per-batch ratio policy'):
        masker.validate(GRID)
    _NoRagged(ratio=dict(type='AdaptiveRatio', per_sample=False)).validate(GRID)


@pytest.mark.parametrize('per_sample', [False, True])
def test_parallel_masker_refuses_adaptive_ratio_in_its_ordering(per_sample):
    masker = ParallelMasker(4, order=dict(type='SalienceMasker', ratio=dict(
        type='AdaptiveRatio', per_sample=per_sample)))
    with pytest.raises(ValueError, match='ratio policy .* would be ignored'):
        masker.validate(GRID)


@pytest.mark.parametrize('split', ['contiguous', 'interleaved'])
def test_parallel_salience_ordering_rule(split):
    x = tokens(batch=3, dims=8) * 0.5
    k = 4
    masker = MODELS.build(dict(type='ParallelMasker', num_parts=k, split=split,
                               order=dict(type='SalienceMasker', noise=0)))
    masker.validate(GRID)
    plan = masker(x)
    visible = 1 - plan.per_view(plan.mask)  # (B, K, L)
    assert (visible.sum(1) == 1).all()  # still disjoint and covering
    rank = reference_salience(x).argsort(1)  # ascending salience
    for b in range(3):
        for v in range(k):
            seen = set(torch.nonzero(visible[b, v]).flatten().tolist())
            if split == 'contiguous':  # view v: the v-th quarter of the ranking
                want = rank[b, v * L // k:(v + 1) * L // k]
            else:  # view v: every K-th entry of the ranking from v
                want = rank[b, v::k]
            assert seen == set(want.tolist())
    sal = reference_salience(x)
    mean_seen = (visible * sal[:, None]).sum(-1) / visible.sum(-1)  # (B, K)
    if split == 'contiguous':  # view 0 is the SBAM mask (least salient visible)
        assert (mean_seen.diff(dim=1) > 0).all()
    else:
        assert (mean_seen.max(1).values - mean_seen.min(1).values < 0.15).all()


def test_bad_split_is_refused():
    with pytest.raises(ValueError, match="split must be one of"):
        ParallelMasker(4, split='random')


def test_emae_with_salience_ordering_trains():
    model = build_tiny(type='EMAE', masker=dict(type='ParallelMasker', num_parts=4,
                                                order=dict(type='SalienceMasker')))
    losses = model.loss(torch.randn(2, 1, 32, 32))
    assert torch.isfinite(losses['loss_rec']) and torch.isfinite(losses['loss_consistency'])
    (losses['loss_rec'] + losses['loss_consistency']).backward()

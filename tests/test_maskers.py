import pytest
import torch

from mmmim.models.maskers import (BlockMasker, GridMasker, MaskPlan, ParallelMasker,
                                  RandomMasker)
from mmmim.registry import MODELS

GRID = (8, 8)
L = 64


def tokens(batch=6, dims=8):
    return torch.randn(batch, L, dims)


def check_plan(plan: MaskPlan, n_keep: int):
    ids_keep, mask = plan.ids_keep, plan.mask
    # exactly n_keep visible, the rest masked, and they are the ids_keep ones
    assert (mask.sum(1) == L - n_keep).all()
    assert (torch.gather(mask, 1, ids_keep) == 0).all()
    # ids_shuffle is a permutation and ids_restore inverts it
    assert (plan.ids_shuffle.sort(1).values == torch.arange(L)).all()
    restored = torch.gather(plan.ids_shuffle, 1, plan.ids_restore)
    assert (restored == torch.arange(L)).all()


@pytest.mark.parametrize('ratio', [0.5, 0.75, 0.9])
def test_random_masker_counts_and_inverse(ratio):
    masker = RandomMasker(ratio)
    masker.validate(GRID)
    for seed in range(5):
        torch.manual_seed(seed)
        plan = masker(tokens())
        check_plan(plan, int(L * (1 - ratio)))


def test_random_masker_reproducible_and_random():
    masker = RandomMasker(0.75)
    masker.validate(GRID)
    x = tokens()
    torch.manual_seed(3)
    a = masker(x).mask
    torch.manual_seed(3)
    b = masker(x).mask
    torch.manual_seed(4)
    c = masker(x).mask
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # images of one batch get different masks
    assert not torch.equal(a[0], a[1])


@pytest.mark.parametrize('ratio', [0, 1, 1.5, -0.1, 'x'])
def test_bad_ratio_is_refused(ratio):
    with pytest.raises((ValueError, TypeError), match='ratio'):
        RandomMasker(ratio)


def test_ratio_keeping_no_token_is_refused_at_validate():
    masker = RandomMasker(0.99)
    with pytest.raises(ValueError, match='keeps 0 of 64'):
        masker.validate(GRID)


def test_gather_matches_indexing():
    masker = RandomMasker(0.75)
    masker.validate(GRID)
    x = tokens()
    plan = masker(x)
    out = plan.gather(x)
    for b in range(x.shape[0]):
        assert torch.equal(out[b], x[b, plan.ids_keep[b]])


def test_block_masker_exact_count_and_blocky():
    masker = BlockMasker(ratio=0.25)
    masker.validate(GRID)
    neighbour_share = []
    for seed in range(10):
        torch.manual_seed(seed)
        plan = masker(tokens(4))
        check_plan(plan, 48)
        m = plan.mask.reshape(-1, 8, 8)
        padded = torch.nn.functional.pad(m, (1, 1, 1, 1))
        nb = (padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] +
              padded[:, 1:-1, 2:]) > 0
        neighbour_share.append((nb & (m > 0)).sum() / m.sum())
    # blocks: nearly every masked patch touches another masked one (random 25%: ~0.7)
    assert torch.stack(neighbour_share).mean() > 0.9
    # and the masked patches of an image are not a random scatter: compare with random
    torch.manual_seed(0)
    rand = RandomMasker(0.25)
    rand.validate(GRID)
    m = rand(tokens(40)).mask.reshape(-1, 8, 8)
    padded = torch.nn.functional.pad(m, (1, 1, 1, 1))
    nb = (padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] +
          padded[:, 1:-1, 2:]) > 0
    assert (nb & (m > 0)).sum() / m.sum() < 0.85


def test_block_masker_reproducible():
    masker = BlockMasker(ratio=0.75)
    masker.validate(GRID)
    torch.manual_seed(1)
    a = masker(tokens()).mask
    torch.manual_seed(1)
    b = masker(tokens()).mask
    assert torch.equal(a, b)


def test_grid_masker_geometry():
    masker = GridMasker()
    masker.validate(GRID)
    plan = masker(tokens())
    check_plan(plan, 16)
    visible = (1 - plan.mask).reshape(-1, 8, 8)
    expected = torch.zeros(8, 8)
    expected[::2, ::2] = 1
    assert (visible == expected).all()


def test_grid_masker_random_offset_keeps_one_per_cell():
    masker = GridMasker(random_offset=True)
    masker.validate(GRID)
    torch.manual_seed(0)
    visible = (1 - masker(tokens(32)).mask).reshape(-1, 4, 2, 4, 2)
    # one visible patch in every 2x2 cell
    assert (visible.sum((2, 4)) == 1).all()
    offsets = {tuple(torch.nonzero(v[0, :, 0, :]).flatten().tolist()) for v in visible}
    assert len(offsets) > 1


def test_grid_masker_odd_grid_is_refused():
    with pytest.raises(ValueError, match='even patch grid'):
        GridMasker().validate((7, 7))


@pytest.mark.parametrize('k', [2, 4, 8, 16])
def test_parallel_masker_disjoint_and_covering(k):
    masker = ParallelMasker(num_parts=k)
    masker.validate(GRID)
    for seed in range(20):
        torch.manual_seed(seed)
        plan = masker(tokens(3))
        assert plan.num_views == k and plan.n_keep == L // k
        check_plan(plan, L // k)
        visible = 1 - plan.per_view(plan.mask)  # (B, K, L)
        # disjoint and covering: every patch visible in exactly one view
        assert (visible.sum(1) == 1).all()
        # so every patch is masked in exactly K - 1 views
        assert (plan.per_view(plan.mask).sum(1) == k - 1).all()


def test_parallel_masker_bad_k():
    with pytest.raises(ValueError, match=r'not divisible by K=3; choose K in \{2, 4, 8'):
        ParallelMasker(num_parts=3).validate(GRID)
    with pytest.raises(ValueError, match='num_parts must be an integer >= 2'):
        ParallelMasker(num_parts=1)


def test_parallel_masker_uses_given_ordering():
    """The chunks follow the ordering of the masker named in `order`."""
    masker = MODELS.build(dict(type='ParallelMasker', num_parts=4, order=dict(type='GridMasker')))
    masker.validate(GRID)
    plan = masker(tokens(2))
    visible0 = (1 - plan.per_view(plan.mask))[:, 0].reshape(-1, 8, 8)
    expected = torch.zeros(8, 8)
    expected[::2, ::2] = 1
    assert (visible0 == expected).all()  # the grid masker's visible set is chunk 0

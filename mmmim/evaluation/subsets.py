"""Fixed class-balanced subsets of a labelled training set (the low-label protocols).

A subset depends only on the labels, the fraction and ``seed`` (not on the method, the
pre-training seed or the global RNG), so every method and every seed is probed and
fine-tuned on exactly the same images. Why new code: mmengine's ``indices`` takes the
first N items or a list; it does not draw the same number of items from every class.
"""
import numpy as np

SUBSET_SEED = 0  # the seed the benchmark's configs use for every low-label subset


def balanced_subset(labels, fraction: float, seed: int = SUBSET_SEED) -> np.ndarray:
    """Sorted indices of ``round(fraction * count(c))`` items of every class ``c``,
    drawn without replacement by ``numpy.random.default_rng(seed)`` (each class gets
    its own draw, in class order). ``fraction=1`` returns every index.

    On a balanced set (Fashion-MNIST: 6,000 per class) every class gets the same count:
    1% -> 60 per class, 10% -> 600.
    """
    labels = np.asarray(labels)
    if not 0 < fraction <= 1:
        raise ValueError(f'balanced_subset: fraction must be in (0, 1], got {fraction}')
    if fraction == 1:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n = int(round(fraction * len(members)))
        if n < 1:
            raise ValueError(f'balanced_subset: fraction {fraction} leaves class {c} '
                             f'({len(members)} items) with no item; use a larger fraction')
        chosen.append(rng.choice(members, size=n, replace=False))
    return np.sort(np.concatenate(chosen))

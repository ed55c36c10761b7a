"""Weighted k-nearest-neighbour classification of frozen features (DINO's protocol).

Why new code: mmpretrain's ``KNN`` retriever metric ranks a gallery for retrieval
recall, it does not vote with temperature-weighted similarities; DINO's evaluation
(L2-normalised features, cosine similarity, the top-k neighbours vote for their class
with weight ``exp(sim / T)``, argmax) is a few lines on tensors we already hold after
the linear probe's feature pass.
"""
import torch
from torch import Tensor


@torch.no_grad()
def knn_predict(train_x: Tensor, train_y: Tensor, test_x: Tensor, k: int = 20,
                temperature: float = 0.07, num_classes: int = None,
                chunk: int = 1000) -> Tensor:
    """Class predictions of ``test_x`` by a temperature-weighted vote of its ``k`` most
    cosine-similar training features.

    Args:
        train_x (N, D), train_y (N,): the memory bank and its labels.
        test_x (M, D): the queries.
        k: neighbours per query (at most N).
        temperature: votes are ``exp(cos_sim / temperature)``.
        num_classes: default ``train_y.max() + 1``.
        chunk: queries per similarity block (memory: chunk x N floats).
    Returns:
        (M,) long predictions.
    """
    if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f'knn_predict: features must be (N, D) and (M, D) with the same D, '
                         f'got {tuple(train_x.shape)} and {tuple(test_x.shape)}')
    if len(train_x) != len(train_y):
        raise ValueError(f'knn_predict: {len(train_x)} training features but {len(train_y)} labels')
    if not 1 <= k <= len(train_x):
        raise ValueError(f'knn_predict: k={k} must be between 1 and the {len(train_x)} training items')
    if temperature <= 0:
        raise ValueError(f'knn_predict: temperature must be > 0, got {temperature}')
    num_classes = int(train_y.max()) + 1 if num_classes is None else num_classes
    bank = torch.nn.functional.normalize(train_x.float(), dim=1)
    train_y = train_y.long()
    preds = []
    for start in range(0, len(test_x), chunk):
        query = torch.nn.functional.normalize(test_x[start:start + chunk].float(), dim=1)
        sim, idx = (query @ bank.T).topk(k, dim=1)
        votes = torch.zeros(len(query), num_classes, device=query.device)
        votes.scatter_add_(1, train_y[idx], (sim / temperature).exp())
        preds.append(votes.argmax(1))
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)


def knn_top1(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, k: int = 20,
             temperature: float = 0.07) -> float:
    """Top-1 (%) of :func:`knn_predict` on ``(test_x, test_y)``."""
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    pred = knn_predict(train_x, train_y, test_x, k, temperature, num_classes)
    return (pred == test_y.long()).float().mean().item() * 100

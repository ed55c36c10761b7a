"""EMAE's self-consistency loss between the predictions of parallel views."""
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmmim.registry import MODELS


@MODELS.register_module()
class ConsistencyLoss(nn.Module):
    """Agreement of the ``K`` views' predictions on patches masked in both.

    ``target='pairs'`` (default): for every ordered pair of views ``(i, j)``, ``i != j``,
    and every patch masked in both, the distance between ``pred_i`` and
    ``stopgrad(pred_j)``, averaged over all such (pair, patch) terms. Because both
    ``(i, j)`` and ``(j, i)`` are summed and the distance is symmetric, ``stop_grad=True``
    gives exactly half the gradient of ``stop_grad=False``: in this form the option is
    a factor of 2 on lambda, not a different direction.

    ``target='anchor'``: for every patch, the first view (in view order) that masks it is
    the target; every other view that masks the patch is pulled toward the anchor's
    prediction, detached, and the anchor itself gets no consistency gradient. Per view
    this differs in direction from ``'pairs'``, whose l2 gradient pulls ``pred_i`` toward
    the mean of all the views' predictions. The masks are random, so which view of an image
    is the anchor of a patch is random too. Averaged over the (view, patch) terms.

    Config keys:
        loss_type (str): 'l2' (mean squared difference per patch, default), 'l1', or
            'cosine' (1 - cosine similarity of the patch vectors).
        target (str): 'pairs' (default) or 'anchor' (see above).
        stop_grad (bool): with ``'pairs'``: detach the second view of each pair (default
            True); False lets the gradient flow into both. ``'anchor'`` always detaches
            the anchor.
        loss_weight (float): lambda (default 1.0).

    'l2' is evaluated in closed form, ``sum_{i,j} w_i w_j |p_i - p_j|^2 =
    sum_i w_i (m |p_i|^2 - 2 p_i . S + sum_j w_j |p_j|^2)`` with ``S = sum_j w_j p_j``,
    ``m = sum_j w_j``: O(K) memory instead of O(K^2), with the same value and gradient.
    """
    TYPES = ('l2', 'l1', 'cosine')
    TARGETS = ('pairs', 'anchor')

    def __init__(self, loss_type: str = 'l2', stop_grad: bool = True, loss_weight: float = 1.0,
                 target: str = 'pairs'):
        super().__init__()
        if loss_type not in self.TYPES:
            raise ValueError(f'ConsistencyLoss: loss_type {loss_type!r} not in {self.TYPES}')
        if target not in self.TARGETS:
            raise ValueError(f'ConsistencyLoss: target {target!r} not in {self.TARGETS}')
        self.loss_type, self.stop_grad, self.loss_weight = loss_type, stop_grad, loss_weight
        self.target = target

    def _distance(self, a: Tensor, b: Tensor) -> Tensor:
        """Per-patch distance ``(..., P) -> (...)``."""
        if self.loss_type == 'l2':
            return (a - b).pow(2).mean(-1)
        if self.loss_type == 'l1':
            return (a - b).abs().mean(-1)
        return 1 - F.cosine_similarity(a, b, dim=-1)

    def _anchor(self, pred: Tensor, w: Tensor) -> Tensor:
        first = torch.cumsum(w, dim=1) == 1  # (B, K, L): True up to the first masking view
        anchor = (first & (w > 0)).float()  # one-hot over K where the patch is masked
        target = (anchor[..., None] * pred.detach()).sum(1, keepdim=True)  # (B, 1, L, P)
        pulled = w * (1 - anchor) * (w.sum(1, keepdim=True) > 1).float()
        total = (pulled * self._distance(pred, target)).sum()
        return self.loss_weight * total / pulled.sum().clamp(min=1.)

    def _sg(self, x: Tensor) -> Tensor:
        return x.detach() if self.stop_grad else x

    def forward(self, pred: Tensor, mask: Tensor) -> Tensor:
        """``pred (B, K, L, P)``, ``mask (B, K, L)`` with 1 = masked in that view."""
        pred, w = pred.float(), mask.float()
        if self.target == 'anchor':
            return self._anchor(pred, w)
        num_pairs = w.sum(1) * (w.sum(1) - 1)  # (B, L): ordered pairs masked in both
        denom = num_pairs.sum().clamp(min=1.)
        if self.loss_type == 'l2':
            m = w.sum(1, keepdim=True)  # (B, 1, L)
            sg = self._sg(pred)
            s = (w[..., None] * sg).sum(1, keepdim=True)  # (B, 1, L, P)
            sq_sg = (w * sg.pow(2).sum(-1)).sum(1, keepdim=True)  # (B, 1, L)
            per = m * pred.pow(2).sum(-1) - 2 * (pred * s).sum(-1) + sq_sg
            total = (w * per).sum() / pred.shape[-1]
        else:
            total = pred.new_zeros(())
            k = pred.shape[1]
            for i in range(k):
                for j in range(k):
                    if i == j:
                        continue
                    d = self._distance(pred[:, i], self._sg(pred[:, j]))
                    total = total + (d * w[:, i] * w[:, j]).sum()
        return self.loss_weight * total / denom

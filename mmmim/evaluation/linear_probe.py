"""A quick linear probe on frozen features: extract once, fit a logistic regression.

This is the CPU-sized check the Fashion-MNIST runs print at the end; the ImageNet
protocol (BatchNorm + LARS, 90 epochs) lives in configs/*/benchmarks.
"""
import time
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import Tensor

FEATURES = ('cls', 'avg', 'cls+avg', 'pixels')


def preprocess_items(model, items) -> Tensor:
    """Collate dataset items and run the model's data preprocessor: ``(B, C, H, W)``."""
    from mmengine.dataset import default_collate
    data = model.data_preprocessor(default_collate(items), False)
    inputs = data['inputs']
    return inputs[0] if isinstance(inputs, (list, tuple)) else inputs


class Progress:
    """``<what>: done/total, elapsed, ETA`` lines every ``every`` seconds through the
    current mmengine logger (and always at the end), so a long feature pass never looks
    hung. Rate and ETA come from the items done so far.

    Why not mmengine's ``ProgressBar`` (used by the interactive tools): it redraws one
    terminal line with carriage returns, which never reaches the training log file, so a
    job watched through its log would still look hung."""

    def __init__(self, what: str, total: int, every: float = 15.):
        self.what, self.total, self.every = what, total, every
        self.start = self.last = time.perf_counter()

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if now - self.last < self.every and done < self.total:
            return
        self.last = now
        elapsed = now - self.start
        eta = elapsed / max(done, 1) * (self.total - done)
        print_log(f'{self.what}: {done}/{self.total} ({100 * done / max(self.total, 1):.0f}%), '
                  f'{elapsed:.0f} s elapsed, ETA {eta:.0f} s', logger='current')


@torch.no_grad()
def extract_features(model, dataset, feature: str = 'cls+avg', batch_size: int = 500,
                     max_items: int = None, precision: str = 'auto',
                     progress: Optional[str] = 'features') -> Tuple[Tensor, Tensor]:
    """Frozen encoder features of every item in an mmengine dataset (no masking).

    Args:
        model: an mmmim algorithm (``model.backbone`` a :class:`MaskedViT`).
        dataset: items that pack to ``inputs`` / ``data_samples`` with ``gt_label``.
        feature: 'cls' (the cls token), 'avg' (mean of the patch tokens), 'cls+avg', or
            'pixels': the data preprocessor's output flattened, no encoder (the raw-pixel
            baseline every encoder's features are measured against).
        precision: 'auto' (bf16 autocast where the CPU runs bf16 natively, or on CUDA;
            fp32 otherwise: see :mod:`mmmim.utils.precision`), 'fp32' or 'bf16'. The
            probe itself is always fitted in float32.
        progress: a label for progress lines with an ETA (None: silent).
    Returns:
        ``(features (N, D'), labels (N,))`` as float32 / long CPU tensors.
    """
    from mmmim.utils.precision import resolve_precision
    if feature not in FEATURES:
        raise ValueError(f'feature must be one of {FEATURES}, got {feature!r}')
    device = next(model.parameters()).device.type
    dtype = resolve_precision(precision, device, 'linear-probe features',
                              hint="precision='bf16' (LinearProbeHook)")
    was_training = model.training
    model.eval()
    feats, labels = [], []
    total = len(dataset) if max_items is None else min(max_items, len(dataset))
    bar = Progress(progress, total) if progress else None
    for start in range(0, total, batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, total))]
        img = preprocess_items(model, items)
        if feature == 'pixels':
            feats.append(img.flatten(1).float().cpu())
        else:
            with torch.autocast(img.device.type, dtype=dtype or torch.float32,
                                enabled=dtype is not None):
                latent = model.backbone.encode(model.backbone.embed(img)).float()
            parts = {'cls': latent[:, 0], 'avg': latent[:, 1:].mean(1)}
            feats.append(torch.cat([parts[p] for p in feature.split('+')], dim=1).cpu())
        labels.append(torch.as_tensor([int(it['data_samples'].gt_label) for it in items]))
        if bar:
            bar.update(start + len(items))
    model.train(was_training)
    return torch.cat(feats), torch.cat(labels)


def fit_linear_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor,
                     weight_decay: float = 1e-4, max_iter: int = 200) -> float:
    """Logistic regression (full-batch L-BFGS) on standardised features; test top-1 (%).

    Standardising with the training statistics plays the role of MAE's affine-free
    BatchNorm before the linear layer. Runs on the features' device (a GPU fits the
    60k x 256 Fashion-MNIST probe in a fraction of a second; a busy CPU core needs seconds).
    """
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    linear = torch.nn.Linear(train_x.shape[1], num_classes, device=train_x.device)
    torch.nn.init.zeros_(linear.weight)
    torch.nn.init.zeros_(linear.bias)
    opt = torch.optim.LBFGS(linear.parameters(), lr=1., max_iter=max_iter,
                            history_size=20, line_search_fn='strong_wolfe')

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(linear(train_x), train_y) + weight_decay * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        return (linear(test_x).argmax(1) == test_y).float().mean().item() * 100

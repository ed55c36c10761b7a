"""Linear-probe the encoder at the end of pre-training and print the accuracy."""
import json
import os.path as osp
import time

import torch

from mmengine.hooks import Hook

from mmmim.evaluation import balanced_subset, extract_features, fit_linear_probe, knn_top1
from mmmim.evaluation.linear_probe import FEATURES
from mmmim.registry import DATASETS, HOOKS


@HOOKS.register_module()
class LinearProbeHook(Hook):
    """After training, fit a logistic regression on frozen features and report top-1.

    Prints ``linear probe (<feature>): top-1 = xx.xx% on <n> test images`` and writes
    ``<work_dir>/linear_probe.json``. Meant for CPU-sized data sets (Fashion-MNIST); the
    ImageNet protocol is a separate fine-tuning config.

    Config keys: ``train_dataset``, ``test_dataset`` (dataset configs without
    augmentation), ``feature`` ('cls', 'avg', 'cls+avg' (default), or 'pixels': the
    preprocessed images themselves, the raw-pixel baseline),
    ``max_train`` / ``max_test`` (caps on the items used, default all),
    ``weight_decay`` (1e-4), ``precision`` of the feature pass ('auto': bf16 only where
    the CPU runs it natively, see :mod:`mmmim.utils.precision`; 'fp32'; 'bf16').
    ``knn`` (None, or ``dict(k=20, temperature=0.07)``: also DINO's weighted kNN top-1
    on the same features), ``label_fractions`` (None, or e.g. ``(0.01, 0.1, 1.0)``: also
    fit one probe per fixed class-balanced share of the training labels,
    :func:`mmmim.evaluation.balanced_subset` with ``subset_seed``, default 0).
    The feature pass logs its progress with an ETA; kNN and the low-label probes reuse it
    (one pass for every protocol) and are added to the JSON as ``knn_top1`` and
    ``probe_top1`` (``{"0.01": top-1, ...}``); ``top1`` stays the all-label probe. The
    probes and kNN run on the model's device (on a GPU machine shared by several runs the
    CPU cores are the scarce part).
    """
    priority = 'LOWEST'

    def __init__(self, train_dataset: dict, test_dataset: dict, feature: str = 'cls+avg',
                 max_train: int = None, max_test: int = None, weight_decay: float = 1e-4,
                 precision: str = 'auto', knn: dict = None, label_fractions=None,
                 subset_seed: int = 0):
        if feature not in FEATURES:  # at build time, not after the training it ends
            raise ValueError(f'LinearProbeHook: feature must be one of {FEATURES}, got '
                             f'{feature!r}')
        if precision not in ('auto', 'fp32', 'bf16'):
            raise ValueError(f"LinearProbeHook: precision must be 'auto', 'fp32' or 'bf16', "
                             f'got {precision!r}')
        self.train_cfg, self.test_cfg = train_dataset, test_dataset
        self.feature, self.max_train, self.weight_decay = feature, max_train, weight_decay
        self.max_test, self.precision = max_test, precision
        if knn is not None:
            unknown = set(knn) - {'k', 'temperature'}
            if unknown:
                raise ValueError(f'LinearProbeHook: knn takes k and temperature, got {sorted(unknown)}')
            knn = dict(dict(k=20, temperature=0.07), **knn)
        for f in label_fractions or ():
            if not 0 < f <= 1:
                raise ValueError(f'LinearProbeHook: label_fractions must be in (0, 1], got {f}')
        self.knn, self.label_fractions = knn, tuple(label_fractions or ())
        self.subset_seed = subset_seed

    def after_train(self, runner):
        if runner.rank != 0:
            return
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        start = time.time()
        train = extract_features(model, DATASETS.build(self.train_cfg), self.feature,
                                 max_items=self.max_train, precision=self.precision,
                                 progress='linear probe: train features')
        test = extract_features(model, DATASETS.build(self.test_cfg), self.feature,
                                max_items=self.max_test, precision=self.precision,
                                progress='linear probe: test features')
        labels = train[1]  # on the CPU: the subsets are drawn with numpy
        device = next(model.parameters()).device  # the probes run where the model is
        train, test = [tuple(t.to(device) for t in pair) for pair in (train, test)]
        runner.logger.info(f'linear probe: fitting the logistic regression on {len(train[1])} '
                           f'x {train[0].shape[1]} features (L-BFGS, at most 200 steps, '
                           f'on {device})')
        acc = fit_linear_probe(*train, *test, weight_decay=self.weight_decay)
        result = dict(feature=self.feature, top1=round(acc, 2), train_items=len(train[1]),
                      test_items=len(test[1]))
        if self.knn is not None:
            result['knn'] = self.knn
            result['knn_top1'] = round(knn_top1(*train, *test, **self.knn), 2)
            runner.logger.info(f'kNN (k={self.knn["k"]}, T={self.knn["temperature"]}): '
                               f'top-1 = {result["knn_top1"]:.2f}%')
        if self.label_fractions:
            result['subset_seed'], result['probe_top1'] = self.subset_seed, {}
            for fraction in self.label_fractions:
                keep = balanced_subset(labels.numpy(), fraction, self.subset_seed)
                keep = torch.as_tensor(keep, device=device)
                top1 = acc if fraction == 1 else fit_linear_probe(
                    train[0][keep], train[1][keep], *test, weight_decay=self.weight_decay)
                result['probe_top1'][str(fraction)] = round(top1, 2)
                runner.logger.info(f'linear probe on {100 * fraction:g}% of the labels '
                                   f'({len(keep)} items): top-1 = {top1:.2f}%')
        result['seconds'] = round(time.time() - start, 1)
        with open(osp.join(runner.work_dir, 'linear_probe.json'), 'w') as f:
            json.dump(result, f, indent=2)
        runner.logger.info(f'linear probe ({self.feature}): top-1 = {acc:.2f}% on '
                           f'{len(test[1])} test images (trained on {len(train[1])}, '
                           f'{result["seconds"]} s)')

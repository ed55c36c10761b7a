"""Linear-probe the encoder at the end of pre-training and print the accuracy."""
import json
import os.path as osp
import time

from mmengine.hooks import Hook

from mmmim.evaluation import extract_features, fit_linear_probe
from mmmim.registry import DATASETS, HOOKS


@HOOKS.register_module()
class LinearProbeHook(Hook):
    """After training, fit a logistic regression on frozen features and report top-1.

    Prints ``linear probe (<feature>): top-1 = xx.xx% on <n> test images`` and writes
    ``<work_dir>/linear_probe.json``. Meant for CPU-sized data sets (Fashion-MNIST); the
    ImageNet protocol is a separate fine-tuning config.

    Config keys: ``train_dataset``, ``test_dataset`` (dataset configs without
    augmentation), ``feature`` ('cls', 'avg' or 'cls+avg'; default 'cls+avg'),
    ``max_train`` / ``max_test`` (caps on the items used, default all),
    ``weight_decay`` (1e-4), ``precision`` of the feature pass ('auto': bf16 only where
    the CPU runs it natively, see :mod:`mmmim.utils.precision`; 'fp32'; 'bf16').
    The feature pass logs its progress with an ETA.
    """
    priority = 'LOWEST'

    def __init__(self, train_dataset: dict, test_dataset: dict, feature: str = 'cls+avg',
                 max_train: int = None, max_test: int = None, weight_decay: float = 1e-4,
                 precision: str = 'auto'):
        if precision not in ('auto', 'fp32', 'bf16'):
            raise ValueError(f"LinearProbeHook: precision must be 'auto', 'fp32' or 'bf16', "
                             f'got {precision!r}')
        self.train_cfg, self.test_cfg = train_dataset, test_dataset
        self.feature, self.max_train, self.weight_decay = feature, max_train, weight_decay
        self.max_test, self.precision = max_test, precision

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
        runner.logger.info(f'linear probe: fitting the logistic regression on {len(train[1])} '
                           f'x {train[0].shape[1]} features (L-BFGS, at most 200 steps)')
        acc = fit_linear_probe(*train, *test, weight_decay=self.weight_decay)
        result = dict(feature=self.feature, top1=round(acc, 2), train_items=len(train[1]),
                      test_items=len(test[1]), seconds=round(time.time() - start, 1))
        with open(osp.join(runner.work_dir, 'linear_probe.json'), 'w') as f:
            json.dump(result, f, indent=2)
        runner.logger.info(f'linear probe ({self.feature}): top-1 = {acc:.2f}% on '
                           f'{len(test[1])} test images (trained on {len(train[1])}, '
                           f'{result["seconds"]} s)')

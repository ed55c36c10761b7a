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
    ``max_train`` (cap on training items, default all), ``weight_decay`` (1e-4).
    """
    priority = 'LOWEST'

    def __init__(self, train_dataset: dict, test_dataset: dict, feature: str = 'cls+avg',
                 max_train: int = None, weight_decay: float = 1e-4):
        self.train_cfg, self.test_cfg = train_dataset, test_dataset
        self.feature, self.max_train, self.weight_decay = feature, max_train, weight_decay

    def after_train(self, runner):
        if runner.rank != 0:
            return
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        start = time.time()
        train = extract_features(model, DATASETS.build(self.train_cfg), self.feature,
                                 max_items=self.max_train)
        test = extract_features(model, DATASETS.build(self.test_cfg), self.feature)
        acc = fit_linear_probe(*train, *test, weight_decay=self.weight_decay)
        result = dict(feature=self.feature, top1=round(acc, 2), train_items=len(train[1]),
                      test_items=len(test[1]), seconds=round(time.time() - start, 1))
        with open(osp.join(runner.work_dir, 'linear_probe.json'), 'w') as f:
            json.dump(result, f, indent=2)
        runner.logger.info(f'linear probe ({self.feature}): top-1 = {acc:.2f}% on '
                           f'{len(test[1])} test images (trained on {len(train[1])}, '
                           f'{result["seconds"]} s)')

"""Evaluate a checkpoint on a config's test set.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl] [--tta]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm}]

--tta averages a classifier's class scores over several views of each test image, as
mmpretrain's own tools/test.py does: the views of the config's ``tta_pipeline`` and the
model ``tta_model``, by default the image and its horizontal mirror averaged by
``mmpretrain.AverageClsScoreTTA``.
    tools/dist_test.sh CONFIG CHECKPOINT NPROC [...]
"""
import argparse
import copy
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmmim  # noqa: E402  (checks dependency versions)
import mmmim.engine  # noqa: E402,F401  (hooks, safe checkpoint loading)
from mmengine.config import ConfigDict, DictAction  # noqa: E402
from mmengine.evaluator import DumpResults  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from mmmim.utils.dist import finish_distributed, setup_cpu_distributed  # noqa: E402
from mmmim.utils.launch import (check_checkpoint_file, explain_registry_error,  # noqa: E402
                                load_config)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test a checkpoint with mmmim')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where logs and metrics go '
                        '(default: ./work_dirs/<config name>)')
    parser.add_argument('--out', help='also dump the predictions to this pickle file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries; a key\'s parent must exist')
    parser.add_argument('--tta', action='store_true',
                        help='test-time augmentation: average the class scores of the views '
                        'of cfg.tta_pipeline (default: the image and its horizontal mirror)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def with_tta(cfg):
    """Wrap ``cfg.model`` in ``cfg.tta_model`` and test on the views of ``cfg.tta_pipeline``.

    Without them in the config: ``mmpretrain.AverageClsScoreTTA`` over the image and its
    horizontal mirror, i.e. the test pipeline with its last (packing) step run once per
    view. mmengine's ``TestTimeAug`` makes the views and ``BaseTTAModel`` averages them;
    only the defaults are written here (mmengine's test script has no ``--tta``, and this
    one replaces it).
    """
    if 'tta_model' not in cfg:
        cfg.tta_model = dict(type='mmpretrain.AverageClsScoreTTA')
    if 'tta_pipeline' not in cfg:
        pipeline = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
        if not pipeline or 'Pack' not in pipeline[-1].get('type', ''):
            raise ValueError('--tta: the test pipeline does not end with a packing step '
                             f'(it ends with {pipeline[-1:]}); write the views yourself as '
                             'tta_pipeline = [..., dict(type="TestTimeAug", transforms=[...])] '
                             'in the config')
        views = [dict(type='RandomFlip', prob=1., direction='horizontal'),
                 dict(type='RandomFlip', prob=0.)]
        cfg.tta_pipeline = pipeline[:-1] + [
            dict(type='TestTimeAug', transforms=[views, [pipeline[-1]]])]
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args)
    if args.tta:
        cfg = with_tta(cfg)
    check_checkpoint_file(args.checkpoint)
    cfg.load_from, cfg.resume = args.checkpoint, False
    setup_cpu_distributed(cfg, args.launcher)
    try:
        runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
        if args.out:
            runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
        metrics = runner.test()
        finish_distributed(runner)
        return metrics
    except KeyError as e:
        better = explain_registry_error(e)
        if better is None:
            raise
        raise better from None


if __name__ == '__main__':
    main()

"""Evaluate a checkpoint on a config's test set.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm}]
    tools/dist_test.sh CONFIG CHECKPOINT NPROC [...]
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmmim  # noqa: E402  (checks dependency versions)
import mmmim.engine  # noqa: E402,F401  (hooks, safe checkpoint loading)
from mmengine.config import DictAction  # noqa: E402
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
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args)
    check_checkpoint_file(args.checkpoint)
    cfg.load_from, cfg.resume = args.checkpoint, False
    setup_cpu_distributed(cfg, args.launcher)
    try:
        runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
        if args.out:
            runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
        metrics = runner.test()
        finish_distributed()
        return metrics
    except KeyError as e:
        better = explain_registry_error(e)
        if better is None:
            raise
        raise better from None


if __name__ == '__main__':
    main()

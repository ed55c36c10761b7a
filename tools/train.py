"""Train (pre-train or fine-tune) a model from an mmmim config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--auto-scale-lr] [--cfg-options k=v ...] [--launcher {none,pytorch,slurm}]
    tools/dist_train.sh CONFIG NPROC [...]          # one node, NPROC processes

A config with ``strategy=dict(type='MIMFSDPStrategy', ...)`` (FSDP) is trained by
mmengine's FlexibleRunner with the same flags (see docs/speed.md).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmmim  # noqa: E402  (checks dependency versions)
import mmmim.engine  # noqa: E402,F401  (optim wrappers, hooks, safe checkpoint loading)
from mmengine.config import DictAction  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from mmmim.utils.dist import finish_distributed, setup_cpu_distributed  # noqa: E402
from mmmim.utils.precision import describe_cpu  # noqa: E402
from mmmim.utils.launch import (check_resume_source, load_config,  # noqa: E402
                                explain_registry_error, explain_resume_error,
                                make_load_from_strict,
                                prepare_strategy_config, switch_to_amp)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model with mmmim')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: ./work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', const='auto', metavar='CKPT',
                        help='resume from CKPT, or without CKPT from the latest checkpoint '
                        'in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: fp16 + loss scaling on CUDA; on a CPU bf16 where it '
                        'is native (AVX512-BF16/AMX), else fp32 (logged; MMMIM_CPU_BF16=1 forces bf16)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by actual / auto_scale_lr.base_batch_size')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. train_cfg.max_iters=10 '
                        'optim_wrapper.optimizer.lr=1e-4; a key\'s parent must exist')
    parser.add_argument('--allow-partial', action='store_true',
                        help='load load_from leniently (missing, unexpected or mis-shaped keys '
                        'are logged, not refused); by default load_from must fit the model')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_config(args):
    cfg = load_config(args)
    # a `strategy` (FSDP) runs under mmengine's FlexibleRunner; --amp then sets FSDP's
    # own mixed precision instead of the optim wrapper
    sharded = prepare_strategy_config(cfg, amp=args.amp)
    if args.amp and not sharded:
        switch_to_amp(cfg)
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if args.auto_scale_lr:
        if not cfg.get('auto_scale_lr', {}).get('base_batch_size'):
            raise SystemExit('error: --auto-scale-lr needs auto_scale_lr=dict(base_batch_size=N) '
                             'in the config (N: the total batch size the lr was tuned for)')
        cfg.auto_scale_lr.enable = True
    check_resume_source(cfg)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = build_config(args)
    setup_cpu_distributed(cfg, args.launcher)
    try:
        runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
        runner.logger.info(f'CPU: {describe_cpu()}')  # every logged time names its hardware
        make_load_from_strict(runner, args.allow_partial)
        runner.train()
        finish_distributed(runner)
    except KeyError as e:
        better = explain_registry_error(e)
        if better is None:
            raise
        raise better from None
    except ValueError as e:
        better = explain_resume_error(e, cfg)
        if better is None:
            raise
        raise better from e


if __name__ == '__main__':
    main()

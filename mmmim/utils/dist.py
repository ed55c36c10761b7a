"""Distributed training without CUDA (the gloo backend).

mmengine's ``init_dist`` calls ``torch.cuda.set_device`` before
``init_process_group`` for the pytorch and slurm launchers, which raises on a machine
without a GPU. The Runner skips its own initialisation when a process group already
exists, so :func:`setup_cpu_distributed` creates a gloo group first and adjusts the
config to match.
"""
import os
import subprocess
from datetime import timedelta

import torch
import torch.distributed as dist
from mmengine.logging import print_log


def _slurm_env():
    """Translate SLURM's variables into the env:// ones (as mmengine does for GPUs)."""
    nodes = subprocess.run(['scontrol', 'show', 'hostname', os.environ['SLURM_NODELIST']],
                           capture_output=True, text=True, check=True).stdout.split()
    os.environ.setdefault('MASTER_ADDR', nodes[0])
    os.environ.setdefault('MASTER_PORT', '29500')
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')


def setup_cpu_distributed(cfg, launcher):
    """Initialise a gloo process group when ``launcher`` asks for distributed training
    but CUDA is unavailable. Call it before building the Runner.

    Does nothing for ``launcher='none'``, when CUDA is available (mmengine then sets up
    NCCL itself), or when a group already exists. Otherwise it reads torchrun's (or
    SLURM's) variables, initialises ``env://`` with gloo, logs it, and sets
    ``cfg.env_cfg.dist_cfg.backend='gloo'`` and a CPU DDP wrapper (mmengine would pass
    ``device_ids=[LOCAL_RANK]``, which DDP rejects for CPU modules).

    Returns:
        bool: True if this function created the process group.
    """
    if launcher == 'none' or torch.cuda.is_available() or dist.is_initialized():
        return False
    if launcher == 'slurm':
        _slurm_env()
    elif launcher == 'pytorch':
        missing = [k for k in ('MASTER_ADDR', 'MASTER_PORT', 'RANK', 'WORLD_SIZE')
                   if k not in os.environ]
        if missing:
            raise RuntimeError(
                f'--launcher pytorch needs the variables torchrun sets ({", ".join(missing)} '
                f'missing); start the job with tools/dist_train.sh CONFIG NPROC or '
                f'`python -m torch.distributed.run --nproc_per_node=N tools/train.py ... '
                f'--launcher pytorch`, or use --launcher none for one process')
    else:
        raise ValueError(f'launcher {launcher!r} is not supported without CUDA; '
                         f"use 'pytorch' (torchrun) or 'slurm'")
    env_cfg = cfg.get('env_cfg') or {}
    dist_cfg = dict(env_cfg.get('dist_cfg') or {})
    timeout = dist_cfg.get('timeout')
    kwargs = dict(timeout=timedelta(seconds=timeout)) if timeout else {}
    dist.init_process_group('gloo', init_method='env://', **kwargs)
    dist_cfg['backend'] = 'gloo'
    env_cfg['dist_cfg'] = dist_cfg
    cfg['env_cfg'] = env_cfg
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    if 'DistributedDataParallel' in str(wrapper.get('type', '')):
        wrapper.setdefault('device_ids', None)
    cfg['model_wrapper_cfg'] = wrapper
    print_log(f'no CUDA: using the gloo backend (rank {dist.get_rank()} of '
              f'{dist.get_world_size()})', logger='current')
    return True


def finish_distributed(runner=None):
    """Tear the process group down once every rank is done.

    mmengine's runner leaves it alive at exit; with gloo, a rank whose process exits while
    the group's threads still run can abort ('terminate called without an active
    exception'), failing a run that had finished its work. Destroying the group only drops
    torch.distributed's own references: the DDP wrapper of ``runner.model`` still holds
    it, and freed at interpreter shutdown the group's pending work can abort the process
    the same way. So the wrapped model is also released, and collected, here.
    """
    import gc

    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
        if runner is not None:
            runner.model = None
        gc.collect()

"""Test-only hooks and masker for the reliability tests (imported by
tests/configs/reliability_tiny_mae.py through custom_imports; PYTHONPATH must hold
tests/)."""
import json
import os
import os.path as osp
import time

import torch
from mmengine.dist import get_dist_info
from mmengine.hooks import Hook

from mmmim.models.maskers.base import BaseMasker
from mmmim.models.maskers.random import RandomMasker
from mmmim.registry import HOOKS, MODELS


@HOOKS.register_module()
class HangAtIterHook(Hook):
    """With MMMIM_PROBE_HANG_AT=N: after iteration N write <work_dir>/hanging and sleep,
    so a test can kill the process at a known point (no timing involved)."""

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        hang = int(os.environ.get('MMMIM_PROBE_HANG_AT', 0))
        if hang and runner.iter + 1 == hang:
            with open(osp.join(runner.work_dir, 'hanging'), 'w') as f:
                f.write(str(runner.iter + 1))
            while True:
                time.sleep(1)


@HOOKS.register_module()
class RecordHook(Hook):
    """Writes <work_dir>/probe_rank<r>.json: every iteration's loss on this rank and a
    mask drawn by RandomMasker from this rank's generator at the start of training."""
    priority = 'LOWEST'

    def before_train(self, runner):
        self.losses = {}
        with torch.random.fork_rng(devices=[]):
            mask = RandomMasker(0.75)(torch.zeros(2, 64, 8)).mask
        self.mask = mask.flatten().tolist()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if 'loss' in outputs:  # NaNGuardHook drops non-finite losses
            self.losses[runner.iter + 1] = float(outputs['loss'].detach())

    def after_train(self, runner):
        rank = get_dist_info()[0]
        with open(osp.join(runner.work_dir, f'probe_rank{rank}.json'), 'w') as f:
            json.dump(dict(losses=self.losses, mask=self.mask), f)


@MODELS.register_module()
class FixedMasker(BaseMasker):
    """The same mask for every image and every call (a fixed permutation), so runs with
    different process counts see identical masks."""

    def order(self, tokens, n_keep):
        gen = torch.Generator().manual_seed(0)
        perm = torch.randperm(tokens.shape[1], generator=gen).to(tokens.device)
        return perm[None].expand(tokens.shape[0], -1).contiguous()

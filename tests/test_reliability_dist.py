"""Distributed determinism: 2 CPU processes (gloo, tools/dist_train.sh) against 1.

Why masks need care: ``randomness.diff_rank_seed=True`` (default_runtime.py) seeds
every rank differently so that ranks draw different masks, as they should; a
2-process run therefore cannot draw the same random masks as a 1-process run, and
its losses cannot be compared with random masking. The comparison run uses
``FixedMasker`` (tests/reliability_probe.py: the same mask for every image) and no
random augmentation, so the only differences left are how the global batch of 4 is
split (2 + 2 images) and DDP's gradient averaging. With equal halves the mean of the
two ranks' losses is the 1-process loss, and the weights after training agree.

Masks: the probe draws one RandomMasker mask from each rank's generator at the start
of training; ranks differ from each other, and rank 0 draws what a 1-process run with
the same seed draws.
"""
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from mmmim.utils import load_checkpoint_safely

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'tests', 'configs', 'reliability_tiny_mae.py')


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _run(cmd, **env):
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([REPO, osp.join(REPO, 'tests')]), **env}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


def _probe(work, rank):
    with open(osp.join(work, f'probe_rank{rank}.json')) as f:
        data = json.load(f)
    return {int(k): v for k, v in data['losses'].items()}, data['mask']


@pytest.mark.skipif(torch.cuda.is_available(), reason='tests the CPU (gloo) path')
def test_two_processes_match_one_process_of_the_same_global_batch(tmp_path):
    images = tmp_path / 'images'
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(16):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(images / f'{i}.png')
    common = [f'train_dataloader.dataset.data_root={images}', 'model.masker.type=FixedMasker',
              'train_dataloader.dataset.pipeline.1.prob=0.0', 'train_cfg.max_epochs=1']
    one, two = str(tmp_path / 'one'), str(tmp_path / 'two')
    rc, log = _run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', one,
                    '--cfg-options', *common, 'train_dataloader.batch_size=4'])
    assert rc == 0, log[-3000:]
    rc, log = _run(['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', two,
                    '--cfg-options', *common, 'train_dataloader.batch_size=2'],
                   PYTHON=sys.executable, PORT=str(_free_port()))
    assert rc == 0, log[-3000:]
    assert 'no CUDA: using the gloo backend (rank 0 of 2)' in log

    single, mask_single = _probe(one, 0)
    rank0, mask0 = _probe(two, 0)
    rank1, mask1 = _probe(two, 1)
    assert sorted(single) == sorted(rank0) == sorted(rank1) == [1, 2, 3, 4]
    for it in single:
        assert (rank0[it] + rank1[it]) / 2 == pytest.approx(single[it], rel=1e-4), it
    a = load_checkpoint_safely(osp.join(one, 'iter_4.pth'))['state_dict']
    b = load_checkpoint_safely(osp.join(two, 'iter_4.pth'))['state_dict']
    assert a.keys() == b.keys()
    # Adam divides each gradient element by its own running scale, so where a gradient is
    # ~0 its sign is set by summation order (which differs between CPU instruction sets:
    # AVX2 and AVX-512 kernels add in different orders) and one flipped step moves that
    # weight by up to 2 x lr. Every weight must stay within that bound of the 4 steps'
    # learning rates, and all but a few within 1e-4.
    lrs = [1e-3 * (0.1 + 0.9 * t / 4) for t in range(4)]  # the config's LinearLR warm-up
    flips_bound = 2 * sum(lrs)
    off, total = 0, 0
    for key in a:
        diff = (a[key].float() - b[key].float()).abs()
        assert diff.max().item() <= flips_bound, f'{key}: {diff.max().item():.2e}'
        off += int((diff > 1e-4 + 1e-4 * b[key].float().abs()).sum())
        total += diff.numel()
    assert off <= max(2, total // 200), f'{off} of {total} weights differ by more than 1e-4'

    assert mask0 != mask1  # every rank draws its own masks
    assert mask0 == mask_single  # ... reproducibly for the seed
    states = load_checkpoint_safely(osp.join(two, 'iter_4.pth'))['rng_states']
    assert len(states) == 2 and not torch.equal(states[0]['torch'], states[1]['torch'])

"""The Fashion-MNIST configs through the real tools, on a few hundred images."""
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest

from mmmim.datasets.fashion_mnist import DEFAULT_ROOT
from mmmim.utils import load_checkpoint_safely

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
pytestmark = pytest.mark.skipif(
    not osp.isfile(osp.join(DEFAULT_ROOT, 'train-images-idx3-ubyte.gz')),
    reason='dataset-fashion-mnist is not installed')
SMALL = ['train_dataloader.dataset.indices=128', 'train_dataloader.batch_size=16',
         'train_cfg.max_epochs=1', 'default_hooks.logger.interval=1',
         'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False']
# the end-of-training probe on 500 + 500 images (the whole 70k is the main job's, not a test's)
SMALL_PROBE = ['custom_hooks.1.max_train=500', 'custom_hooks.1.max_test=500']
MAIN_JOB = 'configs/fashion_mnist/mae_vit-mini-p4_4e.py'


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run(cmd, **env):
    env = {**os.environ, 'PYTHONPATH': REPO, 'PYTHON': sys.executable, **env}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    return proc.returncode, proc.stdout + proc.stderr


def test_emae_fashion_config_on_two_cpu_processes(tmp_path):
    """tools/dist_train.sh CONFIG 2 without a GPU: gloo, both losses logged, a checkpoint."""
    work = str(tmp_path / 'emae')
    rc, log = run(['bash', 'tools/dist_train.sh', 'configs/fashion_mnist/emae_vit-mini-p4_4e.py',
                   '2', '--work-dir', work, '--cfg-options', *SMALL, *SMALL_PROBE],
                  PORT=str(free_port()))
    assert rc == 0, log[-3000:]
    assert 'using the gloo backend' in log
    assert 'loss_consistency' in log and 'loss_rec' in log
    # 128 images / (2 processes x 16) = 4 iterations
    ckpt = load_checkpoint_safely(osp.join(work, 'epoch_1.pth'))
    assert ckpt['meta']['iter'] == 4
    assert osp.isfile(osp.join(work, 'reconstruction.png'))
    assert 'linear probe (cls+avg): top-1 =' in log


def test_mae_fashion_main_job_outputs(tmp_path):
    """The main job's config leaves checkpoint, reconstruction grid and probe result, and
    its log names the CPU, the precision chosen for it and the probe's progress."""
    work = str(tmp_path / 'mae')
    rc, log = run([sys.executable, 'tools/train.py', MAIN_JOB, '--work-dir', work,
                   '--amp', '--cfg-options', *SMALL, *SMALL_PROBE])
    assert rc == 0, log[-3000:]
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))
    assert os.path.getsize(osp.join(work, 'reconstruction.png')) > 1000
    import json
    probe = json.load(open(osp.join(work, 'linear_probe.json')))
    assert probe['test_items'] == 500 and probe['train_items'] == 500 and probe['top1'] > 30
    assert 'CPU: ' in log and 'MixedPrecisionOptimWrapper: ' in log
    assert 'linear probe: train features: 500/500 (100%)' in log
    assert 'linear probe: test features: 500/500 (100%)' in log

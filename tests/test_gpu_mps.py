"""tools/gpu_mps.sh (MPS start/stop for fmnist_benchmark.py --mps and gpu_concurrency.sh)
against a stand-in nvidia-cuda-mps-control: the pipe folder it exports is the one
fmnist_benchmark.py's mps_active() reads, stopping removes the daemon, and without the
binary it says so and fails so that the caller runs on without MPS; and
tools/gpu_concurrency.sh run through on the CPU against the same stand-in."""
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

from conftest import load_tool

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
bench = load_tool('tools/analysis/fmnist_benchmark.py')

# like the real control binary: -d starts a daemon whose pipe is $CUDA_MPS_PIPE_DIRECTORY/control;
# "quit" on stdin stops it
FAKE = '''#!/usr/bin/env bash
if [ "${1:-}" = -d ]; then mkfifo "$CUDA_MPS_PIPE_DIRECTORY/control"; exit 0; fi
read -r cmd; [ "$cmd" = quit ] && rm -f "$CUDA_MPS_PIPE_DIRECTORY/control"
'''


def _fake_binary(tmp_path):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'nvidia-cuda-mps-control').write_text(FAKE)
    (bin_dir / 'nvidia-cuda-mps-control').chmod(0o755)
    return f'{bin_dir}:{os.environ["PATH"]}'


def _bash(script, path):
    env = dict(os.environ, PATH=path)
    env.pop('CUDA_MPS_PIPE_DIRECTORY', None)
    return subprocess.run(['bash', '-c', f'source tools/gpu_mps.sh; {script}'], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)


def test_mps_start_exports_the_pipe_that_the_benchmark_recognises(tmp_path, monkeypatch):
    path = _fake_binary(tmp_path)
    out = _bash('mps_start && echo "PIPE=$CUDA_MPS_PIPE_DIRECTORY"', path)
    assert out.returncode == 0, out.stderr
    pipe = out.stdout.split('PIPE=')[1].strip()
    monkeypatch.setenv('CUDA_MPS_PIPE_DIRECTORY', pipe)
    assert bench.mps_active()  # the daemon is still up: nothing stopped it
    # a second start finds it running (and does not start another); stop removes it
    out = _bash(f'export CUDA_MPS_PIPE_DIRECTORY={pipe}; mps_start; mps_stop; '
                f'test -p {pipe}/control && echo still-there', path)
    assert 'already runs' in out.stdout and 'still-there' in out.stdout  # not ours to stop
    shutil.rmtree(osp.dirname(pipe))  # the first start's folder
    out = _bash('mps_start && mps_stop && echo "PIPE=$CUDA_MPS_PIPE_DIRECTORY"', path)
    pipe = out.stdout.split('PIPE=')[1].strip()
    monkeypatch.setenv('CUDA_MPS_PIPE_DIRECTORY', pipe)
    assert not bench.mps_active()


def test_mps_start_without_the_binary_fails_and_says_why(tmp_path):
    out = _bash('mps_start; echo "rc=$?"', f'{tmp_path}:/usr/bin:/bin')
    assert 'rc=1' in out.stdout and 'not on PATH' in out.stdout


def test_the_benchmark_starts_mps_for_its_run_and_stops_it(tmp_path, monkeypatch):
    monkeypatch.setenv('PATH', _fake_binary(tmp_path))
    monkeypatch.setenv('CUDA_MPS_PIPE_DIRECTORY', str(tmp_path / 'none'))  # none answers
    monkeypatch.delenv('CUDA_MPS_LOG_DIRECTORY', raising=False)
    mps_dir = bench.start_mps()
    assert mps_dir and bench.mps_active()  # the stages' processes will find it
    assert os.environ['CUDA_MPS_PIPE_DIRECTORY'] == osp.join(mps_dir, 'pipe')
    # a daemon that already answers is used, not started again, and not the tool's to stop
    assert bench.start_mps() is None and bench.mps_active()
    bench.stop_mps(mps_dir)
    assert not osp.exists(mps_dir) and 'CUDA_MPS_PIPE_DIRECTORY' not in os.environ
    assert not bench.mps_active()
    # without the binary the run goes on, without MPS and with the warning
    monkeypatch.setenv('PATH', f'{tmp_path}:/usr/bin:/bin')
    assert bench.start_mps() is None and not bench.mps_active()
    args = bench.parse_args(['--device', 'cuda', '--jobs', '4'])
    assert args.mps and 'without CUDA MPS' in bench.concurrency_warning(args)
    assert not bench.parse_args(['--device', 'cuda']).mps  # one job: nothing to share
    assert not bench.parse_args(['--device', 'cuda', '--jobs', '4', '--no-mps']).mps


def test_the_report_names_the_mps_state_of_the_run_not_of_the_moment(monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, 'get_device_name', lambda i=0: 'a GPU')
    monkeypatch.setenv('CUDA_MPS_PIPE_DIRECTORY', '/nonexistent')  # stopped by now
    assert 'MPS on)' in bench.hardware('cuda', mps=True)
    assert 'MPS off)' in bench.hardware('cuda', mps=False)
    assert 'MPS off)' in bench.hardware('cuda')  # no record: whether one answers now
    assert bench.parse_args(['--device', 'cuda', '--jobs', '4']).mps_on is None


def test_concurrency_script_times_each_setting(tmp_path):
    """tools/gpu_concurrency.sh on the CPU, with a stand-in MPS daemon and a tiny Fashion-MNIST:
    one run alone and two under MPS, each logging its seconds per iteration. The first GPU
    sitting runs this script; a broken option in it would cost that sitting."""
    import numpy as np
    from test_fashion_mnist import write_idx
    root = tmp_path / 'fmnist'
    root.mkdir()
    rng = np.random.default_rng(0)
    for prefix in ('train', 't10k'):
        write_idx(root / f'{prefix}-images-idx3-ubyte.gz', rng.integers(0, 255, (64, 28, 28)))
        write_idx(root / f'{prefix}-labels-idx1-ubyte.gz', np.arange(64) % 10)
    env = dict(os.environ, PATH=_fake_binary(tmp_path), PYTHON=sys.executable, OUT=str(tmp_path / 'out'),
               DATA_ROOT=str(root), SETTINGS='alone mps', N='2', ITERS='4', LOG_EVERY='1',
               WORKERS='1', LIMIT='300', EXTRA='train_dataloader.batch_size=8')
    env.pop('CUDA_MPS_PIPE_DIRECTORY', None)
    proc = subprocess.run(['bash', 'tools/gpu_concurrency.sh'], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    for run in ('alone1', 'mps1', 'mps2'):
        assert re.search(rf'^{run}: exit 0, logged to iteration 4 of 4, [\d.]+ ms per iteration$',
                         out, re.M), (run, out[-3000:])
    assert re.search(r'^== alone: 1 at once, wall \d+ s$', out, re.M), out[-3000:]
    assert re.search(r'^== mps: 2 at once, wall \d+ s$', out, re.M), out[-3000:]

"""tools/gpu_mps.sh (the GPU scripts' MPS start/stop) against a stand-in
nvidia-cuda-mps-control: the pipe folder it exports is the one fmnist_benchmark.py's
mps_active() reads, stopping removes the daemon, and without the binary it says so and
fails so that the caller runs on without MPS."""
import os
import os.path as osp
import shutil
import subprocess

from conftest import load_tool

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
bench = load_tool('tools/analysis/fmnist_benchmark.py')

# like the real control binary: -d starts a daemon whose pipe is $CUDA_MPS_PIPE_DIRECTORY/control;
# "quit" on stdin stops it
FAKE = '''#!/usr/bin/env bash
if [ "${1:-}" = -d ]; then mkfifo "$CUDA_MPS_PIPE_DIRECTORY/control"; exit 0; fi
read -r cmd; [ "$cmd" = quit ] && rm -f "$CUDA_MPS_PIPE_DIRECTORY/control"
'''


def _bash(script, path):
    env = dict(os.environ, PATH=path)
    env.pop('CUDA_MPS_PIPE_DIRECTORY', None)
    return subprocess.run(['bash', '-c', f'source tools/gpu_mps.sh; {script}'], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)


def test_mps_start_exports_the_pipe_that_the_benchmark_recognises(tmp_path, monkeypatch):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'nvidia-cuda-mps-control').write_text(FAKE)
    (bin_dir / 'nvidia-cuda-mps-control').chmod(0o755)
    path = f'{bin_dir}:{os.environ["PATH"]}'
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

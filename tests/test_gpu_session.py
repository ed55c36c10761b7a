"""tools/gpu_fmnist.sh, the script a GPU sitting runs once, checked on the CPU
(GPU_SESSION_DRY=1): a broken step in it would cost a scarce GPU sitting."""
import os
import os.path as osp
import re
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# the steps STEP_COSTS=1 times, and what tools/analysis/step_choice.py reads
STEPS = ('crop', 'recipe', 'compiled', 'recipe-compiled', 'cudagraphs', 'recipe-cudagraphs',
         'gan-mae-cudagraphs', 'batch16', 'recipe-batch16', 'recipe-fused')


def test_the_step_costs_run_every_step_and_choose_a_mode(tmp_path):
    env = dict(os.environ, GPU_SESSION_DRY='1', STEP_COSTS='only', OUT=str(tmp_path),
               PYTHON=sys.executable)
    proc = subprocess.run(['bash', 'tools/gpu_fmnist.sh'], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1200)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    table = (tmp_path / 'step_costs.txt').read_text()
    for name in STEPS:
        assert re.search(rf'^{re.escape(name)} \(rc 0\):', table, re.M), (name, table)
        log = (tmp_path / f'step_{name}.log').read_text()
        assert re.search(r'^\s*mmmim:\s+[\d.]+ ms/step.*warm-up step\(s\)', log, re.M), name
        assert 'operator calls per step' in log, name  # the profile ran after the timing
    choice = re.findall(r'^compile choice: (\S+)$', table, re.M)
    assert choice and choice[-1] in ('eager', 'default', 'reduce-overhead'), table
    batch = re.findall(r'^recipe batch choice: (\S+)$', table, re.M)
    assert batch and batch[-1] == '256', table  # 1024 only with RECIPE_BATCH=auto
    # the batch-1024 choice was timed (from the dry run's batch-16 stand-in), not left out
    assert re.search(r'^ +eager, recipe batch 1024: \d+ s for', table, re.M), table
    assert 'STEP_COSTS=only: no grid' in out
    assert not (tmp_path / 'grid.log').exists()


def _grid_args(tmp_path, **env_vars):
    """The fmnist_benchmark.py arguments tools/gpu_fmnist.sh (dry, no step costs) launches
    the grid with, through a stand-in python that records them instead of running."""
    fake = tmp_path / 'python'
    record = tmp_path / 'grid_args.txt'
    fake.write_text('#!/usr/bin/env bash\n'
                    '[ "${1:-}" = -c ] && exit 1  # no pytest here: the CUDA tests are skipped\n'
                    f'printf "%s\\n" "$@" > {record}\n')
    fake.chmod(0o755)
    env = dict(os.environ, GPU_SESSION_DRY='1', OUT=str(tmp_path / 'out'), PYTHON=str(fake),
               WORK_DIR=str(tmp_path / 'work'), **env_vars)
    for name in ('STEP_COSTS', 'COMPILE', 'RECIPE_BATCH'):
        if name not in env_vars:
            env.pop(name, None)
    proc = subprocess.run(['bash', 'tools/gpu_fmnist.sh'], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return record.read_text().split('\n')


def test_the_grid_gets_the_recipe_batch_and_compile_mode_asked_for(tmp_path):
    def option(args, name):
        return args[args.index(name) + 1] if name in args else None

    for env_vars, batch, mode in (({}, '256', None),  # the defaults: no setting at all
                                  (dict(RECIPE_BATCH='1024'), '1024', None),
                                  (dict(RECIPE_BATCH='auto'), '256', None),  # needs STEP_COSTS
                                  (dict(COMPILE='default'), '256', 'default'),
                                  (dict(COMPILE='eager'), '256', None)):
        args = _grid_args(tmp_path, **env_vars)
        assert args[0] == 'tools/analysis/fmnist_benchmark.py', args
        assert option(args, '--recipe-batch') == batch, (env_vars, args)
        assert option(args, '--compile-blocks') == mode, (env_vars, args)

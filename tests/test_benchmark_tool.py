"""tools/benchmark.py end to end on the CPU-sized configs (one timed step)."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

from mmmim.datasets.fashion_mnist import DEFAULT_ROOT

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(REPO, 'tools', 'analysis'))
import step_choice  # noqa: E402


def run(*args):
    env = {**os.environ, 'PYTHONPATH': REPO}
    proc = subprocess.run([sys.executable, 'tools/benchmark.py', *args, '--steps', '1',
                           '--warmup', '0'], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return proc.stdout


def test_benchmark_reports_throughput_flops_and_per_view_ratio():
    out = run('configs/fashion_mnist/emae_vit-mini-p4_4e.py', '--batch-size', '4', '--amp', 'auto',
              '--compare', 'configs/fashion_mnist/mae_vit-mini-p4_4e.py')
    rows = re.findall(r'(\S+):\s+([\d.]+) ms/step\s+([\d.]+) img/s\s+([\d.]+) views/s\s+'
                      r'([\d.]+) GFLOP/img\s+MFU\s+([\d.]+)%', out)
    assert [r[0] for r in rows] == ['mmmim', 'mae_vit-mini-p4_4e.py'], out
    (_, _, ips_e, vps_e, gf_e, _), (_, _, ips_m, vps_m, gf_m, _) = rows
    # EMAE: 4 images x 4 views; MAE: 16 images x 1 view
    assert abs(float(vps_e) - 4 * float(ips_e)) < 0.02 * float(vps_e)
    assert abs(float(vps_m) - float(ips_m)) < 1e-6
    # an EMAE image carries 4 views of work: about 4x the FLOPs of an MAE image
    assert 3.5 < float(gf_e) / float(gf_m) < 4.5
    assert 'cost per view' in out and 'matmul rate' in out


def test_benchmark_compares_with_mmpretrain_on_an_rgb_config(tmp_path):
    out = run('configs/mae/vit-b_800e.py', '--batch-size', '2', '--img-size', '32',
              '--cfg-options', 'model.backbone.arch=small', 'model.backbone.patch_size=8',
              'model.neck.decoder_depth=1', '--compare', 'mmpretrain')
    flops = dict(re.findall(r'(mmmim|mmpretrain):.*?([\d.]+) GFLOP/img', out))
    # same architecture: the same model FLOPs
    assert flops['mmmim'] == flops['mmpretrain'], out
    assert 'ratio (views/s) mmmim / mmpretrain' in out


def test_benchmark_times_gan_mae_after_its_adversarial_warm_up(tmp_path):
    """A GAN-MAE config with a warm-up steps as one without (the adversarial step, same
    FLOPs), also with each role's groups merged by MergedGroupsOptimWrapperConstructor."""
    no_warmup = tmp_path / 'no_warmup.py'
    no_warmup.write_text(f"_base_ = ['{REPO}/configs/fashion_mnist/gan-mae_vit-mini-p4_4e.py']\n"
                         "model = dict(adv_warmup_epochs=0)\n")
    merged = 'MergedGroupsOptimWrapperConstructor'
    out = run('configs/fashion_mnist/gan-mae_vit-mini-p4_4e.py', '--batch-size', '2',
              '--amp', 'fp32', '--compare', str(no_warmup), '--cfg-options',
              f'optim_wrapper.generator.constructor={merged}',
              f'optim_wrapper.discriminator.constructor={merged}')
    flops = re.findall(r'(\S+):.*?([\d.]+) GFLOP/img', out)
    assert [f[0] for f in flops] == ['mmmim', 'no_warmup.py'], out
    assert flops[0][1] == flops[1][1], out


@pytest.mark.skipif(not osp.isfile(osp.join(DEFAULT_ROOT, 'train-images-idx3-ubyte.gz')),
                    reason='dataset-fashion-mnist is not installed')
def test_data_throughput_reports_data_time_share(tmp_path):
    env = {**os.environ, 'PYTHONPATH': REPO}
    proc = subprocess.run(
        [sys.executable, 'tools/analysis/data_throughput.py',
         'configs/fashion_mnist/mae_vit-mini-p4_4e.py', '--real', '--batch-size', '8',
         '--workers', '0', '--iters', '3', '--work-dir', str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    match = re.search(r'median data_time ([\d.]+) ms = ([\d.]+)% of the step .* over 3 iterations',
                      proc.stdout)
    assert match, proc.stdout[-2000:]
    assert 0 <= float(match.group(2)) <= 100


def test_benchmark_times_a_classifier_step_and_counts_its_operators(tmp_path):
    """A fine-tune config (mmpretrain.ImageClassifier) is timed like a pre-training one:
    a labelled synthetic batch, its Pretrained init dropped (the checkpoint need not
    exist), one view per image, and the same FLOPs per image as another config of the
    same classifier; --profile also prints the operators dispatched per step."""
    out = run('configs/fashion_mnist/benchmark/finetune-recipe_vit-mini-p4.py', '--batch-size', '2',
              '--amp', 'fp32', '--compare', 'configs/fashion_mnist/finetune_vit-mini-p4.py',
              '--cfg-options', 'model.backbone.init_cfg.checkpoint=no/such/checkpoint.pth',
              '--profile', '1', '--profile-rows', '3')
    rows = re.findall(r'(\S+):\s+([\d.]+) ms/step\s+([\d.]+) img/s\s+([\d.]+) views/s\s+'
                      r'([\d.]+) GFLOP/img', out)
    assert [r[0] for r in rows] == ['mmmim', 'finetune_vit-mini-p4.py'], out
    for _, _, ips, vps, gflop in rows:
        assert float(ips) == float(vps) and float(gflop) > 0, out
    assert rows[0][4] == rows[1][4], out  # same architecture: the same FLOPs per image
    calls = re.search(r'operator calls per step: (\d+)', out)
    assert calls and int(calls.group(1)) > 100, out
    # tools/analysis/step_choice.py reads this log's own row: its ms/step and warm-up
    log = tmp_path / 'step_recipe.log'
    log.write_text(out)
    assert step_choice.read_step(str(log)) == (float(rows[0][1]), 0.0)


def test_benchmark_refuses_to_compare_a_classifier_with_mmpretrain_mae():
    env = {**os.environ, 'PYTHONPATH': REPO}
    proc = subprocess.run([sys.executable, 'tools/benchmark.py',
                           'configs/fashion_mnist/finetune_vit-mini-p4.py', '--compare',
                           'mmpretrain', '--steps', '1', '--warmup', '0'], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert 'has no masker' in proc.stderr and 'compare it with another config' in proc.stderr


def _step_log(path, ms, warmup_s, name='mmmim'):
    path.write_text(f'config: x\n{name:>10}:     {ms} ms/step    1.00 img/s    1.00 views/s    '
                    f'0.46 GFLOP/img  MFU   1.0%  (min 1.0 ms, max 2.0 ms; 5 warm-up step(s) '
                    f'{warmup_s} s)\n')


@pytest.mark.parametrize('timings,want', [
    # CUDA graphs: 1584 x 10 ms + 11750 x 12 ms + 2 x 30 s warm-up, far below eager's
    (dict(crop=(40, 1), recipe=(42, 1), compiled=(30, 20), **{'recipe-compiled': (33, 20)},
          cudagraphs=(10, 30), **{'recipe-cudagraphs': (12, 30)}), ('reduce-overhead', 256)),
    # the CUDA-graph runs failed (no timing row): the compiled layers, if they gain 10%
    (dict(crop=(40, 1), recipe=(42, 1), compiled=(30, 20), **{'recipe-compiled': (33, 20)},
          cudagraphs=None, **{'recipe-cudagraphs': (12, 30)}), ('default', 256)),
    # a gain under 10% (warm-up included) keeps eager
    (dict(crop=(40, 1), recipe=(42, 1), compiled=(38, 5), **{'recipe-compiled': (40, 5)}),
     ('eager', 256)),
    # no eager timing: nothing to compare with
    (dict(compiled=(10, 1), **{'recipe-compiled': (10, 1)}), ('eager', 256)),
    # launch-bound: 1024 images a step cost 48 ms against 42 at 256, so the recipe's 2950
    # steps at 1024 beat its 11750 at 256, compiled or not (where the batch is allowed)
    (dict(crop=(40, 1), recipe=(42, 1), compiled=(30, 20), **{'recipe-compiled': (33, 20)},
          **{'recipe-batch1024': (48, 1)}), ('eager', 1024)),
    # ... and not allowed: the fastest at 256
    (dict(crop=(40, 1), recipe=(42, 1), compiled=(30, 20), **{'recipe-compiled': (33, 20)},
          **{'recipe-batch1024': (48, 1)}, allow=False), ('default', 256)),
    # but not when the batch-1024 step costs 4x: then the batch gains nothing
    (dict(crop=(40, 1), recipe=(42, 1), **{'recipe-batch1024': (168, 1)}), ('eager', 256)),
    # nor when CUDA graphs make the batch-256 steps cheaper still
    (dict(crop=(40, 1), recipe=(42, 1), cudagraphs=(5, 30), **{'recipe-cudagraphs': (6, 30)},
          **{'recipe-batch1024': (48, 1)}), ('reduce-overhead', 256)),
])
def test_step_choice_picks_the_fastest_choice_that_ran(tmp_path, timings, want):
    timings = dict(timings)
    allow = timings.pop('allow', True)  # --allow-recipe-batch-1024
    for name, timing in timings.items():
        if timing is None:
            (tmp_path / f'step_{name}.log').write_text('Traceback: CUDA graph capture failed\n')
        else:
            _step_log(tmp_path / f'step_{name}.log', *timing)
    est = step_choice.estimates(str(tmp_path), dict(mae=1584, recipe=11750, recipe1024=2950))
    if timings.get('crop'):
        assert est['eager', 256] == pytest.approx(2 + (1584 * 40 + 11750 * 42) / 1000)
        if timings.get('recipe-batch1024'):
            ms = timings['recipe-batch1024'][0]
            assert est['eager', 1024] == pytest.approx(2 + (1584 * 40 + 2950 * ms) / 1000)
    assert step_choice.choose(est, 0.1, (256, 1024) if allow else (256, )) == want
    if want[1] == 256:  # the batch of 1024 is never chosen unless allowed
        assert step_choice.choose(est, 0.1) == want
    env = {**os.environ, 'PYTHONPATH': REPO}
    proc = subprocess.run([sys.executable, 'tools/analysis/step_choice.py', str(tmp_path)]
                          + (['--allow-recipe-batch-1024'] if allow else []),
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-2:] == [f'compile choice: {want[0]}',
                                                     f'recipe batch choice: {want[1]}']

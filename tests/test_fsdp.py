"""FSDP (MIMFSDPStrategy under mmengine's FlexibleRunner) on the CPU: torch's FSDP runs on
CPU tensors over gloo, so the real code path is tested with 2 processes.

End to end (tools/dist_train.sh, tests/configs/fsdp_tiny_mae.py: a 2-block 32-d ViT on
32x32 RGB, patch 4, SGD with momentum, 4 iterations, a checkpoint every 2):

- the FSDP run's weights equal those of a 2-process DDP run of the same config without
  ``strategy`` (same seeds, hence the same per-rank masks, flips and data split); SGD's
  update is linear in the gradient, so the only difference left is the order in which
  all-reduce and reduce-scatter add the two ranks' gradients (float rounding);
- its checkpoint holds the unwrapped model's keys and shapes (full state dict), loads
  strictly into the model and, as ``backbone.*``, into mmpretrain's VisionTransformer;
- ``--resume`` from its iteration-2 checkpoint ends at exactly the same iteration-4 weights
  and optimizer state (random masks and flips included: the RNG states travel too).

In-process (2 spawned gloo workers): the wrap policy makes one FSDP unit per transformer
block; activation checkpointing (``with_cp``) composes with FSDP (same gradients); bf16
mixed precision trains close to fp32. Refusals: GAN-MAE, several optimizers, autocast
optim wrappers, a non-distributed launch.
"""
import os
import os.path as osp
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from conftest import load_tool, tiny_cfg
from mmmim.registry import MODELS
from mmmim.utils import load_checkpoint_safely

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
FSDP_CONFIG = osp.join(REPO, 'tests', 'configs', 'fsdp_tiny_mae.py')
DDP_CONFIG = osp.join(REPO, 'tests', 'configs', 'sgd_tiny_mae.py')

cpu_only = pytest.mark.skipif(torch.cuda.is_available(), reason='tests the CPU (gloo) path')


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _dist_train(config, work, *extra, ok=True):
    env = {**os.environ, 'PYTHON': sys.executable, 'PORT': str(_free_port()),
           'PYTHONPATH': os.pathsep.join([REPO, osp.join(REPO, 'tests')])}
    proc = subprocess.run(['bash', 'tools/dist_train.sh', config, '2', '--work-dir', work,
                           *extra], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900)
    assert (proc.returncode == 0) == ok, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """A 2-process DDP run, a 2-process FSDP run of the same config, and an FSDP run
    resumed from the latter's iteration-2 checkpoint."""
    tmp = tmp_path_factory.mktemp('fsdp')
    images = tmp / 'images'
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(16):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(images / f'{i}.png')
    common = ['--cfg-options', f'train_dataloader.dataset.data_root={images}',
              'train_cfg.max_epochs=1', 'train_dataloader.batch_size=2']
    out = dict(ddp=str(tmp / 'ddp'), fsdp=str(tmp / 'fsdp'), resumed=str(tmp / 'resumed'),
               images=str(images), tmp=str(tmp))
    _dist_train(DDP_CONFIG, out['ddp'], *common)
    out['fsdp_log'] = _dist_train(FSDP_CONFIG, out['fsdp'], *common)
    out['resumed_log'] = _dist_train(FSDP_CONFIG, out['resumed'], '--resume',
                                     osp.join(out['fsdp'], 'iter_2.pth'), *common)
    return out


def _ckpt(work, it=4):
    return load_checkpoint_safely(osp.join(work, f'iter_{it}.pth'))


@cpu_only
def test_fsdp_run_matches_ddp(runs):
    assert 'no CUDA: using the gloo backend (rank 0 of 2)' in runs['fsdp_log']
    ddp, fsdp = _ckpt(runs['ddp'])['state_dict'], _ckpt(runs['fsdp'])['state_dict']
    start = _ckpt(runs['fsdp'], 2)['state_dict']
    assert ddp.keys() == fsdp.keys()
    moved = max((fsdp[k].float() - start[k].float()).abs().max().item() for k in fsdp)
    assert moved > 1e-2  # the last two steps changed the weights (not the frozen ones) ...
    assert torch.equal(fsdp['backbone.pos_embed'], start['backbone.pos_embed'])
    for key in ddp:
        # ... and the two runs agree to float rounding: gradients summed in another order
        # differ by ~1e-7 relative; four SGD steps (lr <= 0.05, momentum 0.9) keep the
        # weight difference around 1e-7 (3e-8 measured). A wrong reduction (a sum instead
        # of a mean, one rank's gradient only) moves weights by ~1e-2.
        torch.testing.assert_close(fsdp[key], ddp[key], rtol=1e-5, atol=1e-6, msg=key)


@cpu_only
def test_fsdp_checkpoint_is_the_plain_models_state_dict(runs):
    ckpt = _ckpt(runs['fsdp'])
    cfg = Config.fromfile(FSDP_CONFIG)
    model = MODELS.build(cfg.model)
    expected = model.state_dict()
    state = ckpt['state_dict']
    assert list(state) == list(expected)
    assert all(state[k].shape == expected[k].shape and state[k].dtype == expected[k].dtype
               for k in state)
    model.load_state_dict(state, strict=True)

    from mmpretrain.models import VisionTransformer
    arch = dict(cfg.model.backbone.arch)
    vit = VisionTransformer(arch=arch, img_size=32, patch_size=4, in_channels=3,
                            final_norm=True)
    backbone = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    vit.load_state_dict(backbone, strict=True)
    torch.testing.assert_close(vit.layers[1].ffn.layers[1].weight,
                               state['backbone.layers.1.ffn.layers.1.weight'])
    # the optimizer state is a full one, keyed by parameter name
    assert set(ckpt['optimizer']['state']) <= set(expected)
    assert len(ckpt['rng_states']) == 2


@cpu_only
def test_fsdp_resume_continues_exactly(runs):
    assert 'resumed epoch: 0, iter: 2' in runs['resumed_log']
    a, b = _ckpt(runs['fsdp']), _ckpt(runs['resumed'])
    for key, value in a['state_dict'].items():
        assert torch.equal(value, b['state_dict'][key]), key
    for name, state in a['optimizer']['state'].items():
        assert torch.equal(state['momentum_buffer'],
                           b['optimizer']['state'][name]['momentum_buffer']), name


@cpu_only
def test_fsdp_load_from_stays_strict(runs):
    # the DDP run's checkpoint into an FSDP run of a model with a narrower decoder: refused
    # with the fix, as without FSDP (tools/train.py makes load_from strict)
    log = _dist_train(FSDP_CONFIG, osp.join(runs['tmp'], 'strict'), '--cfg-options',
                      f'load_from={osp.join(runs["ddp"], "iter_4.pth")}',
                      f'train_dataloader.dataset.data_root={runs["images"]}',
                      'model.neck.decoder_embed_dims=16', ok=False)
    assert 'CheckpointMismatchError' in log and 'does not fit the model' in log
    assert 'size mismatch for' in log and 'neck.decoder_embed.weight' in log


# ------------------------------------------------------------------ in-process workers
def _worker(rank, port, out):
    import torch.distributed as dist
    from mmengine.registry import DefaultScope
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    import mmmim.models  # noqa: F401
    from mmmim.engine.strategies import MIMFSDPStrategy
    DefaultScope.get_instance(f'fsdp-test-{rank}', scope_name='mmmim')
    os.environ.update(RANK=str(rank), WORLD_SIZE='2', LOCAL_RANK=str(rank))
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=2)
    work = osp.join(osp.dirname(out), f'work{rank}')
    imgs = torch.randn(4, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    results = {}

    def plain_grads():
        torch.manual_seed(0)
        model = MODELS.build(tiny_cfg())
        model.init_weights()
        torch.manual_seed(5)
        sum(v for k, v in model.loss(imgs).items() if k.startswith('loss')).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    for name, cp, mp in [('fsdp', False, None), ('fsdp_cp', True, None),
                         ('fsdp_bf16', False, dict(param_dtype='bfloat16',
                                                   reduce_dtype='float32',
                                                   buffer_dtype='float32'))]:
        torch.manual_seed(0)
        model = MODELS.build(tiny_cfg(backbone=dict(with_cp=cp), neck=dict(with_cp=cp)))
        model.init_weights()
        strategy = MIMFSDPStrategy(
            work_dir=work, model_wrapper=dict(mixed_precision=mp) if mp else None,
            env_kwargs=dict(launcher='pytorch', randomness=dict(seed=0)))
        fsdp = strategy._wrap_model(model)
        results[f'{name}_units'] = sorted(
            type(m.module).__name__ for m in FSDP.fsdp_modules(fsdp) if m is not fsdp)
        torch.manual_seed(5)  # the same mask on both ranks and in the plain model
        # each rank the full batch: FSDP averages the two equal gradients
        losses = fsdp(imgs, mode='loss')
        sum(v for k, v in losses.items() if k.startswith('loss')).backward()
        with FSDP.summon_full_params(fsdp, with_grads=True):
            results[name] = {n.replace('_fsdp_wrapped_module.', ''): p.grad.clone()
                             for n, p in fsdp.named_parameters() if p.grad is not None}
        if name == 'fsdp':  # clipping by norm: the norm over all shards
            from mmengine.logging import MessageHub
            wrapper = strategy.build_optim_wrapper(
                dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1),
                     clip_grad=dict(max_norm=1e-3)), fsdp)
            wrapper._clip_grad()
            results['reported_norm'] = MessageHub.get_current_instance().get_scalar(
                'train/grad_norm').current()
            with FSDP.summon_full_params(fsdp, with_grads=True):
                results['clipped_norm'] = torch.cat(
                    [p.grad.flatten() for p in fsdp.parameters() if p.grad is not None]).norm()
    if rank == 0:
        results['plain'] = plain_grads()
        torch.save(results, out)
    dist.barrier()
    dist.destroy_process_group()


@pytest.fixture(scope='module')
def grads(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('fsdp_grads') / 'grads.pt')
    torch.multiprocessing.spawn(_worker, args=(_free_port(), out), nprocs=2)
    return torch.load(out)


@cpu_only
def test_one_fsdp_unit_per_transformer_block(grads):
    # tiny model: 2 encoder blocks + 1 decoder block; everything else in the root unit
    assert grads['fsdp_units'] == ['TransformerLayer'] * 3


@cpu_only
@pytest.mark.parametrize('name', ['fsdp', 'fsdp_cp'])
def test_fsdp_gradients_equal_the_plain_model(grads, name):
    plain, sharded = grads['plain'], dict(grads[name])
    # FSDP's gathered gradient covers the frozen position embeddings too, with zeros
    for frozen in ('backbone.pos_embed', 'neck.decoder_pos_embed'):
        assert frozen not in plain and not sharded.pop(frozen).any()
    assert sharded.keys() == plain.keys()
    for key in plain:
        torch.testing.assert_close(sharded[key], plain[key], rtol=1e-5, atol=1e-7, msg=key)


@cpu_only
def test_fsdp_clips_by_the_norm_over_all_shards(grads):
    total = torch.cat([g.flatten() for g in grads['plain'].values()]).norm().item()
    assert total > 1e-2
    assert grads['reported_norm'] == pytest.approx(total, rel=1e-5)
    assert grads['clipped_norm'].item() == pytest.approx(1e-3, rel=1e-4)


@cpu_only
def test_fsdp_bf16_mixed_precision_is_close_to_fp32(grads):
    plain, bf16 = grads['plain'], grads['fsdp_bf16']
    flat = torch.cat([plain[k].flatten() for k in plain])
    low = torch.cat([bf16[k].float().flatten() for k in plain])
    assert all(bf16[k].dtype == torch.float32 for k in bf16)  # fp32 reduction and shards
    cos = torch.nn.functional.cosine_similarity(flat, low, dim=0).item()
    assert 0.99 < cos < 1 - 1e-7  # close to fp32, but really computed in bf16


# ------------------------------------------------------------------ refusals
def _fsdp_args(tmp_path, base, *extra, launcher='pytorch'):
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(f"_base_ = ['{base}']\ncustom_imports = dict(imports=['mmmim', "
                   f"'mmmim.engine.strategies'], allow_failed_imports=False)\n"
                   f"strategy = dict(type='MIMFSDPStrategy')\n" + ''.join(extra))
    train = load_tool('tools/train.py')
    return train, train.parse_args([str(cfg), '--launcher', launcher,
                                    '--work-dir', str(tmp_path / 'w')])


def test_gan_mae_is_refused_at_start(tmp_path):
    train, args = _fsdp_args(tmp_path, osp.join(REPO, 'configs/gan_mae/vit-b_800e.py'))
    with pytest.raises(SystemExit) as err:
        train.build_config(args)
    msg = str(err.value)
    assert 'GANMAE cannot be trained with FSDP' in msg
    assert 'two optimizer steps' in msg and 'GANMAEDistributedDataParallel' in msg


def test_strategy_refuses_a_model_with_its_own_train_step():
    from mmmim.engine.strategies import FSDPConfigError, check_fsdp_model
    gan = MODELS.build(tiny_cfg(type='GANMAE'))
    with pytest.raises(FSDPConfigError, match='GANMAE cannot be trained with FSDP'):
        check_fsdp_model(gan)
    check_fsdp_model(MODELS.build(tiny_cfg()))  # MAE: accepted
    check_fsdp_model(MODELS.get('EMAE'))  # a class is checked too


def test_autocast_wrapper_and_launch_without_processes_are_refused(tmp_path):
    train, args = _fsdp_args(tmp_path, DDP_CONFIG,
                             "optim_wrapper = dict(type='MixedPrecisionOptimWrapper')\n")
    with pytest.raises(SystemExit, match="strategy.model_wrapper.mixed_precision"):
        train.build_config(args)
    train, args = _fsdp_args(tmp_path, DDP_CONFIG, launcher='none')
    with pytest.raises(SystemExit, match='tools/dist_train.sh CONFIG NPROC'):
        train.build_config(args)


def test_amp_sets_fsdp_mixed_precision(tmp_path):
    from mmmim.utils.precision import cpu_bf16_decision
    train, args = _fsdp_args(tmp_path, DDP_CONFIG)
    args.amp = True
    cfg = train.build_config(args)
    assert cfg.runner_type == 'FlexibleRunner'
    assert cfg.optim_wrapper.type == 'OptimWrapper'  # no autocast wrapper under FSDP
    mp = (cfg.strategy.get('model_wrapper') or {}).get('mixed_precision')
    if torch.cuda.is_available() or cpu_bf16_decision().fast:
        assert mp == dict(param_dtype='bfloat16', reduce_dtype='float32', buffer_dtype='float32')
    else:  # a CPU without native bf16 stays in fp32, as --amp does without FSDP
        assert mp is None
    # without a strategy --amp is unchanged
    plain = train.build_config(train.parse_args([DDP_CONFIG, '--amp']))
    assert plain.optim_wrapper.type == 'mmmim.MixedPrecisionOptimWrapper'
    assert 'runner_type' not in plain


# ------------------------------------------------------------------ memory plan
def test_memory_plan_counts_match_the_built_model():
    plan = load_tool('tools/analysis/memory_plan.py')
    cfg = Config.fromfile(osp.join(REPO, 'configs/mae/vit-g_1600e_fsdp.py'))
    counts = plan.count_parameters(plan.build_model(cfg.model))
    # ViT-g/14 encoder: patch embed + cls + pos (frozen) + 40 blocks + final norm
    d, f, L, n = 1408, 6144, 40, 256
    block = 4 * d * d + 3 * d + d + 2 * d * f + f + d + 4 * d
    encoder = 3 * 14 * 14 * d + d + d + (1 + n) * d + L * block + 2 * d
    model = plan.build_model(cfg.model)
    assert sum(p.numel() for p in model.backbone.parameters()) == encoder
    assert counts['total'] == sum(p.numel() for p in model.parameters())
    assert counts['blocks'] == 48 and counts['block_sizes'][0] == block
    assert counts['total'] - counts['trainable'] == (1 + n) * d + (1 + n) * 512  # pos embeds
    state = plan.sharded_state_bytes(counts, 8)
    assert state['total'] == pytest.approx((4 * counts['total'] + 12 * counts['trainable']) / 8)
    ddp = plan.sharded_state_bytes(counts, 8, shard=False)
    assert ddp['total'] == pytest.approx(8 * state['total'])


def test_memory_plan_activation_estimate_scales_with_depth_and_batch():
    plan = load_tool('tools/analysis/memory_plan.py')
    cfg = Config.fromfile(osp.join(REPO, 'tests/configs/fsdp_tiny_mae.py'))
    small = plan.activation_estimate(cfg.model, 4, torch.float32)
    big = plan.activation_estimate(cfg.model, 8, torch.float32)
    assert big['total'] == pytest.approx(2 * small['total'])
    # per image one encoder block keeps at least the LayerNorm inputs and outputs (4 x d),
    # q, k, v (3 x d), the attention output (d) and the FFN hidden layer per token, in fp32;
    # tokens: 16 visible (64 patches, ratio 0.75) + cls
    tokens, d, hidden = 1 + 16, 32, 64
    lower = 4 * tokens * (8 * d + hidden) * 4  # batch 4, 4 bytes
    assert small['per_block'] > lower
    assert small['total_with_cp'] < small['total']

"""GAN-MAE: discriminator labels and losses, what each step updates in every scheme,
gamma, the exported backbone per mode, the two-stage hook, build-time errors, and
end-to-end runs (resume of both optimizers/schedulers/loss scalers, --amp, 2 processes)."""
import copy
import os
import os.path as osp
import socket
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MMLogger
from mmengine.optim import OptimWrapper, OptimWrapperDict
from PIL import Image

from mmmim.engine.hooks import GANSchemeHook
from mmmim.models.algorithms.gan_mae import (GANMAE, GANMAEDistributedDataParallel,
                                             GANMAEOptimWrapperConstructor)
from mmmim.models.heads import PatchDiscriminatorHead, patchify
from mmmim.registry import MODELS
from mmmim.utils import load_checkpoint_safely
from conftest import build_tiny

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def gan(**kw):
    return build_tiny(type='GANMAE', **kw)


def wrappers(model, lr=0.1, disc_lr=None):
    return GANMAEOptimWrapperConstructor(dict(
        generator=dict(optimizer=dict(type='SGD', lr=lr)),
        discriminator=dict(optimizer=dict(type='SGD', lr=lr if disc_lr is None else disc_lr))))(
            model)


def batch(b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    # as default_collate gives it: a uint8 batch (B, C, H, W)
    return dict(inputs=torch.randint(0, 256, (b, 1, 32, 32), generator=g, dtype=torch.uint8),
                data_samples=None)


def images(b=4, seed=0):
    return torch.randn(b, 1, 32, 32, generator=torch.Generator().manual_seed(seed))


def params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def changed(before, model):
    return {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}


def record_steps(model, ows):
    """Record, per optimizer step, the role, the parameters with a non-zero gradient at
    step time and the parameters the step changed."""
    steps = []
    for role, wrapper in ows.items():
        def step(*args, _orig=wrapper.step, _role=role, **kwargs):
            graded = {n for n, p in model.named_parameters()
                      if p.grad is not None and p.grad.abs().sum() > 0}
            before = params(model)
            _orig(*args, **kwargs)
            steps.append((_role, graded, changed(before, model)))
        wrapper.step = step
    return steps


def prefixed(names, *prefixes):
    return {n for n in names if n.startswith(prefixes)}


# ------------------------------------------------------------------ discriminator head
def test_discriminator_labels_losses_and_accuracy():
    head = PatchDiscriminatorHead(in_channels=8)
    mask = torch.tensor([[0., 1., 1., 0.]])
    assert torch.equal(head.labels(mask), torch.tensor([[1., 0., 0., 1.]]))
    logits = torch.tensor([[3., -2., 1., -1.]])
    out = head.loss(logits, mask)
    sp = F.softplus
    # real patches: -log sigmoid(x) = softplus(-x); generated: -log(1 - sigmoid(x)) = softplus(x)
    expected = (sp(torch.tensor(-3.)) + sp(torch.tensor(-2.)) + sp(torch.tensor(1.))
                + sp(torch.tensor(1.))) / 4
    assert out['loss_disc'].item() == pytest.approx(expected.item(), rel=1e-6)
    assert out['acc_real'].item() == 0.5 and out['acc_fake'].item() == 0.5
    nonsat = head.adversarial_loss(logits, mask, 'non-saturating')
    assert nonsat.item() == pytest.approx(((sp(torch.tensor(2.)) + sp(torch.tensor(-1.))) / 2).item())
    assert head.adversarial_loss(logits, mask, 'minimax').item() == pytest.approx(
        -out['loss_disc'].item())


def test_plan_labels_and_corrupted_image():
    model = gan()
    img = images()
    torch.manual_seed(0)
    plan, _, pred = model.reconstruct(img)
    labels = model.disc_head.labels(plan.mask)
    # the patches the encoder saw are real (1), all others generated (0)
    assert torch.equal(labels.gather(1, plan.ids_keep), torch.ones(4, 16))
    assert labels.sum().item() == 4 * 16
    x_bar = model.corrupt(img, plan, pred)
    bar, real = patchify(x_bar, 4), patchify(img, 4)
    gen = model.head.to_pixels(pred, img)
    vis = plan.mask.bool().logical_not()
    assert torch.equal(bar[vis], real[vis])
    assert torch.allclose(bar[~vis], gen[~vis])
    # de-normalised: generated patches live in the input's space, not norm_pix's
    assert not torch.allclose(bar[~vis], pred[~vis])


# ------------------------------------------------------------------ steps
@pytest.mark.parametrize('mode', ['shared', 'generator', 'discriminator'])
def test_adversarial_steps_update_only_their_role(mode):
    # shared: the two-step update (one AdamW step per role on the shared ViT)
    model = gan(backbone_mode=mode, **(dict(shared_update='two-step') if mode == 'shared'
                                       else {}))
    ows = wrappers(model)
    steps = record_steps(model, ows)
    logs = model.train_step(batch(), ows)
    assert set(logs) >= {'loss_rec', 'loss_adv', 'loss_disc', 'gamma', 'acc_real', 'acc_fake'}
    (g_role, g_grad, g_changed), (d_role, d_grad, d_changed) = steps
    assert (g_role, d_role) == ('generator', 'discriminator')
    enc, dvit = model.encoder_name + '.', model.disc_vit_name + '.'
    # generator step: decoder and encoder move; the discriminator head has no gradient
    assert prefixed(g_changed, 'neck.') and prefixed(g_changed, enc)
    assert not prefixed(g_grad | g_changed, 'disc_head.')
    # discriminator step: head and discriminator ViT move; no generator-only parameter does
    assert prefixed(d_changed, 'disc_head.') and prefixed(d_changed, dvit)
    generator_only = ('neck.', ) if mode == 'shared' else ('neck.', enc)
    assert not prefixed(d_grad | d_changed, *generator_only)
    if mode != 'shared':  # a separate discriminator ViT gets nothing from the generator step
        assert not prefixed(g_grad | g_changed, dvit)
    else:  # the shared ViT is updated by both steps
        assert prefixed(g_changed, 'backbone.') and prefixed(d_changed, 'backbone.')


@pytest.mark.parametrize('mode', ['generator', 'discriminator'])
def test_separate_discriminator_step_equals_a_fresh_pass(mode):
    """The discriminator step reuses the generator step's pass over x_bar (separate
    modes): its update equals SGD on L_disc of a fresh discriminator pass."""
    model = gan(backbone_mode=mode)
    ref = copy.deepcopy(model)
    ows = wrappers(model, lr=0.1, disc_lr=0.5)
    before, data = params(model), batch()
    torch.manual_seed(5)
    model.train_step(data, ows)
    torch.manual_seed(5)
    img = ref.data_preprocessor(data, True)['inputs']
    plan, _, _, x_in, _, _ = ref.generator_losses(img)
    ref.disc_head.loss(ref.discriminate(x_in.detach()), plan.mask)['loss_disc'].backward()
    after = dict(model.named_parameters())
    names = [n for n, p in ref.named_parameters()
             if n.startswith(('disc_head.', ref.disc_vit_name + '.')) and p.grad is not None]
    assert prefixed(names, 'disc_head.') and prefixed(names, ref.disc_vit_name + '.')
    for name in names:
        grad = dict(ref.named_parameters())[name].grad
        assert torch.allclose(after[name], before[name] - 0.5 * grad, atol=1e-6), name


def _objective(model, img, seed=1):
    """GANMAE's surrogate objective and gamma."""
    torch.manual_seed(seed)
    _, l_mae, x_bar, x_in, _, l_adv = model.generator_losses(img)
    return model.generator_objective(l_mae, l_adv, x_bar, x_in)[:2]


def _gen_losses(model, img, seed=1):
    """L_mae and L_adv as one plain graph (the direct computation)."""
    torch.manual_seed(seed)
    plan, _, pred = model.reconstruct(img)
    l_mae = model.head.loss(pred, img, plan)['loss_rec']
    l_adv = model.disc_head.adversarial_loss(
        model.discriminate(model.corrupt(img, plan, pred)), plan.mask, model.adv_loss)
    return l_mae, l_adv


@pytest.mark.parametrize('adv_loss', ['non-saturating', 'minimax'])
def test_adaptive_gamma_and_generator_gradient_match_direct_computation(adv_loss):
    model = gan(backbone_mode='generator', adv_loss=adv_loss, gamma_scale=1., gamma_max=1e4)
    img = images()
    gen_params = [p for p in list(model.backbone.parameters()) + list(model.neck.parameters())
                  if p.requires_grad]
    disc_params = [p for p in list(model.discriminator_backbone.parameters())
                   + list(model.disc_head.parameters()) if p.requires_grad]
    surrogate, gamma = _objective(model, img)
    g_sur = torch.autograd.grad(surrogate, gen_params + disc_params, allow_unused=True)

    l_mae, l_adv = _gen_losses(model, img)
    weight = model.neck.decoder_pred.weight
    gw_mae = torch.autograd.grad(l_mae, weight, retain_graph=True)[0]
    gw_adv = torch.autograd.grad(l_adv, weight, retain_graph=True)[0]
    direct = gw_mae.norm() / (gw_adv.norm() + 1e-4)
    assert 0 < gamma.item() < 1e4
    assert gamma.item() == pytest.approx(direct.item(), rel=1e-4)
    g_direct = torch.autograd.grad(l_mae + direct * l_adv, gen_params)
    for a, b in zip(g_sur, g_direct):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-7)
    # the discriminator is frozen in the generator step
    assert all(g is None for g in g_sur[len(gen_params):])


def test_gamma_clamp_and_fixed():
    img = images()
    model = gan(gamma_max=1e-3)
    assert _objective(model, img)[1].item() == pytest.approx(1e-3)
    model = gan(gamma=0.25)
    surrogate, gamma = _objective(model, img)
    assert gamma.item() == 0.25
    w = model.neck.decoder_pred.weight
    got = torch.autograd.grad(surrogate, w)[0]
    l_mae, l_adv = _gen_losses(model, img)
    assert torch.allclose(got, torch.autograd.grad(l_mae + 0.25 * l_adv, w)[0], atol=1e-7)


def test_adv_updates_disc_backbone_option():
    model = gan(adv_updates_disc_backbone=True, gamma=1.0)
    img = images()
    surrogate, _ = _objective(model, img)
    qkv = model.backbone.layers[1].attn.qkv.weight
    got = torch.autograd.grad(surrogate, qkv)[0]
    l_mae, l_adv = _gen_losses(model, img)
    assert torch.allclose(got, torch.autograd.grad(l_mae + l_adv, qkv)[0], rtol=1e-4, atol=1e-7)


def test_combined_disc_loss_never_reaches_the_decoder_and_shared_vit_steps_once():
    img = images()
    model = gan(scheme='combined')
    torch.manual_seed(2)
    plan, _, pred = model.reconstruct(img)
    x_bar = model.corrupt(img, plan, pred.detach())
    l_disc = model.disc_head.loss(model.discriminate(x_bar), plan.mask)['loss_disc']
    decoder = [p for p in model.neck.parameters() if p.requires_grad]
    grads = torch.autograd.grad(l_disc, decoder, allow_unused=True)
    assert all(g is None or not g.any() for g in grads)

    # through train_step: the decoder ends the same with lambda_disc 0 or 10
    ends = {}
    for lam in (0., 10.):
        model = gan(scheme='combined', lambda_disc=lam)
        ows = wrappers(model)
        before = params(model)
        torch.manual_seed(3)
        model.train_step(batch(), ows)
        ends[lam] = (params(model), changed(before, model))
    for name, value in ends[0.][0].items():
        if name.startswith('neck.'):
            assert torch.equal(value, ends[10.][0][name]), name
    assert not prefixed(ends[0.][1], 'disc_head.') and prefixed(ends[10.][1], 'disc_head.')

    # the shared ViT is stepped once (by the generator wrapper), with the summed gradient
    model = gan(scheme='combined', lambda_disc=1.)
    ref = copy.deepcopy(model)
    ows = wrappers(model, lr=0.1, disc_lr=0.5)
    before = params(model)
    torch.manual_seed(4)
    data = batch()
    model.train_step(data, ows)
    torch.manual_seed(4)
    img = ref.data_preprocessor(data, True)['inputs']
    plan, _, pred = ref.reconstruct(img)
    l_mae = ref.head.loss(pred, img, plan)['loss_rec']
    x_bar = ref.corrupt(img, plan, pred.detach())
    (l_mae + ref.disc_head.loss(ref.discriminate(x_bar), plan.mask)['loss_disc']).backward()
    assert_sgd_update(model, ref, before, disc_head_lr=0.5, lr=0.1)


def assert_sgd_update(model, ref, before, disc_head_lr, lr):
    """Every parameter of ``model`` moved by one SGD step on ``ref``'s gradients."""
    after = dict(model.named_parameters())
    for name, p in ref.named_parameters():
        if p.grad is None:
            continue
        step = disc_head_lr if name.startswith('disc_head.') else lr
        assert torch.allclose(after[name], before[name] - step * p.grad, atol=1e-6), name


# ------------------------------------------------------------------ backbone modes
def _perturb(module):
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1)


@pytest.mark.parametrize('mode', ['shared', 'generator', 'discriminator'])
def test_exported_backbone_is_the_named_one(mode):
    model = gan(backbone_mode=mode)
    model.eval()
    img = images()
    exported = {k[len('backbone.'):]: v for k, v in model.state_dict().items()
                if k.startswith('backbone.')}
    vit = MODELS.build(dict(model_cfg_backbone()))
    vit.load_state_dict(exported, strict=True)
    assert torch.equal(vit(img)[0], model.backbone(img)[0])
    expected = {'shared': model.encoder, 'generator': model.encoder,
                'discriminator': model.disc_vit}[mode]
    assert model.backbone is expected
    if mode == 'shared':
        assert model.encoder is model.disc_vit
        assert not any(k.startswith(('generator_backbone', 'discriminator_backbone'))
                       for k in model.state_dict())
        return
    assert model.encoder is not model.disc_vit
    # behaviour: the generator uses `encoder`, the discriminator `disc_vit`
    torch.manual_seed(0)
    rec = model.reconstruct(img)[2]
    logits = model.discriminate(img)
    _perturb(model.backbone)
    torch.manual_seed(0)
    rec_after, logits_after = model.reconstruct(img)[2], model.discriminate(img)
    gen_moved, disc_moved = not torch.equal(rec, rec_after), not torch.equal(logits, logits_after)
    assert (gen_moved, disc_moved) == ((True, False) if mode == 'generator' else (False, True))


def model_cfg_backbone():
    from conftest import TINY_MODEL
    return TINY_MODEL['backbone']


# ------------------------------------------------------------------ two-stage hook
def _runner(model, ows, epoch):
    return SimpleNamespace(model=model, optim_wrapper=ows, epoch=epoch,
                           logger=MMLogger.get_current_instance())


def test_two_stage_switch_follows_the_epoch_and_survives_resume():
    model = gan(scheme='two-stage')
    ows = wrappers(model)
    with pytest.raises(RuntimeError, match='GANSchemeHook'):
        model.train_step(batch(), ows)
    hook = GANSchemeHook(switch_epoch=2)
    runner = _runner(model, ows, 0)
    hook.before_run(runner)
    hook.before_train(runner)
    assert model.active_scheme == 'mae'
    steps = record_steps(model, ows)
    logs = model.train_step(batch(), ows)
    assert [s[0] for s in steps] == ['generator'] and 'loss_disc' not in logs
    assert not prefixed(steps[0][2], 'disc_head.')
    runner.epoch = 2
    hook.before_train_epoch(runner)
    assert model.active_scheme == 'adversarial'
    # a resumed run (fresh model, epoch restored) starts in the second stage
    fresh = gan(scheme='two-stage', two_stage_scheme='combined')
    hook.before_train(_runner(fresh, wrappers(fresh), 3))
    assert fresh.active_scheme == 'combined'
    fresh.set_discriminator_active(False)
    hook.before_train(_runner(fresh, wrappers(fresh), 1))
    assert fresh.active_scheme == 'mae'


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize('kw,match', [
    (dict(scheme='alternating'), "scheme='alternating' is unknown.*adversarial"),
    (dict(backbone_mode='both'), "backbone_mode='both' is unknown"),
    (dict(two_stage_scheme='two-stage'), 'two_stage_scheme'),
    (dict(adv_loss='hinge'), "adv_loss='hinge'"),
    (dict(gamma='auto'), "gamma='auto'"),
    (dict(discriminator_backbone=dict(type='MaskedViT')), "remove it for 'shared'"),
    (dict(backbone_mode='generator', adv_updates_disc_backbone=True), "needs backbone_mode='shared'"),
    (dict(backbone_mode='generator', discriminator_backbone=dict(
        type='MaskedViT', arch='tiny', img_size=32, patch_size=8, in_channels=1)),
     'must see the generator'),
])
def test_bad_config_is_named(kw, match):
    with pytest.raises(ValueError, match=match):
        gan(**kw)


def test_optim_wrapper_roles_are_checked_early():
    model = gan()
    with pytest.raises(KeyError, match=r"role\(s\) \['discriminator'\].*constructor="):
        GANMAEOptimWrapperConstructor(dict(generator=dict(optimizer=dict(type='SGD', lr=1.))))(
            model)
    with pytest.raises(KeyError, match=r"unknown role\(s\) \['critic'\]"):
        GANMAEOptimWrapperConstructor(dict(generator={}, critic={}))
    single = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1.))
    with pytest.raises(TypeError, match='(?s)one optim wrapper per role.*discriminator=dict'):
        model.train_step(batch(), single)
    ows = wrappers(model)
    partial = OptimWrapperDict(generator=ows['generator'])
    with pytest.raises(KeyError, match=r"\['discriminator'\]"):
        GANSchemeHook().before_run(_runner(model, partial, 0))
    with pytest.raises(ValueError, match='needs switch_epoch'):
        GANSchemeHook().before_run(_runner(gan(scheme='two-stage'), ows, 0))
    with pytest.raises(ValueError, match="only to scheme='two-stage'"):
        GANSchemeHook(switch_epoch=3).before_run(_runner(model, ows, 0))


# ------------------------------------------------------------------ distributed
def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _dist_worker(rank, port, scheme, out):
    import torch.distributed as dist
    import mmmim.models  # noqa: F401
    from mmengine.registry import DefaultScope
    DefaultScope.get_instance(f'gan-dist-{rank}', scope_name='mmmim')
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=2)
    torch.manual_seed(rank)  # different initialisation per rank: the wrapper broadcasts
    from conftest import tiny_cfg
    model = MODELS.build(tiny_cfg(type='GANMAE', scheme=scheme))
    model.init_weights()
    ddp = GANMAEDistributedDataParallel(module=model)
    ows = wrappers(model)
    for i in range(2):
        ddp.train_step(batch(seed=10 * rank + i), ows)  # different data per rank
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(2)]
    dist.all_gather(gathered, flat)
    torch.save(torch.stack(gathered), out) if rank == 0 else None
    dist.destroy_process_group()


@pytest.mark.parametrize('scheme', ['adversarial', 'combined'])
def test_two_processes_stay_in_sync(tmp_path, scheme):
    sys.path.insert(0, osp.dirname(__file__))
    out = str(tmp_path / 'params.pt')
    torch.multiprocessing.spawn(_dist_worker, args=(_free_port(), scheme, out), nprocs=2)
    both = torch.load(out)
    assert torch.equal(both[0], both[1])


# ------------------------------------------------------------------ end to end
TINY_CONFIG = """
model = dict(
    type='GANMAE', scheme='{scheme}',
    data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3,
                           to_rgb=True),
    backbone=dict(type='MaskedViT', img_size=32, patch_size=4,
                  arch=dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)),
    neck=dict(type='MAEDecoder', decoder_embed_dims=24, decoder_depth=1, decoder_num_heads=2),
    head=dict(type='ReconstructionHead', norm_pix=True))
train_dataloader = dict(
    batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='mmpretrain.CustomDataset', data_root='{data}', data_prefix='',
                 with_label=False, pipeline=[dict(type='mmpretrain.LoadImageFromFile'),
                                             dict(type='mmpretrain.PackInputs')]))
_opt = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3))
optim_wrapper = dict(constructor='GANMAEOptimWrapperConstructor', generator=_opt,
                     discriminator=_opt)
param_scheduler = dict(
    generator=[dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=8)],
    discriminator=[dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=8)])
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=2)
model_wrapper_cfg = dict(type='GANMAEDistributedDataParallel')
custom_hooks = [dict(type='GANSchemeHook', switch_epoch={switch})]
default_hooks = dict(
    timer=dict(type='IterTimerHook'), logger=dict(type='LoggerHook', interval=1),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1),
    sampler_seed=dict(type='DistSamplerSeedHook'))
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
randomness = dict(seed=0)
default_scope = 'mmmim'
"""


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp('gan_e2e')
    rng = np.random.default_rng(0)
    os.makedirs(root / 'data')
    for i in range(8):  # 2 iterations per epoch at batch 4
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
            root / 'data' / f'{i}.png')

    def write(scheme='adversarial', switch=None):
        path = root / f'gan_{scheme}.py'
        path.write_text(TINY_CONFIG.format(scheme=scheme, data=root / 'data', switch=switch))
        return str(path)
    return root, write


def _run(cmd, **env):
    env = {**os.environ, 'PYTHONPATH': REPO, **env}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


def test_resume_restores_both_optimizers_schedulers_and_scalers_with_amp(tiny_run):
    root, write = tiny_run
    cfg, work = write('two-stage', switch=1), str(root / 'work_resume')
    fp16 = ['optim_wrapper.generator.dtype=float16', 'optim_wrapper.discriminator.dtype=float16',
            'optim_wrapper.generator.loss_scale=256.0',
            'optim_wrapper.discriminator.loss_scale=64.0']
    rc, log = _run([sys.executable, 'tools/train.py', cfg, '--work-dir', work, '--amp',
                    '--cfg-options', 'train_cfg.max_epochs=1'] + fp16)
    assert rc == 0, log[-3000:]
    first = load_checkpoint_safely(osp.join(work, 'epoch_1.pth'))
    # epoch 0 is MAE only: the discriminator optimizer has not stepped yet
    assert first['optimizer']['generator']['loss_scaler']['_growth_tracker'] == 2
    assert first['optimizer']['discriminator']['loss_scaler']['_growth_tracker'] == 0
    assert 'loss_disc' not in log

    rc, log = _run([sys.executable, 'tools/train.py', cfg, '--work-dir', work, '--amp',
                    '--resume', '--cfg-options', 'train_cfg.max_epochs=2'] + fp16)
    assert rc == 0, log[-3000:]
    assert 'resumed epoch: 1, iter: 2' in log
    assert 'discriminator on (adversarial)' in log and 'loss_disc' in log and 'gamma' in log
    ckpt = load_checkpoint_safely(osp.join(work, 'epoch_2.pth'))
    gen, disc = ckpt['optimizer']['generator'], ckpt['optimizer']['discriminator']
    assert 'MixedPrecisionOptimWrapper' in open(osp.join(work, 'gan_two-stage.py')).read()
    # scalers continue from the checkpoint (a fresh scaler would start at 0 / 256 / 64)
    assert gen['loss_scaler']['_growth_tracker'] == 4
    assert disc['loss_scaler']['_growth_tracker'] == 2
    assert gen['loss_scaler']['scale'] == 256.0 and disc['loss_scaler']['scale'] == 64.0
    # each optimizer's state continues: AdamW step counts 4 and 2
    assert {int(s['step']) for s in gen['state'].values()} == {4}
    assert {int(s['step']) for s in disc['state'].values()} == {2}
    # each role's scheduler continues: 4 scheduler steps, lr factors 0.1 -> 1 and 0.5 -> 1
    sched = ckpt['param_schedulers']
    assert sched['generator'][0]['last_step'] == 4 == sched['discriminator'][0]['last_step']
    # (mmengine's LinearLR reaches the end factor after end - begin - 1 = 7 steps)
    assert gen['param_groups'][0]['lr'] == pytest.approx(1e-3 * (0.1 + 0.9 * 4 / 7))
    assert disc['param_groups'][0]['lr'] == pytest.approx(1e-3 * (0.5 + 0.5 * 4 / 7))


def test_dist_train_two_cpu_processes(tiny_run):
    root, write = tiny_run
    work = str(root / 'work_dist')
    rc, log = _run(['bash', 'tools/dist_train.sh', write('combined'), '2', '--work-dir', work,
                    '--cfg-options', 'train_cfg.max_epochs=1'],
                   PYTHON=sys.executable, PORT=str(_free_port()))
    assert rc == 0, log[-3000:]
    assert 'rank 0 of 2' in log and 'loss_disc' in log
    assert load_checkpoint_safely(osp.join(work, 'epoch_1.pth'))['meta']['iter'] == 1


@pytest.mark.parametrize('dtype,tol', [(torch.float32, 1e-4), (torch.bfloat16, 5e-2)])
def test_compiled_layers_take_the_adversarial_step_as_eager_ones(dtype, tol):
    """The generator objective takes several gradients through one graph
    (retain_graph=True). With compiled layers (compile_blocks, as the benchmark's
    --compile-blocks sets) a run first takes warm-up steps, whose backward passes compile
    the layers' backward without retaining the graph; the adversarial steps after them
    must still run (under bf16 autocast they stopped with a donated-buffer error), and
    compute what the eager steps do."""
    eager = gan(adv_warmup_iters=1)
    compiled = gan(adv_warmup_iters=1, backbone=dict(compile_blocks=True),
                   neck=dict(compile_blocks=True))
    assert compiled.backbone.compiled and compiled.neck.compiled
    compiled.load_state_dict(eager.state_dict())
    logs = []
    for model in (eager, compiled):
        ows = wrappers(model, lr=1e-3)  # small steps: bf16's rounding is not amplified
        torch.manual_seed(3)  # the same masks
        for it in range(3):  # the warm-up step, then adversarial ones
            model.set_train_progress(it, 10)
            with torch.autocast('cpu', dtype=torch.bfloat16, enabled=dtype != torch.float32):
                log = model.train_step(batch(seed=it), ows)
        assert model.adversarial_on()
        logs.append(log)
    for key in ('loss_rec', 'loss_adv', 'loss_disc', 'gamma'):
        assert torch.allclose(logs[1][key], logs[0][key], rtol=tol, atol=tol / 100), key
    assert logs[0]['gamma'] > 0  # the adversarial term had weight
    after = dict(eager.named_parameters())
    for name, param in compiled.named_parameters():
        assert torch.allclose(param, after[name], rtol=tol, atol=tol / 100), name

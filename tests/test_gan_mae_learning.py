"""GAN-MAE's learning options: the adversarial warm-up, the gamma scale and cap, the
class-balanced L_disc, the flat-patch rule, the one-step shared update, the
discriminator's logged figures (AUC, balanced accuracy, prior entropy) and the
warning when gamma sits at a limit."""
import copy
import itertools
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from mmmim.engine.hooks import GANSchemeHook
from mmmim.models.heads import PatchDiscriminatorHead
from mmmim.models.heads.discriminator import roc_auc
from test_gan_mae import (assert_sgd_update, batch, changed, gan, images, params, prefixed,
                          record_steps, wrappers)


# ------------------------------------------------------------------ head
def test_roc_auc_matches_pair_counting():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 6, (40, ), generator=g).float()  # many ties
    labels = torch.rand(40, generator=g) < 0.3
    pos, neg = scores[labels], scores[~labels]
    pairs = [(1. if p > n else 0.5 if p == n else 0.) for p, n in itertools.product(pos, neg)]
    assert roc_auc(scores, labels).item() == pytest.approx(sum(pairs) / len(pairs), abs=1e-6)
    assert roc_auc(scores, torch.ones(40, dtype=torch.bool)).item() == 0.5


def test_balanced_loss_weighs_both_classes_equally_on_an_imbalanced_batch():
    head = PatchDiscriminatorHead(in_channels=8, class_balanced=True)
    mask = torch.tensor([[0., 1., 1., 1.]])  # 1 real, 3 generated
    logits = torch.tensor([[0.5, -1., 2., 0.3]], requires_grad=True)
    out = head.loss(logits, mask)
    bce = F.binary_cross_entropy_with_logits(logits, head.labels(mask), reduction='none')[0]
    assert out['loss_disc'].item() == pytest.approx(0.5 * bce[0].item()
                                                    + 0.5 * bce[1:].mean().item(), rel=1e-6)
    w = head.patch_weights(mask)
    assert w[0, 0].item() == pytest.approx(w[0, 1:].sum().item()) == pytest.approx(0.5)
    # the prior's loss is ln 2 whatever the imbalance; predicting the prior reaches it
    assert out['disc_prior_entropy'].item() == pytest.approx(math.log(2))
    assert head.loss(torch.zeros(1, 4), mask)['loss_disc'].item() == pytest.approx(math.log(2))
    # the plain loss is the mean, and its prior entropy is H(1/4)
    plain = PatchDiscriminatorHead(in_channels=8, class_balanced=False).loss(logits, mask)
    assert plain['loss_disc'].item() == pytest.approx(bce.mean().item(), rel=1e-6)
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert plain['disc_prior_entropy'].item() == pytest.approx(h, rel=1e-5)
    # balanced accuracy is the mean of the two per-class accuracies
    assert out['disc_bacc'].item() == pytest.approx(
        (out['acc_real'].item() + out['acc_fake'].item()) / 2)


def test_flat_patches_are_left_out_of_l_disc_and_l_adv():
    model = gan(flat_patch_std=0.05, flat_patch_weight=0.)
    img = images()
    img[:, :, :8, :] = 0.3  # the top two patch rows are flat
    weight = model.patch_weights(img)
    grid = weight.view(4, 8, 8)
    assert torch.equal(grid[:, :2], torch.zeros(4, 2, 8)) and bool((grid[:, 2:] == 1).all())
    mask = (torch.rand(4, 64, generator=torch.Generator().manual_seed(1)) < 0.75).float()
    logits = torch.randn(4, 64, requires_grad=True)
    l_disc = model.disc_head.loss(logits, mask, weight)['loss_disc']
    l_adv = model.disc_head.adversarial_loss(logits, mask, 'non-saturating', weight)
    for loss in (l_disc, l_adv):
        grad = torch.autograd.grad(loss, logits)[0].view(4, 8, 8)
        assert not grad[:, :2].any() and grad[:, 2:].abs().sum() > 0
    # a reduced weight keeps them at that fraction
    half = gan(flat_patch_std=0.05, flat_patch_weight=0.5).patch_weights(img).view(4, 8, 8)
    assert bool((half[:, :2] == 0.5).all())
    # through train_step the logs say how many were left out
    logs = model.train_step(batch(), wrappers(model))
    assert 0 <= logs['flat_patches'].item() <= 1


# ------------------------------------------------------------------ gamma
def test_gamma_scale_and_cap():
    img = images()
    base = gan()
    torch.manual_seed(1)
    _, l_mae, x_bar, x_in, _, l_adv = base.generator_losses(img)
    _, gamma1, stats = base.generator_objective(l_mae, l_adv, x_bar, x_in)
    ratio = stats['grad_norm_mae'] / (stats['grad_norm_adv'] + base.gamma_eps)
    assert gamma1.item() == pytest.approx(min(base.gamma_scale * ratio.item(), base.gamma_max),
                                          rel=1e-5)
    for scale, cap in ((0.1, 1e4), (1e6, 0.5)):
        model = gan(gamma_scale=scale, gamma_max=cap)
        torch.manual_seed(1)
        _, l_mae, x_bar, x_in, _, l_adv = model.generator_losses(img)
        _, gamma, stats = model.generator_objective(l_mae, l_adv, x_bar, x_in)
        assert gamma.item() <= cap
        assert gamma.item() == pytest.approx(min(scale * ratio.item(), cap), rel=1e-5)
        assert stats['gamma_at_cap'].item() == float(scale * ratio.item() >= cap)


# ------------------------------------------------------------------ warm-up
@pytest.mark.parametrize('update', ['one-step', 'two-step'])
def test_warmup_gives_l_adv_zero_weight_while_the_discriminator_trains(update):
    model = gan(adv_warmup_iters=3, shared_update=update)
    ref = copy.deepcopy(model)
    with pytest.raises(RuntimeError, match='GANSchemeHook'):
        model.train_step(batch(), wrappers(model))
    model.set_train_progress(2, 10)  # iteration 2 of a 3-iteration warm-up
    ows = wrappers(model, lr=0.1)
    steps = record_steps(model, ows)
    before, data = params(model), batch()
    torch.manual_seed(7)
    logs = model.train_step(data, ows)
    assert logs['gamma'].item() == 0 and 'loss_adv' in logs
    assert prefixed(changed(before, model), 'disc_head.')  # the discriminator trains
    assert 'disc_head.' in {n[:10] for s in steps for n in s[1]}
    # the decoder's update is SGD on L_mae alone
    torch.manual_seed(7)
    img = ref.data_preprocessor(data, True)['inputs']
    plan, _, pred = ref.reconstruct(img)
    ref.head.loss(pred, img, plan)['loss_rec'].backward()
    after = dict(model.named_parameters())
    for name, p in ref.named_parameters():
        if name.startswith('neck.') and p.grad is not None:
            assert torch.allclose(after[name], before[name] - 0.1 * p.grad, atol=1e-6), name
    # from iteration 3 on, L_adv has weight
    model.set_train_progress(3, 10)
    assert model.train_step(batch(), ows)['gamma'].item() > 0


def test_warmup_in_epochs_counts_from_the_discriminator_start():
    model = gan(adv_warmup_epochs=0.5)
    model.set_train_progress(4, 10)
    assert not model.adversarial_on()
    model.set_train_progress(5, 10)
    assert model.adversarial_on()
    # two-stage: counted from the switch (iteration 20 here)
    model.set_train_progress(24, 10, disc_start_iter=20)
    assert not model.adversarial_on()
    model.set_train_progress(25, 10, disc_start_iter=20)
    assert model.adversarial_on()


def test_hook_gives_progress_and_warns_once_when_gamma_sits_at_a_limit():
    model = gan(adv_warmup_epochs=1.)
    warnings = []
    logger = SimpleNamespace(warning=warnings.append, info=lambda *a: None)
    runner = SimpleNamespace(model=model, iter=7, epoch=0, train_dataloader=[0] * 5,
                             hooks=[], logger=logger, optim_wrapper=None)
    hook = GANSchemeHook(warn_interval=3)
    hook.before_train_iter(runner, 0)
    assert model.train_progress == (7, 5, 0) and model.adversarial_on()
    for flag in (1., 1., 0., 1., 1., 1., 1., 1., 1.):
        hook.after_train_iter(runner, 0, outputs=dict(gamma_at_eps=torch.tensor(flag),
                                                      gamma_at_cap=torch.tensor(0.),
                                                      gamma=torch.tensor(9.)))
    assert len(warnings) == 1 and 'gamma_eps' in warnings[0]


# ------------------------------------------------------------------ one-step shared update
def test_one_step_shared_update_steps_each_shared_parameter_once_on_the_role_sum():
    model = gan(shared_update='one-step', gamma=0.5, lambda_disc=2.)
    ref = copy.deepcopy(model)
    ows = wrappers(model, lr=0.1, disc_lr=0.5)
    steps = record_steps(model, ows)
    before, data = params(model), batch()
    torch.manual_seed(4)
    logs = model.train_step(data, ows)
    assert {'disc_auc', 'disc_bacc', 'disc_prior_entropy', 'grad_norm_mae',
            'grad_norm_adv'} <= set(logs)
    # each parameter is changed by exactly one optimizer step
    touched = [name for _, _, ch in steps for name in ch]
    assert len(touched) == len(set(touched)) and prefixed(touched, 'backbone.')
    assert [s[0] for s in steps] == ['generator', 'discriminator']
    assert not prefixed(steps[1][2], 'backbone.')  # the discriminator wrapper: head only
    # the update is SGD on L_mae + gamma L_adv (generator path) + lambda L_disc
    torch.manual_seed(4)
    img = ref.data_preprocessor(data, True)['inputs']
    plan, l_mae, x_bar, x_in, logits, l_adv = ref.generator_losses(img)
    surrogate, gamma, _ = ref.generator_objective(l_mae, l_adv, x_bar, x_in,
                                                  keep_disc_graph=True)
    l_disc = ref.disc_head.loss(logits, plan.mask)['loss_disc']
    (surrogate + 2. * l_disc).backward()
    assert_sgd_update(model, ref, before, disc_head_lr=0.5, lr=0.1)


@pytest.mark.parametrize('kw,match', [
    (dict(shared_update='both'), "shared_update='both'"),
    (dict(adv_warmup_epochs=1, adv_warmup_iters=5), 'not both'),
    (dict(flat_patch_weight=2.), 'flat_patch_weight'),
    (dict(gamma_max=-1.), 'gamma_max'),
])
def test_bad_learning_options_are_named(kw, match):
    with pytest.raises(ValueError, match=match):
        gan(**kw)


# ------------------------------------------------------------------ configs
def test_every_gan_mae_config_warms_up_for_its_lr_warmup_and_bounds_gamma():
    import glob
    import os.path as osp

    from mmengine.config import Config
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    paths = sorted(glob.glob(osp.join(root, 'configs', 'gan_mae', '*.py'))
                   + glob.glob(osp.join(root, 'configs', 'fashion_mnist', 'gan-mae_*.py')))
    assert len(paths) >= 12
    for path in paths:
        cfg = Config.fromfile(path)
        m = cfg.model
        warmup = cfg.param_scheduler['generator'][0]
        assert warmup['type'] == 'LinearLR', path
        expected = warmup['end'] if m.get('scheme') != 'two-stage' else m.adv_warmup_epochs
        assert m.adv_warmup_epochs == expected and m.adv_warmup_epochs > 0, path
        assert m.gamma_max <= 1.0 and m.gamma_scale == 0.1, path
        assert m.flat_patch_std > 0 and m.discriminator_head.class_balanced, path

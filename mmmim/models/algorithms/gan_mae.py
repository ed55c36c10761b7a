"""GAN-MAE: an MAE generator and a per-patch discriminator with one optimizer per role.

Parameter ownership (what each optim wrapper steps) and which step updates what:

==================  =================================  ==================================
backbone_mode       ``generator`` wrapper owns          ``discriminator`` wrapper owns
==================  =================================  ==================================
``shared``          ``backbone`` (the one ViT), neck   ``backbone`` (the same ViT),
                                                        ``disc_head``
``generator``       ``backbone`` (encoder), neck       ``discriminator_backbone``,
                                                        ``disc_head``
``discriminator``   ``generator_backbone``, neck       ``backbone`` (the discriminator),
                                                        ``disc_head``
==================  =================================  ==================================

``backbone.*`` is always the ViT exported for fine-tuning, so downstream configs load
the checkpoint with prefix ``'backbone.'`` whatever the mode.

Scheme ``adversarial`` (one iteration; Algorithm 1 of the paper):

1. generator: ``L_mae + gamma * L_adv``. ``L_adv``'s gradient goes *through* the
   discriminator to the generated pixels, but no discriminator weight receives it: the
   head is frozen, and so is the discriminator's use of the ViT (in ``shared`` mode the
   ViT gets the generator's gradient through its encoder pass only).
   ``adv_updates_disc_backbone=True`` lets the adversarial gradient through the
   discriminator pass update the shared ViT as well.
2. discriminator: ``L_disc`` over the corrupted image built from step 1's generations,
   detached.

How the two are applied (``shared_update``, ``shared`` mode):

- ``'one-step'`` (default): both losses are back-propagated from one discriminator pass
  and the shared ViT takes **one** AdamW step on the sum of the two roles' gradients
  (``L_mae + gamma * L_adv + lambda_disc * L_disc``); the decoder is stepped by the
  ``generator`` wrapper and the discriminator head by the ``discriminator`` wrapper.
  This reads Algorithm 1's "loss backward for updating theta_mae" / "... theta_disc" on
  weights the two roles share as two backward passes into one parameter set: each
  parameter has one set of Adam moments, weight decay is applied once, and
  ``lambda_disc`` sets the weight of ``L_disc`` against ``L_mae`` on the shared weights.
  It also needs one discriminator pass instead of two.
- ``'two-step'``: a generator step (``generator`` wrapper), then a fresh discriminator
  pass and step (``discriminator`` wrapper): the shared ViT is stepped twice per
  iteration, by two AdamW states, and weight decay is applied twice; the relative weight
  of the two losses on it is then set by Adam's normalisation, not by a config key.

With separate backbones the two are the same: each wrapper owns its parameters, and
the discriminator step reuses the generator step's pass over ``x_bar`` (a separate
discriminator is unchanged by step 1).

Learning aids, each a config key (defaults measured in docs/gan_mae.md):
``adv_warmup_epochs``/``adv_warmup_iters`` (``L_adv`` weight 0 while the discriminator
learns; counted from the iteration the discriminator comes on), ``gamma_scale`` and
``gamma_max`` (the adaptive weight is ``gamma_scale`` x the gradient-norm ratio, capped),
a class-balanced ``L_disc`` (``PatchDiscriminatorHead(class_balanced=True)``) and
``flat_patch_std``/``flat_patch_weight`` (patches whose real content is flat, which
de-normalisation with the real patch's statistics makes identical to their generated
version, are left out of ``L_disc`` and ``L_adv`` or weighted down).

Scheme ``combined``: one forward and one backward of ``L_mae + lambda_disc * L_disc``
(generations detached, so ``L_disc`` reaches only discriminator parameters); each
wrapper then steps its parameters once, and a parameter both wrappers own (the shared
ViT) is stepped once, by the ``generator`` wrapper. It is the adversarial scheme's
one-step update with ``L_adv`` off.

Scheme ``two-stage``: plain MAE steps (``generator`` wrapper only) until
:class:`GANSchemeHook` switches the discriminator on at ``switch_epoch``; from then on
``two_stage_scheme`` (default ``adversarial``).
"""
import copy
from typing import Dict, Optional, Union

import torch
import torch.distributed as dist
from mmengine.model import MMDistributedDataParallel, is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper, OptimWrapperDict
from mmengine.registry import MODEL_WRAPPERS
from torch import Tensor, nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from mmmim.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS
from ..heads.reconstruction import patchify, unpatchify
from .mae import MAE, _fill

SCHEMES = ('adversarial', 'combined', 'two-stage')
BACKBONE_MODES = ('shared', 'generator', 'discriminator')
ADV_LOSSES = ('non-saturating', 'minimax')
ROLES = ('generator', 'discriminator')
SHARED_UPDATES = ('one-step', 'two-step')
# defaults measured on Fashion-MNIST (docs/gan_mae.md)
GAMMA_SCALE = 0.1
GAMMA_MAX = 1.0
FLAT_PATCH_STD = 0.02

OPTIM_WRAPPER_SHAPE = """optim_wrapper = dict(
    constructor='GANMAEOptimWrapperConstructor',
    generator=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1.5e-4)),
    discriminator=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1.5e-4)))
param_scheduler = dict(generator=[...], discriminator=[...])  # or one list for both"""


def _choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f'GANMAE: {name}={value!r} is unknown; choose one of {list(allowed)}')


def _wrapper_params(wrapper: OptimWrapper):
    return [p for group in wrapper.optimizer.param_groups for p in group['params']]


def _loss_scale(wrapper: OptimWrapper) -> float:
    """The wrapper's current fp16 loss scale (1.0 without loss scaling)."""
    scaler = getattr(wrapper, 'loss_scaler', None)
    if scaler is not None and scaler.is_enabled():
        return float(scaler.get_scale())
    return 1.0


def _all_reduce_grads(params) -> None:
    """Average gradients over processes (GANMAE's steps run outside DDP's forward)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return
    unique = {id(p): p for p in params if p.grad is not None}
    grads = [p.grad for p in unique.values()]
    if not grads:
        return
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat.div_(dist.get_world_size())
    for grad, synced in zip(grads, _unflatten_dense_tensors(flat, grads)):
        grad.copy_(synced)


@MODELS.register_module()
class GANMAE(MAE):
    """GAN-MAE: an MAE generator, a ViT discriminator over the corrupted image
    ``x_bar`` (visible real patches + generated patches, de-normalised to pixel space
    when the reconstruction head uses norm_pix), and its own :meth:`train_step` over an
    :class:`~mmengine.optim.OptimWrapperDict` with the roles ``generator`` and
    ``discriminator`` (see the module docstring for who owns and updates what).

    Config keys (beyond :class:`MAE`'s ``backbone``, ``neck``, ``head``, ``masker``,
    ``data_preprocessor``, ``init_cfg``):
        scheme (str): ``'adversarial'`` (default), ``'combined'`` or ``'two-stage'``
            (needs ``custom_hooks=[dict(type='GANSchemeHook', switch_epoch=E1)]``).
        two_stage_scheme (str): what ``two-stage`` runs after the switch,
            ``'adversarial'`` (default) or ``'combined'``.
        backbone_mode (str): ``'shared'`` (default: the discriminator is the
            generator's encoder), ``'generator'`` or ``'discriminator'`` (two ViTs; the
            one named is ``backbone`` and is exported for fine-tuning).
        discriminator_backbone (dict, optional): the discriminator's MaskedViT config in
            the separate modes (default: a copy of ``backbone``); its patch grid must
            match the generator's.
        discriminator_head (dict): default ``dict(type='PatchDiscriminatorHead')``;
            ``in_channels`` is filled from the discriminator ViT.
        gamma (str | float): ``'adaptive'`` (default):
            ``stopgrad(||grad_W L_mae|| / (||grad_W L_adv|| + gamma_eps))`` with W the
            decoder's last prediction layer weight, clamped to ``[0, gamma_max]``; or a
            number for a fixed weight.
        gamma_scale (float): multiplies the adaptive ratio (VQGAN's ``disc_weight``);
            default 0.1: the adversarial gradient at ``W`` is at most a tenth of the
            reconstruction gradient.
        gamma_max (float): cap on the adaptive gamma (1.0). gamma_eps (float): 1e-4.
        adv_loss (str): ``'non-saturating'`` (default, ``-mean log D`` over generated
            patches) or ``'minimax'`` (``-L_disc``).
        lambda_disc (float): weight of ``L_disc`` where one update serves both roles
            (``combined``, and ``adversarial`` with ``shared_update='one-step'``); 1.0.
        adv_updates_disc_backbone (bool): ``shared`` mode only; False (default) keeps
            the adversarial gradient through the discriminator pass off the ViT weights.
        adv_warmup_epochs (float) / adv_warmup_iters (int): adversarial warm-up, 0 by
            default (the configs set it): ``L_adv`` has weight 0 while the discriminator
            trains. Needs :class:`GANSchemeHook` (every GAN-MAE config has it), which
            gives the model the iteration.
        flat_patch_std (float): patches whose real pixels' std (preprocessed space) is
            at most this are flat (0.02); 0 disables the rule. flat_patch_weight (float):
            their weight in ``L_disc`` and ``L_adv`` (0: left out).
        shared_update (str): ``'one-step'`` (default) or ``'two-step'``; see the module
            docstring.

    Logged every iteration once the discriminator is on: ``loss_rec``, ``loss_adv``
    (adversarial scheme), ``loss_disc`` with ``disc_prior_entropy`` (the loss of a
    discriminator that knows only the class prior: the number to beat), ``disc_auc``,
    ``disc_bacc`` (balanced accuracy), ``acc_real``, ``acc_fake``, ``gamma``,
    ``grad_norm_mae`` / ``grad_norm_adv`` (``||grad_W L||`` at the decoder's last layer),
    ``gamma_at_eps`` / ``gamma_at_cap`` (1 when the eps or the cap sets gamma) and
    ``flat_patches`` (the share of patches the flat rule weighted down).

    Distributed training: use ``model_wrapper_cfg=dict(type='GANMAEDistributedDataParallel')``
    (the GAN-MAE configs set it); this model averages its gradients over processes itself.
    """

    def __init__(self, backbone: dict, neck: dict, head: dict, scheme: str = 'adversarial',
                 two_stage_scheme: str = 'adversarial', backbone_mode: str = 'shared',
                 discriminator_backbone: Optional[dict] = None,
                 discriminator_head: dict = dict(type='PatchDiscriminatorHead'),
                 gamma: Union[str, float] = 'adaptive', gamma_scale: float = GAMMA_SCALE,
                 gamma_max: float = GAMMA_MAX, gamma_eps: float = 1e-4,
                 adv_loss: str = 'non-saturating', lambda_disc: float = 1.0,
                 adv_updates_disc_backbone: bool = False,
                 adv_warmup_epochs: float = 0., adv_warmup_iters: int = 0,
                 flat_patch_std: float = FLAT_PATCH_STD, flat_patch_weight: float = 0.,
                 shared_update: str = 'one-step', **kwargs):
        _choice('scheme', scheme, SCHEMES)
        _choice('two_stage_scheme', two_stage_scheme, ('adversarial', 'combined'))
        _choice('backbone_mode', backbone_mode, BACKBONE_MODES)
        _choice('adv_loss', adv_loss, ADV_LOSSES)
        _choice('shared_update', shared_update, SHARED_UPDATES)
        if isinstance(gamma, str):
            _choice('gamma', gamma, ('adaptive', ))
        elif not gamma >= 0:
            raise ValueError(f"GANMAE: gamma={gamma!r}; use 'adaptive' or a number >= 0")
        for name, value in (('gamma_scale', gamma_scale), ('gamma_max', gamma_max),
                            ('gamma_eps', gamma_eps), ('lambda_disc', lambda_disc),
                            ('adv_warmup_epochs', adv_warmup_epochs),
                            ('adv_warmup_iters', adv_warmup_iters),
                            ('flat_patch_std', flat_patch_std)):
            if not value >= 0:
                raise ValueError(f'GANMAE: {name}={value!r} must be a number >= 0')
        if not 0 <= flat_patch_weight <= 1:
            raise ValueError(f'GANMAE: flat_patch_weight={flat_patch_weight!r} must be in '
                             f'[0, 1] (0 leaves flat patches out, 1 keeps them at full weight)')
        if adv_warmup_epochs and adv_warmup_iters:
            raise ValueError('GANMAE: give the adversarial warm-up as adv_warmup_epochs or as '
                             'adv_warmup_iters, not both')
        if backbone_mode == 'shared' and discriminator_backbone is not None:
            raise ValueError("GANMAE: discriminator_backbone is only used with backbone_mode="
                             "'generator' or 'discriminator'; remove it for 'shared'")
        if adv_updates_disc_backbone and backbone_mode != 'shared':
            raise ValueError('GANMAE: adv_updates_disc_backbone=True needs backbone_mode='
                             "'shared' (a separate discriminator is never updated by the "
                             'generator step)')
        encoder = MODELS.build(backbone) if isinstance(backbone, dict) else backbone
        super().__init__(backbone=encoder, neck=neck, head=head, **kwargs)
        self.scheme, self.two_stage_scheme = scheme, two_stage_scheme
        self.backbone_mode, self.adv_loss = backbone_mode, adv_loss
        self.gamma, self.gamma_max, self.gamma_eps = gamma, gamma_max, gamma_eps
        self.gamma_scale = gamma_scale
        self.lambda_disc = lambda_disc
        self.adv_updates_disc_backbone = adv_updates_disc_backbone
        self.adv_warmup_epochs, self.adv_warmup_iters = adv_warmup_epochs, adv_warmup_iters
        self.flat_patch_std, self.flat_patch_weight = flat_patch_std, flat_patch_weight
        self.shared_update = shared_update
        # (iteration, iterations per epoch, first iteration with the discriminator on),
        # given by GANSchemeHook before every iteration; needed by the warm-up
        self.train_progress: Optional[tuple] = None
        # two-stage: set by GANSchemeHook from the epoch; None until the hook has run
        self.discriminator_active: Optional[bool] = None if scheme == 'two-stage' else True
        if backbone_mode != 'shared':
            disc_cfg = discriminator_backbone if discriminator_backbone is not None else backbone
            disc = (MODELS.build(copy.deepcopy(disc_cfg)) if isinstance(disc_cfg, dict)
                    else copy.deepcopy(disc_cfg))
            if (tuple(disc.patch_resolution) != tuple(encoder.patch_resolution)
                    or disc.patch_size != encoder.patch_size
                    or disc.in_channels != encoder.in_channels):
                raise ValueError(
                    f'GANMAE: the discriminator backbone (patch grid {disc.patch_resolution}, '
                    f'patch {disc.patch_size}, {disc.in_channels} channels) must see the '
                    f"generator's patches (grid {encoder.patch_resolution}, patch "
                    f'{encoder.patch_size}, {encoder.in_channels} channels); make img_size, '
                    f'patch_size and in_channels agree')
            if backbone_mode == 'generator':
                self.discriminator_backbone = disc
            else:
                self.generator_backbone = encoder
                self.backbone = disc
        self.disc_head = MODELS.build(_fill(discriminator_head, 'discriminator_head',
                                            in_channels=self.disc_vit.embed_dims))
        if any(getattr(m, 'compiled', False) for m in self.children()):
            # compile_blocks: the generator objective takes several gradients through one
            # graph (retain_graph=True), which AOTAutograd's donated buffers (on by default
            # for compiled graphs: saved tensors freed during the first backward) refuse.
            # Turned off for this process; it saves memory only, the step is the same.
            torch._functorch.config.donated_buffer = False

    # ------------------------------------------------------------------ roles
    @property
    def encoder_name(self) -> str:
        return 'generator_backbone' if self.backbone_mode == 'discriminator' else 'backbone'

    @property
    def disc_vit_name(self) -> str:
        return 'discriminator_backbone' if self.backbone_mode == 'generator' else 'backbone'

    @property
    def encoder(self) -> nn.Module:
        """The generator's encoder."""
        return getattr(self, self.encoder_name)

    @property
    def disc_vit(self) -> nn.Module:
        """The discriminator's ViT."""
        return getattr(self, self.disc_vit_name)

    def role_modules(self, role: str) -> Dict[str, nn.Module]:
        """The sub-modules (by attribute name) whose parameters the ``role``'s optim
        wrapper owns."""
        _choice('optimizer role', role, ROLES)
        if role == 'generator':
            return {self.encoder_name: self.encoder, 'neck': self.neck}
        return {self.disc_vit_name: self.disc_vit, 'disc_head': self.disc_head}

    @property
    def active_scheme(self) -> str:
        """``'mae'``, ``'adversarial'`` or ``'combined'``: what :meth:`train_step` runs now."""
        if self.scheme != 'two-stage':
            return self.scheme
        if self.discriminator_active is None:
            raise RuntimeError(
                "GANMAE(scheme='two-stage') switches the discriminator on at an epoch, which "
                "needs the hook: add custom_hooks=[dict(type='GANSchemeHook', "
                'switch_epoch=E1)] to the config (E1 = epochs of MAE-only training)')
        return self.two_stage_scheme if self.discriminator_active else 'mae'

    def set_discriminator_active(self, active: bool) -> None:
        """Used by :class:`GANSchemeHook` for ``scheme='two-stage'``."""
        self.discriminator_active = bool(active)

    def check_optim_wrapper(self, optim_wrapper) -> Dict[str, OptimWrapper]:
        """The role -> wrapper mapping, or an error naming the missing role and the
        expected config shape."""
        if isinstance(optim_wrapper, OptimWrapperDict):
            wrappers = dict(optim_wrapper.items())
        elif isinstance(optim_wrapper, dict) and all(
                isinstance(w, OptimWrapper) for w in optim_wrapper.values()):
            wrappers = dict(optim_wrapper)
        else:
            raise TypeError(
                f'GANMAE(scheme={self.scheme!r}) needs one optim wrapper per role '
                f'{list(ROLES)}, got a single {type(optim_wrapper).__name__}. Configure:\n'
                f'{OPTIM_WRAPPER_SHAPE}')
        missing = [role for role in ROLES if role not in wrappers]
        if missing:
            raise KeyError(
                f'GANMAE(scheme={self.scheme!r}) needs the optim wrapper role(s) {missing}, '
                f'but optim_wrapper has only {sorted(wrappers)}. Configure:\n'
                f'{OPTIM_WRAPPER_SHAPE}')
        return wrappers

    # ------------------------------------------------------------- schedule
    def set_train_progress(self, iteration: int, iters_per_epoch: int,
                           disc_start_iter: int = 0) -> None:
        """Used by :class:`GANSchemeHook` before every iteration: the runner's iteration,
        the epoch length and the first iteration with the discriminator on (the
        two-stage switch; 0 otherwise). The adversarial warm-up counts from there."""
        self.train_progress = (int(iteration), int(iters_per_epoch), int(disc_start_iter))

    @property
    def warmup_iters(self) -> Optional[int]:
        """The adversarial warm-up in iterations (None when it is in epochs and the epoch
        length is not known yet)."""
        if self.adv_warmup_iters:
            return int(self.adv_warmup_iters)
        if not self.adv_warmup_epochs:
            return 0
        if self.train_progress is None:
            return None
        return int(round(self.adv_warmup_epochs * self.train_progress[1]))

    def adversarial_on(self) -> bool:
        """Whether ``L_adv`` has weight this iteration (False during the warm-up, when
        only the discriminator and ``L_mae`` train)."""
        warmup = self.warmup_iters
        if warmup == 0:
            return True
        if self.train_progress is None:
            raise RuntimeError(
                'GANMAE: the adversarial warm-up (adv_warmup_epochs/adv_warmup_iters) needs '
                "the training iteration: add custom_hooks=[dict(type='GANSchemeHook')] to "
                'the config (every GAN-MAE config has it), or call '
                'model.set_train_progress(iteration, iters_per_epoch) yourself')
        iteration, _, start = self.train_progress
        return iteration - start >= warmup

    # ---------------------------------------------------------------- forward
    def reconstruct(self, img: Tensor, plan=None):
        """Run the generator: returns ``(plan, latent, pred)`` as :meth:`MAE.reconstruct`."""
        encoder = self.encoder
        tokens = encoder.embed(img)
        if plan is None:
            plan = self.masker(tokens)
        latent = encoder.encode(tokens, plan)
        return plan, latent, self.neck(latent, plan)

    def corrupt(self, img: Tensor, plan, pred: Tensor) -> Tensor:
        """``x_bar``: the real patches the encoder saw and the generated ones elsewhere,
        as an image ``(B, C, H, W)`` in the input's (pixel) space."""
        pixels = self.head.to_pixels(pred, img)
        real = patchify(img, self.head.patch_size)
        mixed = torch.where(plan.mask[..., None].bool(), pixels.to(real.dtype), real)
        return unpatchify(mixed, self.head.patch_size, self.encoder.patch_resolution,
                          self.head.in_channels)

    def patch_weights(self, img: Tensor) -> Optional[Tensor]:
        """Per-patch weights of ``L_disc`` and ``L_adv`` ``(B, L)``, or None (all 1).

        A patch whose real pixels have a standard deviation <= ``flat_patch_std`` (in
        the data preprocessor's output space) is flat: with norm_pix its generated
        version is de-normalised with the real patch's mean and std, so it equals the
        real patch and its label cannot be learned. Such patches get
        ``flat_patch_weight`` (0: left out).
        """
        if not self.flat_patch_std:
            return None
        std = patchify(img, self.head.patch_size).float().std(dim=-1)
        weight = torch.ones_like(std)
        weight[std <= self.flat_patch_std] = self.flat_patch_weight
        return weight

    def discriminate(self, x_bar: Tensor) -> Tensor:
        """Per-patch real/generated logits ``(B, L)`` of the discriminator over all patches."""
        vit = self.disc_vit
        return self.disc_head(vit.encode(vit.embed(x_bar)))

    def generator_losses(self, img: Tensor, weight: Optional[Tensor] = None):
        """The generator step's forward: ``(plan, l_mae, x_bar, x_in, logits, l_adv)``.

        The discriminator runs on ``x_in``, ``x_bar`` cut from the generator's graph, so
        ``L_adv``'s gradient can be taken with respect to the discriminator's input (and
        weights) without reaching into the generator's graph;
        :meth:`generator_objective` carries it on through ``x_bar``.
        """
        plan, _, pred = self.reconstruct(img)
        l_mae = self.head.loss(pred, img, plan)['loss_rec']
        x_bar = self.corrupt(img, plan, pred)
        # a view, not a leaf: module-tracking tools (FlopCounterMode) reject leaves here
        x_in = x_bar.detach().requires_grad_().view_as(x_bar)
        logits = self.discriminate(x_in)
        l_adv = self.disc_head.adversarial_loss(logits, plan.mask, self.adv_loss, weight)
        return plan, l_mae, x_bar, x_in, logits, l_adv

    def generator_objective(self, l_mae: Tensor, l_adv: Tensor, x_bar: Tensor, x_in: Tensor,
                            loss_scale: float = 1.0, keep_disc_graph: bool = False):
        """``(surrogate, gamma, stats)``: ``surrogate`` has the gradient of
        ``L_mae + gamma * L_adv`` with respect to every generator parameter and none with
        respect to the discriminator's (unless ``adv_updates_disc_backbone``); ``stats``
        holds ``grad_norm_mae`` and ``grad_norm_adv`` (``||grad_W L||`` at the decoder's
        last layer ``W``) and the flags ``gamma_at_eps`` / ``gamma_at_cap``.

        ``L_adv`` is back-propagated through the discriminator once, to its input
        ``x_in`` (and to the shared ViT's weights with ``adv_updates_disc_backbone``).
        That input gradient gives ``grad_W L_adv`` by a step back through ``x_bar`` and
        the last decoder layer and, scaled by gamma, the generator's gradient.
        ``loss_scale`` (the fp16 loss scale) keeps these intermediate gradients from
        underflowing; the results do not depend on it. ``keep_disc_graph`` keeps the
        discriminator's graph for a later backward of ``L_disc`` through the same pass.

        Adaptive gamma: ``gamma_scale * ||grad_W L_mae|| / (||grad_W L_adv|| +
        gamma_eps)``, clamped to ``[0, gamma_max]``. ``gamma_at_eps`` is 1 when
        ``||grad_W L_adv|| < gamma_eps`` (the eps, not the adversarial gradient, sets
        gamma), ``gamma_at_cap`` when the clamp is active.
        """
        extra = []
        if self.adv_updates_disc_backbone:
            extra = [p for p in self.disc_vit.parameters() if p.requires_grad]
        grads = torch.autograd.grad(l_adv * loss_scale, [x_in] + extra,
                                    retain_graph=keep_disc_graph)
        g_adv = grads[0].float() / loss_scale
        weight = self.neck.decoder_pred.weight
        gw_mae = torch.autograd.grad(l_mae * loss_scale, weight, retain_graph=True)[0]
        gw_adv = torch.autograd.grad(x_bar, weight, (g_adv * loss_scale).to(x_bar.dtype),
                                     retain_graph=True)[0]
        n_mae = gw_mae.float().norm() / loss_scale
        n_adv = gw_adv.float().norm() / loss_scale
        at_cap = torch.zeros((), device=x_bar.device)
        if self.gamma == 'adaptive':
            ratio = self.gamma_scale * n_mae / (n_adv + self.gamma_eps)
            ratio = torch.nan_to_num(ratio, nan=0., posinf=self.gamma_max)
            at_cap = (ratio >= self.gamma_max).float()
            gamma = ratio.clamp(0., self.gamma_max).detach()
        else:
            gamma = torch.tensor(float(self.gamma), device=x_bar.device)
        surrogate = l_mae + gamma * (x_bar.float() * g_adv).sum()
        for param, grad in zip(extra, grads[1:]):
            surrogate = surrogate + gamma * (param * (grad.float() / loss_scale)).sum()
        stats = dict(grad_norm_mae=n_mae.detach(), grad_norm_adv=n_adv.detach(),
                     gamma_at_eps=(n_adv < self.gamma_eps).float(), gamma_at_cap=at_cap)
        return surrogate, gamma, stats

    # ------------------------------------------------------------------ steps
    def train_step(self, data, optim_wrapper) -> Dict[str, Tensor]:
        """One iteration of the active scheme; returns the logged values."""
        wrappers = self.check_optim_wrapper(optim_wrapper)
        scheme = self.active_scheme
        data = self.data_preprocessor(data, True)
        img = self._images(data['inputs'])
        gen, disc = wrappers['generator'], wrappers['discriminator']
        if scheme == 'mae':
            return self._mae_step(img, gen)
        if scheme == 'adversarial':
            return self._adversarial_step(img, gen, disc)
        return self._combined_step(img, gen, disc)

    @staticmethod
    def _update(wrapper: OptimWrapper, loss: Tensor) -> None:
        """``OptimWrapper.update_params`` with a gradient all-reduce before the step."""
        wrapper.backward(wrapper.scale_loss(loss))
        if wrapper.should_update():
            _all_reduce_grads(_wrapper_params(wrapper))
            wrapper.step()
            wrapper.zero_grad()

    @staticmethod
    def _joint_update(gen: OptimWrapper, disc: OptimWrapper, total: Tensor) -> None:
        """One backward of ``total`` (at the generator wrapper's loss scale), then each
        wrapper steps its parameters once; a parameter both own (the shared ViT) is
        stepped once, by the ``generator`` wrapper, on the sum of the role gradients."""
        gen.backward(gen.scale_loss(total))
        # an fp16 loss scaler must have scaled a loss before it can step; the
        # discriminator's gradients arrive through the generator's (rescaled below)
        scaler = getattr(disc, 'loss_scaler', None)
        if scaler is not None and scaler.is_enabled():
            scaler.scale(total.detach())
        if not gen.should_update():
            return
        gen_params, disc_params = _wrapper_params(gen), _wrapper_params(disc)
        owned_by_gen = {id(p) for p in gen_params}
        disc_only = [p for p in disc_params if id(p) not in owned_by_gen]
        rescale = _loss_scale(disc) / _loss_scale(gen)
        if rescale != 1.:  # hand the discriminator's gradients over at its own scale
            for p in disc_only:
                if p.grad is not None:
                    p.grad.mul_(rescale)
        _all_reduce_grads(gen_params + disc_only)
        gen.step()
        for p in disc_params:  # shared parameters were stepped once, by the generator
            if id(p) in owned_by_gen:
                p.grad = None
        disc.step()
        gen.zero_grad()
        disc.zero_grad()

    def _mae_step(self, img: Tensor, gen: OptimWrapper) -> Dict[str, Tensor]:
        with gen.optim_context(self):
            losses = MAE.loss(self, img)
        loss, log_vars = self.parse_losses(losses)
        self._update(gen, loss)
        return log_vars

    def _adversarial_step(self, img, gen, disc) -> Dict[str, Tensor]:
        adv_on = self.adversarial_on()
        weight = self.patch_weights(img)
        one_step = self.backbone_mode == 'shared' and self.shared_update == 'one-step'
        # The discriminator step reuses the generator step's pass over x_bar when the
        # discriminator's weights are the same in both: a separate discriminator (not
        # changed by the generator step), or a shared ViT stepped once for both roles.
        # A shared ViT stepped twice has just been updated, so the discriminator runs
        # again on the generator step's output.
        reuse = one_step or self.backbone_mode != 'shared'
        stats, l_adv = {}, None
        with gen.optim_context(self):
            if adv_on:
                plan, l_mae, x_bar, x_in, logits, l_adv = self.generator_losses(img, weight)
                surrogate, gamma, stats = self.generator_objective(
                    l_mae, l_adv, x_bar, x_in, _loss_scale(gen), keep_disc_graph=reuse)
            else:  # warm-up: L_adv has weight 0, the discriminator trains
                plan, _, pred = self.reconstruct(img)
                l_mae = surrogate = self.head.loss(pred, img, plan)['loss_rec']
                x_in = self.corrupt(img, plan, pred).detach()
                logits = self.discriminate(x_in) if reuse else None
                gamma = torch.zeros((), device=img.device)
        if one_step:
            with disc.optim_context(self):
                d_out = self.disc_head.loss(logits, plan.mask, weight)
            self._joint_update(gen, disc, surrogate + self.lambda_disc * d_out['loss_disc'])
        else:
            self._update(gen, surrogate)
            with disc.optim_context(self):
                if not reuse:
                    logits = self.discriminate(x_in.detach())
                d_out = self.disc_head.loss(logits, plan.mask, weight)
            self._update(disc, d_out['loss_disc'])
        if l_adv is None:  # warm-up: log what L_adv would be
            l_adv = self.disc_head.adversarial_loss(logits.detach(), plan.mask, self.adv_loss,
                                                    weight)
        return self._logs(plan, weight, loss_rec=l_mae, loss_adv=l_adv, gamma=gamma,
                          **stats, **d_out, loss=l_mae + gamma * l_adv + d_out['loss_disc'])

    def _combined_step(self, img, gen, disc) -> Dict[str, Tensor]:
        weight = self.patch_weights(img)
        with gen.optim_context(self):
            plan, _, pred = self.reconstruct(img)
            l_mae = self.head.loss(pred, img, plan)['loss_rec']
            x_bar = self.corrupt(img, plan, pred.detach())
            d_out = self.disc_head.loss(self.discriminate(x_bar), plan.mask, weight)
            total = l_mae + self.lambda_disc * d_out['loss_disc']
        self._joint_update(gen, disc, total)
        return self._logs(plan, weight, loss_rec=l_mae, gamma=None, **d_out, loss=total)

    def _logs(self, plan, weight=None, gamma=None, **values) -> Dict[str, Tensor]:
        logs = {k: v.detach().float() for k, v in values.items()}
        if gamma is not None:
            logs['gamma'] = gamma.detach().float()
        if weight is not None:
            logs['flat_patches'] = (weight < 1).float().mean()
        if plan.ratio is not None:
            logs['mask_ratio'] = plan.ratio.detach().float().mean()
        return logs


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class GANMAEOptimWrapperConstructor:
    """Build GAN-MAE's :class:`~mmengine.optim.OptimWrapperDict`: one optim wrapper per
    role, over the parameters :meth:`GANMAE.role_modules` gives that role (parameter
    names keep their model prefix, so ``paramwise_cfg.custom_keys`` such as
    ``'backbone.layers.0'`` or ``'bias'`` work as usual).

    Config (``optim_wrapper``)::

        optim_wrapper = dict(
            constructor='GANMAEOptimWrapperConstructor',
            generator=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1.5e-4),
                           paramwise_cfg=dict(...)),      # optional, per role
            discriminator=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1.5e-4)),
            paramwise_cfg=dict(...))   # optional default for roles without their own

    A role may name its own ``constructor`` (default ``DefaultOptimWrapperConstructor``).
    ``tools/train.py --amp`` switches every role's wrapper to mixed precision.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        self.cfgs = {k: copy.deepcopy(v) for k, v in optim_wrapper_cfg.items()}
        self.paramwise_cfg = paramwise_cfg
        unknown = sorted(set(self.cfgs) - set(ROLES))
        if unknown:
            raise KeyError(f'GANMAEOptimWrapperConstructor: unknown role(s) {unknown} in '
                           f'optim_wrapper; the roles are {list(ROLES)}. Expected shape:\n'
                           f'{OPTIM_WRAPPER_SHAPE}')

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        model = model.module if is_model_wrapper(model) else model
        if not hasattr(model, 'role_modules'):
            raise TypeError(f'GANMAEOptimWrapperConstructor builds optimizers for GANMAE, not '
                            f'{type(model).__name__}; use a single optim_wrapper with an '
                            f'optimizer for other models')
        missing = [role for role in ROLES if role not in self.cfgs]
        if missing:
            raise KeyError(f'GANMAE(scheme={model.scheme!r}) needs an optim wrapper for the '
                           f'role(s) {missing}; optim_wrapper has {sorted(self.cfgs)}. '
                           f'Expected shape:\n{OPTIM_WRAPPER_SHAPE}')
        wrappers, owned = {}, set()
        for role in ROLES:
            cfg = dict(self.cfgs[role])
            constructor = cfg.pop('constructor', 'DefaultOptimWrapperConstructor')
            paramwise = cfg.pop('paramwise_cfg', self.paramwise_cfg)
            view = nn.Module()
            for name, module in model.role_modules(role).items():
                view.add_module(name, module)
            owned.update(id(p) for p in view.parameters())
            if constructor == 'DefaultOptimWrapperConstructor':
                builder = DefaultOptimWrapperConstructor(cfg, paramwise)
            else:
                builder = OPTIM_WRAPPER_CONSTRUCTORS.build(
                    dict(type=constructor, optim_wrapper_cfg=cfg, paramwise_cfg=paramwise))
            wrappers[role] = builder(view)
        orphans = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in owned]
        if orphans:
            raise ValueError(f'GANMAEOptimWrapperConstructor: trainable parameters {orphans[:5]} '
                             f'belong to no role; freeze them or extend GANMAE.role_modules')
        return OptimWrapperDict(**wrappers)


@MODEL_WRAPPERS.register_module()
class GANMAEDistributedDataParallel(MMDistributedDataParallel):
    """Distributed wrapper for :class:`GANMAE`: parameters are broadcast from rank 0 when
    wrapping (as DDP does), and ``train_step`` is GANMAE's own, which runs two optimizer
    steps and averages each step's gradients over the processes itself (DDP's
    single-optimizer ``train_step`` cannot drive an ``OptimWrapperDict``).

    Config: ``model_wrapper_cfg = dict(type='GANMAEDistributedDataParallel')``.
    """

    def train_step(self, data, optim_wrapper):
        return self.module.train_step(data, optim_wrapper)

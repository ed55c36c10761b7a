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

Scheme ``adversarial`` (one iteration):

1. generator step (``generator`` wrapper) on ``L_mae + gamma * L_adv``. ``L_adv``'s
   gradient goes *through* the discriminator to the generated pixels, but no
   discriminator weight receives it: the head is frozen, and so is the discriminator's
   use of the ViT (in ``shared`` mode the ViT is updated here by the generator's
   gradient through its encoder pass only). ``adv_updates_disc_backbone=True`` lets the
   adversarial gradient through the discriminator pass update the shared ViT as well.
2. discriminator step (``discriminator`` wrapper) on ``L_disc`` over the corrupted
   image built from the generations of step 1, detached. In ``shared`` mode the ViT is
   updated again, by the discriminator's gradient: it receives gradients from both
   steps, each applied by its own optimizer (its own moments, lr schedule and loss
   scaler). A separate discriminator is unchanged by step 1, so step 2 back-propagates
   ``L_disc`` through step 1's discriminator pass instead of running it again.

Scheme ``combined``: one forward and one backward of ``L_mae + lambda_disc * L_disc``
(generations detached, so ``L_disc`` reaches only discriminator parameters); each
wrapper then steps its parameters once, and a parameter both wrappers own (the shared
ViT) is stepped once, by the ``generator`` wrapper.

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
        gamma_max (float): 1e4. gamma_eps (float): 1e-4.
        adv_loss (str): ``'non-saturating'`` (default, ``-mean log D`` over generated
            patches) or ``'minimax'`` (``-L_disc``).
        lambda_disc (float): weight of ``L_disc`` in the ``combined`` scheme (1.0).
        adv_updates_disc_backbone (bool): ``shared`` mode only; False (default) keeps
            the adversarial gradient through the discriminator pass off the ViT weights.

    Logged every iteration once the discriminator is on: ``loss_rec``, ``loss_adv``
    (adversarial scheme), ``loss_disc``, ``gamma``, ``acc_real``, ``acc_fake``.

    Distributed training: use ``model_wrapper_cfg=dict(type='GANMAEDistributedDataParallel')``
    (the GAN-MAE configs set it); this model averages its gradients over processes itself.
    """

    def __init__(self, backbone: dict, neck: dict, head: dict, scheme: str = 'adversarial',
                 two_stage_scheme: str = 'adversarial', backbone_mode: str = 'shared',
                 discriminator_backbone: Optional[dict] = None,
                 discriminator_head: dict = dict(type='PatchDiscriminatorHead'),
                 gamma: Union[str, float] = 'adaptive', gamma_max: float = 1e4,
                 gamma_eps: float = 1e-4, adv_loss: str = 'non-saturating',
                 lambda_disc: float = 1.0, adv_updates_disc_backbone: bool = False, **kwargs):
        _choice('scheme', scheme, SCHEMES)
        _choice('two_stage_scheme', two_stage_scheme, ('adversarial', 'combined'))
        _choice('backbone_mode', backbone_mode, BACKBONE_MODES)
        _choice('adv_loss', adv_loss, ADV_LOSSES)
        if isinstance(gamma, str):
            _choice('gamma', gamma, ('adaptive', ))
        elif not gamma >= 0:
            raise ValueError(f"GANMAE: gamma={gamma!r}; use 'adaptive' or a number >= 0")
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
        self.lambda_disc = lambda_disc
        self.adv_updates_disc_backbone = adv_updates_disc_backbone
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

    def discriminate(self, x_bar: Tensor) -> Tensor:
        """Per-patch real/generated logits ``(B, L)`` of the discriminator over all patches."""
        vit = self.disc_vit
        return self.disc_head(vit.encode(vit.embed(x_bar)))

    def generator_losses(self, img: Tensor):
        """The generator step's forward: ``(plan, l_mae, x_bar, x_in, logits, l_adv)``.

        The discriminator runs on ``x_in``, ``x_bar`` cut from the generator's graph, so ``L_adv``'s gradient can be taken with respect to the discriminator's
        input (and weights) without reaching into the generator's graph;
        :meth:`generator_objective` carries it on through ``x_bar``.
        """
        plan, _, pred = self.reconstruct(img)
        l_mae = self.head.loss(pred, img, plan)['loss_rec']
        x_bar = self.corrupt(img, plan, pred)
        # a view, not a leaf: module-tracking tools (FlopCounterMode) reject leaves here
        x_in = x_bar.detach().requires_grad_().view_as(x_bar)
        logits = self.discriminate(x_in)
        l_adv = self.disc_head.adversarial_loss(logits, plan.mask, self.adv_loss)
        return plan, l_mae, x_bar, x_in, logits, l_adv

    def generator_objective(self, l_mae: Tensor, l_adv: Tensor, x_bar: Tensor, x_in: Tensor,
                            loss_scale: float = 1.0, keep_disc_graph: bool = False):
        """``(surrogate, gamma)``: ``surrogate`` has the gradient of
        ``L_mae + gamma * L_adv`` with respect to every generator parameter and none with
        respect to the discriminator's (unless ``adv_updates_disc_backbone``).

        ``L_adv`` is back-propagated through the discriminator once, to its input
        ``x_in`` (and to the shared ViT's weights with ``adv_updates_disc_backbone``).
        That input gradient gives ``grad_W L_adv`` for the adaptive gamma by a step back
        through ``x_bar`` and the last decoder layer and, scaled by gamma, the generator's
        gradient. ``loss_scale`` (the fp16 loss scale) keeps these intermediate gradients
        from underflowing; the results do not depend on it. ``keep_disc_graph`` keeps the
        discriminator's graph for a later backward of ``L_disc`` through the same pass.
        """
        extra = []
        if self.adv_updates_disc_backbone:
            extra = [p for p in self.disc_vit.parameters() if p.requires_grad]
        grads = torch.autograd.grad(l_adv * loss_scale, [x_in] + extra,
                                    retain_graph=keep_disc_graph)
        g_adv = grads[0].float() / loss_scale
        if self.gamma == 'adaptive':
            weight = self.neck.decoder_pred.weight
            gw_mae = torch.autograd.grad(l_mae * loss_scale, weight, retain_graph=True)[0]
            gw_adv = torch.autograd.grad(x_bar, weight, (g_adv * loss_scale).to(x_bar.dtype),
                                         retain_graph=True)[0]
            ratio = (gw_mae.float().norm() / loss_scale) / (
                gw_adv.float().norm() / loss_scale + self.gamma_eps)
            gamma = torch.nan_to_num(ratio, nan=0., posinf=self.gamma_max).clamp(
                0., self.gamma_max).detach()
        else:
            gamma = torch.tensor(float(self.gamma), device=x_bar.device)
        surrogate = l_mae + gamma * (x_bar.float() * g_adv).sum()
        for param, grad in zip(extra, grads[1:]):
            surrogate = surrogate + gamma * (param * (grad.float() / loss_scale)).sum()
        return surrogate, gamma

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

    def _mae_step(self, img: Tensor, gen: OptimWrapper) -> Dict[str, Tensor]:
        with gen.optim_context(self):
            losses = MAE.loss(self, img)
        loss, log_vars = self.parse_losses(losses)
        self._update(gen, loss)
        return log_vars

    def _adversarial_step(self, img, gen, disc) -> Dict[str, Tensor]:
        # A separate discriminator is not changed by the generator step, so the
        # discriminator step reuses the generator step's pass over x_bar; a shared ViT
        # has just been updated, so the discriminator runs again.
        reuse = self.backbone_mode != 'shared'
        # 1. generator step on L_mae + gamma * L_adv; no discriminator weight is updated
        with gen.optim_context(self):
            plan, l_mae, x_bar, x_in, logits, l_adv = self.generator_losses(img)
            surrogate, gamma = self.generator_objective(l_mae, l_adv, x_bar, x_in,
                                                        _loss_scale(gen), keep_disc_graph=reuse)
        self._update(gen, surrogate)
        # 2. discriminator step on this iteration's corrupted image, detached
        with disc.optim_context(self):
            if not reuse:
                logits = self.discriminate(x_in.detach())
            d_out = self.disc_head.loss(logits, plan.mask)
        self._update(disc, d_out['loss_disc'])
        return self._logs(plan, loss_rec=l_mae, loss_adv=l_adv, gamma=gamma, **d_out,
                          loss=l_mae + gamma * l_adv + d_out['loss_disc'])

    def _combined_step(self, img, gen, disc) -> Dict[str, Tensor]:
        with gen.optim_context(self):
            plan, _, pred = self.reconstruct(img)
            l_mae = self.head.loss(pred, img, plan)['loss_rec']
            x_bar = self.corrupt(img, plan, pred.detach())
            d_out = self.disc_head.loss(self.discriminate(x_bar), plan.mask)
            total = l_mae + self.lambda_disc * d_out['loss_disc']
        # one backward, carrying the generator wrapper's loss scale
        gen.backward(gen.scale_loss(total))
        if gen.should_update():
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
        return self._logs(plan, loss_rec=l_mae, gamma=None, **d_out, loss=total)

    def _logs(self, plan, gamma=None, **values) -> Dict[str, Tensor]:
        logs = {k: v.detach().float() for k, v in values.items()}
        if gamma is not None:
            logs['gamma'] = gamma.detach().float()
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

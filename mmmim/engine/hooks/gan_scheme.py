"""GAN-MAE's scheme hook: start-up checks and the two-stage switch."""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper, OptimWrapperDict

from mmmim.registry import HOOKS


@HOOKS.register_module()
class GANSchemeHook(Hook):
    """Check a GAN-MAE run before its first iteration and, for ``scheme='two-stage'``,
    switch the discriminator on at an epoch boundary.

    ``before_run`` (right after the runner has built the optim wrappers) fails with a
    message naming the fix when the optim_wrapper lacks a role the scheme needs, when
    a distributed run uses a model wrapper that cannot drive GANMAE's two optimizers,
    or when ``two-stage`` has no ``switch_epoch``.

    With ``scheme='two-stage'`` the model trains as a plain MAE for epochs
    ``[0, switch_epoch)`` and with the discriminator (``model.two_stage_scheme``) from
    epoch ``switch_epoch`` on. The stage is derived from ``runner.epoch`` before every
    epoch (and before training, after a resume), never from state kept in the hook, so
    a resumed run is in the right stage. Needs an epoch-based train loop.

    Config keys: ``switch_epoch`` (int; required with ``scheme='two-stage'``, refused
    otherwise).
    """
    priority = 'VERY_HIGH'

    def __init__(self, switch_epoch: Optional[int] = None):
        if switch_epoch is not None and (not isinstance(switch_epoch, int) or switch_epoch < 0):
            raise ValueError(f'GANSchemeHook: switch_epoch={switch_epoch!r} must be an integer '
                             f'>= 0 (the number of MAE-only epochs)')
        self.switch_epoch = switch_epoch

    @staticmethod
    def _model(runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, 'set_discriminator_active'):
            raise TypeError(f'GANSchemeHook works with model type GANMAE, not '
                            f'{type(model).__name__}; remove the hook from custom_hooks')
        return model

    def before_run(self, runner) -> None:
        model = self._model(runner)
        if model.scheme == 'two-stage' and self.switch_epoch is None:
            raise ValueError("GANSchemeHook: scheme='two-stage' needs switch_epoch (the "
                             "number of MAE-only epochs), e.g. dict(type='GANSchemeHook', "
                             'switch_epoch=150)')
        if model.scheme != 'two-stage' and self.switch_epoch is not None:
            raise ValueError(f'GANSchemeHook: switch_epoch={self.switch_epoch} applies only to '
                             f"scheme='two-stage', but the model's scheme is {model.scheme!r}; "
                             f'remove switch_epoch or set model.scheme')
        if isinstance(runner.optim_wrapper, (OptimWrapper, OptimWrapperDict)):
            model.check_optim_wrapper(runner.optim_wrapper)
        from mmmim.models.algorithms.gan_mae import GANMAEDistributedDataParallel
        if is_model_wrapper(runner.model) and not isinstance(runner.model,
                                                             GANMAEDistributedDataParallel):
            raise TypeError(
                f'GANMAE cannot train under the model wrapper {type(runner.model).__name__}; '
                f"set model_wrapper_cfg=dict(type='GANMAEDistributedDataParallel')")

    def _apply(self, runner) -> None:
        model = self._model(runner)
        if model.scheme != 'two-stage':
            return
        active = runner.epoch >= self.switch_epoch
        if active != model.discriminator_active:
            runner.logger.info(
                f'GAN-MAE two-stage: epoch {runner.epoch}: '
                + (f'discriminator on ({model.two_stage_scheme})' if active else
                   f'MAE only until epoch {self.switch_epoch}'))
        model.set_discriminator_active(active)

    def before_train(self, runner) -> None:
        self._apply(runner)

    def before_train_epoch(self, runner) -> None:
        self._apply(runner)

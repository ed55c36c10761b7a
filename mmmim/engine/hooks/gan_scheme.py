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

    Before every iteration it gives the model the training progress
    (:meth:`GANMAE.set_train_progress`: iteration, epoch length, the iteration the
    discriminator came on), which the adversarial warm-up (``adv_warmup_epochs`` /
    ``adv_warmup_iters``) counts from. After every iteration it watches the adaptive
    gamma and logs one warning if gamma sat at its eps limit (``||grad_W L_adv|| <
    gamma_eps``: the adversarial gradient vanished, usually a discriminator that does
    not learn) or at ``gamma_max`` for a whole logger interval.

    Config keys: ``switch_epoch`` (int; required with ``scheme='two-stage'``, refused
    otherwise), ``warn_interval`` (iterations; default the logger hook's interval).
    """
    priority = 'VERY_HIGH'

    def __init__(self, switch_epoch: Optional[int] = None, warn_interval: Optional[int] = None):
        if switch_epoch is not None and (not isinstance(switch_epoch, int) or switch_epoch < 0):
            raise ValueError(f'GANSchemeHook: switch_epoch={switch_epoch!r} must be an integer '
                             f'>= 0 (the number of MAE-only epochs)')
        self.switch_epoch = switch_epoch
        self.warn_interval = warn_interval
        self._streak = dict(gamma_at_eps=0, gamma_at_cap=0)
        self._warned = set()

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
            roles = model.check_optim_wrapper(runner.optim_wrapper)
            counts = {role: getattr(w, '_accumulative_counts', 1) for role, w in roles.items()}
            if any(c != 1 for c in counts.values()):
                raise ValueError(
                    f'GANMAE does not support gradient accumulation (accumulative_counts '
                    f'{counts}): its adaptive gamma and its discriminator step are taken per '
                    f'iteration. Remove accumulative_counts from optim_wrapper.generator / '
                    f'.discriminator and raise the batch size (or the number of GPUs) instead')
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

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        model = self._model(runner)
        iters_per_epoch = len(runner.train_dataloader)
        start = (self.switch_epoch or 0) * iters_per_epoch if model.scheme == 'two-stage' else 0
        model.set_train_progress(runner.iter, iters_per_epoch, start)

    def _interval(self, runner) -> int:
        """``warn_interval``, else the logger hook's interval (looked up once)."""
        if not self.warn_interval:
            loggers = [h for h in runner.hooks if type(h).__name__ == 'LoggerHook']
            self.warn_interval = int(loggers[0].interval) if loggers else 50
        return int(self.warn_interval)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        outputs = outputs if isinstance(outputs, dict) else {}
        model = self._model(runner)
        for key in self._streak:
            flag = outputs.get(key)
            self._streak[key] = self._streak[key] + 1 if flag is not None and float(flag) > 0 else 0
            if key in self._warned or self._streak[key] < self._interval(runner):
                continue
            self._warned.add(key)
            if key == 'gamma_at_eps':
                runner.logger.warning(
                    f'GAN-MAE: for {self._streak[key]} iterations ||grad_W L_adv|| stayed below '
                    f'gamma_eps={model.gamma_eps:g}, so the eps, not the adversarial gradient, '
                    f'set the adaptive gamma (now {float(outputs.get("gamma", 0)):.3g}): the '
                    f'adversarial gradient has vanished, usually because the discriminator '
                    f'does not learn (watch disc_auc and loss_disc against disc_prior_entropy). '
                    f'Consider a longer adv_warmup_epochs, a lower gamma_max or a fixed gamma.')
            else:
                runner.logger.warning(
                    f'GAN-MAE: the adaptive gamma sat at gamma_max={model.gamma_max:g} for '
                    f'{self._streak[key]} iterations: the cap, not the gradient ratio, sets '
                    f'the adversarial weight. Lower gamma_scale (now {model.gamma_scale:g}) '
                    f'or raise gamma_max if that is not intended.')

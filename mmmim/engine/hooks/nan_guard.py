"""Skip optimizer steps with a non-finite loss or gradient; stop after too many."""
import math
from typing import Dict, List

import torch
from mmengine.dist import all_reduce, get_dist_info
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.optim import OptimWrapperDict

from mmmim.registry import HOOKS


class NonFiniteTrainingError(RuntimeError):
    """Training stopped: too many consecutive iterations had a non-finite loss/gradient."""


def _is_bad(value) -> bool:
    if isinstance(value, torch.Tensor):
        return not bool(torch.isfinite(value.detach()).all())
    return isinstance(value, float) and not math.isfinite(value)


def _fmt(value) -> str:
    if isinstance(value, torch.Tensor):
        value = value.detach().float()
        value = value.item() if value.numel() == 1 else value.mean().item()
    return f'{value:.4g}' if isinstance(value, float) else str(value)


@HOOKS.register_module()
class NaNGuardHook(Hook):
    """Guard every optim wrapper against a NaN / Inf loss or gradient.

    Why: one bad batch or an lr spike can put NaN into the weights, and every later
    iteration (and every later checkpoint) is then worthless. With this hook such a
    step is skipped (the weights and the optimizer state stay as they were), a warning
    names the iteration and all loss terms, the non-finite values are kept out of the
    logged averages, and after ``max_consecutive`` bad iterations in a row training
    stops with :class:`NonFiniteTrainingError`, which says what to try.

    How: before training, each optim wrapper's ``backward`` and ``step`` are wrapped:
    ``step`` is skipped when the loss given to ``backward`` or any gradient of the
    wrapper's parameters is non-finite. It therefore covers ``OptimWrapper.update_params``
    (MAE, EMAE) and GAN-MAE's two wrappers, each checked on its own. Wrappers with an
    fp16 loss scaler (``MixedPrecisionOptimWrapper`` with float16, ``AmpOptimWrapper``)
    keep their own handling (the scaler skips the step and lowers the scale when a
    gradient overflows, which is routine, not an error); for them only a non-finite
    loss counts, and a non-finite logged value that is not a loss (a gradient-norm
    diagnostic) is dropped from the log without counting. An iteration counts once
    however many wrappers skipped. With several processes the ranks agree on whether an
    iteration was bad (one all-reduce of a flag per iteration), so all stop together.

    Config keys:
        max_consecutive (int): stop after this many bad iterations in a row (default 5;
            0 never stops).
        check_grads (bool): also check gradients, not only the loss (default True; costs
            one reduction over the gradients per step).

    Included in ``configs/_base_/default_runtime.py`` as ``default_hooks.nan_guard``;
    change it with e.g. ``--cfg-options default_hooks.nan_guard.max_consecutive=20``.
    """
    priority = 'HIGHEST'  # after_train_iter before RuntimeInfoHook records the losses

    def __init__(self, max_consecutive: int = 5, check_grads: bool = True):
        if not isinstance(max_consecutive, int) or max_consecutive < 0:
            raise ValueError(f'NaNGuardHook: max_consecutive must be an integer >= 0, got '
                             f'{max_consecutive!r}')
        self.max_consecutive, self.check_grads = max_consecutive, check_grads
        self.consecutive = 0
        self.total = 0
        self._bad_loss: Dict[str, bool] = {}
        self._skipped: List[str] = []
        self._names: Dict[int, str] = {}
        self._bad_params: List[str] = []
        self._scaled = False  # some wrapper has an fp16 loss scaler

    # ------------------------------------------------------------------ install
    def before_train(self, runner):
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        self._names = {id(p): n for n, p in model.named_parameters()}
        wrappers = runner.optim_wrapper
        items = list(wrappers.items()) if isinstance(wrappers, OptimWrapperDict) else [('', wrappers)]
        self._scaled = any(self._has_scaler(w) for _, w in items)
        for name, wrapper in items:
            if not getattr(wrapper, '_nan_guarded', False):
                self._guard(name or 'optim_wrapper', wrapper)

    @staticmethod
    def _has_scaler(wrapper) -> bool:
        scaler = getattr(wrapper, 'loss_scaler', None)
        return scaler is not None and getattr(scaler, 'is_enabled', lambda: True)()

    def _guard(self, name, wrapper):
        backward, step = wrapper.backward, wrapper.step

        def guarded_backward(loss, **kwargs):
            if _is_bad(loss):
                self._bad_loss[name] = True
            return backward(loss, **kwargs)

        def guarded_step(**kwargs):
            bad_loss = self._bad_loss.pop(name, False)
            if self._has_scaler(wrapper):
                return step(**kwargs)  # the loss scaler skips non-finite gradients itself
            bad = bad_loss or (self.check_grads and self._bad_grads(wrapper))
            if get_dist_info()[1] > 1:
                # Under FSDP each rank holds only its shard of the gradients, so a
                # non-finite value may show on some ranks only: skip on every rank or none.
                flag = torch.tensor(float(bad))
                all_reduce(flag, op='max')
                bad = bool(flag.item())
            if bad:
                self._skipped.append(name)
                return None
            return step(**kwargs)

        wrapper.backward, wrapper.step = guarded_backward, guarded_step
        wrapper._nan_guarded = True

    def _bad_grads(self, wrapper) -> bool:
        grads = [p.grad for g in wrapper.optimizer.param_groups for p in g['params']
                 if p.grad is not None]
        if not grads:
            return False
        norms = torch._foreach_norm(grads)
        if bool(torch.isfinite(torch.stack([n.float() for n in norms])).all()):
            return False
        self._bad_params = [self._names.get(id(p), '?') for g in wrapper.optimizer.param_groups
                            for p in g['params']
                            if p.grad is not None and not torch.isfinite(p.grad).all()]
        return True

    # ------------------------------------------------------------------ checking
    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._skipped, self._bad_params = [], []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        outputs = outputs if isinstance(outputs, dict) else {}
        bad_terms = sorted(k for k, v in outputs.items() if _is_bad(v))
        if self._scaled:
            # under fp16 loss scaling an overflowing diagnostic (e.g. GAN-MAE's gradient
            # norms, taken at the loss scale) is the scaler's routine, not a bad iteration;
            # it is still kept out of the logged averages
            for key in [k for k in bad_terms if 'loss' not in k]:
                outputs.pop(key)
                bad_terms.remove(key)
        bad = bool(bad_terms or self._skipped or any(self._bad_loss.values()))
        self._bad_loss.clear()
        if get_dist_info()[1] > 1:
            flag = torch.tensor(float(bad))
            all_reduce(flag, op='max')
            bad = bool(flag.item())
        if not bad:
            self.consecutive = 0
            return
        self.consecutive += 1
        self.total += 1
        runner.message_hub.update_info('nonfinite_iters', self.total)
        it = runner.iter + 1
        terms = ', '.join(f'{k}={_fmt(v)}' for k, v in outputs.items()) or 'none on this rank'
        what = []
        if bad_terms:
            what.append(f'loss terms {", ".join(bad_terms)}')
        if self._bad_params:
            shown = ', '.join(self._bad_params[:3])
            more = len(self._bad_params) - 3
            what.append(f'gradients of {shown}' + (f' and {more} more' if more > 0 else ''))
        what = ' and '.join(what) or 'values on another rank'
        skipped = (f'skipped the step of {", ".join(sorted(set(self._skipped)))}'
                   if self._skipped else 'the step was skipped or the loss scaler skipped it')
        limit = (f'stops after {self.max_consecutive}' if self.max_consecutive
                 else 'never stops (max_consecutive=0)')
        print_log(f'NaNGuardHook: iter {it}: non-finite {what}; {skipped} '
                  f'({self.consecutive} in a row, {self.total} in total; training {limit}). '
                  f'Loss terms: {terms}', logger='current', level=30)
        for key in bad_terms:  # keep NaN out of the logged averages and the loss curve
            outputs.pop(key)
        if self.max_consecutive and self.consecutive >= self.max_consecutive:
            raise NonFiniteTrainingError(
                f'NaNGuardHook: stopping at iter {it}: {self.consecutive} consecutive '
                f'iterations had a non-finite loss or gradient (default_hooks.nan_guard.'
                f'max_consecutive={self.max_consecutive}); last loss terms: {terms}. Their '
                f'optimizer steps were skipped, so the weights are those of the last good '
                f'step. Try a lower learning rate or a longer warm-up, gradient clipping '
                f'(optim_wrapper.clip_grad=dict(max_norm=1.0)), or check the data; then '
                f'continue from the last checkpoint with --resume.')

"""Mixed-precision training on CPU and GPU."""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper

from mmmim.registry import OPTIM_WRAPPERS
from mmmim.utils.precision import auto_dtype, warn_if_bf16_slow

_DTYPES = {'float16': torch.float16, 'fp16': torch.float16, 'half': torch.float16,
           'bfloat16': torch.bfloat16, 'bf16': torch.bfloat16}


@OPTIM_WRAPPERS.register_module()
class MixedPrecisionOptimWrapper(OptimWrapper):
    """An :class:`~mmengine.optim.OptimWrapper` that runs the forward pass under
    ``torch.autocast`` on CPU as well as on CUDA.

    Why not mmengine's ``AmpOptimWrapper``: it refuses to start without a GPU, yet
    bf16 autocast makes ViT pre-training ~2.5-4x faster on CPUs with bf16 units.
    ``tools/train.py --amp`` selects this wrapper.

    Precision follows the device of the optimised parameters:

    - CPU, ``dtype=None`` (what ``--amp`` gives): bfloat16 autocast, no loss scaling
      (bf16 has fp32's exponent range), but only where the CPU runs bf16 natively
      (AVX512-BF16 / AMX, see :mod:`mmmim.utils.precision`). On other CPUs (AVX2:
      bf16 is emulated there, ~60x slower than fp32) it trains in fp32 and logs once
      why, and how to force bf16.
    - CPU, ``dtype='bfloat16'``: bf16 whatever the CPU, with a warning naming the
      measured slowdown where bf16 is not native.
    - CUDA: float16 with dynamic loss scaling (``torch.amp.GradScaler``) by default,
      or bfloat16 (no scaling) with ``dtype='bfloat16'``.

    ``cast_dtype`` is the dtype the forward pass runs in (``torch.float32``: no
    autocast).

    The scaler state is part of :meth:`state_dict` (key ``loss_scaler``, as in
    mmengine), so ``--resume`` restores the loss scale.

    Config keys (besides :class:`~mmengine.optim.OptimWrapper`'s ``optimizer``,
    ``accumulative_counts``, ``clip_grad``):
        dtype (str | None): ``'float16'`` or ``'bfloat16'``; None picks by device (and,
            on a CPU, by whether bf16 is native).
        loss_scale (str | float | dict): ``'dynamic'`` (default), a fixed initial scale,
            or GradScaler keyword arguments. Used only with float16.

    Example::

        optim_wrapper = dict(type='MixedPrecisionOptimWrapper',
                             optimizer=dict(type='AdamW', lr=1.5e-4))
    """

    def __init__(self, optimizer, dtype=None, loss_scale='dynamic', **kwargs):
        super().__init__(optimizer=optimizer, **kwargs)
        params = [p for g in self.optimizer.param_groups for p in g['params']]
        self.device_type = params[0].device.type if params else 'cpu'
        if isinstance(dtype, torch.dtype):
            dtype = str(dtype).replace('torch.', '')
        if dtype is not None and dtype not in _DTYPES:
            raise ValueError(f'MixedPrecisionOptimWrapper: dtype={dtype!r} is not supported; '
                             f"use 'float16' or 'bfloat16' (or None to pick by device)")
        if dtype is None:
            self.cast_dtype = (torch.float16 if self.device_type == 'cuda' else
                               auto_dtype(self.device_type, 'MixedPrecisionOptimWrapper'))
        else:
            self.cast_dtype = _DTYPES[dtype]
            if self.cast_dtype == torch.bfloat16:
                warn_if_bf16_slow(self.device_type, 'MixedPrecisionOptimWrapper')
        use_scaler = self.cast_dtype == torch.float16
        if loss_scale == 'dynamic':
            scaler_kwargs = {}
        elif isinstance(loss_scale, (int, float)):
            scaler_kwargs = dict(init_scale=float(loss_scale))
        elif isinstance(loss_scale, dict):
            scaler_kwargs = dict(loss_scale)
        else:
            raise TypeError(f"MixedPrecisionOptimWrapper: loss_scale must be 'dynamic', a number "
                            f'or a dict of GradScaler arguments, got {loss_scale!r}')
        self.loss_scaler = torch.amp.GradScaler(self.device_type, enabled=use_scaler,
                                                **scaler_kwargs)

    @property
    def uses_loss_scaling(self):
        return self.loss_scaler.is_enabled()

    def backward(self, loss, **kwargs):
        self.loss_scaler.scale(loss).backward(**kwargs)
        self._inner_count += 1

    def step(self, **kwargs):
        if not self.uses_loss_scaling:
            return super().step(**kwargs)
        if self.clip_grad_kwargs:
            self.loss_scaler.unscale_(self.optimizer)
            self._clip_grad()
        self.loss_scaler.step(self.optimizer, **kwargs)
        self.loss_scaler.update()

    def state_dict(self):
        state = super().state_dict()
        if self.uses_loss_scaling:
            state['loss_scaler'] = self.loss_scaler.state_dict()
        return state

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        scaler_state = state_dict.pop('loss_scaler', None)
        if scaler_state and self.uses_loss_scaling:
            self.loss_scaler.load_state_dict(scaler_state)
        super().load_state_dict(state_dict)

    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model), torch.autocast(
                self.device_type, dtype=self.cast_dtype,
                enabled=self.cast_dtype != torch.float32):
            yield

"""Fully sharded data parallel (FSDP) training through mmengine's ``FlexibleRunner``.

mmengine 0.10.7 ships ``FSDPStrategy``, which wraps the model in torch's FSDP (v1,
``MMFullyShardedDataParallel``). Used as it is on mmmim's models it falls short in
four ways, which is why :class:`MIMFSDPStrategy` exists:

- It passes ``device_id=int(LOCAL_RANK)`` to FSDP, which torch reads as a CUDA
  device, so it cannot run without a GPU. torch's FSDP itself runs on CPU tensors over
  gloo when given ``device_id=torch.device('cpu')``; this strategy does that when
  CUDA is unavailable (what the tests and ``tools/dist_train.sh`` on a CPU machine use).
- Its default wraps the whole model as one FSDP unit, so every rank gathers all
  parameters at once and the memory saving is lost; here each transformer block
  (:class:`mmmim.models.layers.TransformerLayer`, encoder and decoder alike) is its
  own unit unless the config gives an ``auto_wrap_policy``.
- Its default checkpoint format is 'local' (one shard file per rank, loadable only
  by the same number of processes). Here it is 'full': rank 0 writes one ordinary
  mmengine checkpoint whose ``state_dict`` has the keys and shapes of the unwrapped
  model (``backbone.*``, ``neck.*``, ...), so downstream configs load it as they load
  a DDP run's checkpoint.
- Its wrapper's ``train_step`` runs ``forward`` + one optimizer step and bypasses a
  model's own ``train_step``: GAN-MAE's two-optimizer step would silently become a
  plain MAE step. Such models are refused when the model is wrapped (and by
  ``tools/train.py`` before anything is built, see :func:`check_fsdp_config`).

It also fixes resuming: mmengine calls ``FSDP.optim_state_dict_to_load`` with torch
2.0's argument order, which torch >= 2.1 reads as (model, optim, state) and fails with
``TypeError: unhashable type: 'dict'``; :meth:`MIMFSDPStrategy.load_optim_state_dict`
passes them by name.

Gradient clipping by norm (``optim_wrapper.clip_grad=dict(max_norm=...)``) is routed
to FSDP's ``clip_grad_norm_``, which takes the norm over all shards; mmengine's
default would clip each rank's shard by its own norm.
"""
import copy
import os
from typing import Optional, Union

import torch
from mmengine._strategy import FSDPStrategy
from mmengine.device import get_device
from mmengine.model import BaseDataPreprocessor, BaseModel, is_model_wrapper
from mmengine.registry import STRATEGIES, DefaultScope
from torch import nn

__all__ = ['MIMFSDPStrategy', 'FSDPConfigError', 'check_fsdp_model', 'check_fsdp_config',
           'block_wrap_policy', 'is_fsdp_config']

#: the strategy types ``tools/train.py`` treats as FSDP
FSDP_STRATEGY_TYPES = ('MIMFSDPStrategy', 'FSDPStrategy')

_DDP_FIX = {
    'GANMAE': ("train GAN-MAE with DDP: remove `strategy` (and `runner_type`) from the config "
               "and keep model_wrapper_cfg=dict(type='GANMAEDistributedDataParallel') as "
               "configs/gan_mae/*.py do. To fit a larger model on each GPU under DDP, turn on "
               "activation checkpointing (model.backbone.with_cp=True, model.neck.with_cp=True), "
               "keep backbone_mode='shared' (one ViT instead of two), or spread the batch over "
               "more GPUs"),
}


class FSDPConfigError(ValueError):
    """A config asks for FSDP with something FSDP cannot train correctly."""


def block_wrap_policy():
    """The default FSDP auto-wrap policy: one FSDP unit per transformer block."""
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    from mmmim.models.layers import TransformerLayer
    return ModuleWrapPolicy({TransformerLayer})


def _refusal(model_cls, why: str) -> FSDPConfigError:
    name = model_cls.__name__
    fix = _DDP_FIX.get(name, 'train this model with DDP (remove `strategy` from the config), '
                             'or move its update logic into loss() so that one optimizer '
                             'step per iteration trains it')
    return FSDPConfigError(f'{name} cannot be trained with FSDP: {why}. Fix: {fix}.')


def check_fsdp_model(model: Union[nn.Module, type]) -> None:
    """Refuse a model (or model class) whose ``train_step`` FSDP would bypass.

    mmengine's FSDP wrapper runs ``data_preprocessor``, ``forward(mode='loss')`` and
    one ``optim_wrapper.update_params`` itself; a model that overrides ``train_step``
    (GAN-MAE: a generator and a discriminator step with two optimizers, and its own
    gradient averaging) would be trained with a different algorithm without notice.
    """
    cls = model if isinstance(model, type) else type(model)
    if cls.train_step is not BaseModel.train_step:
        why = ('it has its own train_step'
               + (' (two optimizer steps per iteration, generator and discriminator, with its '
                  'own gradient averaging)' if cls.__name__ == 'GANMAE' else '')
               + ", which mmengine's FSDP wrapper bypasses: it would run forward() and one "
                 'optimizer step instead, i.e. silently train a different algorithm')
        raise _refusal(cls, why)


def is_fsdp_config(cfg) -> bool:
    """Whether ``cfg`` trains with an FSDP strategy (:data:`FSDP_STRATEGY_TYPES`)."""
    strategy = cfg.get('strategy')
    if not isinstance(strategy, dict):
        return False
    kind = strategy.get('type', '')
    kind = kind if isinstance(kind, str) else getattr(kind, '__name__', '')
    return kind.split('.')[-1] in FSDP_STRATEGY_TYPES


def check_fsdp_config(cfg) -> None:
    """Refuse, before anything is built, an FSDP config FSDP cannot train correctly:
    a model with its own ``train_step`` (GAN-MAE) or several optimizers."""
    from mmengine.registry import DefaultScope

    from mmmim.registry import MODELS
    model_type = cfg.model.get('type')
    scope = cfg.get('default_scope') or 'mmmim'
    with DefaultScope.overwrite_default_scope(scope):
        cls = MODELS.get(model_type) if isinstance(model_type, str) else model_type
    if isinstance(cls, type):
        check_fsdp_model(cls)
    ow = cfg.get('optim_wrapper') or {}
    if ow and 'optimizer' not in ow and 'type' not in ow:
        raise FSDPConfigError(
            f'FSDP trains with one optimizer; optim_wrapper has sub-wrappers '
            f'{sorted(k for k in ow if k != "constructor")}. Use a single optim_wrapper '
            f'(optimizer=...) or train with DDP (remove `strategy` from the config).')
    if ow.get('type') and str(ow['type']).split('.')[-1] == 'MixedPrecisionOptimWrapper':
        raise FSDPConfigError(
            'MixedPrecisionOptimWrapper (autocast + a loss scaler that is not shard-aware) is '
            'not used with FSDP; set FSDP\'s own mixed precision instead: '
            "strategy.model_wrapper.mixed_precision=dict(param_dtype='bfloat16', "
            "reduce_dtype='float32', buffer_dtype='float32') (what --amp does under FSDP)")


@STRATEGIES.register_module()
class MIMFSDPStrategy(FSDPStrategy):
    """mmengine's :class:`~mmengine._strategy.FSDPStrategy` with mmmim's defaults; see
    the module docstring for what differs and why.

    Use it through ``tools/train.py`` (which then builds mmengine's ``FlexibleRunner``)::

        strategy = dict(
            type='MIMFSDPStrategy',
            model_wrapper=dict(  # MMFullyShardedDataParallel / torch FSDP arguments
                mixed_precision=dict(param_dtype='bfloat16', reduce_dtype='float32',
                                     buffer_dtype='float32')))

    Config keys:
        model_wrapper (dict): arguments of mmengine's ``MMFullyShardedDataParallel``
            (torch FSDP): ``sharding_strategy`` ('FULL_SHARD' default, 'SHARD_GRAD_OP',
            'HYBRID_SHARD', 'NO_SHARD'), ``mixed_precision`` (dict of ``param_dtype``,
            ``reduce_dtype``, ``buffer_dtype`` as strings), ``cpu_offload`` (bool),
            ``backward_prefetch``, ``limit_all_gathers``, ``auto_wrap_policy`` (default:
            one unit per :class:`TransformerLayer`), ``use_orig_params`` (default True,
            required by the optimizer's per-name parameter groups), ...
        state_dict_cfg (str | dict): 'full' (default: one checkpoint in the unwrapped
            model's layout, written by rank 0) or 'local' / a dict as in mmengine.
        wrap_blocks (bool): default True; False leaves the wrap policy to
            ``model_wrapper.auto_wrap_policy`` (None: the whole model is one unit).
        skip_init_weights, activation_checkpointing: as in mmengine's FSDPStrategy.
            mmmim's own ``with_cp`` on the backbone / neck composes with FSDP and is
            the recommended way to checkpoint activations.
    """

    def __init__(self, *, model_wrapper: Optional[dict] = None,
                 state_dict_cfg: Union[str, dict] = 'full', wrap_blocks: bool = True,
                 **kwargs):
        super().__init__(model_wrapper=model_wrapper, state_dict_cfg=state_dict_cfg, **kwargs)
        self.wrap_blocks = wrap_blocks

    def _wrap_model(self, model: nn.Module) -> nn.Module:
        if is_model_wrapper(model):
            return model
        check_fsdp_model(model)
        wrapper = copy.copy(dict(self.model_wrapper or {}))
        wrapper.setdefault('type', 'MMFullyShardedDataParallel')
        if self.wrap_blocks and wrapper.get('auto_wrap_policy') is None:
            wrapper['auto_wrap_policy'] = block_wrap_policy()
        if not torch.cuda.is_available():
            # torch reads an int device_id as a CUDA device; FSDP runs on CPU tensors
            # (over gloo) when given the CPU device explicitly
            wrapper.setdefault('device_id', torch.device('cpu'))
        else:
            wrapper.setdefault('device_id', int(os.environ.get('LOCAL_RANK', 0)))
        self.model_wrapper = wrapper
        for module in model.modules():
            if isinstance(module, BaseDataPreprocessor):
                module.to(get_device())
        # the wrapper and its policies live in mmengine's registries (mmmim has none of
        # those kinds); building there avoids mmengine's misleading scope-fallback warning
        with DefaultScope.overwrite_default_scope('mmengine'):
            return super()._wrap_model(model)

    def load_optim_state_dict(self, state_dict: dict) -> None:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        state_dict = FSDP.optim_state_dict_to_load(
            model=self.model, optim=self.optim_wrapper.optimizer, optim_state_dict=state_dict)
        self.optim_wrapper.load_state_dict(state_dict)

    def build_optim_wrapper(self, optim_wrapper, model=None):
        wrapper = super().build_optim_wrapper(optim_wrapper, model)
        if getattr(wrapper, 'clip_func', None) is torch.nn.utils.clip_grad_norm_:
            fsdp = model if model is not None else self.model

            def clip_over_all_shards(params, max_norm, norm_type=2.0, **kwargs):
                return fsdp.clip_grad_norm_(max_norm, norm_type)
            wrapper.clip_func = clip_over_all_shards
        return wrapper

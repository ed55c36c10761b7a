"""One optimizer parameter group per distinct setting, not one per parameter.

With a ``paramwise_cfg`` (MAE's schedule sets one: no weight decay on norms, biases and
tokens), mmengine's ``DefaultOptimWrapperConstructor`` gives every parameter a group of
its own: 108 groups for ViT-mini + MAE decoder. A fused or multi-tensor optimizer
(``AdamW(fused=True)``) launches its kernels once per group, so each step pays 108
launches and 108 passes of Python where 2 would compute the same update (there are
two settings: with and without weight decay). mmengine has no option to merge them.

:class:`MergedGroupsOptimWrapperConstructor` builds the groups exactly as the default
constructor does (same ``paramwise_cfg`` keys, same lr and decay per parameter), then
merges the groups whose settings are all equal. The update of every parameter is
unchanged; only the number of groups (and kernel launches) shrinks.

Resuming: a checkpoint resumes only under the grouping it was written with (the
optimizer's and the lr schedulers' states are per group). Switching the constructor in
the middle of a run is refused with a message that says so; start from the weights
(``load_from``) instead.
"""
from typing import Dict, List

from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from torch import nn

from mmmim.registry import OPTIM_WRAPPER_CONSTRUCTORS

__all__ = ['MergedGroupsOptimWrapperConstructor', 'merge_param_groups']


def _setting_key(group: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in group.items() if k != 'params'))


def merge_param_groups(groups: List[dict]) -> List[List[int]]:
    """Indices of ``groups`` that share every setting but ``params``, in order of first
    appearance; each index list keeps the groups' original order."""
    merged: Dict[tuple, List[int]] = {}
    for i, group in enumerate(groups):
        merged.setdefault(_setting_key(group), []).append(i)
    return list(merged.values())


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class MergedGroupsOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor with equal parameter groups merged.

    Config: ``optim_wrapper=dict(constructor='MergedGroupsOptimWrapperConstructor',
    optimizer=dict(type='AdamW', ...), paramwise_cfg=dict(custom_keys=...))`` (every
    key of the default constructor's ``paramwise_cfg`` works as there). Under GAN-MAE
    a role names it as its ``constructor``.
    """

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '',
                   **kwargs) -> None:
        if prefix:  # the default recurses through this method: merge once, at the top
            return super().add_params(params, module, prefix, **kwargs)
        per_param: List[dict] = []
        super().add_params(per_param, module, prefix, **kwargs)
        self._num_unmerged = len(per_param)
        for indices in merge_param_groups(per_param):
            group = {k: v for k, v in per_param[indices[0]].items() if k != 'params'}
            group['params'] = [p for i in indices for p in per_param[i]['params']]
            params.append(group)

    def __call__(self, model: nn.Module) -> OptimWrapper:
        optim_wrapper = super().__call__(model)
        if self.paramwise_cfg:  # else the default's single group: nothing was merged
            optim_wrapper.optimizer.register_load_state_dict_pre_hook(
                _RefuseOtherLayout(self._num_unmerged))
        return optim_wrapper


class _RefuseOtherLayout:
    """Load-state pre-hook: a checkpoint written with another grouping of the same
    parameters (mmengine's one group per parameter) is refused with the fix. Regrouping
    the optimizer state alone would not do: the lr schedulers' saved state holds one
    base value per group too, and would be paired with the wrong groups."""

    def __init__(self, num_unmerged: int):
        self.num_unmerged = num_unmerged

    def __call__(self, optimizer, state_dict: dict) -> None:
        saved, built = len(state_dict['param_groups']), len(optimizer.param_groups)
        if saved != built:
            how = (' (one per parameter: written without MergedGroupsOptimWrapperConstructor)'
                   if saved == self.num_unmerged else '')
            raise ValueError(
                f'The checkpoint\'s optimizer state has {saved} parameter groups{how}; '
                f'MergedGroupsOptimWrapperConstructor built {built}. Resume it with '
                'the constructor it was written with (drop optim_wrapper.constructor), or '
                'start a new run from its weights with load_from instead of resume.')

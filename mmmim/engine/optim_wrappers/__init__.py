from .amp import MixedPrecisionOptimWrapper
from .layer_decay import LayerDecayOptimWrapperConstructor  # noqa: F401
from .merged_groups import MergedGroupsOptimWrapperConstructor  # noqa: F401

__all__ = ['MixedPrecisionOptimWrapper']

from .amp import MixedPrecisionOptimWrapper
from .layer_decay import LayerDecayOptimWrapperConstructor  # noqa: F401

__all__ = ['MixedPrecisionOptimWrapper']

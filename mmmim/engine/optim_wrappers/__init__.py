from .amp import MixedPrecisionOptimWrapper

__all__ = ['MixedPrecisionOptimWrapper']

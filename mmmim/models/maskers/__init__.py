from .base import BaseMasker, FixedRatio, build_ratio_policy
from .block import BlockMasker
from .grid import GridMasker
from .parallel import ParallelMasker
from .plan import MaskPlan
from .random import RandomMasker

__all__ = ['MaskPlan', 'BaseMasker', 'FixedRatio', 'build_ratio_policy', 'RandomMasker',
           'BlockMasker', 'GridMasker', 'ParallelMasker']
from .adaptive import AdaptiveRatio  # noqa: E402
from .salience import SalienceMasker, patch_salience, shared_salience  # noqa: E402

__all__ += ['AdaptiveRatio', 'SalienceMasker', 'patch_salience', 'shared_salience']

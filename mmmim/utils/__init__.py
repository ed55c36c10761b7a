from .checkpoint import (MMENGINE_CHECKPOINT_GLOBALS, CheckpointError, CorruptCheckpointError,
                         UnsafeCheckpointError, install_safe_checkpoint_loading,
                         load_checkpoint_safely)
from .convert import (CheckpointMismatchError, convert_checkpoint,  # noqa: F401
                      interpolate_pos_embed, load_vit_checkpoint)
from .dist import setup_cpu_distributed

__all__ = ['MMENGINE_CHECKPOINT_GLOBALS', 'CheckpointError', 'CorruptCheckpointError',
           'UnsafeCheckpointError', 'install_safe_checkpoint_loading', 'load_checkpoint_safely',
           'setup_cpu_distributed']

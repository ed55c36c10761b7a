"""Training strategies for mmengine's ``FlexibleRunner`` (registered in mmengine's
``STRATEGIES``)."""
from .fsdp import (FSDPConfigError, MIMFSDPStrategy, block_wrap_policy, check_fsdp_config,
                   check_fsdp_model, is_fsdp_config)

__all__ = ['MIMFSDPStrategy', 'FSDPConfigError', 'block_wrap_policy', 'check_fsdp_config',
           'check_fsdp_model', 'is_fsdp_config']

from .emae import EMAE
from .mae import MAE

__all__ = ['MAE', 'EMAE']
from .gan_mae import GANMAE, GANMAEDistributedDataParallel, GANMAEOptimWrapperConstructor  # noqa: F401,E501

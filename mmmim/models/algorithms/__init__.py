from .emae import EMAE
from .mae import MAE

__all__ = ['MAE', 'EMAE']

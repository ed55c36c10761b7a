"""Engine pieces: optim wrappers, hooks, and safe checkpoint loading for mmengine."""
from mmmim.utils.checkpoint import install_safe_checkpoint_loading

from .hooks import *  # noqa: F401,F403
from .optim_wrappers import *  # noqa: F401,F403

install_safe_checkpoint_loading()

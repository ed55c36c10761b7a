"""mmmim's training hooks (registered in ``mmmim.registry.HOOKS``)."""
from .linear_probe import LinearProbeHook
from .visualization import ReconstructionVisHook, first_images, reconstruction_grid

__all__ = ['LinearProbeHook', 'ReconstructionVisHook', 'reconstruction_grid', 'first_images']
from .gan_scheme import GANSchemeHook  # noqa: F401
from .atomic_checkpoint import atomic_write_bytes, save_checkpoint_atomic  # noqa: F401,E402
from .nan_guard import NaNGuardHook, NonFiniteTrainingError  # noqa: F401,E402
from .resume_state import ResumeStateHook  # noqa: F401,E402

"""mmmim's training hooks (registered in ``mmmim.registry.HOOKS``)."""
from .linear_probe import LinearProbeHook
from .visualization import ReconstructionVisHook, first_images, reconstruction_grid

__all__ = ['LinearProbeHook', 'ReconstructionVisHook', 'reconstruction_grid', 'first_images']
from .gan_scheme import GANSchemeHook  # noqa: F401

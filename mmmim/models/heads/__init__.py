from .reconstruction import ReconstructionHead, patchify, unpatchify

__all__ = ['ReconstructionHead', 'patchify', 'unpatchify']
from .discriminator import PatchDiscriminatorHead  # noqa: F401

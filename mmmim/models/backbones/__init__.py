from .masked_vit import ARCHS, MaskedViT

__all__ = ['MaskedViT', 'ARCHS']

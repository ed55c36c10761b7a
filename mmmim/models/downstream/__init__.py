"""What mmdet and mmseg lack for a plain (non-hierarchical) ViT, registered in their
scopes as well as mmmim's.

Import it from a detector/segmentor config with
``custom_imports=dict(imports=['mmmim.models.downstream'], allow_failed_imports=False)``;
that also registers the layer-decay optimizer constructor in mmdet's and mmseg's scopes
and makes mmengine's checkpoint loading safe on torch >= 2.6 (``mmmim.engine``).
"""
import mmmim.engine  # noqa: F401  (LayerDecayOptimWrapperConstructor, safe loading)
from .plain_vit import PlainViTBackbone, window_partition, window_unpartition
from .simple_fpn import LayerNorm2d, SimpleFeaturePyramid

__all__ = ['PlainViTBackbone', 'SimpleFeaturePyramid', 'LayerNorm2d', 'window_partition',
           'window_unpartition']

"""Register a downstream component in mmmim's scope and in mmdet's / mmseg's.

mmdet's and mmseg's configs run with ``default_scope='mmdet'`` / ``'mmseg'``; their
registries do not look into mmmim's, so a component a detector or segmentor config
names (``type='PlainViTBackbone'``) must also be registered there.
"""
from typing import Iterable, Optional

from mmmim.registry import MODELS


def _downstream_registries():
    found = []
    for module_name in ('mmdet.registry', 'mmseg.registry'):
        try:
            found.append(__import__(module_name, fromlist=['MODELS']).MODELS)
        except ImportError:  # that library is not installed
            continue
    return found


def register_downstream(name: Optional[str] = None, scopes: Iterable[str] = ('mmmim', 'mmdet',
                                                                                'mmseg')):
    """Class decorator: register under ``name`` (default: the class name) in ``scopes``."""
    def wrap(cls):
        key = name or cls.__name__
        targets = [MODELS] if 'mmmim' in scopes else []
        targets += [r for r in _downstream_registries() if r.scope in scopes]
        for registry in targets:
            if key not in registry.module_dict:
                registry.register_module(name=key, module=cls)
        return cls
    return wrap

"""Shared fixtures: mmmim's default scope and tiny CPU-sized models."""
import copy
import getpass
import importlib.util
import os
import os.path as osp
import tempfile

import pytest
import torch
from mmengine.registry import DefaultScope

# torch.compile keeps compiled kernels on disk, and its cache key does not include the
# CPU capability ATen runs with. Filled on the AVX-512 path, then reused with
# ATEN_CPU_CAPABILITY=avx2 (how the AVX2 code paths are checked on an AVX-512 machine),
# it made the compiled-layer tests give NaN losses; with a fresh cache they pass on both.
# One cache per capability (inherited by the tools the tests start).
os.environ.setdefault('TORCHINDUCTOR_CACHE_DIR', osp.join(
    tempfile.gettempdir(),
    f'torchinductor_{getpass.getuser()}_{torch.backends.cpu.get_cpu_capability().lower()}'))

import mmmim.datasets  # noqa: F401  (registers)
import mmmim.engine  # noqa: F401
import mmmim.models  # noqa: F401
from mmmim.registry import MODELS


@pytest.fixture(autouse=True)
def mmmim_scope():
    """Every test starts in mmmim's scope, whatever scope an earlier test left current."""
    with DefaultScope.overwrite_default_scope('mmmim'):
        yield


TINY_MODEL = dict(
    type='MAE',
    data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[127.5], std=[127.5],
                           to_rgb=False),
    backbone=dict(type='MaskedViT',
                  arch=dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
                  img_size=32, patch_size=4, in_channels=1),
    neck=dict(type='MAEDecoder', decoder_embed_dims=24, decoder_depth=1, decoder_num_heads=2),
    head=dict(type='ReconstructionHead', norm_pix=True),
    masker=dict(type='RandomMasker', ratio=0.75),
)


def tiny_cfg(**overrides):
    cfg = copy.deepcopy(TINY_MODEL)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict) and 'type' not in value:
            cfg[key].update(value)
        else:
            cfg[key] = value
    return cfg


def build_tiny(**overrides):
    torch.manual_seed(0)
    model = MODELS.build(tiny_cfg(**overrides))
    model.init_weights()
    return model


@pytest.fixture
def tiny_model():
    return build_tiny()


def load_tool(rel):
    """Import a script of the repository (``tools/...``) as a module."""
    path = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), rel)
    spec = importlib.util.spec_from_file_location(osp.basename(rel)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

"""Every shipped pre-training config parses and builds (encoders shrunk to stay fast)."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from mmmim.registry import MODELS

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PRETRAIN = sorted(
    f for f in glob.glob(osp.join(ROOT, 'configs', '*', '*.py'))
    if osp.basename(osp.dirname(f)) not in ('_base_', 'downstream', 'robustness')
    and not osp.basename(f).startswith('finetune'))  # classifiers: tests/test_evaluation.py


@pytest.mark.parametrize('path', PRETRAIN, ids=lambda p: osp.relpath(p, ROOT))
def test_config_builds(path):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmmim'
    model_cfg = cfg.model
    full_arch = model_cfg.backbone.arch
    if 'fashion_mnist' not in path:  # shrink the width/depth, keep the geometry and masker
        model_cfg.backbone.arch = dict(embed_dims=32, num_layers=1, num_heads=2,
                                       feedforward_channels=32)
        model_cfg.neck.decoder_depth = 1
    model = MODELS.build(model_cfg)
    assert model.backbone.num_patches == model.neck.num_patches
    name = osp.basename(path)
    if name.startswith('vit-h'):
        assert full_arch == 'huge' and model.backbone.patch_size == 14
    if 'emae' in path:
        assert type(model).__name__ == 'EMAE' and model.masker.num_views >= 2

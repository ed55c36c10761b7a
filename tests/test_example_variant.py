"""The example project: a masker outside mmmim, registered through custom_imports."""
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.utils import import_modules_from_strings

from mmmim.registry import MODELS

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def build(name, shrink=False):
    cfg = Config.fromfile(osp.join(ROOT, 'projects/example_variant/configs', name))
    import_modules_from_strings(**cfg.custom_imports)
    if shrink:
        cfg.model.backbone.arch = dict(embed_dims=32, num_layers=1, num_heads=2,
                                       feedforward_channels=32)
        cfg.model.neck.decoder_depth = 1
    return MODELS.build(cfg.model)


def test_variant_configs_build_with_the_new_masker():
    big = build('mae-center-mask_vit-b_800e.py', shrink=True)
    small = build('mae-center-mask_vit-mini-p4_4e_fmnist.py')
    for model in (big, small):
        assert type(model.masker).__name__ == 'CenterBiasedMasker'
    loss = small.loss(torch.randn(2, 1, 32, 32))['loss_rec']
    assert torch.isfinite(loss)


def test_center_patches_are_masked_more_often():
    model = build('mae-center-mask_vit-mini-p4_4e_fmnist.py')
    torch.manual_seed(0)
    mask = model.masker(torch.zeros(512, 64, 8)).mask.reshape(512, 8, 8).mean(0)
    centre, corners = mask[3:5, 3:5].mean(), mask[[0, 0, 7, 7], [0, 7, 0, 7]].mean()
    assert centre > 0.9 and corners < 0.65  # uniform masking would give 0.75 everywhere
    assert (mask.sum() / 64).item() == 0.75  # the ratio is still exact

"""tools/visualize_reconstruction.py: the MAE figure from a config, a checkpoint and
image files, with several masks per image."""
import importlib.util
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import build_tiny, tiny_cfg

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
_spec = importlib.util.spec_from_file_location(
    'mmmim_tool_visualize', osp.join(REPO, 'tools', 'visualize_reconstruction.py'))
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)


@pytest.fixture
def setup(tmp_path):
    def make(**overrides):
        cfg = tmp_path / 'cfg.py'
        cfg.write_text(f'model = {tiny_cfg(**overrides)!r}\n')
        torch.save({'state_dict': build_tiny(**overrides).state_dict()}, tmp_path / 'ckpt.pth')
        return str(cfg), str(tmp_path / 'ckpt.pth')
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(tmp_path / 'rgb.png')
    Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(tmp_path / 'grey.jpg')
    return make, [str(tmp_path / 'rgb.png'), str(tmp_path / 'grey.jpg')]


def test_grid_per_seed_with_notes(tmp_path, setup, capsys):
    make, images = setup
    cfg, ckpt = make()
    out = str(tmp_path / 'grid.png')
    fig = tool.main([cfg, ckpt, *images, '--seeds', '0', '1', '--out', out, '--scale', '1'])
    printed = capsys.readouterr().out
    assert 'rgb.png: 3 channel(s) converted to the model\'s 1' in printed
    assert 'rgb.png: 50x40 resized and centre-cropped to 32x32' in printed
    assert 'grey.jpg' not in printed  # already what the model takes
    # 2 seeds x 2 images rows of 32 px (gaps 2, 4 between seeds); 4 columns of 32 px
    assert fig.shape == (2 * 66 + 4, 4 * 34 - 2, 3)
    assert (cv2.imread(out)[..., ::-1] == fig).all()
    seed0, seed1 = fig[:66], fig[70:]
    orig = slice(3 * 34, 4 * 34 - 2)
    assert (seed0[:, orig] == seed1[:, orig]).all()  # same originals
    assert (seed0[:, :32] != seed1[:, :32]).any()  # different masks
    again = tool.main([cfg, ckpt, *images, '--seeds', '0', '--out', out, '--scale', '1'])
    assert (again == seed0).all()  # a seed always draws the same mask


def test_emae_shows_every_view(tmp_path, setup, capsys):
    make, images = setup
    cfg, ckpt = make(type='EMAE', masker=dict(type='ParallelMasker', num_parts=2))
    fig = tool.main([cfg, ckpt, images[1], '--out', str(tmp_path / 'g.png')])
    assert fig.shape[1] == 4 * (7 * 34 - 2)  # 2 views x 3 + original; default scale 4
    assert '[masked, reconstruction, +visible], [masked, reconstruction, +visible], ' \
        'original' in capsys.readouterr().out


def test_clear_errors(tmp_path, setup):
    make, images = setup
    cfg, ckpt = make()
    with pytest.raises(SystemExit, match='nope.pth.*does not exist'):
        tool.main([cfg, str(tmp_path / 'nope.pth'), *images])
    (tmp_path / 'broken.png').write_bytes(b'\x89PNG cut')
    with pytest.raises(SystemExit, match='broken.png.*not an image OpenCV can read'):
        tool.main([cfg, ckpt, str(tmp_path / 'broken.png')])
    other = tmp_path / 'other.py'
    other.write_text(f'model = {tiny_cfg(backbone=dict(img_size=16))!r}\n')
    with pytest.raises((SystemExit, RuntimeError), match='size mismatch|does not fit'):
        tool.main([str(other), ckpt, *images])

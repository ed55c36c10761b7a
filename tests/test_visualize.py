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
    # per seed: a 24-px title band, then 2 image rows of 128 px (32 px enlarged 4x,
    # gaps 2); 4 seeds apart; 4 columns of 128 px
    per_seed = 24 + 2 * 130 - 2
    assert fig.shape == (2 * per_seed + 4, 4 * 130 - 2, 3)
    assert (cv2.imread(out)[..., ::-1] == fig).all()
    seed0, seed1 = fig[:per_seed], fig[per_seed + 4:]
    orig = slice(3 * 130, 4 * 130 - 2)
    assert (seed0[:, orig] == seed1[:, orig]).all()  # same originals
    assert (seed0[24:, :128] != seed1[24:, :128]).any()  # different masks
    # nearest-neighbour enlargement: every 4x4 block of a cell is one pixel
    cell = seed0[24:24 + 128, orig]
    assert (cell == cell[::4, ::4].repeat(4, 0).repeat(4, 1)).all()
    assert (seed0[:24] < 255).any() and (seed0[:24] == 255).mean() > 0.8  # titles drawn
    again = tool.main([cfg, ckpt, *images, '--seeds', '0', '--out', out, '--scale', '1'])
    assert (again == seed0).all()  # a seed always draws the same mask


def test_emae_shows_every_view(tmp_path, setup, capsys):
    make, images = setup
    cfg, ckpt = make(type='EMAE', masker=dict(type='ParallelMasker', num_parts=2))
    fig = tool.main([cfg, ckpt, images[1], '--out', str(tmp_path / 'g.png')])
    assert fig.shape[1] == 7 * 130 - 2  # 2 views x 3 + original, cells of 128 px
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


def test_official_and_hf_whole_models_are_converted_on_the_fly(tmp_path, setup, capsys):
    from mmmim.utils.convert_mae import official_from_mmmim
    make, images = setup
    cfg, ckpt = make()
    out = str(tmp_path / 'g.png')
    ours = tool.main([cfg, ckpt, images[1], '--out', out])
    official, _ = official_from_mmmim(torch.load(ckpt)['state_dict'])
    torch.save({'model': official}, tmp_path / 'official.pth')
    theirs = tool.main([cfg, str(tmp_path / 'official.pth'), images[1], '--out', out])
    assert 'mae-full layout, converted to mmmim' in capsys.readouterr().out
    assert (ours == theirs).all()
    # an encoder-only file cannot reconstruct
    enc = {k: v for k, v in torch.load(ckpt)['state_dict'].items() if k.startswith('backbone.')}
    torch.save({'state_dict': enc}, tmp_path / 'enc.pth')
    with pytest.raises(SystemExit, match='encoder only.*decoder'):
        tool.main([cfg, str(tmp_path / 'enc.pth'), images[1], '--out', out])

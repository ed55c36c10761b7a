import json

import numpy as np
import torch
from mmengine.dataset import BaseDataset

from mmmim.engine.hooks import LinearProbeHook, ReconstructionVisHook, reconstruction_grid
from conftest import build_tiny


def test_reconstruction_grid_layout_and_content():
    model = build_tiny()
    torch.manual_seed(0)
    img = torch.randn(3, 1, 32, 32)
    grid = reconstruction_grid(model, img, seed=1, gap=2, min_cell=32, titles=False)
    # 3 rows; columns: masked, reconstruction, pasted, original
    assert grid.shape == (3 * 34 - 2, 4 * 34 - 2, 3) and grid.dtype == np.uint8
    mean, std = 127.5, 127.5
    original = (img * std + mean).clamp(0, 255).round().byte()[:, 0].numpy()
    assert np.array_equal(grid[:32, 3 * 34:3 * 34 + 32, 0], original[0])
    # the same seed draws the same plan: visible pixels are shown as they are
    from mmmim.models.heads import unpatchify
    torch.manual_seed(1)
    plan = model.masker(model.backbone.embed(img))
    hidden = unpatchify(plan.mask[..., None].expand(-1, -1, 16), 4, (8, 8), 1)[0, 0].bool().numpy()
    pasted, masked = grid[:32, 2 * 34:2 * 34 + 32, 0], grid[:32, :32, 0]
    assert np.array_equal(pasted[~hidden], original[0][~hidden])
    assert np.array_equal(masked[~hidden], original[0][~hidden])
    assert (masked[hidden] == masked[hidden].min()).all()  # masked patches drawn flat
    assert not np.array_equal(pasted[hidden], original[0][hidden])  # predicted, not copied
    # same seed, same masks; other seed, other masks
    again = reconstruction_grid(model, img, seed=1, gap=2, min_cell=32, titles=False)
    other = reconstruction_grid(model, img, seed=2, gap=2, min_cell=32, titles=False)
    assert np.array_equal(grid, again)
    assert not np.array_equal(grid[:, :32], other[:, :32])
    # by default: cells enlarged to 128 px (nearest neighbour) under a title band
    big = reconstruction_grid(model, img, seed=1, gap=2)
    assert big.shape == (24 + 3 * 130 - 2, 4 * 130 - 2, 3)
    assert np.array_equal(big[24:24 + 128:4, :128:4], grid[:32, :32])


def test_grid_shows_every_view_of_emae():
    model = build_tiny(type='EMAE', masker=dict(type='ParallelMasker', num_parts=4))
    grid = reconstruction_grid(model, torch.randn(2, 1, 32, 32), seed=0, gap=2, min_cell=32)
    assert grid.shape[1] == (3 * 4 + 1) * 34 - 2


class _Items(BaseDataset):
    def __init__(self, n, seed):
        self.n, self.seed = n, seed
        super().__init__(pipeline=[dict(type='PackInputs')], serialize_data=False)

    def load_data_list(self):
        rng = np.random.default_rng(self.seed)
        # two classes that differ in brightness: linearly separable
        return [dict(img=(rng.integers(0, 60, (32, 32, 1)) + 150 * (i % 2)).astype(np.uint8),
                     gt_label=i % 2) for i in range(self.n)]


class _Runner:
    def __init__(self, model, work_dir):
        import logging
        self.model, self.work_dir, self.rank = model, str(work_dir), 0
        self.logger = logging.getLogger('test')
        self.iter = 0
        self.images = []

        class Vis:
            def add_image(_, name, image, step):
                self.images.append((name, image.shape, step))
        self.visualizer = Vis()


def test_hooks_write_their_outputs(tmp_path, monkeypatch):
    from mmmim.registry import DATASETS
    model = build_tiny()
    runner = _Runner(model, tmp_path)
    monkeypatch.setattr(DATASETS, 'build', lambda cfg: _Items(cfg['n'], cfg['seed']))
    ReconstructionVisHook(dataset=dict(n=4, seed=0), num_images=4).after_train(runner)
    assert (tmp_path / 'reconstruction.png').stat().st_size > 0
    assert runner.images and runner.images[0][0] == 'reconstruction'
    LinearProbeHook(train_dataset=dict(n=200, seed=1), test_dataset=dict(n=100, seed=2),
                    feature='avg').after_train(runner)
    result = json.loads((tmp_path / 'linear_probe.json').read_text())
    assert result['test_items'] == 100 and result['top1'] > 90

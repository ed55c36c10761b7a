"""Reconstruction figures (the MAE paper's masked / reconstruction / original grid)."""
import os.path as osp
from typing import Optional, Sequence

import numpy as np
import torch
from mmengine.hooks import Hook

from mmmim.registry import DATASETS, HOOKS


def column_titles(grid: np.ndarray, titles: Sequence[str], cell_w: int, gap: int) -> np.ndarray:
    """A white title band above ``grid`` with one centred title per column."""
    import cv2
    font, scale, thick = cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1
    band = np.full((24, grid.shape[1], 3), 255, np.uint8)
    for j, title in enumerate(titles):
        (tw, th), _ = cv2.getTextSize(title, font, scale, thick)
        while tw > cell_w - 4 and scale > 0.25:
            scale -= 0.05
            (tw, th), _ = cv2.getTextSize(title, font, scale, thick)
        x = j * (cell_w + gap) + max(0, (cell_w - tw) // 2)
        cv2.putText(band, title, (x, 12 + th // 2), font, scale, (0, 0, 0), thick, cv2.LINE_AA)
        scale = 0.45
    return np.concatenate([band, grid], axis=0)


@torch.no_grad()
def reconstruction_grid(model, img: torch.Tensor, seed: Optional[int] = None,
                        gap: int = 2, min_cell: int = 128, titles: bool = True) -> np.ndarray:
    """A uint8 image grid: one row per image, for every view ``[masked, reconstruction,
    reconstruction with the visible patches pasted back]``, then the original.

    Args:
        model: an mmmim algorithm with ``reconstruct``, ``head`` and ``data_preprocessor``.
        img: ``(B, C, H, W)`` images as the data preprocessor outputs them (normalised).
        seed: draws the masks from this seed (different seeds show different masks).
        min_cell: each image is enlarged by an integer factor (nearest neighbour, so the
            patches stay sharp) until it is at least this many pixels wide.
        titles: a title band naming the columns.
    """
    from mmmim.models.heads import patchify, unpatchify
    was_training = model.training
    model.eval()
    if seed is not None:
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
    plan, _, pred = model.reconstruct(img)
    if seed is not None:
        torch.random.set_rng_state(state)
    model.train(was_training)
    head, backbone = model.head, model.backbone
    k = plan.num_views
    img_k = img.repeat_interleave(k, 0)
    pred_img = unpatchify(head.to_pixels(pred.float(), img), head.patch_size,
                          backbone.patch_resolution, head.in_channels)
    mask = plan.mask[..., None].expand(-1, -1, head.patch_size**2 * head.in_channels)
    mask_img = unpatchify(mask, head.patch_size, backbone.patch_resolution, head.in_channels)
    masked = img_k * (1 - mask_img) + mask_img * img_k.amin()  # masked patches shown dark
    pasted = img_k * (1 - mask_img) + pred_img * mask_img
    pre = model.data_preprocessor
    mean = getattr(pre, 'mean', torch.zeros(1)).reshape(1, -1, 1, 1).to(img)
    std = getattr(pre, 'std', torch.ones(1)).reshape(1, -1, 1, 1).to(img)

    def to_uint8(x):
        x = (x * std + mean).clamp(0, 255).round().byte()
        return x.permute(0, 2, 3, 1).cpu().numpy()

    b, (c, h, w) = img.shape[0], img.shape[1:]
    views = [to_uint8(t).reshape(b, k, h, w, c) for t in (masked, pred_img, pasted)]
    original = to_uint8(img)
    cols, names = [], []
    for v in range(k):
        cols += [views[0][:, v], views[1][:, v], views[2][:, v]]
        tag = f' {v + 1}' if k > 1 else ''
        names += [f'masked{tag}', f'reconstruction{tag}', f'+ visible{tag}']
    cols.append(original)
    names.append('original')
    factor = max(1, -(-min_cell // w))
    if factor > 1:
        cols = [col.repeat(factor, axis=1).repeat(factor, axis=2) for col in cols]
        h, w = h * factor, w * factor
    ncol = len(cols)
    grid = np.full((b * (h + gap) - gap, ncol * (w + gap) - gap, c), 255, np.uint8)
    for i in range(b):
        for j, col in enumerate(cols):
            grid[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = col[i]
    if c == 1:
        grid = np.repeat(grid, 3, axis=2)
    return column_titles(grid, names, w, gap) if titles else grid


def first_images(model, dataset, num: int) -> torch.Tensor:
    """The first ``num`` items of a dataset, through the model's data preprocessor."""
    from mmmim.evaluation import preprocess_items
    return preprocess_items(model, [dataset[i] for i in range(min(num, len(dataset)))])


@HOOKS.register_module()
class ReconstructionVisHook(Hook):
    """Draw the reconstruction grid of a fixed set of images during/after pre-training.

    Writes ``<work_dir>/reconstruction.png`` (the latest grid) and sends the grid to the
    runner's visualizer backends (local files, TensorBoard, ...) under the name
    ``reconstruction``.

    Config keys:
        dataset (dict, optional): images to show (default: the training set's first items).
        num_images (int): rows in the grid (default 8).
        interval (int): also draw every N training iterations (0: only after training).
        seed (int): mask seed, fixed so successive grids are comparable (default 0).
    """
    priority = 'LOW'

    def __init__(self, dataset: Optional[dict] = None, num_images: int = 8, interval: int = 0,
                 seed: int = 0):
        self.dataset_cfg, self.num_images = dataset, num_images
        self.interval, self.seed = interval, seed
        self._images = None

    def _draw(self, runner, step: int):
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        if self._images is None:
            dataset = (DATASETS.build(self.dataset_cfg) if self.dataset_cfg is not None
                       else runner.train_dataloader.dataset)
            self._images = first_images(model, dataset, self.num_images)
        grid = reconstruction_grid(model, self._images, seed=self.seed)
        if runner.rank == 0:
            import mmcv
            mmcv.imwrite(grid[..., ::-1], osp.join(runner.work_dir, 'reconstruction.png'))
            runner.visualizer.add_image('reconstruction', grid, step=step)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None):
        if self.interval and self.every_n_train_iters(runner, self.interval):
            self._draw(runner, runner.iter + 1)

    def after_train(self, runner):
        self._draw(runner, runner.iter)

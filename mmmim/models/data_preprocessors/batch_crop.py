"""RandomResizedCrop and flip of a whole batch on the model's device.

Why new code: mmpretrain's ``RandomResizedCrop`` and ``RandomFlip`` are per-image
transforms that run in the data-loader workers; its data preprocessors augment batches
only by mixing them (Mixup, CutMix). For small images held in memory (Fashion-MNIST) the
per-image transforms cost more CPU than the training step itself on a GPU: one loader
worker needs 20 ms for a batch of 256 28x28 images on a Xeon core (4 ms without the two
transforms; ``tools/analysis/data_throughput.py CONFIG --loader --real``), so the
workers, not the GPU, bound how many small runs share one machine.
Here the crop boxes come from :func:`mmmim.datasets.sample_crop_boxes` (mmpretrain's box
distribution, which the JPEG paths also use) and the whole batch is cropped, resized and
flipped by one ``F.grid_sample`` call on the batch's device.
"""
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmpretrain.models.utils.data_preprocessor import SelfSupDataPreprocessor

from mmmim.datasets.input_pipeline import check_crop_ranges, sample_crop_boxes
from mmmim.registry import MODELS


@MODELS.register_module()
class BatchRandomResizedCropDataPreprocessor(SelfSupDataPreprocessor):
    """Normalise like ``SelfSupDataPreprocessor``; in training, first RandomResizedCrop
    and flip the stacked batch on its device.

    Takes what ``PackInputs`` + ``default_collate`` give for equal-size images: a uint8
    ``(B, C, H, W)`` batch (or a list of equal-size ``(C, H, W)`` tensors, stacked here).
    With ``training=True`` every image gets its own box (top, left, h, w) from
    :func:`mmmim.datasets.sample_crop_boxes`, is resized back to ``(H, W)`` and flipped
    horizontally with probability ``flip_prob``, all in one ``F.grid_sample`` call; values
    are then rounded and clipped to the uint8 range, as the images of the per-image
    transforms are, and normalised. With ``training=False`` (feature passes, the
    reconstruction visualiser, validation) the images pass unchanged to normalisation.
    Replaces ``RandomResizedCrop(scale=H) + RandomFlip`` in the training pipeline, which
    then keeps only ``PackInputs``.

    How it differs from the per-image transforms (``tests/test_batch_crop.py`` measures
    both): the same box distribution, a different random stream (drawn in the main
    process, a new generator per batch keyed by numpy's global stream, so a resumed run
    continues it exactly); resampling with PyTorch's bicubic or bilinear kernel at the
    same sample points as OpenCV's resize of the crop. Taps that fall outside a crop read
    the image's own pixels there, where OpenCV, which sees only the crop, repeats its edge
    pixel; that changes only the outermost output pixels of a crop. There is no
    antialiasing, and none is needed: the output has the input's size and a crop is
    never larger than the image, so crops are only ever enlarged.

    Config keys:
        crop_ratio_range (tuple): area fraction range, default (0.08, 1.0).
        aspect_ratio_range (tuple): default (3/4, 4/3).
        max_attempts (int): draws before the centre-crop fall-back (default 10).
        interpolation (str): 'bicubic' (default) or 'bilinear'.
        flip_prob (float): horizontal flip probability (default 0.5).
        seed (int | None): mixed into every batch's generator key (see
            :meth:`next_rng`); the crops also follow numpy's global stream, which
            ``randomness.seed`` sets, and resume with it.
        mean, std, to_rgb, bgr_to_rgb, rgb_to_bgr, non_blocking: as
            ``SelfSupDataPreprocessor``.
    """
    interpolations = ('bicubic', 'bilinear')

    def __init__(self, crop_ratio_range: Tuple[float, float] = (0.08, 1.0),
                 aspect_ratio_range: Tuple[float, float] = (3. / 4., 4. / 3.),
                 max_attempts: int = 10, interpolation: str = 'bicubic',
                 flip_prob: float = 0.5, seed: Optional[int] = None,
                 mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None,
                 to_rgb: bool = False, bgr_to_rgb: bool = False, rgb_to_bgr: bool = False,
                 non_blocking: bool = True):
        super().__init__(mean=mean, std=std, to_rgb=to_rgb, bgr_to_rgb=bgr_to_rgb,
                         rgb_to_bgr=rgb_to_bgr, non_blocking=non_blocking)
        name = type(self).__name__
        check_crop_ranges(name, crop_ratio_range, aspect_ratio_range, max_attempts)
        if interpolation not in self.interpolations:
            raise ValueError(f'{name}: interpolation={interpolation!r}; choose one of '
                             f'{list(self.interpolations)}')
        if not 0 <= flip_prob <= 1:
            raise ValueError(f'{name}: flip_prob={flip_prob}; use a probability in [0, 1]')
        self.crop_ratio_range = tuple(crop_ratio_range)
        self.aspect_ratio_range = tuple(aspect_ratio_range)
        self.max_attempts, self.interpolation = max_attempts, interpolation
        self.flip_prob, self.seed = flip_prob, seed
        self._rng = None

    def next_rng(self) -> np.random.Generator:
        """A new generator for one batch's crops and flips. Its key: a draw from numpy's
        global stream, the rank and ``seed``. mmengine's ``randomness`` seeds that stream
        and ``ResumeStateHook`` saves and restores it, so a resumed run crops its next
        batches as the uninterrupted run would; the rank gives every process its own
        crops."""
        from mmengine.dist import get_rank
        key = [int(np.random.randint(2**31)), get_rank()]
        self._rng = np.random.default_rng(key + ([] if self.seed is None else [self.seed]))
        return self._rng

    @property
    def rng(self) -> np.random.Generator:
        """The current batch's generator (training forwards start a new one)."""
        return self._rng if self._rng is not None else self.next_rng()

    def crop_boxes(self, sizes, training: bool) -> np.ndarray:
        """``(N, 4)`` boxes (top, left, h, w): random in training, else the centre crop
        within the aspect-ratio range."""
        if training:
            return sample_crop_boxes(sizes, self.crop_ratio_range, self.aspect_ratio_range,
                                     self.max_attempts, rng=self.rng)
        return sample_crop_boxes(sizes, self.crop_ratio_range, self.aspect_ratio_range, 0)

    def random_flips(self, n: int, device) -> torch.Tensor:
        """``(n,)`` bool on ``device``: which images to flip."""
        return torch.from_numpy(self.rng.uniform(size=n) < self.flip_prob).to(device)

    def crop_flip(self, batch: torch.Tensor, boxes: np.ndarray,
                  flips: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Resize ``boxes`` of a float ``(B, C, H, W)`` batch in pixel units back to
        ``(H, W)``, mirror the ``flips`` rows, round and clip to the uint8 range.

        Output pixel ``j`` of a box of width ``w`` at ``left`` samples the image at
        ``left + (j + 0.5) * w / W`` (pixel edges at integers), where OpenCV's resize of
        the crop samples it too."""
        n, _, height, width = batch.shape
        box = torch.as_tensor(boxes, dtype=torch.float32).to(batch.device)
        top, left, h, w = box.unbind(1)
        cols = torch.arange(width, device=batch.device, dtype=torch.float32) + 0.5
        rows = torch.arange(height, device=batch.device, dtype=torch.float32) + 0.5
        x = left[:, None] + cols * (w / width)[:, None]  # (B, W) source x of each column
        y = top[:, None] + rows * (h / height)[:, None]  # (B, H)
        if flips is not None:
            x = torch.where(flips[:, None], x.flip(1), x)
        gx = (2 * x / width - 1)[:, None, :].expand(n, height, width)
        gy = (2 * y / height - 1)[:, :, None].expand(n, height, width)
        out = F.grid_sample(batch, torch.stack([gx, gy], -1), mode=self.interpolation,
                            padding_mode='border', align_corners=False)
        return out.clamp_(0, 255).round_()

    def forward(self, data: dict, training: bool = False) -> dict:
        if not training:
            return super().forward(data, training)
        inputs, samples = self.cast_data([data['inputs'], data.get('data_samples')])
        if isinstance(inputs, (list, tuple)):
            shapes = {tuple(t.shape) for t in inputs}
            if len(shapes) != 1 or not all(isinstance(t, torch.Tensor) for t in inputs):
                raise ValueError(f'{type(self).__name__}: the batch must be equal-size '
                                 f'(C, H, W) images, got shapes {sorted(shapes)}; resize them '
                                 f'in the pipeline, or use RandomResizedCrop there and '
                                 f'SelfSupDataPreprocessor')
            inputs = torch.stack(list(inputs))
        if inputs.dim() != 4:
            raise ValueError(f'{type(self).__name__}: expected a (B, C, H, W) batch, got '
                             f'shape {tuple(inputs.shape)}')
        if self._channel_conversion:
            inputs = inputs[:, [2, 1, 0], ...]
        sizes = np.tile(np.array(inputs.shape[-2:]), (len(inputs), 1))
        self.next_rng()
        flips = self.random_flips(len(inputs), inputs.device) if self.flip_prob > 0 else None
        batch = self.crop_flip(inputs.float(), self.crop_boxes(sizes, True), flips)
        if self._enable_normalize:
            batch = (batch - self.mean) / self.std
        return {'inputs': batch, 'data_samples': samples}

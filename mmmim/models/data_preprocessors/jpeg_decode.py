"""GPU side of the GPU-decode input path: decode a batch of JPEG bytes on the model's
device, RandomResizedCrop, flip and normalise there.

Why new code: mmpretrain's and mmengine's data preprocessors take decoded, equally sized
images; torchvision has the batched decoder (``torchvision.io.decode_jpeg(device=...)``)
but nothing that ties it to a data loader, to RandomResizedCrop's box distribution or to
``SafeLoadImageFromFile``'s handling of bad files.
"""
import io
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.logging import print_log

from mmmim.datasets.transforms import ON_ERROR, ImageLoadError
from mmmim.registry import MODELS
from .batch_crop import BatchRandomResizedCropDataPreprocessor

_checked_devices = set()


def _tiny_jpeg() -> torch.Tensor:
    from PIL import Image
    buf = io.BytesIO()
    Image.new('RGB', (16, 16), (120, 60, 30)).save(buf, 'JPEG')
    return torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)


def check_jpeg_decode_device(device) -> None:
    """Raise a clear error when torchvision cannot decode JPEGs on ``device``.

    Decodes a 16x16 JPEG there once per device and process; CUDA decoding needs a CUDA
    build of torchvision (with nvjpeg) matching torch.
    """
    device = torch.device(device)
    if str(device) in _checked_devices:
        return
    try:
        import torchvision
        from torchvision.io import ImageReadMode, decode_jpeg
    except ImportError as e:
        raise ImportError(f'JpegDecodeDataPreprocessor needs torchvision ({e}); install the '
                          f'torchvision that matches torch {torch.__version__}, or use the '
                          f'CPU path (LoadRandomResizedCrop + SelfSupDataPreprocessor)') from e
    try:
        out = decode_jpeg([_tiny_jpeg()], mode=ImageReadMode.RGB, device=device)[0]
        if tuple(out.shape) != (3, 16, 16):
            raise RuntimeError(f'decoded shape {tuple(out.shape)} instead of (3, 16, 16)')
    except Exception as e:  # no nvjpeg, CPU-only wheel, unsupported device
        raise RuntimeError(
            f'JpegDecodeDataPreprocessor: torchvision {torchvision.__version__} cannot decode '
            f'JPEGs on {device} ({type(e).__name__}: {str(e)[:200]}). Install a CUDA build of '
            f'torchvision that matches torch {torch.__version__} (the wheels from '
            f'download.pytorch.org/whl/cu<version> include nvjpeg), or use the CPU path: '
            f'LoadRandomResizedCrop in the pipeline and SelfSupDataPreprocessor '
            f'(configs/mae/vit-b_800e.py)') from e
    _checked_devices.add(str(device))


@MODELS.register_module()
class JpegDecodeDataPreprocessor(BatchRandomResizedCropDataPreprocessor):
    """Decode JPEG bytes on the model's device, RandomResizedCrop, flip, normalise.

    Takes what ``LoadJpegBytes`` + ``PackInputs`` + ``pseudo_collate`` give: a list of
    1-D uint8 tensors (file bytes) and, for files the worker had to decode itself (e.g. a
    PNG), uint8 CHW RGB tensors. The bytes are decoded in one batched
    ``torchvision.io.decode_jpeg`` call on the preprocessor's device (CUDA: nvjpeg; on CPU
    the same path runs with libjpeg, which is what the tests use), always to RGB (grey
    and CMYK JPEGs are converted). Crop boxes come from
    :func:`mmmim.datasets.sample_crop_boxes`, the distribution of mmpretrain's
    ``RandomResizedCrop`` that the CPU path also uses; each crop is resized with
    ``F.interpolate`` (antialiased), rounded and clipped to the uint8 range as the CPU
    path's images are, flipped with probability ``flip_prob`` and normalised.

    A JPEG that cannot be decoded is handled as ``SafeLoadImageFromFile`` does:
    ``on_error='raise'`` raises :class:`ImageLoadError` naming the file;
    ``on_error='skip'`` logs the file and drops it from the batch (the batch is one image
    smaller; a batch with no image left raises). When a batched decode fails, the images
    are decoded one by one to find the bad ones; one the device's decoder rejects but
    libjpeg on the CPU accepts (e.g. CMYK on some nvjpeg versions) is decoded on the CPU.

    With ``training=False`` (e.g. the reconstruction visualiser) the crop is the centre
    crop within the aspect-ratio range, resized, without flip.

    Config keys:
        size (int | (h, w)): output size (default 224).
        crop_ratio_range (tuple): area fraction range, default (0.08, 1.0); MAE uses
            (0.2, 1.0).
        aspect_ratio_range (tuple): default (3/4, 4/3).
        max_attempts (int): draws before the centre-crop fall-back (default 10).
        interpolation (str): 'bicubic' (default), 'bilinear' or 'area'.
        flip_prob (float): horizontal flip probability (default 0.5).
        on_error (str): 'raise' (default) or 'skip'.
        mean, std (sequence): RGB order, as ``SelfSupDataPreprocessor`` with
            ``to_rgb=True``. Decoded images are RGB, so ``to_rgb`` / ``bgr_to_rgb`` are
            accepted (for configs that inherit them) and change nothing;
            ``rgb_to_bgr=True`` is refused.
        seed (int | None): mixed into every batch's generator key, as in
            :class:`BatchRandomResizedCropDataPreprocessor` (a new generator per batch
            keyed by numpy's global stream and the rank: resumes exactly).
    """

    interpolations = ('bicubic', 'bilinear', 'area')

    def __init__(self, size=224, crop_ratio_range: Tuple[float, float] = (0.08, 1.0),
                 aspect_ratio_range: Tuple[float, float] = (3. / 4., 4. / 3.),
                 max_attempts: int = 10, interpolation: str = 'bicubic',
                 flip_prob: float = 0.5, on_error: str = 'raise',
                 mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None,
                 to_rgb: bool = False, bgr_to_rgb: bool = False, rgb_to_bgr: bool = False,
                 seed: Optional[int] = None, non_blocking: bool = True):
        name = type(self).__name__
        if rgb_to_bgr:
            raise ValueError(f'{name}: rgb_to_bgr=True is not supported: decoded images are '
                             f'RGB; give mean/std in RGB order')
        super().__init__(crop_ratio_range, aspect_ratio_range, max_attempts, interpolation,
                         flip_prob, seed, mean=mean, std=std, non_blocking=non_blocking)
        self._channel_conversion = False
        if on_error not in ON_ERROR:
            raise ValueError(f'{name}: on_error={on_error!r}; choose one of {list(ON_ERROR)}')
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.on_error = on_error
        self.skipped: List[str] = []
        check_jpeg_decode_device('cpu')  # torchvision present and able to decode at all

    # -- decoding -------------------------------------------------------------------
    def _bad(self, path: str, problem: str) -> None:
        if self.on_error == 'raise':
            raise ImageLoadError(f'{path}: {problem}; replace or delete the file, or set '
                                 f"on_error='skip' in LoadJpegBytes and {type(self).__name__} "
                                 f'to skip such files')
        self.skipped.append(path)
        print_log(f'{type(self).__name__}: skipping {path}: {problem} ({len(self.skipped)} '
                  f'file(s) skipped so far in this process)', logger='current', level=30)

    def _decode_one(self, data: torch.Tensor, device) -> Optional[torch.Tensor]:
        from torchvision.io import ImageReadMode, decode_jpeg
        try:
            return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
        except Exception:
            if device.type == 'cpu':
                return None
        try:  # the device's decoder may lack a colour space libjpeg has (CMYK)
            return decode_jpeg(data.cpu(), mode=ImageReadMode.RGB).to(device)
        except Exception:
            return None

    def decode(self, inputs: List[torch.Tensor], paths: List[str]) -> List[Optional[torch.Tensor]]:
        """Decoded uint8 CHW RGB images on the device; None where a file is bad."""
        from torchvision.io import ImageReadMode, decode_jpeg
        device = self.device
        if device.type != 'cpu':
            check_jpeg_decode_device(device)
        out: List[Optional[torch.Tensor]] = [None] * len(inputs)
        idx = [i for i, t in enumerate(inputs) if t.dim() == 1]
        for i, t in enumerate(inputs):
            if t.dim() == 3:  # decoded by the worker (not a JPEG)
                out[i] = t.to(device, non_blocking=self._non_blocking)
            elif t.dim() != 1:
                raise ValueError(f'{type(self).__name__}: input {i} has shape '
                                 f'{tuple(t.shape)}; expected file bytes (1-D uint8) from '
                                 f'LoadJpegBytes with collate_fn=pseudo_collate')
        if idx:
            data = [inputs[i] for i in idx]
            try:
                imgs = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
            except Exception:  # at least one bad file: find it
                imgs = [self._decode_one(d, device) for d in data]
            for i, img in zip(idx, imgs):
                out[i] = img
                if img is None:
                    self._bad(paths[i], 'is corrupt or truncated (cannot be decoded)')
        return out

    # -- crop, resize, flip, normalise ----------------------------------------------
    def crop_resize(self, imgs: List[torch.Tensor], boxes: np.ndarray) -> torch.Tensor:
        """Resize ``boxes`` (top, left, h, w) of ``imgs`` to ``size``: float (B, 3, h, w)
        with uint8 values (rounded, clipped), like the CPU path's images."""
        out = torch.empty((len(imgs), 3) + self.size, dtype=torch.float32, device=self.device)
        kw = dict(antialias=True, align_corners=False) if self.interpolation != 'area' else {}
        for k, (img, (top, left, h, w)) in enumerate(zip(imgs, boxes.tolist())):
            crop = img[:, top:top + h, left:left + w].unsqueeze(0).float()
            out[k] = F.interpolate(crop, size=self.size, mode=self.interpolation, **kw)[0]
        return out.clamp_(0, 255).round_()

    def forward(self, data: dict, training: bool = False) -> dict:
        inputs, samples = data['inputs'], data.get('data_samples')
        if isinstance(inputs, torch.Tensor) and inputs.dim() == 4:
            raise ValueError(f'{type(self).__name__}: got a stacked image batch; it takes '
                             f'file bytes: use LoadJpegBytes in the pipeline and '
                             f'collate_fn=dict(type="pseudo_collate")')
        n = len(inputs)
        paths = [getattr(s, 'img_path', None) or f'batch item {i}' if s is not None
                 else f'batch item {i}' for i, s in enumerate(samples or [None] * n)]
        imgs = self.decode(list(inputs), paths)
        keep = [i for i, img in enumerate(imgs) if img is not None]
        if not keep:
            raise ImageLoadError(f'{type(self).__name__}: no image of the batch could be '
                                 f'decoded ({", ".join(paths)})')
        imgs = [imgs[i] for i in keep]
        if samples is not None and len(keep) < n:
            samples = [samples[i] for i in keep]
        sizes = [tuple(img.shape[1:]) for img in imgs]
        if training:
            self.next_rng()
        batch = self.crop_resize(imgs, self.crop_boxes(sizes, training))
        if training and self.flip_prob > 0:
            flip = self.random_flips(len(imgs), batch.device)
            batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
        if self._enable_normalize:
            batch = (batch - self.mean) / self.std
        if samples is not None:
            samples = self.cast_data(samples)
        return {'inputs': batch, 'data_samples': samples}

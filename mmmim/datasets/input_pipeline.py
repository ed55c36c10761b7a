"""Faster input paths for ImageNet-style pre-training: one crop sampler, two loaders.

Why new code: mmpretrain's pipeline decodes every JPEG at full size, then crops and
resizes it (``LoadImageFromFile`` + ``RandomResizedCrop``) with Pillow's resize, which
is the largest cost for ImageNet-sized images (the full image is also converted to and
from Pillow on the way); a large image is decoded at full size only to be shrunk. Neither mmpretrain, mmcv nor torchvision offers a crop that picks its box before
decoding (so that libjpeg can decode at a reduced DCT scale), nor a pipeline that leaves
decoding to the GPU.

- :func:`sample_crop_boxes`: RandomResizedCrop's box distribution (mmpretrain's
  semantics, including its fall-back to a centre crop after ``max_attempts`` failed
  draws), vectorised over a batch, for :class:`mmmim.models.JpegDecodeDataPreprocessor`
  (GPU path). For one image at a time the CPU path calls mmpretrain's own sampler.
- :class:`LoadRandomResizedCrop` (CPU path): picks the box from the header's image size,
  decodes a JPEG at the largest DCT scale that still leaves the crop at least the output
  size (OpenCV's reduced decode modes), resizes only the crop with torch's antialiased
  uint8 resize, and returns uint8 HWC BGR like ``LoadImageFromFile`` +
  ``RandomResizedCrop``.
- :class:`LoadJpegBytes` (GPU path): the worker only reads the file; the data
  preprocessor decodes the batch on the GPU and crops, flips and normalises there.

Both loaders are :class:`SafeLoadImageFromFile` subclasses and handle bad files the same
way (``on_error='raise'`` names the file; ``'skip'`` logs it and drops the sample).
"""
import io
import math
from typing import Optional, Sequence, Tuple, Union

import cv2
import mmcv
import numpy as np
import torch
import torch.nn.functional as F
from mmcv.image.geometric import cv2_interp_codes
from mmpretrain.datasets.transforms import RandomResizedCrop as MMPretrainRandomResizedCrop
from PIL import Image

from mmmim.registry import TRANSFORMS
from .transforms import SafeLoadImageFromFile

PIL_INTERP = dict(nearest=Image.NEAREST, bilinear=Image.BILINEAR, bicubic=Image.BICUBIC,
                  area=Image.BOX, lanczos=Image.LANCZOS)
# cv2 decode flags by DCT reduction factor (libjpeg scales 1/2, 1/4, 1/8 while decoding)
_CV2_COLOR = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2,
              4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}
_CV2_GREY = {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
             4: cv2.IMREAD_REDUCED_GRAYSCALE_4, 8: cv2.IMREAD_REDUCED_GRAYSCALE_8}
_GREY_MODES = ('1', 'L', 'LA', 'I', 'I;16', 'F')
# JPEG start-of-frame markers (baseline, extended, progressive, lossless, arithmetic...):
# 0xC0-0xCF without DHT (C4), JPG (C8) and DAC (CC)
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def jpeg_frame_size(data: bytes) -> Optional[Tuple[int, int, int]]:
    """``(height, width, components)`` from a JPEG's start-of-frame segment, or None when
    ``data`` is not a JPEG, has an EXIF segment (which may rotate the image: the caller
    then asks Pillow) or ends before its frame header.

    Why: Pillow's header parse (``Image.open`` + ``getexif``) costs about as much as the
    crop's resize in the fast path (0.1-0.2 ms per 500x375 photo on one core), and a
    walk over the segment markers is all that is needed when there is no EXIF.
    """
    n = len(data)
    if n < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    i = 2
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # segments without a length
            i += 2
            continue
        if marker == 0xDA or marker == 0xD9:  # scan data or the end before any frame
            return None
        length = (data[i + 2] << 8) | data[i + 3]
        if marker == 0xE1 and data[i + 4:i + 10] == b'Exif\x00\x00':
            return None
        if marker in _SOF:
            if i + 10 > n:
                return None
            return ((data[i + 5] << 8) | data[i + 6], (data[i + 7] << 8) | data[i + 8],
                    data[i + 9])
        i += 2 + length
    return None


def check_crop_ranges(owner: str, crop_ratio_range, aspect_ratio_range, max_attempts):
    """Config-time check of RandomResizedCrop's ranges; the message names the fix."""
    lo, hi = crop_ratio_range
    if not 0 < lo <= hi <= 1:
        raise ValueError(f'{owner}: crop_ratio_range={tuple(crop_ratio_range)}; it is the '
                         f'(min, max) fraction of the image area, 0 < min <= max <= 1, '
                         f'e.g. (0.2, 1.0)')
    lo, hi = aspect_ratio_range
    if not 0 < lo <= hi:
        raise ValueError(f'{owner}: aspect_ratio_range={tuple(aspect_ratio_range)}; use '
                         f'(min, max) with 0 < min <= max, e.g. (3/4, 4/3)')
    if not (isinstance(max_attempts, int) and max_attempts >= 0):
        raise ValueError(f'{owner}: max_attempts={max_attempts!r}; use an int >= 0')


def sample_crop_boxes(sizes, crop_ratio_range: Tuple[float, float] = (0.08, 1.0),
                      aspect_ratio_range: Tuple[float, float] = (3. / 4., 4. / 3.),
                      max_attempts: int = 10, rng=None) -> np.ndarray:
    """RandomResizedCrop boxes for images of ``sizes`` (``(N, 2)`` as ``(h, w)``).

    The distribution is mmpretrain ``RandomResizedCrop.rand_crop_params``': per image, up
    to ``max_attempts`` draws of an area fraction ~ U(crop_ratio_range) and a log aspect
    ratio ~ U(log aspect_ratio_range); the first box that fits is placed uniformly; when
    none fits, the centre crop clipped to the aspect-ratio range. Draws are made for all
    attempts at once (vectorised), so the random stream differs from mmpretrain's, the
    distribution does not.

    Args:
        rng: a ``numpy.random.Generator``; None uses numpy's global state (seeded per
            data-loader worker by mmengine, as mmpretrain's transform is).

    Returns:
        int64 array ``(N, 4)``: ``(top, left, height, width)`` per image.
    """
    rng = np.random if rng is None else rng
    sizes = np.asarray(sizes, dtype=np.int64).reshape(-1, 2)
    n = len(sizes)
    h = sizes[:, 0:1].astype(np.float64)
    w = sizes[:, 1:2].astype(np.float64)
    th = np.zeros(n)
    tw = np.zeros(n)
    found = np.zeros(n, dtype=bool)
    if max_attempts > 0:
        area = rng.uniform(crop_ratio_range[0], crop_ratio_range[1], (n, max_attempts)) * h * w
        ratio = np.exp(rng.uniform(math.log(aspect_ratio_range[0]),
                                   math.log(aspect_ratio_range[1]), (n, max_attempts)))
        cw = np.round(np.sqrt(area * ratio))  # round half to even, as Python's round()
        ch = np.round(np.sqrt(area / ratio))
        ok = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
        first = ok.argmax(1)
        found = ok.any(1)
        rows = np.arange(n)
        th, tw = ch[rows, first], cw[rows, first]
    u = rng.uniform(0.0, 1.0, (n, 2))
    h, w = h[:, 0], w[:, 0]
    top = np.floor(u[:, 0] * (h - th + 1))
    left = np.floor(u[:, 1] * (w - tw + 1))
    if not found.all():  # mmpretrain's fall-back: centre crop within the ratio range
        lo, hi = min(aspect_ratio_range), max(aspect_ratio_range)
        nf = ~found
        fh, fw = h[nf], w[nf]
        in_ratio = fw / fh
        cw, ch = fw.copy(), fh.copy()
        narrow, wide = in_ratio < lo, in_ratio > hi
        ch[narrow] = np.round(fw[narrow] / lo)
        cw[wide] = np.round(fh[wide] * hi)
        th[nf], tw[nf] = ch, cw
        top[nf] = (fh - ch) // 2
        left[nf] = (fw - cw) // 2
    return np.stack([top, left, th, tw], 1).astype(np.int64)


def _pair(scale) -> Tuple[int, int]:
    if isinstance(scale, int):
        return scale, scale
    h, w = scale
    return int(h), int(w)


@TRANSFORMS.register_module()
class LoadRandomResizedCrop(SafeLoadImageFromFile):
    """Load an image file and take a RandomResizedCrop of it in one step (fast CPU path).

    Replaces ``LoadImageFromFile`` + ``RandomResizedCrop`` in a pipeline. The crop box is
    drawn from the image size in the file's header (:func:`jpeg_frame_size`) by
    mmpretrain's own ``RandomResizedCrop`` sampler. A JPEG is decoded (OpenCV,
    as ``LoadImageFromFile``, EXIF orientation applied) at the largest DCT scale (1/2,
    1/4, 1/8) at which the crop still has at least the output's pixels in each
    direction; only the crop is resized, with torch's antialiased uint8 resize
    (``backend='torch'``, default: about 3x faster than Pillow's and within 3 grey levels
    of it, 0.05 on average), with Pillow (``backend='pillow'``: equal to
    ``LoadImageFromFile`` + ``RandomResizedCrop(backend='pillow')`` on the same box when
    the decode is not reduced) or with OpenCV through ``mmcv.imresize``
    (``backend='cv2'``: equal to ``RandomResizedCrop(backend='cv2')``, mmpretrain's
    default resize; 3-4x faster than torch's but not antialiased, so a downscaled crop of
    a detailed image aliases: on average 2, at most 27 grey levels from Pillow's bicubic
    on photo-like files; docs/speed.md measures all three). The image stays uint8 HWC,
    BGR like ``LoadImageFromFile`` gives, for data preprocessors with ``to_rgb=True``.

    Bad files are handled as :class:`SafeLoadImageFromFile` does (``on_error``); grey,
    CMYK or alpha images are converted to ``channels`` (with a note for grey).

    Config keys:
        scale (int | (h, w)): output size, as ``RandomResizedCrop.scale`` (e.g. 224).
        crop_ratio_range (tuple): area fraction range, default (0.08, 1.0); MAE uses
            (0.2, 1.0).
        aspect_ratio_range (tuple): default (3/4, 4/3).
        max_attempts (int): draws before the centre-crop fall-back, default 10.
        interpolation (str): 'bicubic' (default) or 'bilinear' (every backend);
            'nearest', 'area', 'lanczos' with ``backend='pillow'`` or ``'cv2'``.
        backend (str): 'torch' (default), 'pillow' or 'cv2', the resize (see above).
        reduced_decode (bool): decode JPEGs at reduced DCT scale when the crop allows it
            without going below the output size (default True).
        on_error (str): 'raise' (default) or 'skip', as ``SafeLoadImageFromFile``.
        channels (int): 3 (default, BGR) or 1 (grey).
    """

    def __init__(self, scale: Union[int, Sequence[int]],
                 crop_ratio_range: Tuple[float, float] = (0.08, 1.0),
                 aspect_ratio_range: Tuple[float, float] = (3. / 4., 4. / 3.),
                 max_attempts: int = 10, interpolation: str = 'bicubic',
                 backend: str = 'torch', reduced_decode: bool = True,
                 on_error: str = 'raise', channels: int = 3,
                 backend_args: Optional[dict] = None):
        name = type(self).__name__
        if channels not in (1, 3):
            raise ValueError(f'{name}: channels={channels!r}; use 3 (BGR) or 1 (grey)')
        super().__init__(on_error=on_error, channels=channels, backend_args=backend_args)
        check_crop_ranges(name, crop_ratio_range, aspect_ratio_range, max_attempts)
        if backend not in ('torch', 'pillow', 'cv2'):
            raise ValueError(f"{name}: backend={backend!r}; use 'torch', 'pillow' or 'cv2'")
        allowed = dict(torch=('bicubic', 'bilinear'), pillow=tuple(PIL_INTERP),
                       cv2=tuple(cv2_interp_codes))[backend]
        if interpolation not in allowed:
            raise ValueError(f'{name}: interpolation={interpolation!r} with backend='
                             f'{backend!r}; choose one of {list(allowed)}')
        self.scale = _pair(scale)
        self.crop_ratio_range = tuple(crop_ratio_range)
        self.aspect_ratio_range = tuple(aspect_ratio_range)
        self.max_attempts = max_attempts
        self._sampler = MMPretrainRandomResizedCrop(
            self.scale, crop_ratio_range=self.crop_ratio_range,
            aspect_ratio_range=self.aspect_ratio_range, max_attempts=max_attempts)
        self.interpolation, self.resize_backend = interpolation, backend
        self.reduced_decode = reduced_decode

    def sample_box(self, h: int, w: int) -> np.ndarray:
        """One ``(top, left, height, width)`` box for an ``h x w`` image, drawn by
        mmpretrain's own ``RandomResizedCrop.rand_crop_params`` (the same boxes as
        mmpretrain's pipeline from the same numpy seed; for one image its scalar loop is
        cheaper than :func:`sample_crop_boxes`' vectorised draw, which serves batches)."""
        return np.array(self._sampler.rand_crop_params(np.empty((h, w, 0), np.uint8)))

    def reduction(self, box) -> int:
        """The largest of 8, 4, 2, 1 that leaves the box >= the output size."""
        out_h, out_w = self.scale
        th, tw = int(box[2]), int(box[3])
        for factor in (8, 4, 2):
            if th >= factor * out_h and tw >= factor * out_w:
                return factor
        return 1

    def resize(self, img: np.ndarray, box, factor: int = 1) -> np.ndarray:
        """Resize ``box`` (full-resolution top, left, h, w) of ``img`` (decoded at
        ``1/factor``) to ``scale``; uint8 HWC (or HW) in, the same layout out."""
        top, left, th, tw = (int(v) for v in box)
        out_h, out_w = self.scale
        # the box in the reduced image, to the nearest reduced pixel (exact when factor 1)
        y0, x0 = int(round(top / factor)), int(round(left / factor))
        y1 = min(int(round((top + th) / factor)), img.shape[0])
        x1 = min(int(round((left + tw) / factor)), img.shape[1])
        crop = img[y0:y1, x0:x1]
        if self.resize_backend == 'pillow':
            out = Image.fromarray(np.ascontiguousarray(crop)).resize(
                (out_w, out_h), PIL_INTERP[self.interpolation])
            return np.asarray(out)
        if self.resize_backend == 'cv2':  # what RandomResizedCrop(backend='cv2') calls
            return mmcv.imresize(crop, (out_w, out_h), interpolation=self.interpolation,
                                 backend='cv2')
        t = torch.from_numpy(np.ascontiguousarray(crop) if crop.ndim == 2 else crop)
        t = t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]
        out = F.interpolate(t, size=(out_h, out_w), mode=self.interpolation, antialias=True,
                            align_corners=False)
        return out[0, 0].numpy() if img.ndim == 2 else out[0].permute(1, 2, 0).numpy()

    def read_header(self, data: bytes) -> Tuple[int, int, bool, str]:
        """``(height, width, grey, format)`` from the file's header (EXIF rotation applied,
        as OpenCV's decode applies it); raises on a file Pillow cannot identify. A JPEG
        without EXIF is read by :func:`jpeg_frame_size`, anything else by Pillow."""
        frame = jpeg_frame_size(data)
        if frame is not None and frame[0] > 0 and frame[1] > 0:
            return frame[0], frame[1], frame[2] == 1, 'JPEG'
        head = Image.open(io.BytesIO(data))  # reads the header only
        width, height = head.size
        if head.format == 'JPEG' and head.getexif().get(0x0112, 1) in (5, 6, 7, 8):
            width, height = height, width
        return height, width, head.mode in _GREY_MODES, head.format

    def decode(self, data: bytes, factor: int = 1) -> Optional[np.ndarray]:
        """OpenCV's decode at ``1/factor`` (libjpeg's DCT scaling); None when it fails."""
        flags = _CV2_COLOR if self.channels == 3 else _CV2_GREY
        return cv2.imdecode(np.frombuffer(data, np.uint8), flags[factor])

    def transform(self, results: dict) -> Optional[dict]:
        path = results['img_path']
        data = self._read(path)
        if data is None:
            return None
        bad = ('is corrupt or truncated (cannot be decoded)', 'replace or delete the file')
        try:
            height, width, grey, fmt = self.read_header(data)
        except Exception:  # Pillow raises many kinds of errors for broken files
            return self._fail(path, *bad)
        if grey != (self.channels == 1):
            self._note_conversion(path, 1 if grey else 3)
        box = self.sample_box(height, width)
        factor = self.reduction(box) if self.reduced_decode and fmt == 'JPEG' else 1
        img = self.decode(data, factor)
        if img is not None and factor > 1 and img.shape[:2] != (
                -(-height // factor), -(-width // factor)):
            factor = 1  # the header's size was not the decoded one: decode in full
            img = self.decode(data)
        if img is None:
            return self._fail(path, *bad)
        if factor == 1 and img.shape[:2] != (height, width):
            box = self.sample_box(*img.shape[:2])
        img = self.resize(img, box, factor)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = (height, width)
        results['crop_box'] = box
        return results

    def __repr__(self):
        return (f'{type(self).__name__}(scale={self.scale}, crop_ratio_range='
                f'{self.crop_ratio_range}, aspect_ratio_range={self.aspect_ratio_range}, '
                f'interpolation={self.interpolation!r}, backend={self.resize_backend!r}, '
                f'reduced_decode={self.reduced_decode}, on_error={self.on_error!r})')


JPEG_SOI = b'\xff\xd8\xff'


@TRANSFORMS.register_module()
class LoadJpegBytes(SafeLoadImageFromFile):
    """Read an image file's bytes for decoding on the GPU (worker side of the GPU path).

    The worker does no decoding: ``results['img']`` is the file as a 1-D uint8 tensor,
    which ``PackInputs`` passes on and ``pseudo_collate`` keeps as a list; the model's
    :class:`mmmim.models.JpegDecodeDataPreprocessor` decodes the batch
    (``torchvision.io.decode_jpeg`` on the model's device), crops, flips and normalises.
    Use it with ``collate_fn=dict(type='pseudo_collate')``.

    A file that does not start with a JPEG marker (a PNG in a JPEG folder, say) is decoded
    here on the CPU instead, by :class:`SafeLoadImageFromFile`, and passed on as a uint8
    CHW RGB tensor, which the preprocessor crops like a decoded JPEG. An empty or
    unreadable file is handled here (``on_error``); a JPEG that turns out to be corrupt or
    truncated is handled by the preprocessor with the same ``on_error`` semantics (set
    both the same).

    Config keys:
        on_error (str): 'raise' (default) or 'skip', as ``SafeLoadImageFromFile``.
    """

    def __init__(self, on_error: str = 'raise', backend_args: Optional[dict] = None):
        super().__init__(on_error=on_error, channels=3, backend_args=backend_args)

    def transform(self, results: dict) -> Optional[dict]:
        path = results['img_path']
        data = self._read(path)
        if data is None:
            return None
        if data[:3] == JPEG_SOI:
            img = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        else:  # not a JPEG: decode it here, as SafeLoadImageFromFile does
            results = super().transform(results)
            if results is None:
                return None
            img = torch.from_numpy(np.ascontiguousarray(
                results['img'][..., ::-1].transpose(2, 0, 1)))
            results['img_shape'] = tuple(img.shape[1:])
        results['img'] = img
        return results

"""Image loading that survives (or clearly reports) bad files."""
from typing import List, Optional, Sequence, Union

import cv2
import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio
from mmengine.logging import print_log

from mmmim.registry import TRANSFORMS

ON_ERROR = ('raise', 'skip')


class ImageLoadError(ValueError):
    """An image file could not be used; the message names the file and the fix."""


def convert_channels(img: np.ndarray, channels: int) -> np.ndarray:
    """``(H, W[, C])`` BGR/grey uint8 image to ``(H, W, channels)``: grey is repeated to
    3 channels, colour is converted to grey for 1, an alpha channel is dropped."""
    if img.ndim == 2:
        img = img[..., None]
    have = img.shape[2]
    if have == channels:
        return img
    if have == 4:
        img, have = img[..., :3], 3
        if channels == 3:
            return np.ascontiguousarray(img)
    if have == 1 and channels == 3:
        return np.repeat(img, 3, axis=2)
    if have == 3 and channels == 1:
        return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[..., None]
    raise ImageLoadError(f'cannot convert a {have}-channel image to {channels} channels')


@TRANSFORMS.register_module()
class SafeLoadImageFromFile(BaseTransform):
    """Load an image file like mmcv's ``LoadImageFromFile``, but never let a bad file
    crash a long run with an unhelpful decoder error.

    Why: one truncated JPEG in ImageNet stops a multi-day pre-training with a message
    that names neither the file nor the fix; a grey image among RGB ones, or an image
    of the wrong size in a pipeline without resizing, fails later in the collate step
    ("stack expects each tensor to be equal size"), far from its cause.

    Every failure names the file. With ``on_error='skip'`` the sample is dropped (the
    dataset then draws another one, as mmengine datasets do for a ``None`` sample), a
    warning names the file, and the count of skipped files is kept in
    :attr:`skipped` (per process). With ``on_error='raise'`` (default) training stops
    with :class:`ImageLoadError`.

    Config keys:
        on_error (str): ``'raise'`` (default) or ``'skip'``: what to do with a file that
            cannot be read or decoded, and with a wrong-size image when ``expect_size``
            is set.
        channels (int | None): 3 (RGB pipelines) or 1 (grey); images with another
            channel count are converted (grey repeated, colour to grey, alpha dropped),
            with a note the first time. None keeps what the file holds.
        convert_channels (bool): False makes a channel mismatch an error instead
            (default True).
        expect_size (int | tuple | None): ``(h, w)`` every image must have (for
            pipelines without a resize); None accepts any size.
        imdecode_backend (str): ``'cv2'`` (default) or ``'pillow'``.
        to_float32 (bool): as in ``LoadImageFromFile``.

    Use it in place of ``LoadImageFromFile``::

        pipeline = [dict(type='SafeLoadImageFromFile', on_error='skip', channels=3), ...]
    """

    def __init__(self, on_error: str = 'raise', channels: Optional[int] = None,
                 convert_channels: bool = True,
                 expect_size: Optional[Union[int, Sequence[int]]] = None,
                 imdecode_backend: str = 'cv2', to_float32: bool = False,
                 backend_args: Optional[dict] = None):
        if on_error not in ON_ERROR:
            raise ValueError(f'SafeLoadImageFromFile: on_error={on_error!r}; choose one of '
                             f'{list(ON_ERROR)}')
        if channels not in (None, 1, 3):
            raise ValueError(f'SafeLoadImageFromFile: channels={channels!r}; use 3 (RGB), '
                             f'1 (grey) or None (as stored)')
        if isinstance(expect_size, int):
            expect_size = (expect_size, expect_size)
        self.on_error, self.channels, self.convert = on_error, channels, convert_channels
        self.expect_size = tuple(expect_size) if expect_size is not None else None
        self.backend, self.to_float32 = imdecode_backend, to_float32
        self.backend_args = backend_args
        self.skipped: List[str] = []
        self._noted = False

    def _fail(self, path: str, problem: str, fix: str):
        if self.on_error == 'raise':
            raise ImageLoadError(f'{path}: {problem}; {fix}, or set on_error=\'skip\' in '
                                 f'SafeLoadImageFromFile to skip such files')
        self.skipped.append(path)
        print_log(f'SafeLoadImageFromFile: skipping {path}: {problem} ({len(self.skipped)} '
                  f'file(s) skipped so far in this process)', logger='current', level=30)
        return None

    def _read(self, path: str) -> Optional[bytes]:
        """The file's bytes, or what :meth:`_fail` says when it cannot be read or is empty
        (``None`` with ``on_error='skip'``). Subclasses that decode differently start here."""
        try:
            data = fileio.get(path, backend_args=self.backend_args)
        except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
            return self._fail(path, f'cannot be read ({type(e).__name__})',
                              'check the path and the dataset\'s data_root / ann_file')
        return data if data else self._fail(path, 'is empty', 'replace or delete the file')

    def _note_conversion(self, path: str, have) -> None:
        """Say once per process that images with another channel layout are converted."""
        if not self._noted:
            self._noted = True
            print_log(f'{type(self).__name__}: {path} has {have} channel(s); converting it '
                      f'(and any other such image) to {self.channels}', logger='current')

    def transform(self, results: dict) -> Optional[dict]:
        path = results['img_path']
        data = self._read(path)
        if data is None:  # unreadable or empty, and skipped (_read raised otherwise)
            return None
        try:
            img = mmcv.imfrombytes(data, flag='unchanged', backend=self.backend)
        except Exception:  # decoders raise many kinds of errors for broken files
            img = None
        if img is None:
            return self._fail(path, 'is corrupt or truncated (cannot be decoded)',
                              'replace or delete the file')
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[..., 0]
        if self.channels is not None:
            have = 1 if img.ndim == 2 else img.shape[2]
            if have != self.channels:
                if not self.convert:
                    raise ImageLoadError(
                        f'{path}: has {have} channel(s) but the pipeline expects '
                        f'{self.channels}; convert the file, or set convert_channels=True '
                        f'in SafeLoadImageFromFile')
                self._note_conversion(path, have)
                img = convert_channels(img, self.channels)
                if self.channels == 1:
                    img = img[..., 0]
        if self.expect_size is not None and tuple(img.shape[:2]) != self.expect_size:
            return self._fail(path, f'is {img.shape[0]}x{img.shape[1]} but the pipeline '
                              f'expects {self.expect_size[0]}x{self.expect_size[1]}',
                              'add a Resize / RandomResizedCrop / CenterCrop step to the '
                              'pipeline, or resize the file')
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self):
        return (f'{type(self).__name__}(on_error={self.on_error!r}, channels={self.channels}, '
                f'expect_size={self.expect_size})')

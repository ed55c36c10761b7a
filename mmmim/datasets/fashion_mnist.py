"""Fashion-MNIST read straight from the idx ``.gz`` files (real data for CPU-sized runs)."""
import gzip
import os.path as osp
from typing import List

import numpy as np
from mmpretrain.datasets import BaseDataset

from mmmim.registry import DATASETS

DEFAULT_ROOT = '/usr/share/datasets/fashion-mnist'
INSTALL_HINT = ("install it with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), "
                "or download the four idx .gz files and pass data_root=<their folder>")
CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
           'Sneaker', 'Bag', 'Ankle boot')


def read_idx(path: str) -> np.ndarray:
    """Read an idx file (optionally gzipped): big-endian header, then uint8 data."""
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f'{path} is not an idx file of unsigned bytes (corrupt or wrong file?)')
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f'{path}: header says {shape} but holds {body.size} values '
                         '(truncated file?)')
    return body.reshape(shape)


@DATASETS.register_module()
class FashionMNISTDataset(BaseDataset):
    """Fashion-MNIST (60k train / 10k test, 28x28 grey, 10 classes) from idx files.

    mmpretrain's ``FashionMNIST`` wants the uncompressed files and tries to download
    them when absent; this reader takes the ``.gz`` files where Debian's
    ``dataset-fashion-mnist`` package puts them, needs no network, and can pad the
    images so a patch size of 4 tiles them (32x32 -> 64 patches).

    Config keys:
        data_root (str): folder with ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``
            (default: the Debian package's folder).
        split (str): 'train' or 'test'.
        pad_to (int | None): zero-pad the 28x28 images, centred, to this size (default 32).
        label_fraction (float | None): keep a fixed class-balanced subset with this share
            of every class (e.g. 0.01, 0.1; see :func:`mmmim.evaluation.balanced_subset`);
            None keeps all. The subset depends only on the split's labels and
            ``subset_seed``, so every method and run sees the same images.
        subset_seed (int): the seed of that subset (default 0).
        pipeline, indices, test_mode, lazy_init: as mmengine's ``BaseDataset``.
    Each item has ``img`` (H, W, 1) uint8 and ``gt_label``.
    """
    METAINFO = {'classes': CLASSES}

    def __init__(self, data_root: str = DEFAULT_ROOT, split: str = 'train',
                 pad_to: int = 32, pipeline=(), label_fraction: float = None,
                 subset_seed: int = 0, **kwargs):
        if split not in ('train', 'test'):
            raise ValueError(f"FashionMNISTDataset: split must be 'train' or 'test', got {split!r}")
        if pad_to is not None and pad_to < 28:
            raise ValueError(f'FashionMNISTDataset: pad_to={pad_to} is smaller than the 28x28 '
                             'images; use pad_to >= 28 or None')
        if label_fraction is not None and not 0 < label_fraction <= 1:
            raise ValueError(f'FashionMNISTDataset: label_fraction must be in (0, 1] (e.g. 0.1 '
                             f'for 10% of every class) or None, got {label_fraction}')
        if label_fraction is not None and kwargs.get('indices') is not None:
            raise ValueError('FashionMNISTDataset: give label_fraction or indices, not both')
        self.split, self.pad_to = split, pad_to
        self.label_fraction, self.subset_seed = label_fraction, subset_seed
        super().__init__(ann_file='', data_root=data_root, pipeline=pipeline,
                         test_mode=split == 'test', **kwargs)

    def _find(self, stem: str) -> str:
        for name in (stem + '.gz', stem):
            path = osp.join(self.data_root, name)
            if osp.isfile(path):
                return path
        raise FileNotFoundError(f'Fashion-MNIST file {stem}[.gz] not found in '
                                f'{self.data_root!r}; {INSTALL_HINT}')

    def load_data_list(self) -> List[dict]:
        prefix = 'train' if self.split == 'train' else 't10k'
        images = read_idx(self._find(f'{prefix}-images-idx3-ubyte'))
        labels = read_idx(self._find(f'{prefix}-labels-idx1-ubyte'))
        if len(images) != len(labels):
            raise ValueError(f'Fashion-MNIST {self.split}: {len(images)} images but '
                             f'{len(labels)} labels in {self.data_root!r}')
        if self.pad_to is not None and self.pad_to > images.shape[1]:
            extra = self.pad_to - images.shape[1]
            lo = extra // 2
            images = np.pad(images, ((0, 0), (lo, extra - lo), (lo, extra - lo)))
        if self.label_fraction is not None:
            from mmmim.evaluation.subsets import balanced_subset
            keep = balanced_subset(labels, self.label_fraction, self.subset_seed)
            images, labels = images[keep], labels[keep]
        images = np.ascontiguousarray(images[..., None])
        return [dict(img=img, gt_label=int(label)) for img, label in zip(images, labels)]

import gzip
import os.path as osp

import numpy as np
import pytest
import torch

from mmmim.datasets import FashionMNISTDataset, read_idx
from mmmim.datasets.fashion_mnist import DEFAULT_ROOT
from mmmim.registry import DATASETS

HAVE_DATA = osp.isfile(osp.join(DEFAULT_ROOT, 'train-images-idx3-ubyte.gz'))


def write_idx(path, array, truncate=0):
    header = bytes([0, 0, 8, array.ndim]) + b''.join(
        int(d).to_bytes(4, 'big') for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    with gzip.open(path, 'wb') as f:
        f.write(data[:len(data) - truncate])


def make_root(tmp_path, n=5, truncate=0):
    rng = np.random.default_rng(0)
    imgs = rng.integers(1, 255, (n, 28, 28))
    labels = np.arange(n) % 10
    for split, prefix in (('train', 'train'), ('test', 't10k')):
        write_idx(tmp_path / f'{prefix}-images-idx3-ubyte.gz', imgs, truncate)
        write_idx(tmp_path / f'{prefix}-labels-idx1-ubyte.gz', labels)
    return imgs, labels


def test_reads_gz_idx_and_pads_centred(tmp_path):
    imgs, labels = make_root(tmp_path)
    ds = FashionMNISTDataset(data_root=str(tmp_path), split='train', pad_to=32)
    assert len(ds) == 5
    item = ds.get_data_info(3)
    assert item['img'].shape == (32, 32, 1) and item['gt_label'] == 3
    assert np.array_equal(item['img'][2:30, 2:30, 0], imgs[3])
    assert item['img'][:2].sum() == 0 and item['img'][:, 30:].sum() == 0
    raw = FashionMNISTDataset(data_root=str(tmp_path), split='test', pad_to=None)
    assert raw.get_data_info(0)['img'].shape == (28, 28, 1)


def test_missing_files_say_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match='apt-get install dataset-fashion-mnist'):
        FashionMNISTDataset(data_root=str(tmp_path / 'nowhere'))


def test_truncated_file_is_reported(tmp_path):
    make_root(tmp_path, truncate=10)
    with pytest.raises(ValueError, match='truncated'):
        FashionMNISTDataset(data_root=str(tmp_path))


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        FashionMNISTDataset(data_root=str(tmp_path), split='val')
    with pytest.raises(ValueError, match='pad_to=20'):
        FashionMNISTDataset(data_root=str(tmp_path), pad_to=20)


@pytest.mark.skipif(not HAVE_DATA, reason='dataset-fashion-mnist is not installed')
def test_real_data_and_pipeline():
    ds = DATASETS.build(dict(type='FashionMNISTDataset', split='test',
                             pipeline=[dict(type='PackInputs')]))
    assert len(ds) == 10000
    labels = np.array([ds.get_data_info(i)['gt_label'] for i in range(0, 10000, 7)])
    assert set(labels.tolist()) == set(range(10))
    item = ds[0]
    assert item['inputs'].shape == (1, 32, 32) and item['inputs'].dtype == torch.uint8
    assert item['inputs'].float().mean() > 10  # real garments, not blank images
    assert len(read_idx(osp.join(DEFAULT_ROOT, 'train-labels-idx1-ubyte.gz'))) == 60000


@pytest.mark.skipif(not HAVE_DATA, reason='dataset-fashion-mnist is not installed')
def test_tiny_linear_probe_learns_above_chance():
    """Frozen random-init encoder features + logistic regression beat chance (10%)."""
    from conftest import build_tiny
    from mmmim.evaluation import extract_features, fit_linear_probe
    model = build_tiny()
    pipe = [dict(type='PackInputs')]
    train = DATASETS.build(dict(type='FashionMNISTDataset', split='train', pipeline=pipe,
                                indices=1000))
    test = DATASETS.build(dict(type='FashionMNISTDataset', split='test', pipeline=pipe,
                               indices=500))
    acc = fit_linear_probe(*extract_features(model, train), *extract_features(model, test))
    assert acc > 50

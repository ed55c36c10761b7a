"""kNN top-1 (DINO's weighted vote) and the fixed class-balanced low-label subsets."""
import json
import os.path as osp

import numpy as np
import pytest
import torch

from mmmim.evaluation import balanced_subset, knn_predict, knn_top1


def brute_force_knn(train_x, train_y, test_x, k, temperature, num_classes):
    """The protocol written out one query at a time in numpy (float64)."""
    bank = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
    out = []
    for q in test_x:
        sim = bank @ (q / np.linalg.norm(q))
        nearest = np.argsort(-sim, kind='stable')[:k]
        votes = np.zeros(num_classes)
        for j in nearest:
            votes[train_y[j]] += np.exp(sim[j] / temperature)
        out.append(int(np.argmax(votes)))
    return np.array(out)


@pytest.mark.parametrize('k, temperature', [(20, 0.07), (5, 0.5), (1, 0.07)])
def test_knn_matches_a_brute_force_reference(k, temperature):
    rng = np.random.default_rng(0)
    # features with very different norms: only a normalised (cosine) vote matches
    train_x = rng.normal(size=(120, 8)) * rng.uniform(0.1, 10, size=(120, 1))
    train_y = rng.integers(0, 4, 120)
    test_x = rng.normal(size=(50, 8)) * rng.uniform(0.1, 10, size=(50, 1))
    ref = brute_force_knn(train_x, train_y, test_x, k, temperature, 4)
    got = knn_predict(torch.tensor(train_x, dtype=torch.float32), torch.tensor(train_y),
                      torch.tensor(test_x, dtype=torch.float32), k=k, temperature=temperature,
                      num_classes=4, chunk=7)  # several chunks
    assert np.array_equal(got.numpy(), ref)
    # the reference is not trivial: a plain majority vote over the same k disagrees somewhere
    if k == 20 and temperature == 0.07:
        bank = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
        sims = (test_x / np.linalg.norm(test_x, axis=1, keepdims=True)) @ bank.T
        majority = np.array([np.bincount(train_y[np.argsort(-s)[:k]], minlength=4).argmax()
                             for s in sims])
        assert (majority != ref).any()
        # and an unnormalised (dot-product) neighbour search picks other neighbours
        dots = test_x @ train_x.T
        assert any(set(np.argsort(-d)[:k]) != set(np.argsort(-s)[:k]) for d, s in zip(dots, sims))


def test_knn_top1_and_errors():
    x = torch.eye(4).repeat(5, 1)
    y = torch.arange(4).repeat(5)
    assert knn_top1(x, y, x + 0.01, y, k=3) == 100.0
    with pytest.raises(ValueError, match='k=30'):
        knn_predict(x, y, x, k=30)
    with pytest.raises(ValueError, match='same D'):
        knn_predict(x, y, x[:, :3])


def test_balanced_subsets_are_class_balanced_fixed_and_independent_of_global_rng():
    labels = np.repeat(np.arange(10), 600)
    np.random.default_rng(1).shuffle(labels)
    for fraction, per_class in ((0.01, 6), (0.1, 60)):
        torch.manual_seed(123)
        np.random.seed(123)
        a = balanced_subset(labels, fraction)
        torch.manual_seed(7)
        np.random.seed(7)
        b = balanced_subset(labels, fraction)
        assert np.array_equal(a, b)  # the global RNGs (the method's seed) do not matter
        assert np.array_equal(np.bincount(labels[a], minlength=10), [per_class] * 10)
        assert len(np.unique(a)) == len(a) and np.all(np.diff(a) > 0)
        assert not np.array_equal(a, balanced_subset(labels, fraction, seed=1))
    assert set(balanced_subset(labels, 0.01)) <= set(range(len(labels)))
    assert np.array_equal(balanced_subset(labels, 1.0), np.arange(len(labels)))
    with pytest.raises(ValueError, match='fraction'):
        balanced_subset(labels, 0.0)
    with pytest.raises(ValueError, match='no item'):
        balanced_subset(labels, 0.0001)


def test_dataset_option_is_the_same_subset_as_the_probe(tmp_path):
    """FashionMNISTDataset(label_fraction=...) (the fine-tune cells) and the probe's subset
    of the extracted labels (LinearProbeHook) pick the same images, for any method."""
    import gzip
    from mmmim.datasets.fashion_mnist import FashionMNISTDataset
    rng = np.random.default_rng(0)
    n = 400
    labels = np.repeat(np.arange(10, dtype=np.uint8), n // 10)
    rng.shuffle(labels)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    for prefix in ('train', 't10k'):
        with gzip.open(tmp_path / f'{prefix}-images-idx3-ubyte.gz', 'wb') as f:
            f.write(bytes([0, 0, 8, 3]) + b''.join(int(d).to_bytes(4, 'big') for d in (n, 28, 28))
                    + images.tobytes())
        with gzip.open(tmp_path / f'{prefix}-labels-idx1-ubyte.gz', 'wb') as f:
            f.write(bytes([0, 0, 8, 1]) + n.to_bytes(4, 'big') + labels.tobytes())
    ds = FashionMNISTDataset(data_root=str(tmp_path), label_fraction=0.1, pad_to=None)
    keep = balanced_subset(labels, 0.1)
    assert len(ds) == 40
    got = np.stack([ds.get_data_info(i)['img'][..., 0] for i in range(len(ds))])
    assert np.array_equal(got, images[keep])
    assert [ds.get_data_info(i)['gt_label'] for i in range(len(ds))] == labels[keep].tolist()
    with pytest.raises(ValueError, match='label_fraction'):
        FashionMNISTDataset(data_root=str(tmp_path), label_fraction=1.5)


def test_probe_hook_writes_knn_and_low_label_probes(tmp_path, monkeypatch):
    from conftest import build_tiny
    from test_hooks import _Items, _Runner

    from mmmim.engine.hooks import LinearProbeHook
    from mmmim.registry import DATASETS
    runner = _Runner(build_tiny(), tmp_path)
    monkeypatch.setattr(DATASETS, 'build', lambda cfg: _Items(cfg['n'], cfg['seed']))
    LinearProbeHook(train_dataset=dict(n=200, seed=1), test_dataset=dict(n=100, seed=2),
                    feature='avg', knn=dict(k=5), label_fractions=(0.1, 1.0)).after_train(runner)
    result = json.loads((tmp_path / 'linear_probe.json').read_text())
    assert result['knn'] == dict(k=5, temperature=0.07)
    assert result['knn_top1'] > 90  # two brightness classes: neighbours agree
    assert set(result['probe_top1']) == {'0.1', '1.0'}
    assert result['probe_top1']['1.0'] == result['top1']
    assert result['probe_top1']['0.1'] > 80
    with pytest.raises(ValueError, match='knn takes'):
        LinearProbeHook(dict(), dict(), knn=dict(k=5, metric='l2'))
    assert osp.exists(tmp_path / 'linear_probe.json')


def test_pixel_features_are_the_preprocessed_images_whatever_the_encoder():
    """feature='pixels' (the raw-pixel baseline row) is the data preprocessor's output
    flattened: (x - mean) / std of the uint8 images, the same for any encoder weights."""
    from conftest import build_tiny
    from test_hooks import _Items

    from mmmim.evaluation import extract_features
    items = _Items(12, seed=3)
    a, labels = extract_features(build_tiny(), items, 'pixels', batch_size=5, progress=None)
    other = build_tiny()
    for p in other.parameters():
        p.data.normal_()
    b, _ = extract_features(other, items, 'pixels', batch_size=5, progress=None)
    pre = build_tiny().data_preprocessor
    raw = torch.stack([torch.as_tensor(items.get_data_info(i)['img'][..., 0]).float()
                       for i in range(12)])
    mean, std = float(pre.mean.flatten()[0]), float(pre.std.flatten()[0])
    assert a.shape == (12, 32 * 32)
    assert torch.allclose(a, ((raw - mean) / std).flatten(1), atol=1e-5)
    assert torch.equal(a, b)
    assert labels.tolist() == [i % 2 for i in range(12)]
    enc, _ = extract_features(build_tiny(), items, 'avg', batch_size=5, progress=None)
    assert enc.shape[1] != a.shape[1]


def test_probe_hook_refuses_an_unknown_feature_when_built():
    from mmmim.engine.hooks import LinearProbeHook
    with pytest.raises(ValueError, match="feature must be one of .*'pixels'"):
        LinearProbeHook(dict(), dict(), feature='pixel')


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_probe_and_knn_on_cuda_agree_with_the_cpu():
    """The probes run on the model's device: the same features fitted on CUDA and on the
    CPU give the same top-1 up to float differences (the GPU session runs this)."""
    from mmmim.evaluation import fit_linear_probe
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(10, 64, generator=g) * 2
    train_y = torch.arange(3000) % 10
    test_y = torch.arange(1000) % 10
    train_x = centres[train_y] + torch.randn(3000, 64, generator=g) * 6  # ~80% and ~73%
    test_x = centres[test_y] + torch.randn(1000, 64, generator=g) * 6
    cuda = [t.cuda() for t in (train_x, train_y, test_x, test_y)]
    assert abs(fit_linear_probe(*cuda) - fit_linear_probe(train_x, train_y, test_x, test_y)) <= 0.3
    assert abs(knn_top1(*cuda) - knn_top1(train_x, train_y, test_x, test_y)) <= 0.1

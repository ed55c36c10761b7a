"""BatchRandomResizedCropDataPreprocessor: the batched crop / resize / flip agrees with
OpenCV's resize of the same crop, draws its boxes from the shared sampler, leaves
evaluation batches alone, and refuses what it cannot do."""
import cv2
import numpy as np
import pytest
import torch
from mmpretrain.models.utils.data_preprocessor import SelfSupDataPreprocessor

from mmmim.models.data_preprocessors import BatchRandomResizedCropDataPreprocessor, batch_crop

MEAN, STD = [72.94], [90.02]


def smooth_images(n=32, size=28, seed=0) -> np.ndarray:
    """uint8 (n, 1, size, size) images with structure at every scale a crop can pick."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (n * size, size)).astype(np.float32)
    return cv2.GaussianBlur(noise, (5, 5), 1.5).reshape(n, 1, size, size).round().astype(np.uint8)


def test_whole_image_boxes_give_the_images_back_and_flips_mirror_them():
    imgs = torch.from_numpy(smooth_images()).float()
    pre = BatchRandomResizedCropDataPreprocessor(interpolation='bicubic')
    boxes = np.tile([0, 0, 28, 28], (len(imgs), 1))
    assert torch.equal(pre.crop_flip(imgs, boxes), imgs)
    flips = torch.arange(len(imgs)) % 2 == 0
    out = pre.crop_flip(imgs, boxes, flips)
    assert torch.equal(out[flips], imgs[flips].flip(-1))
    assert torch.equal(out[~flips], imgs[~flips])


@pytest.mark.parametrize('interpolation, cv2_flag', [('bicubic', cv2.INTER_CUBIC),
                                                     ('bilinear', cv2.INTER_LINEAR)])
def test_crops_agree_with_opencv_resizing_each_crop(interpolation, cv2_flag):
    """OpenCV sees only the crop and repeats its edge pixels; we read the image's own
    pixels beyond the crop. Away from a crop's edges the two must agree up to rounding."""
    imgs = smooth_images()
    pre = BatchRandomResizedCropDataPreprocessor(crop_ratio_range=(0.3, 1.0),
                                                 interpolation=interpolation, seed=1)
    boxes = pre.crop_boxes(np.tile([28, 28], (len(imgs), 1)), True)
    assert (boxes[:, 2:] < 28).any()  # real crops, not only the whole image
    out = pre.crop_flip(torch.from_numpy(imgs).float(), boxes).numpy()
    mean_diffs = []
    for k, (top, left, h, w) in enumerate(boxes):
        ref = cv2.resize(imgs[k, 0, top:top + h, left:left + w], (28, 28),
                         interpolation=cv2_flag).astype(np.float32)
        diff = np.abs(out[k, 0] - ref)
        assert diff[3:-3, 3:-3].max() <= 1, (k, (top, left, h, w))
        mean_diffs.append(diff.mean())
    assert np.mean(mean_diffs) < 0.3


def test_training_batches_take_their_boxes_from_the_shared_sampler(monkeypatch):
    calls = []
    real = batch_crop.sample_crop_boxes

    def spy(sizes, *args, **kw):
        calls.append((np.asarray(sizes).tolist(), args))
        return real(sizes, *args, **kw)

    monkeypatch.setattr(batch_crop, 'sample_crop_boxes', spy)
    pre = BatchRandomResizedCropDataPreprocessor(crop_ratio_range=(0.5, 1.0),
                                                 aspect_ratio_range=(0.75, 4 / 3),
                                                 max_attempts=7, mean=MEAN, std=STD, seed=0)
    batch = torch.from_numpy(smooth_images(n=5))
    out = pre(dict(inputs=batch, data_samples=None), True)['inputs']
    assert out.shape == (5, 1, 28, 28) and out.dtype == torch.float32
    assert calls == [([[28, 28]] * 5, ((0.5, 1.0), (0.75, 4 / 3), 7))]
    pixels = out * STD[0] + MEAN[0]  # rounded, clipped uint8 values before normalising
    assert torch.allclose(pixels, pixels.round(), atol=1e-3)
    assert pixels.min() >= -1e-3 and pixels.max() <= 255 + 1e-3
    assert not torch.allclose(out, (batch.float() - MEAN[0]) / STD[0])  # augmented


def test_evaluation_batches_are_only_normalised():
    batch = torch.from_numpy(smooth_images(n=4))
    ours = BatchRandomResizedCropDataPreprocessor(mean=MEAN, std=STD, flip_prob=1.0)
    theirs = SelfSupDataPreprocessor(mean=MEAN, std=STD)
    data = dict(inputs=batch, data_samples=None)
    assert torch.equal(ours(data, False)['inputs'], theirs(data, False)['inputs'])


def test_the_seeds_fix_the_crops_and_flips():
    data = dict(inputs=torch.from_numpy(smooth_images(n=8)), data_samples=None)

    def run(seed, global_seed=0):
        np.random.seed(global_seed)  # what mmengine's randomness.seed sets
        return BatchRandomResizedCropDataPreprocessor(crop_ratio_range=(0.3, 1.0),
                                                      seed=seed)(data, True)['inputs']
    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))
    assert not torch.equal(run(3), run(3, global_seed=1))


def test_a_resumed_run_crops_its_next_batches_as_the_uninterrupted_run():
    """ResumeStateHook saves numpy's global state with the checkpoint and restores it; a
    new process's preprocessor must then draw the crops the first run drew next."""
    data = dict(inputs=torch.from_numpy(smooth_images(n=8)), data_samples=None)

    def build():
        return BatchRandomResizedCropDataPreprocessor(crop_ratio_range=(0.3, 1.0))
    np.random.seed(0)
    first = build()
    first(data, True)
    saved = np.random.get_state()  # the checkpoint after one iteration
    expected = [first(data, True)['inputs'] for _ in range(2)]
    np.random.seed(123)  # the new process starts from some other state
    resumed = build()
    np.random.set_state(saved)
    assert all(torch.equal(resumed(data, True)['inputs'], e) for e in expected)


def test_a_list_of_equal_images_is_stacked_and_unequal_ones_are_refused():
    imgs = [torch.from_numpy(im) for im in smooth_images(n=3)]
    pre = BatchRandomResizedCropDataPreprocessor(seed=0)
    assert pre(dict(inputs=imgs, data_samples=None), True)['inputs'].shape == (3, 1, 28, 28)
    with pytest.raises(ValueError, match='equal-size'):
        pre(dict(inputs=imgs[:2] + [torch.zeros(1, 32, 32, dtype=torch.uint8)],
                 data_samples=None), True)


@pytest.mark.parametrize('kwargs, match', [
    (dict(interpolation='area'), "interpolation='area'"),
    (dict(crop_ratio_range=(0.2, 1.5)), 'crop_ratio_range'),
    (dict(flip_prob=2), 'flip_prob'),
])
def test_bad_settings_are_refused_when_built(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BatchRandomResizedCropDataPreprocessor(**kwargs)

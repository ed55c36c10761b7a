"""The input paths: shared RandomResizedCrop sampler, fast CPU loader, GPU-decode path
(run on CPU here), their handling of bad files, and the throughput tool."""
import io
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmcv.transforms import LoadImageFromFile
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmpretrain.datasets.transforms import PackInputs, RandomResizedCrop
from PIL import Image
from scipy.stats import ks_2samp

from mmmim.datasets import ImageLoadError, LoadJpegBytes, LoadRandomResizedCrop
from mmmim.datasets import input_pipeline as ip
from mmmim.models.data_preprocessors import batch_crop, jpeg_decode
from mmmim.registry import MODELS

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


# -- the shared crop sampler against mmpretrain's RandomResizedCrop -------------------
def mmpretrain_boxes(h, w, n, seed, **kw):
    t = RandomResizedCrop(224, **kw)
    img = np.zeros((h, w, 1), np.uint8)
    np.random.seed(seed)
    return np.array([t.rand_crop_params(img) for _ in range(n)])


def stats(boxes, h, w):
    top, left, th, tw = boxes.T.astype(float)
    return dict(area=th * tw / (h * w), log_ratio=np.log(tw / th),
                top=top / (h - th + 1), left=left / (w - tw + 1))


@pytest.mark.parametrize('h,w,scale', [(375, 500, (0.2, 1.0)), (60, 400, (0.08, 1.0))])
def test_crop_distribution_matches_mmpretrain(h, w, scale):
    n = 3000
    ours = ip.sample_crop_boxes([(h, w)] * n, scale, rng=np.random.default_rng(1))
    theirs = mmpretrain_boxes(h, w, n, seed=2, crop_ratio_range=scale)
    a, b = stats(ours, h, w), stats(theirs, h, w)
    for key in a:
        assert ks_2samp(a[key], b[key]).pvalue > 1e-3, key
    if w / h > 4 / 3:  # the narrow image falls back to the centre crop now and then
        centre = lambda bx: np.mean((bx[:, 2] == h) & (bx[:, 3] == round(h * 4 / 3)))  # noqa
        assert abs(centre(ours) - centre(theirs)) < 0.03


def test_crop_distribution_test_rejects_a_wrong_scale():
    h, w, n = 375, 500, 3000
    ours = ip.sample_crop_boxes([(h, w)] * n, (0.3, 1.0), rng=np.random.default_rng(1))
    theirs = mmpretrain_boxes(h, w, n, seed=2, crop_ratio_range=(0.08, 1.0))
    assert ks_2samp(stats(ours, h, w)['area'], stats(theirs, h, w)['area']).pvalue < 1e-6


@pytest.mark.parametrize('h,w', [(50, 400), (400, 50), (100, 120), (7, 9)])
def test_fallback_is_mmpretrains_centre_crop(h, w):
    ours = ip.sample_crop_boxes([(h, w)], max_attempts=0)[0]
    theirs = mmpretrain_boxes(h, w, 1, seed=0, max_attempts=0)[0]
    assert tuple(ours) == tuple(theirs)


def test_sampler_checks_its_ranges():
    with pytest.raises(ValueError, match='crop_ratio_range'):
        LoadRandomResizedCrop(224, crop_ratio_range=(0.2, 1.5))
    with pytest.raises(ValueError, match='interpolation'):
        LoadRandomResizedCrop(224, interpolation='lanczos')  # torch backend
    with pytest.raises(ValueError, match="'cv2'"):
        LoadRandomResizedCrop(224, backend='pil')
    LoadRandomResizedCrop(224, interpolation='area', backend='cv2')  # mmcv's cv2 modes


# -- files -------------------------------------------------------------------------------
def smooth(h, w, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp('imgs')
    img = smooth(375, 500)
    paths = {}

    def put(name, data):
        paths[name] = str(d / name)
        with open(paths[name], 'wb') as f:
            f.write(data)

    ok = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    put('ok.jpg', ok)
    put('big.jpg', cv2.imencode('.jpg', smooth(750, 1000, 1))[1].tobytes())
    put('truncated.jpg', ok[:len(ok) // 2])
    rng = np.random.default_rng(0)
    put('corrupt.jpg', ok[:300] + bytes(rng.integers(0, 256, 3000, dtype=np.uint8)) + ok[3300:])
    put('empty.jpg', b'')
    for name, mode, fmt in [('cmyk.jpg', 'CMYK', 'JPEG'), ('grey.jpg', 'L', 'JPEG'),
                            ('png.jpg', 'RGB', 'PNG')]:
        buf = io.BytesIO()
        Image.fromarray(img[..., ::-1]).convert(mode).save(buf, fmt)
        put(name, buf.getvalue())
    return paths


def mmpretrain_crop(path, box, backend='cv2'):
    t = RandomResizedCrop(224, backend='pillow', interpolation='bicubic')
    t.rand_crop_params = lambda img: tuple(int(v) for v in box)
    return t(LoadImageFromFile(imdecode_backend=backend)(dict(img_path=path)))['img']


def fixed(t, box):
    t.sample_box = lambda h, w: np.array(box)
    return t


# -- fast CPU path -----------------------------------------------------------------------
@pytest.mark.parametrize('box', [(50, 100, 250, 300), (0, 0, 375, 500), (100, 100, 60, 80)])
def test_fast_path_equals_mmpretrain_on_the_same_box(files, box):
    path = files['ok.jpg']
    slow = mmpretrain_crop(path, box)
    exact = fixed(LoadRandomResizedCrop(224, backend='pillow'), box)(dict(img_path=path))
    assert np.array_equal(exact['img'], slow)  # the same decode, crop and Pillow resize
    fast = fixed(LoadRandomResizedCrop(224), box)(dict(img_path=path))['img']
    diff = np.abs(fast.astype(int) - slow.astype(int))
    assert fast.shape == (224, 224, 3) and fast.dtype == np.uint8
    assert diff.max() <= 2 and diff.mean() < 0.05  # torch's uint8 resize vs Pillow's


@pytest.mark.parametrize('backend', ['pillow', 'cv2'])
def test_fast_path_draws_mmpretrains_boxes_from_the_same_seed(files, backend):
    # no reduced decode at 500x375: from one numpy seed, the same crops, the same pixels
    # as mmpretrain's RandomResizedCrop with the same resize backend
    path = files['ok.jpg']
    ours = LoadRandomResizedCrop(224, crop_ratio_range=(0.2, 1.0), backend=backend)
    theirs = RandomResizedCrop(224, crop_ratio_range=(0.2, 1.0), backend=backend,
                               interpolation='bicubic')
    np.random.seed(3)
    mine = [ours(dict(img_path=path)) for _ in range(5)]
    np.random.seed(3)
    ref = [theirs(LoadImageFromFile()(dict(img_path=path)))['img'] for _ in range(5)]
    assert len({tuple(r['crop_box']) for r in mine}) == 5  # five different crops
    for r, img in zip(mine, ref):
        assert np.array_equal(r['img'], img)


def test_reduced_decode_is_close_to_the_full_decode(files):
    path = files['big.jpg']
    t = LoadRandomResizedCrop(224)
    assert t.reduction((0, 0, 750, 1000)) == 2 and t.reduction((0, 0, 447, 600)) == 1
    for box in [(0, 0, 750, 1000), (10, 20, 500, 600)]:
        fast = fixed(LoadRandomResizedCrop(224), box)(dict(img_path=path))['img']
        diff = np.abs(fast.astype(int) - mmpretrain_crop(path, box).astype(int))
        assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 4, (box, diff.mean())
        off = fixed(LoadRandomResizedCrop(224, reduced_decode=False), box)(dict(img_path=path))
        assert np.abs(off['img'].astype(int) - mmpretrain_crop(path, box)).max() <= 2


def test_fast_path_in_a_pipeline_packs_uint8(files):
    out = PackInputs()(LoadRandomResizedCrop(224, (0.2, 1.0))(dict(img_path=files['ok.jpg'])))
    assert out['inputs'].shape == (3, 224, 224) and out['inputs'].dtype == torch.uint8


@pytest.mark.parametrize('name', ['truncated.jpg', 'corrupt.jpg', 'empty.jpg', 'missing.jpg'])
def test_fast_path_bad_files(files, name, tmp_path):
    path = files.get(name, str(tmp_path / name))
    with pytest.raises(ImageLoadError, match=name):
        LoadRandomResizedCrop(224)(dict(img_path=path))
    t = LoadRandomResizedCrop(224, on_error='skip')
    assert t(dict(img_path=path)) is None and t.skipped == [path]


@pytest.mark.parametrize('name', ['cmyk.jpg', 'grey.jpg', 'png.jpg'])
def test_fast_path_converts_like_safe_load(files, name):
    path = files[name]
    out = fixed(LoadRandomResizedCrop(224), (0, 0, 375, 500))(dict(img_path=path))['img']
    ref = mmpretrain_crop(path, (0, 0, 375, 500))
    if ref.ndim == 2:
        ref = np.repeat(ref[..., None], 3, 2)
    assert out.shape == (224, 224, 3)
    assert np.abs(out.astype(int) - ref.astype(int)).mean() < 1.0


# -- GPU path, run on CPU ------------------------------------------------------------------
def gpu_batch(paths, on_error='raise'):
    load, pack = LoadJpegBytes(on_error=on_error), PackInputs()
    items = [load(dict(img_path=p)) for p in paths]
    return pseudo_collate([pack(r) for r in items if r is not None])


def preprocessor(**kw):
    cfg = dict(type='JpegDecodeDataPreprocessor', size=224, crop_ratio_range=(0.2, 1.0),
               mean=MEAN, std=STD, to_rgb=True, seed=0)
    cfg.update(kw)
    return MODELS.build(cfg)


def test_gpu_path_matches_cpu_path_on_the_same_boxes(files, monkeypatch):
    box = (50, 100, 250, 300)
    paths = [files['ok.jpg'], files['png.jpg'], files['grey.jpg']]
    data = gpu_batch(paths)
    assert data['inputs'][0].dim() == 1 and data['inputs'][1].dim() == 3  # PNG decoded early
    monkeypatch.setattr(batch_crop, 'sample_crop_boxes',
                        lambda sizes, *a, **k: np.array([box] * len(sizes)))
    out = preprocessor(flip_prob=0.0)(data, True)['inputs']
    assert out.shape == (3, 3, 224, 224) and out.dtype == torch.float32
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    for k, path in enumerate(paths):
        cpu = fixed(LoadRandomResizedCrop(224), box)(dict(img_path=path))['img']
        cpu = torch.from_numpy(cpu[..., ::-1].copy()).permute(2, 0, 1).float()  # RGB
        pixels = out[k] * std + mean
        assert (pixels - cpu).abs().mean() < 1.5, path  # libjpeg vs OpenCV decode, float resize


def test_gpu_path_flips_and_draws_from_the_shared_sampler(files, monkeypatch):
    calls = []
    real = batch_crop.sample_crop_boxes

    def spy(sizes, *args, **kw):
        calls.append((sizes, args))
        return real(sizes, *args, **kw)

    monkeypatch.setattr(batch_crop, 'sample_crop_boxes', spy)
    data = gpu_batch([files['ok.jpg']] * 2)
    always = preprocessor(flip_prob=1.0, max_attempts=0)(data, True)['inputs']
    never = preprocessor(flip_prob=0.0, max_attempts=0)(data, True)['inputs']
    assert torch.equal(always, never.flip(-1))
    assert calls[0] == ([(375, 500)] * 2, ((0.2, 1.0), (3 / 4, 4 / 3), 0))


@pytest.mark.parametrize('name', ['truncated.jpg', 'corrupt.jpg'])
def test_gpu_path_bad_jpeg_in_a_batch(files, name, caplog):
    paths = [files['ok.jpg'], files[name], files['cmyk.jpg']]
    with pytest.raises(ImageLoadError, match=name):
        preprocessor()(gpu_batch(paths), True)
    pre = preprocessor(on_error='skip')
    out = pre(gpu_batch(paths), True)
    assert out['inputs'].shape[0] == 2 and len(out['data_samples']) == 2
    assert [s.img_path for s in out['data_samples']] == [paths[0], paths[2]]
    assert pre.skipped == [files[name]]


def test_gpu_path_worker_side_errors(files, tmp_path):
    with pytest.raises(ImageLoadError, match='empty.jpg'):
        LoadJpegBytes()(dict(img_path=files['empty.jpg']))
    skip = LoadJpegBytes(on_error='skip')
    assert skip(dict(img_path=str(tmp_path / 'gone.jpg'))) is None and len(skip.skipped) == 1


def test_gpu_decode_device_check_names_the_fix(monkeypatch):
    import torchvision.io

    def broken(*a, **k):
        raise RuntimeError('Not compiled with GPU support')

    monkeypatch.setattr(torchvision.io, 'decode_jpeg', broken)
    monkeypatch.setattr(jpeg_decode, '_checked_devices', set())
    with pytest.raises(RuntimeError, match='CUDA build of torchvision'):
        jpeg_decode.check_jpeg_decode_device('cpu')


def test_gpu_preprocessor_refuses_a_stacked_batch():
    with pytest.raises(ValueError, match='LoadJpegBytes'):
        preprocessor()(dict(inputs=torch.zeros(2, 3, 8, 8, dtype=torch.uint8),
                            data_samples=None), True)


# -- configs and the tool ------------------------------------------------------------------
def test_configs_use_the_paths(files):
    cfg = Config.fromfile(osp.join(ROOT, 'configs/mae/vit-b_800e.py'))
    loader = cfg.train_dataloader
    assert loader.pin_memory and loader.persistent_workers
    assert loader.dataset.pipeline[0].type == 'LoadRandomResizedCrop'
    # the OpenCV-resize variant: the same config but the loader's resize backend
    cv = Config.fromfile(osp.join(ROOT, 'configs/mae/vit-b_800e_cv2-resize.py')).to_dict()
    base = cfg.to_dict()
    assert cv['train_dataloader']['dataset']['pipeline'][0].pop('backend') == 'cv2'
    assert 'backend' not in base['train_dataloader']['dataset']['pipeline'][0]
    assert cv == base
    gpu = Config.fromfile(osp.join(ROOT, 'configs/mae/vit-b_800e_gpu-decode.py'))
    assert gpu.train_dataloader.collate_fn.type == 'pseudo_collate'
    model_cfg = gpu.model
    model_cfg.backbone.arch = dict(embed_dims=32, num_layers=1, num_heads=2,
                                   feedforward_channels=32)
    model_cfg.neck.decoder_depth = 1
    model = MODELS.build(model_cfg)
    load, pack = (LoadJpegBytes(), PackInputs())
    data = pseudo_collate([pack(load(dict(img_path=files['ok.jpg']))) for _ in range(2)])
    from mmengine.optim import OptimWrapper
    losses = model.train_step(data, OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.0)))
    assert all(torch.isfinite(v) for v in losses.values())


def test_throughput_tool_loader_mode(tmp_path):
    out = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools/analysis/data_throughput.py'),
         osp.join(ROOT, 'configs/mae/vit-b_800e.py'), '--loader', '--workers', '0',
         '--compare', '--images', '8', '--batch-size', '4', '--batches', '1', '--rounds', '1',
         '--step-rate', '1000'], capture_output=True, text=True, cwd=ROOT,
        env={'PYTHONPATH': ROOT, 'PATH': '/usr/bin:/bin'})
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'config / mmpretrain' in out.stdout and 'cores per GPU' in out.stdout


@pytest.mark.skipif(not osp.exists('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz'),
                    reason='needs Fashion-MNIST')
def test_throughput_tool_loader_mode_on_the_configs_own_data_set():
    """--loader --real: the config's data set through its pipeline, and the rate of a
    preprocessor that crops on the device (the gpu cells of the Fashion-MNIST grid)."""
    def run(*extra):
        return subprocess.run(
            [sys.executable, osp.join(ROOT, 'tools/analysis/data_throughput.py'),
             osp.join(ROOT, 'configs/fashion_mnist/benchmark/gpu/mae.py'), '--loader', '--real',
             '--workers', '0', '--batch-size', '16', '--batches', '1', '--rounds', '1', *extra],
            capture_output=True, text=True, cwd=ROOT, env={'PYTHONPATH': ROOT, 'PATH': '/usr/bin:/bin'})

    out = run()
    assert out.returncode == 0, out.stderr[-2000:]
    assert "data: the config's data set" in out.stdout
    assert '| config | 0 |' in out.stdout and '| config: preprocessor on cpu | 0 |' in out.stdout
    out = run('--compare')  # mmpretrain's pipeline needs JPEG files: refused, named
    assert out.returncode != 0 and 'drop --real' in out.stderr


def test_throughput_tool_breakdown(files):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'data_throughput', osp.join(ROOT, 'tools/analysis/data_throughput.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    paths = [files['ok.jpg'], files['big.jpg']]
    rows = tool.breakdown(paths, LoadRandomResizedCrop(224, crop_ratio_range=(0.2, 1.0)),
                          rounds=1)
    ms = dict(rows)
    assert len(ms) == 10 and all(v > 0 for v in ms.values())
    assert {'fast: decode', 'mmpretrain: decode', 'fast: whole transform',
            'mmpretrain: whole transform'} <= set(ms)
    mean, largest = (ms[k] for k in tool.PIXEL_ROWS)  # torch's resize vs Pillow's
    assert 0 < mean < 0.5 and largest <= 4
    for backend, tol in [('pillow', 0), ('cv2', 40)]:  # Pillow's own: no difference
        ms = dict(tool.breakdown(paths, LoadRandomResizedCrop(224, backend=backend), rounds=1,
                                 mmpretrain_backend='cv2'))
        assert ms[tool.PIXEL_ROWS[1]] <= tol and (tol == 0) == (ms[tool.PIXEL_ROWS[0]] == 0)
    assert tool.mmpretrain_pipeline('cv2')[1]['backend'] == 'cv2'
    assert tool.mmpretrain_pipeline()[1]['backend'] == 'pillow'


def test_throughput_tool_breakdown_command():
    def run(config):
        return subprocess.run(
            [sys.executable, osp.join(ROOT, 'tools/analysis/data_throughput.py'),
             osp.join(ROOT, 'configs/mae', config), '--loader', '--breakdown', '--images', '2',
             '--rounds', '1'], capture_output=True, text=True, cwd=ROOT,
            env={'PYTHONPATH': ROOT, 'PATH': '/usr/bin:/bin'})

    out = run('vit-b_800e.py')
    assert out.returncode == 0, out.stderr[-2000:]
    assert '| fast: decode |' in out.stdout and 'decode floor' in out.stdout
    out = run('vit-b_800e_gpu-decode.py')  # no LoadRandomResizedCrop: refused, named
    assert out.returncode != 0 and 'LoadRandomResizedCrop' in out.stderr


def test_header_walk_equals_pillows_header(files, tmp_path):
    def pillow(data):  # the reference: Pillow's size with the EXIF rotation, mode, format
        head = Image.open(io.BytesIO(data))
        w, h = head.size
        if head.getexif().get(0x0112, 1) in (5, 6, 7, 8):
            w, h = h, w
        return h, w, head.mode in ip._GREY_MODES, head.format

    datas = {name: open(path, 'rb').read() for name, path in files.items()
             if name not in ('empty.jpg', 'corrupt.jpg')}
    img = Image.fromarray(smooth(120, 200))
    buf = io.BytesIO()
    img.save(buf, 'JPEG', progressive=True)
    datas['progressive'] = buf.getvalue()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    buf = io.BytesIO()
    img.save(buf, 'JPEG', exif=exif)
    datas['rotated'] = buf.getvalue()
    t = LoadRandomResizedCrop(224)
    for name, data in datas.items():
        assert t.read_header(data) == pillow(data), name
    assert ip.jpeg_frame_size(datas['ok.jpg']) == (375, 500, 3)
    assert ip.jpeg_frame_size(datas['progressive']) == (120, 200, 3)
    assert ip.jpeg_frame_size(datas['grey.jpg'])[2] == 1
    assert ip.jpeg_frame_size(datas['rotated']) is None  # EXIF: Pillow reads it
    assert ip.jpeg_frame_size(datas['png.jpg']) is None
    # the rotated file through the fast path: OpenCV's rotation, mmpretrain's pixels
    path = str(tmp_path / 'rotated.jpg')
    with open(path, 'wb') as f:
        f.write(datas['rotated'])
    box = (10, 10, 100, 100)
    out = fixed(LoadRandomResizedCrop(224, backend='pillow'), box)(dict(img_path=path))
    assert out['ori_shape'] == (200, 120)
    assert np.array_equal(out['img'], mmpretrain_crop(path, box))

"""tools/train.py, tools/test.py, tools/dist_train.sh and the helpers behind them.

The end-to-end tests train mmpretrain's MAE (2-layer 32-d ViT) for a few iterations
on 32 random 32x32 PNGs written into tmp_path.
"""
import os
import os.path as osp
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

import mmmim
from conftest import load_tool
from mmmim.utils import UnsafeCheckpointError, load_checkpoint_safely
from mmmim.utils.dist import finish_distributed, setup_cpu_distributed
from mmmim.utils.launch import (RegistryLookupError, check_cfg_options, check_checkpoint_file,
                                explain_registry_error)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'tests', 'configs', 'foundation_tiny_mae.py')
CLS_CONFIG = osp.join(REPO, 'tests', 'configs', 'foundation_tiny_cls.py')


train_tool = load_tool('tools/train.py')
test_tool = load_tool('tools/test.py')


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp('images')
    rng = np.random.default_rng(0)
    for i in range(32):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / f'{i}.png')
    return str(root)


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _run(cmd, cwd, **env):
    env = {**os.environ, 'PYTHONPATH': REPO, **env}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


# ---------------------------------------------------------------- dependency check
REQS = (('mmengine', '0.10.0', '1.0.0', 'mmengine==0.10.7'),)


@pytest.mark.parametrize('found,problem', [('0.9.1', 'mmengine 0.9.1 is installed'),
                                           ('1.0.0', 'mmengine 1.0.0 is installed'),
                                           (None, 'mmengine is not installed')])
def test_dependency_check_names_package_and_pin(found, problem):
    def fake(dist):
        if found is None:
            raise mmmim._metadata.PackageNotFoundError(dist)
        return found
    with pytest.raises(ImportError) as err:
        mmmim.check_dependencies(requirements=REQS, get_version=fake, optional=())
    assert problem in str(err.value) and 'mmengine==0.10.7' in str(err.value)


def test_dependency_check_passes_in_range():
    mmmim.check_dependencies(requirements=REQS, get_version=lambda d: '0.10.7', optional=())
    mmmim.check_dependencies()  # the real environment


@pytest.mark.parametrize('transformers,ok', [(None, True), ('4.49.0', True), ('5.2.0', False)])
def test_a_transformers_that_breaks_mmpretrain_is_named_with_the_fix(transformers, ok):
    def fake(dist):
        if dist == 'transformers':
            if transformers is None:
                raise mmmim._metadata.PackageNotFoundError(dist)
            return transformers
        return '0.10.7'
    if ok:
        mmmim.check_dependencies(requirements=REQS, get_version=fake)
        return
    with pytest.raises(ImportError, match='transformers 5.2.0 is installed.*BLIP.*'
                       'transformers==4.49.0'):
        mmmim.check_dependencies(requirements=REQS, get_version=fake)


# ---------------------------------------------------------------- config handling
def test_cfg_options_parent_must_exist():
    cfg = Config.fromfile(CONFIG)
    check_cfg_options(cfg, {'optim_wrapper.optimizer.lr': 1, 'model.backbone.drop_path_rate': 0.1,
                            'train_dataloader.dataset.pipeline.0.type': 'x', 'work_dir': 'w'})
    with pytest.raises(SystemExit) as err:
        check_cfg_options(cfg, {'optim_wraper.optimizer.lr': 1})
    assert "'optim_wraper.optimizer.lr'" in str(err.value) and 'optim_wrapper' in str(err.value)
    with pytest.raises(SystemExit, match=r'model\.backbone'):
        check_cfg_options(cfg, {'model.backbone.archh.embed_dims': 8})
    with pytest.raises(SystemExit, match='list'):
        check_cfg_options(cfg, {'train_dataloader.dataset.pipeline.7.type': 'x'})


def test_build_config_defaults_and_flags(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = train_tool.build_config(train_tool.parse_args([CONFIG, '--auto-scale-lr']))
    assert cfg.work_dir == osp.join('.', 'work_dirs', 'foundation_tiny_mae')
    assert cfg.default_scope == 'mmmim' and cfg.auto_scale_lr.enable
    cfg = train_tool.build_config(train_tool.parse_args([CONFIG, '--resume', '--amp']))
    assert cfg.resume and cfg.load_from is None
    assert cfg.optim_wrapper.type == 'mmmim.MixedPrecisionOptimWrapper'


def test_resume_and_load_from_are_checked_before_training(tmp_path):
    missing = str(tmp_path / 'missing.pth')
    with pytest.raises(SystemExit, match='missing.pth'):
        train_tool.build_config(train_tool.parse_args([CONFIG, '--resume', missing]))
    with pytest.raises(SystemExit, match='load_from.*missing.pth'):
        train_tool.build_config(train_tool.parse_args(
            [CONFIG, '--cfg-options', f'load_from={missing}']))
    with pytest.raises(SystemExit, match='missing.pth'):
        test_tool.main([CONFIG, missing, '--work-dir', str(tmp_path)])
    # auto resume checks the file last_checkpoint names
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_9.pth'))
    with pytest.raises(SystemExit, match='iter_9.pth'):
        train_tool.build_config(train_tool.parse_args([CONFIG, '--resume', '--work-dir',
                                                       str(tmp_path)]))


def test_checkpoint_precheck_spots_truncation(tmp_path):
    path = tmp_path / 'ok.pth'
    torch.save({'w': torch.zeros(1000)}, path)
    check_checkpoint_file(str(path))
    (tmp_path / 'cut.pth').write_bytes(path.read_bytes()[:2000])
    (tmp_path / 'empty.pth').write_bytes(b'')
    for bad in ('cut.pth', 'empty.pth'):
        with pytest.raises(SystemExit, match=f'{bad}.*(incomplete or corrupt|empty)'):
            check_checkpoint_file(str(tmp_path / bad))


def test_unregistered_type_error_names_registry_scope_and_custom_imports(tmp_path):
    err = explain_registry_error(KeyError('Foo is not in the mmmim::model registry. Please'))
    assert isinstance(err, RegistryLookupError)
    assert all(s in str(err) for s in ("'Foo'", "'model'", "'mmmim'", 'custom_imports'))
    assert explain_registry_error(KeyError('some_key')) is None
    with pytest.raises(RegistryLookupError, match='NoSuchViT.*custom_imports'):
        train_tool.main([CONFIG, '--work-dir', str(tmp_path), '--cfg-options',
                         'model.backbone.type=NoSuchViT'])


# ---------------------------------------------------------------- gloo fallback
@pytest.mark.skipif(torch.cuda.is_available(), reason='tests the no-CUDA path')
@pytest.mark.parametrize('env_cfg', [dict(dist_cfg=dict(backend='nccl', timeout=60)), None])
def test_cpu_distributed_fallback(monkeypatch, env_cfg):
    cfg = Config(dict(env_cfg=env_cfg) if env_cfg else dict())
    assert setup_cpu_distributed(cfg, 'none') is False
    for k in ('MASTER_ADDR', 'MASTER_PORT', 'RANK', 'WORLD_SIZE'):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(RuntimeError, match='MASTER_ADDR.*dist_train.sh'):
        setup_cpu_distributed(cfg, 'pytorch')
    for k, v in dict(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(_free_port()), RANK='0',
                     WORLD_SIZE='1', LOCAL_RANK='0').items():
        monkeypatch.setenv(k, v)
    try:
        assert setup_cpu_distributed(cfg, 'pytorch') is True
        assert torch.distributed.get_backend() == 'gloo'
        assert cfg.env_cfg.dist_cfg.backend == 'gloo'
        assert cfg.model_wrapper_cfg.device_ids is None
        assert cfg.model_wrapper_cfg.type == 'MMDistributedDataParallel'
        if env_cfg:
            assert cfg.env_cfg.dist_cfg.timeout == 60
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.skipif(torch.cuda.is_available(), reason='tests the no-CUDA path')
def test_finish_distributed_frees_the_group_and_the_model_that_holds_it(monkeypatch):
    import gc
    import types
    import weakref
    for k, v in dict(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(_free_port()), RANK='0',
                     WORLD_SIZE='1', LOCAL_RANK='0').items():
        monkeypatch.setenv(k, v)
    assert setup_cpu_distributed(Config(), 'pytorch') is True
    ddp = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(2, 2))
    ddp(torch.ones(1, 2)).sum().backward()  # the reducer has worked on the group
    runner = types.SimpleNamespace(model=ddp)
    held = weakref.ref(ddp)
    del ddp
    finish_distributed(runner)
    assert not torch.distributed.is_initialized()
    assert runner.model is None
    assert held() is None  # collected now, not at interpreter shutdown
    gc.collect()
    finish_distributed(runner)  # and again, or with no group at all, it does nothing


# ---------------------------------------------------------------- end to end
def test_train_then_resume(tmp_path, images):
    work = str(tmp_path / 'work')
    data = f'train_dataloader.dataset.data_root={images}'
    rc, log = _run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', work, '--amp',
                    '--auto-scale-lr', '--cfg-options', data], cwd=REPO)
    assert rc == 0, log[-3000:]
    assert 'Iter(train) [4/4]' in log
    first = sorted(os.listdir(work))
    assert {'iter_2.pth', 'iter_4.pth', 'last_checkpoint'} <= set(first)
    ckpt = load_checkpoint_safely(osp.join(work, 'iter_4.pth'))
    assert ckpt['meta']['iter'] == 4
    group = ckpt['optimizer']['param_groups'][0]
    assert group['initial_lr'] == pytest.approx(1e-3 * 4 / 8)  # --auto-scale-lr: batch 4 of 8
    assert 'MixedPrecisionOptimWrapper' in open(osp.join(work, 'foundation_tiny_mae.py')).read()

    rc, log = _run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', work, '--amp',
                    '--resume', '--cfg-options', data, 'train_cfg.max_iters=6'], cwd=REPO)
    assert rc == 0, log[-3000:]
    assert 'resumed epoch: 0, iter: 4' in log
    assert 'Iter(train) [5/6]' in log and 'Iter(train) [1/6]' not in log
    assert set(first) <= set(os.listdir(work))  # nothing from the first run was removed
    ckpt = load_checkpoint_safely(osp.join(work, 'iter_6.pth'))
    assert ckpt['meta']['iter'] == 6
    assert ckpt['message_hub']['log_scalars']['train/loss'].data[0].size == 6  # 4 resumed + 2

    # a truncated checkpoint given to --resume is refused before training, naming it
    cut = osp.join(work, 'cut.pth')
    with open(osp.join(work, 'iter_6.pth'), 'rb') as src, open(cut, 'wb') as dst:
        dst.write(src.read()[:4096])
    rc, log = _run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', work, '--resume', cut,
                    '--cfg-options', data], cwd=REPO)
    assert rc != 0 and 'cut.pth' in log and 'incomplete or corrupt' in log
    assert 'Iter(train)' not in log


def test_dist_train_two_cpu_processes(tmp_path, images):
    work = str(tmp_path / 'work')
    rc, log = _run(['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', work,
                    '--cfg-options', f'train_dataloader.dataset.data_root={images}'],
                   cwd=REPO, PYTHON=sys.executable, PORT=str(_free_port()))
    assert rc == 0, log[-3000:]
    assert 'no CUDA: using the gloo backend (rank 0 of 2)' in log
    assert 'Iter(train) [4/4]' in log
    ckpt = load_checkpoint_safely(osp.join(work, 'iter_4.pth'))
    assert ckpt['meta']['iter'] == 4


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


def test_test_tool_evaluates_and_refuses_unsafe_checkpoints(tmp_path):
    rng = np.random.default_rng(1)
    for cls in ('a', 'b'):
        os.makedirs(tmp_path / 'data' / cls)
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
                tmp_path / 'data' / cls / f'{i}.png')
    from mmmim.registry import MODELS
    model = MODELS.build(Config.fromfile(CLS_CONFIG).model)
    torch.save({'state_dict': model.state_dict(), 'meta': {'iter': 0}}, tmp_path / 'cls.pth')
    data = f'test_dataloader.dataset.data_root={tmp_path / "data"}'
    out = tmp_path / 'preds.pkl'
    rc, log = _run([sys.executable, 'tools/test.py', CLS_CONFIG, str(tmp_path / 'cls.pth'),
                    '--work-dir', str(tmp_path / 'work'), '--out', str(out),
                    '--cfg-options', data], cwd=REPO)
    assert rc == 0, log[-3000:]
    assert 'accuracy/top1' in log
    import pickle
    with open(out, 'rb') as f:
        assert len(pickle.load(f)) == 8

    marker = tmp_path / 'pwned'
    torch.save({'state_dict': model.state_dict(), 'x': _Evil(marker)}, tmp_path / 'evil.pth')
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        test_tool.main([CLS_CONFIG, str(tmp_path / 'evil.pth'), '--work-dir',
                        str(tmp_path / 'work'), '--cfg-options', data])
    assert not marker.exists()


def test_test_tool_tta_averages_the_scores_of_the_image_and_its_mirror(tmp_path):
    rng = np.random.default_rng(2)
    images = {}
    for cls in ('a', 'b'):
        os.makedirs(tmp_path / 'data' / cls)
        for i in range(3):
            img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(img).save(tmp_path / 'data' / cls / f'{i}.png')
            images[f'{cls}/{i}.png'] = img
    from mmmim.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(CLS_CONFIG).model).eval()
    torch.save({'state_dict': model.state_dict(), 'meta': {'iter': 0}}, tmp_path / 'cls.pth')
    out = tmp_path / 'preds.pkl'
    test_tool.main([CLS_CONFIG, str(tmp_path / 'cls.pth'), '--work-dir', str(tmp_path / 'w'),
                    '--out', str(out), '--tta', '--cfg-options',
                    f'test_dataloader.dataset.data_root={tmp_path / "data"}'])
    import pickle
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 6
    for pred in preds:
        img = images[osp.relpath(pred['img_path'], tmp_path / 'data')]
        # the image as LoadImageFromFile reads it (BGR), and its horizontal mirror
        views = np.stack([img[..., ::-1], img[:, ::-1, ::-1]]).transpose(0, 3, 1, 2)
        with torch.no_grad():
            batch = model.data_preprocessor({'inputs': torch.from_numpy(views.copy())})
            scores = model(batch['inputs'], mode='tensor').softmax(-1).mean(0)
        torch.testing.assert_close(pred['pred_score'], scores, rtol=1e-4, atol=1e-5)
        assert not torch.allclose(scores, model(batch['inputs'][:1], mode='tensor').softmax(-1)[0],
                                  atol=1e-4)  # the mirror changed the scores: it was averaged in

    cfg = Config.fromfile(CLS_CONFIG)
    cfg.test_dataloader.dataset.pipeline = [dict(type='mmpretrain.LoadImageFromFile')]
    with pytest.raises(ValueError, match='tta_pipeline'):
        test_tool.with_tta(cfg)


def test_the_pinned_stack_imports_side_by_side():
    """mmpretrain 1.2 breaks beside some transformers releases: the pinned one must not."""
    import subprocess
    import sys
    code = ('import mmmim, mmcv.ops, mmpretrain.models, mmdet.models, mmseg.models, '
            'transformers, timm, safetensors; print(transformers.__version__)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().startswith('4.')

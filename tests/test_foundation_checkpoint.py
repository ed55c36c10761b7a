"""Safe checkpoint loading: mmengine's own checkpoints load with weights_only=True,
anything naming other globals is refused without running code, and missing or
truncated files give errors naming the path."""
import os

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint

import mmmim.engine  # noqa: F401  (installs safe loading)
from mmmim.utils import (MMENGINE_CHECKPOINT_GLOBALS, CheckpointError, CorruptCheckpointError,
                         UnsafeCheckpointError, install_safe_checkpoint_loading,
                         load_checkpoint_safely)


class ToyModel(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 2)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(inputs)
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else out


class ToyData(torch.utils.data.Dataset):
    metainfo = dict(classes=('a', 'b'), palette=np.array([[0, 0, 0], [255, 255, 255]]))

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(inputs=torch.full((4,), float(i)))


def _runner(work_dir, max_iters, **kwargs):
    return Runner(
        model=ToyModel(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=ToyData(), batch_size=2,
                              sampler=dict(type='InfiniteSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        param_scheduler=dict(type='LinearLR', start_factor=0.5, by_epoch=False, end=4),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False)),
        randomness=dict(seed=1), experiment_name=f'exp{max_iters}_{len(os.listdir(work_dir))}',
        **kwargs)


@pytest.fixture(scope='module')
def mmengine_ckpt(tmp_path_factory):
    work = tmp_path_factory.mktemp('work')
    runner = _runner(work, 3)
    # values of the kinds runtime_info holds in real runs
    MessageHub.get_current_instance().update_info('np_scalar', np.float64(0.5))
    MessageHub.get_current_instance().update_info('np_array', np.arange(3, dtype=np.int64))
    runner.train()
    path = work / 'iter_2.pth'
    assert path.is_file()
    return work, path


def test_mmengine_checkpoint_needs_the_allow_list(mmengine_ckpt):
    """The real checkpoint names globals torch refuses by default, all of them in our list."""
    ours = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(mmengine_ckpt[1])))
    finally:
        torch.serialization.add_safe_globals(ours)
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in unsafe
    allowed = {f'{o.__module__}.{o.__qualname__}' if not isinstance(o, tuple) else o[1]
               for o in MMENGINE_CHECKPOINT_GLOBALS}
    assert unsafe <= allowed, unsafe - allowed


def test_allow_list_holds_only_data_types():
    for entry in MMENGINE_CHECKPOINT_GLOBALS:
        obj = entry[0] if isinstance(entry, tuple) else entry
        assert obj.__module__.split('.')[0] in ('numpy', 'mmengine', 'mmmim'), obj


class _GetAttr:
    def __init__(self, owner, name):
        self.owner, self.name = owner, name

    def __reduce__(self):
        return getattr, (self.owner, self.name)


@pytest.mark.parametrize('owner,name', [(np.ndarray, 'tofile'), (HistoryBuffer, '__init__'),
                                        (HistoryBuffer, '__class__')])
def test_getattr_is_only_allowed_for_history_buffer_statistics(tmp_path, owner, name):
    path = tmp_path / 'getattr.pth'
    torch.save({'ok': _GetAttr(HistoryBuffer, 'mean'), 'bad': _GetAttr(owner, name)}, path)
    with pytest.raises(UnsafeCheckpointError, match=name):
        load_checkpoint_safely(path)
    torch.save({'ok': _GetAttr(HistoryBuffer, 'mean')}, path)
    assert load_checkpoint_safely(path)['ok'] is HistoryBuffer.mean


def test_load_through_mmengine(mmengine_ckpt):
    ckpt = _load_checkpoint(str(mmengine_ckpt[1]), map_location='cpu')
    assert ckpt['meta']['iter'] == 2
    loss = ckpt['message_hub']['log_scalars']['train/loss']
    assert len(loss.data[0]) == 2  # HistoryBuffer came back intact
    assert ckpt['message_hub']['runtime_info']['np_scalar'] == 0.5


def test_runner_resume_restores_state(mmengine_ckpt, tmp_path):
    work, path = mmengine_ckpt
    runner = _runner(tmp_path, 4, load_from=str(path), resume=True)
    runner.train()
    assert runner.iter == 4
    ckpt = load_checkpoint_safely(tmp_path / 'iter_4.pth')
    assert ckpt['meta']['iter'] == 4
    assert ckpt['message_hub']['log_scalars']['train/loss'].data[0].size == 4  # 2 resumed + 2 new


def test_install_is_idempotent_and_routes_local_paths():
    install_safe_checkpoint_loading()
    install_safe_checkpoint_loading()
    loader = CheckpointLoader._get_checkpoint_loader('/some/local/file.pth')
    assert loader.__module__ == 'mmmim.utils.checkpoint'


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


@pytest.mark.parametrize('zip_format', [True, False])
def test_code_running_pickle_is_refused(tmp_path, zip_format):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'x': _Evil(marker)}, path,
               _use_new_zipfile_serialization=zip_format)
    for load in (lambda: load_checkpoint_safely(path), lambda: _load_checkpoint(str(path))):
        with pytest.raises(UnsafeCheckpointError) as err:
            load()
        msg = str(err.value)
        assert 'system' in msg and str(path) in msg and 'convert_checkpoint' in msg
        assert not marker.exists()


class Harmless:
    pass


def test_unknown_class_is_named(tmp_path):
    path = tmp_path / 'custom.pth'
    torch.save({'obj': Harmless()}, path)
    with pytest.raises(UnsafeCheckpointError, match=r'test_foundation_checkpoint\.Harmless'):
        load_checkpoint_safely(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        _load_checkpoint(str(tmp_path / 'nope.pth'))


@pytest.mark.parametrize('damage', ['half', 'head', 'tail', 'empty', 'garbage', 'text'])
def test_corrupt_file(mmengine_ckpt, tmp_path, damage):
    data = mmengine_ckpt[1].read_bytes()
    data = {'half': data[:len(data) // 2], 'head': data[:100], 'tail': data[:-10], 'empty': b'',
            'garbage': b'\x00not a checkpoint' * 9, 'text': b'hello world\n' * 5}
    path = tmp_path / f'{damage}.pth'
    path.write_bytes(data[damage])
    with pytest.raises(CorruptCheckpointError) as err:
        _load_checkpoint(str(path))
    assert str(path) in str(err.value) and 'incomplete or corrupt' in str(err.value)
    assert 'previous checkpoint' in str(err.value)


def test_plain_pickle_protocol_load_still_works(tmp_path):
    """Tensors and plain values (what converted checkpoints hold) load fine."""
    path = tmp_path / 'plain.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}, 'meta': {'a': (1, 2.0, 'x', None)}}, path,
               pickle_protocol=2)
    ckpt = load_checkpoint_safely(path)
    assert ckpt['meta']['a'] == (1, 2.0, 'x', None) and ckpt['state_dict']['w'].sum() == 2


@pytest.mark.filterwarnings('ignore:Detected pickle protocol')
def test_new_pickle_protocol_is_explained(tmp_path):
    path = tmp_path / 'p5.pth'
    torch.save({'w': torch.ones(1)}, path, pickle_protocol=5)
    with pytest.raises(CheckpointError, match='protocol 4 or newer') as err:
        load_checkpoint_safely(path)
    assert not isinstance(err.value, CorruptCheckpointError)

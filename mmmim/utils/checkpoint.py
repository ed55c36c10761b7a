"""Safe checkpoint loading for mmengine on torch >= 2.6.

mmengine 0.10.7 calls ``torch.load`` without ``weights_only``. torch >= 2.6 then
unpickles in weights-only mode and refuses mmengine's own checkpoints, whose message
hub holds ``HistoryBuffer`` objects and numpy arrays. Turning ``weights_only`` off
would let any checkpoint run arbitrary code, so instead we allow-list exactly the
types mmengine writes (:data:`MMENGINE_CHECKPOINT_GLOBALS`) and make every local
checkpoint load in mmengine (``Runner.resume``, ``Runner.load_checkpoint``,
``load_from``, ``init_cfg=dict(type='Pretrained')``) go through
:func:`load_checkpoint_safely`, which always passes ``weights_only=True`` and turns
torch's failures into errors that name the file, the problem and the fix.
"""
import os.path as osp
import pickle
import re
import zipfile

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

__all__ = ['MMENGINE_CHECKPOINT_GLOBALS', 'CheckpointError', 'UnsafeCheckpointError',
           'CorruptCheckpointError', 'load_checkpoint_safely', 'install_safe_checkpoint_loading']


def _numpy_globals():
    """What a pickled ndarray / numpy scalar names: the reconstructors, ``ndarray``,
    ``dtype``, and the dtype classes whose state is restored (bool, numbers, str).

    numpy 2 pickles the reconstructors under ``numpy._core``; files written with
    numpy 1.x name ``numpy.core``, so both spellings map to the same objects.
    """
    from numpy._core import multiarray
    entries = [np.ndarray, np.dtype]
    for fn in (multiarray._reconstruct, multiarray.scalar):
        entries += [fn, (fn, f'numpy.core.multiarray.{fn.__name__}')]
    entries += [type(np.dtype(t)) for t in (
        np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
        np.uint64, np.float16, np.float32, np.float64, np.str_)]
    return entries


def _history_buffer_method(obj, name):
    """Stands in for ``builtins.getattr`` while unpickling.

    A HistoryBuffer's state holds its statistics methods (``HistoryBuffer.mean``...),
    which pickle as ``getattr(HistoryBuffer, 'mean')``. Only that lookup is allowed:
    a general ``getattr`` would let a pickle reach arbitrary attributes.
    """
    if obj is HistoryBuffer and not name.startswith('_') and callable(vars(obj).get(name)):
        return getattr(obj, name)
    owner = getattr(obj, '__qualname__', type(obj).__qualname__)
    raise pickle.UnpicklingError(f'Unsupported global: GLOBAL {owner}.{name} was not an '
                                 f'allowed global (getattr is only allowed for HistoryBuffer)')


#: Everything besides tensors and plain Python values (including OrderedDict, which
#: torch allows already) that mmengine's ``Runner.save_checkpoint`` writes: the
#: message hub's ``HistoryBuffer`` objects with their statistics methods, and the
#: numpy arrays / scalars in them, in ``runtime_info`` and in ``meta.dataset_meta``.
MMENGINE_CHECKPOINT_GLOBALS = [HistoryBuffer, (_history_buffer_method, 'builtins.getattr')
                               ] + _numpy_globals()


class CheckpointError(RuntimeError):
    """A checkpoint file could not be loaded (see the message for the file and fix)."""


class UnsafeCheckpointError(CheckpointError):
    """The checkpoint's pickle names a global outside the allow-list."""


class CorruptCheckpointError(CheckpointError):
    """The checkpoint file is truncated or not a torch checkpoint."""


_UNSAFE_RES = (re.compile(r'GLOBAL (\S+)'),
               re.compile(r'unrecognized function (.+?)(?: which|$)', re.M),
               re.compile(r'allowlisted via `add_safe_globals`,? but got (.+?)$', re.M))


def load_checkpoint_safely(filename, map_location=None):
    """``torch.load(filename, weights_only=True)`` with errors that say what to do.

    Raises:
        FileNotFoundError: ``filename`` does not exist.
        UnsafeCheckpointError: the pickle names a type outside the allow-list (it
            could run code); nothing from the file is executed.
        CorruptCheckpointError: the file is truncated or not a checkpoint.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(
            f'checkpoint {filename!r} does not exist; check the path (for --resume, '
            f'omit the path to resume from the latest checkpoint of the work dir)')
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = [m for m in (r.search(str(e)) for r in _UNSAFE_RES) if m]
        if found:
            name = found[0].group(1).strip()
            raise UnsafeCheckpointError(
                f'refusing to load checkpoint {filename!r}: its pickle names {name}, which '
                f'is not a tensor, a plain Python value or one of the types mmengine '
                f'stores, and unpickling it could run code. If it comes from another '
                f'codebase, convert it with '
                f'tools/convert_checkpoint.py, or, only if you trust the file, load it '
                f'yourself with torch.load(path, weights_only=False) and save its tensors '
                f'and plain values again (or allow that type with '
                f'torch.serialization.add_safe_globals).') from None
        if 'Unsupported operand 149' in str(e):  # FRAME: pickle protocol >= 4
            raise CheckpointError(
                f'checkpoint {filename!r} was saved with pickle protocol 4 or newer, which '
                f"torch's weights-only loader cannot read; if you trust it, load it with "
                f'torch.load(path, weights_only=False) and save it again with torch.save '
                f'(default protocol 2).') from None
        raise _corrupt(filename, e) from e
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except (EOFError, zipfile.BadZipFile, ValueError, KeyError, OSError) as e:
        # e.g. a cut-off zip: OSError EINVAL; an empty file: EOFError; text: KeyError
        raise _corrupt(filename, e) from e
    except RuntimeError as e:
        if any(s in str(e) for s in ('PytorchStreamReader', 'zip archive', 'unexpected EOF',
                                     'file_name', 'invalid header')):
            raise _corrupt(filename, e) from e
        raise


def _corrupt(filename, err):
    return CorruptCheckpointError(
        f'checkpoint {filename!r} is incomplete or corrupt, or not a torch checkpoint '
        f'({type(err).__name__}: {_last_line(err)}); a checkpoint is usually cut off when '
        f'a run is killed while writing it. Resume from the previous checkpoint instead (e.g. '
        f'--resume <work_dir>/iter_<N>.pth), or delete it and its name in '
        f'<work_dir>/last_checkpoint.')


def _last_line(err):
    lines = [ln for ln in str(err).splitlines() if ln.strip() and 'documentation' not in ln]
    return lines[-1].strip() if lines else 'no detail'


def _load_from_local(filename, map_location):
    """mmengine's local-path checkpoint loader, made safe (weights_only=True)."""
    return load_checkpoint_safely(filename, map_location)


_installed = False


def install_safe_checkpoint_loading():
    """Allow-list mmengine's checkpoint types and route its local loads through
    :func:`load_checkpoint_safely`. Idempotent; called by ``import mmmim.engine``.

    Other schemes (http://, s3://, ...) still call ``torch.load`` without
    ``weights_only``, which torch >= 2.6 treats as ``weights_only=True``; the allow-list
    applies to them too.
    """
    global _installed
    if _installed:
        return
    from mmengine.runner import checkpoint as mm_ckpt
    torch.serialization.add_safe_globals(MMENGINE_CHECKPOINT_GLOBALS)
    mm_ckpt.CheckpointLoader.register_scheme(prefixes='', loader=_load_from_local, force=True)
    mm_ckpt.load_from_local = _load_from_local
    _installed = True

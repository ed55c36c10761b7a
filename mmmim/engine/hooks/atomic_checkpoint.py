"""Atomic checkpoint writes: a crash while saving never leaves a truncated file.

mmengine writes a checkpoint by opening the final path and writing into it, and then
rewrites ``<work_dir>/last_checkpoint`` in place. A process killed in the middle
(``kill -9``, out of memory, a pre-empted node) leaves a truncated ``iter_N.pth`` or
an empty ``last_checkpoint``, and ``--resume`` then fails on exactly the file it needs.

:func:`install_atomic_checkpoint_saving` (called when ``mmmim.engine`` is imported)
makes both writes atomic for local paths: the bytes go to a temporary file in the
same directory, which is flushed, fsync'ed and then renamed over the final name
(``os.replace``, atomic on POSIX and Windows). A reader therefore sees either the
previous complete file or the new complete file. ``last_checkpoint`` is written only
after the checkpoint it names is complete (mmengine's order, kept). Remote paths
(``s3://``, ``http://``, ...) go to mmengine's backends unchanged.

A kill during a save may leave a ``.<name>.tmp-<pid>`` file next to the checkpoints;
it is never read and the next save of the same process does not collide with it.
"""
import io
import os
import os.path as osp
import re

import torch

__all__ = ['atomic_write_bytes', 'save_checkpoint_atomic', 'install_atomic_checkpoint_saving']

_REMOTE = re.compile(r'^[a-zA-Z][\w+.-]*://')


def _is_local(path) -> bool:
    return not _REMOTE.match(str(path))


def _fsync_dir(dirname: str) -> None:
    """Persist a rename (the directory entry); not possible on every OS / filesystem."""
    try:
        fd = os.open(dirname, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(data: bytes, path: str) -> None:
    """Write ``data`` to ``path`` so that ``path`` is never seen partly written."""
    path = osp.abspath(osp.expanduser(str(path)))
    dirname = osp.dirname(path)
    os.makedirs(dirname, exist_ok=True)
    tmp = osp.join(dirname, f'.{osp.basename(path)}.tmp-{os.getpid()}')
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(dirname)


def save_checkpoint_atomic(checkpoint: dict, filename: str, file_client_args=None,
                           backend_args=None) -> None:
    """Drop-in for ``mmengine.runner.checkpoint.save_checkpoint``: atomic for local
    paths, mmengine's own writer for remote ones."""
    if file_client_args is None and backend_args is None and _is_local(filename):
        with io.BytesIO() as buf:
            torch.save(checkpoint, buf)
            atomic_write_bytes(buf.getvalue(), filename)
        return
    _original['save_checkpoint'](checkpoint, filename, file_client_args=file_client_args,
                                 backend_args=backend_args)


class _AtomicTextFile(io.StringIO):
    """A text file opened for writing that lands on disk atomically when closed."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def close(self):
        if not self.closed:
            atomic_write_bytes(self.getvalue().encode(), self.path)
        super().close()

    def __exit__(self, *exc):
        if exc[0] is not None:  # an error while writing: keep the previous file
            super().close()
            return False
        self.close()
        return False


def _checkpoint_hook_open(file, mode='r', *args, **kwargs):
    """``open`` as seen by mmengine's CheckpointHook: writing ``last_checkpoint``
    becomes atomic; every other call is the builtin ``open``."""
    if mode == 'w' and osp.basename(str(file)) == 'last_checkpoint' and not args \
            and not kwargs:
        return _AtomicTextFile(str(file))
    return open(file, mode, *args, **kwargs)


_original = {}


def install_atomic_checkpoint_saving() -> None:
    """Route mmengine's checkpoint and ``last_checkpoint`` writes through atomic
    writers (see the module docstring). Idempotent."""
    if _original:
        return
    from mmengine.hooks import checkpoint_hook
    from mmengine.runner import checkpoint as mm_ckpt
    from mmengine.runner import runner as mm_runner
    _original['save_checkpoint'] = mm_ckpt.save_checkpoint
    for module in (mm_ckpt, mm_runner, checkpoint_hook):
        if getattr(module, 'save_checkpoint', None) is _original['save_checkpoint']:
            module.save_checkpoint = save_checkpoint_atomic
    checkpoint_hook.open = _checkpoint_hook_open


install_atomic_checkpoint_saving()

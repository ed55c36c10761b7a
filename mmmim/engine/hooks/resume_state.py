"""Exact resumption: random-number state and the data position in the checkpoint."""
import random
import time
from typing import Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop

from mmmim.registry import HOOKS

RNG_KEY = 'rng_states'


def get_rng_state() -> dict:
    """This process's generators: Python, numpy, torch CPU and (if present) CUDA."""
    state = dict(python=random.getstate(), numpy=np.random.get_state(),
                 torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_tuples(state['python']))
    np.random.set_state(_tuples(state['numpy']))
    # a checkpoint loaded onto the GPU (mmengine's default map location when resuming on
    # CUDA) brings these tensors there too; the setters want CPU byte tensors
    torch.set_rng_state(state['torch'].cpu())
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])


def _tuples(value):
    """Python's and numpy's set_state want tuples; a checkpoint round trip may give lists."""
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def _set_sampler_epoch(loader, epoch: int) -> None:
    """What mmengine's DistSamplerSeedHook does before every training epoch."""
    for sampler in (getattr(loader, 'sampler', None),
                    getattr(getattr(loader, 'batch_sampler', None), 'sampler', None)):
        if hasattr(sampler, 'set_epoch'):
            sampler.set_epoch(epoch)
            return


class _SkipFirst:
    """A sampler that leaves out its first ``n`` indices once (the part of an epoch a
    resumed run has already trained on), then behaves as the sampler it wraps."""

    def __init__(self, sampler, n: int):
        self.sampler, self.n = sampler, n

    def __iter__(self):
        it = iter(self.sampler)
        n, self.n = self.n, 0
        for _ in range(n):
            next(it, None)
        return it

    def __len__(self):
        return len(self.sampler)

    def __getattr__(self, name):
        return getattr(self.sampler, name)


@HOOKS.register_module()
class ResumeStateHook(Hook):
    """Make ``--resume`` continue a run as if it had never stopped.

    mmengine restores the model, optimizer(s), scheduler(s), loss scaler(s) and the
    message hub, but not two things a masked-image-modelling run depends on:

    - Random-number state. After resuming, mmengine re-seeds the generators from the
      config's seed, so the masks (and drop-path, augmentation in the main process)
      after iteration N repeat those of the run's first iterations instead of
      continuing. This hook stores every rank's Python / numpy / torch / CUDA
      generator state in the checkpoint (key ``rng_states``) and restores it.
    - The position inside an epoch. ``EpochBasedTrainLoop`` resumed from a checkpoint
      saved mid-epoch (``CheckpointHook(by_epoch=False)``) restarts the epoch from its
      first batch and runs more iterations than configured. This hook makes the
      sampler leave out the batches already trained on and keeps the iteration
      counters (logs, intervals) where they were.

    It also gives the training dataloader its own generator for the per-epoch seed a
    DataLoader draws, so starting a new epoch does not advance the global generator
    that the masks use (otherwise whether an epoch started in this process would change
    the masks).

    Resumed runs reproduce the uninterrupted run's losses when data augmentation is
    deterministic, runs in the main process (``num_workers=0``) of an
    ``EpochBasedTrainLoop``, or runs in workers that are started anew every epoch and
    the run resumes at an epoch boundary. Random augmentation in workers otherwise draws
    from streams that live in the worker processes, which no checkpoint can hold
    (persistent workers restart them from the seed; a mid-epoch resume hands the
    remaining batches to other workers): the run warns it is not bit-identical, unless
    ``replay_data_loading=True``, which loads the data loaded before the checkpoint
    again (without training on it) so the workers' streams stand where they stood, at
    the cost of that loading time. Random augmentation in the main process of an
    ``IterBasedTrainLoop`` continues from a different random state after resuming. The
    checkpoint must come from a run with the same number of processes for per-rank
    states to be restored (otherwise they are skipped with a warning).

    Args:
        replay_data_loading: on resuming with dataloader workers, load the data loaded
            before the checkpoint again, untrained on, for bit-identical resumption.
            Default False (it costs that loading time).

    Included in ``configs/_base_/default_runtime.py`` as ``default_hooks.resume_state``.
    """
    priority = 'LOW'  # after_train_iter before CheckpointHook (VERY_LOW)

    def __init__(self, replay_data_loading: bool = False):
        self.replay_data_loading = replay_data_loading
        self._gathered: Optional[list] = None
        self._loaded: Optional[list] = None
        self._restore_at_first_iter = False
        self._shifted_loop = None

    # ------------------------------------------------------------------ saving
    def _checkpoint_hooks(self, runner):
        return [h for h in runner.hooks if isinstance(h, CheckpointHook)]

    def _will_save(self, runner, by_epoch: bool) -> bool:
        for hook in self._checkpoint_hooks(runner):
            if hook.by_epoch != by_epoch:
                continue
            if by_epoch:
                due = hook.every_n_epochs(runner, hook.interval, hook.save_begin) or (
                    hook.save_last and hook.is_last_train_epoch(runner))
            else:
                due = hook.every_n_train_iters(runner, hook.interval, hook.save_begin) or (
                    hook.save_last and hook.is_last_train_iter(runner))
            if due:
                return True
        return False

    def _gather_if_saving(self, runner, by_epoch: bool):
        # Only rank 0 writes the checkpoint (and calls before_save_checkpoint), so the
        # other ranks' states are collected here, on every rank, before CheckpointHook.
        self._gathered = None
        if get_dist_info()[1] > 1 and self._will_save(runner, by_epoch):
            self._gathered = all_gather_object(get_rng_state())

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self._gather_if_saving(runner, by_epoch=False)

    def after_train_epoch(self, runner):
        self._gather_if_saving(runner, by_epoch=True)
        if self._shifted_loop is not None:  # the resumed epoch is over
            vars(self._shifted_loop).pop('run_iter', None)
            self._shifted_loop = None

    def before_save_checkpoint(self, runner, checkpoint: dict):
        world = get_dist_info()[1]
        if self._gathered is not None and len(self._gathered) == world:
            checkpoint[RNG_KEY] = self._gathered
        elif world == 1:
            checkpoint[RNG_KEY] = [get_rng_state()]
        else:  # a save this hook did not foresee: only rank 0's state is known
            checkpoint[RNG_KEY] = [get_rng_state()]
        self._gathered = None

    # ------------------------------------------------------------------ resuming
    def after_load_checkpoint(self, runner, checkpoint: dict):
        self._loaded = checkpoint.get(RNG_KEY)

    def before_train(self, runner):
        loader = runner.train_dataloader
        if getattr(loader, 'generator', None) is None:
            rank = get_dist_info()[0]
            loader.generator = torch.Generator().manual_seed(int(runner.seed or 0) + rank)
        if runner.iter == 0:  # a fresh run (or load_from): nothing to continue
            self._loaded = None
            return
        loop = runner.train_loop
        if not isinstance(loop, EpochBasedTrainLoop):
            # IterBasedTrainLoop fetches (and discards) the trained batches first, which
            # also replays the dataloader workers' random streams
            self._restore_at_first_iter = True
            return
        # a checkpoint saved by iteration at an epoch's last batch has done == len(loader):
        # the epoch is trained but its after_train_epoch (validation, epoch checkpoints)
        # is not done yet, so all its batches are skipped, not none
        done = runner.iter - runner.epoch * len(loader)
        workers = getattr(loader, 'num_workers', 0) > 0
        persistent = workers and getattr(loader, 'persistent_workers', False)
        if workers and self.replay_data_loading:
            self._replay(runner, loop, loader, done, persistent)
        else:
            if persistent or (workers and 0 < done < len(loader)):
                why = ('the workers are kept between epochs (persistent_workers=True)'
                       if persistent else 'this checkpoint is from the middle of an epoch')
                print_log(f'ResumeStateHook: the training dataloader runs in workers and {why}; '
                          'their random-number streams (random augmentation) live in the '
                          'worker processes, which no checkpoint holds, so from here on this '
                          'run draws other augmentations than an uninterrupted run would (it '
                          'is correct, not bit-identical). For bit-identical resumption set '
                          'default_hooks.resume_state.replay_data_loading=True (loads the '
                          'data already trained on again, without training on it).',
                          logger='current', level=30)
            if 0 < done <= len(loader):
                self._skip_in_epoch(runner, loop, loader, done)
        self._restore(runner)  # nothing draws random numbers before the next batch

    def _replay(self, runner, loop, loader, done: int, persistent: bool):
        """Load again (and throw away) what the run loaded before its checkpoint, so the
        workers' random streams stand where they stood: every earlier epoch when the
        workers persist across epochs, and the current epoch's first ``done`` batches
        (their ``run_iter`` is dropped, so they are not trained on again)."""
        epochs = runner.epoch if persistent else 0
        start = time.perf_counter()
        for epoch in range(epochs):
            _set_sampler_epoch(loader, epoch)
            for _ in loader:
                pass
        _set_sampler_epoch(loader, runner.epoch)  # as DistSamplerSeedHook will, if present
        if 0 < done:
            run_iter = loop.run_iter
            loop.run_iter = lambda idx, data_batch: (run_iter(idx, data_batch)
                                                     if idx >= done else None)
            self._shifted_loop = loop
        if epochs == 0 and done == 0:  # an epoch boundary with fresh workers: nothing to load
            return
        print_log(f'ResumeStateHook: loaded the data of {epochs} earlier epoch(s) again in '
                  f'{time.perf_counter() - start:.1f} s, and loads the first {done} batches of '
                  f'epoch {runner.epoch + 1} again without training on them, so the dataloader '
                  f'workers continue their random streams as in an uninterrupted run',
                  logger='current')

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if self._restore_at_first_iter:
            self._restore_at_first_iter = False
            self._restore(runner)

    def _skip_in_epoch(self, runner, loop, loader, done: int):
        batch_sampler = getattr(loader, 'batch_sampler', None)
        if batch_sampler is None or not hasattr(batch_sampler, 'sampler'):
            print_log(f'ResumeStateHook: cannot skip the {done} batches of epoch '
                      f'{runner.epoch + 1} already trained on (the dataloader has no batch '
                      f'sampler); the epoch restarts from its first batch',
                      logger='current', level=30)
            return
        batch_sampler.sampler = _SkipFirst(batch_sampler.sampler, done * batch_sampler.batch_size)
        run_iter = loop.run_iter
        loop.run_iter = lambda idx, data_batch: run_iter(idx + done, data_batch)
        self._shifted_loop = loop
        print_log(f'ResumeStateHook: continuing epoch {runner.epoch + 1} after its first '
                  f'{done} batches', logger='current')

    def _restore(self, runner):
        states, self._loaded = self._loaded, None
        rank, world = get_dist_info()
        if not states:
            print_log('ResumeStateHook: the checkpoint holds no random-number state (saved '
                      'without this hook); masks after resuming are drawn from the seed',
                      logger='current', level=30)
        elif len(states) != world:
            print_log(f'ResumeStateHook: the checkpoint holds random-number states of '
                      f'{len(states)} process(es) but this run has {world}; masks after '
                      f'resuming are drawn from the seed', logger='current', level=30)
        else:
            set_rng_state(states[rank])

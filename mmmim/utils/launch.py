"""Config preparation shared by tools/train.py and tools/test.py.

Each helper turns a mistake that mmengine would accept silently, or report far from
its cause, into an error at start-up that names the problem and the fix.
"""
import difflib
import os.path as osp
import re
import zipfile

_OPTIM_WRAPPERS_TO_SWITCH = ('OptimWrapper', 'AmpOptimWrapper', 'MixedPrecisionOptimWrapper')


class RegistryLookupError(KeyError):
    """A config ``type`` is not registered (a KeyError, printed without quotes)."""

    def __str__(self):
        return str(self.args[0])


def check_cfg_options(cfg, options):
    """Refuse ``--cfg-options`` keys whose parent path does not exist in ``cfg``.

    ``a.b.c=1`` may add ``c`` to an existing ``a.b`` but not create ``a.b``: a typo
    such as ``optim_wraper.optimizer.lr`` would otherwise be added silently and ignored.
    Numeric components index lists, as in mmengine (``pipeline.0.scale``).
    """
    for key in options or {}:
        parts, node = key.split('.'), cfg
        for depth, part in enumerate(parts[:-1]):
            where = '.'.join(parts[:depth]) or 'the config'
            if isinstance(node, (list, tuple)):
                if part.isdigit() and int(part) < len(node):
                    node = node[int(part)]
                    continue
                problem = f'{where} is a list of {len(node)} items; {part!r} is not an index'
            elif part not in node:
                near = difflib.get_close_matches(part, list(map(str, node)), n=3, cutoff=0.5)
                known = ', '.join('.'.join(parts[:depth] + [k]) for k in near or sorted(node)[:8])
                problem = (f'{where} has no key {part!r}; '
                           + (f'did you mean {known}?' if near else f'existing keys: {known}'))
            elif isinstance(node[part], (dict, list, tuple)):
                node = node[part]
                continue
            else:
                problem = f'{".".join(parts[:depth + 1])} is a value, not a dict'
            raise SystemExit(f'error: --cfg-options key {key!r}: {problem}\n(only the last '
                             f'component of a key may be new; add new sections in the config '
                             f'file)')


def load_config(args):
    """The config named by ``args.config`` with the overrides every tool applies:
    checked ``--cfg-options``, the launcher, the work dir (default
    ``./work_dirs/<config name>``) and the default scope ``mmmim``."""
    from mmengine.config import Config
    cfg = Config.fromfile(args.config)
    check_cfg_options(cfg, args.cfg_options)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if cfg.get('default_scope') is None:
        cfg.default_scope = 'mmmim'
    return cfg


def switch_to_amp(cfg):
    """``--amp``: use MixedPrecisionOptimWrapper for the optim wrapper, or for every
    sub-wrapper of a multi-optimizer config (``dict(generator=..., discriminator=...)``).
    """
    ow = cfg.get('optim_wrapper')
    if ow is None:
        raise SystemExit('error: --amp needs an optim_wrapper in the config')
    single = 'optimizer' in ow or 'type' in ow
    subs = [ow] if single else [
        v for k, v in ow.items() if k not in ('constructor', 'paramwise_cfg') and isinstance(v, dict)]
    if not subs:
        raise SystemExit('error: --amp: optim_wrapper has neither an optimizer nor sub-wrappers')
    for sub in subs:
        kind = str(sub.get('type', 'OptimWrapper')).split('.')[-1]
        if kind not in _OPTIM_WRAPPERS_TO_SWITCH:
            raise SystemExit(f'error: --amp cannot switch optim wrapper type {kind!r}; set its '
                             f'mixed-precision options in the config instead')
        sub['type'] = 'mmmim.MixedPrecisionOptimWrapper'
    return cfg


def check_checkpoint_file(path, what='checkpoint'):
    """Fail before training if a local checkpoint is missing or truncated.

    torch's zip format keeps its index at the end of the file, so a file cut off
    while being written cannot be opened as a zip archive.
    """
    if path is None or re.match(r'^[a-zA-Z][\w+.-]*://', str(path)):
        return  # remote: checked when loaded
    path = osp.expanduser(str(path))
    if not osp.isfile(path):
        raise SystemExit(f'error: {what} {path!r} does not exist; check the path')
    with open(path, 'rb') as f:
        head = f.read(4)
    if head[:2] == b'PK':
        try:
            zipfile.ZipFile(path).close()
        except zipfile.BadZipFile:
            raise SystemExit(f'error: {what} {path!r} is incomplete or corrupt (it was probably '
                             f'cut off while being written); use the previous checkpoint '
                             f'instead') from None
    elif not head:
        raise SystemExit(f'error: {what} {path!r} is empty; use the previous checkpoint instead')


def check_resume_source(cfg):
    """With ``resume=True``, check the checkpoint that will be loaded: ``load_from``,
    or the one ``<work_dir>/last_checkpoint`` names (auto resume)."""
    if cfg.get('resume') and cfg.get('load_from') is None:
        record = osp.join(cfg.work_dir, 'last_checkpoint')
        if osp.isfile(record):
            with open(record) as f:
                latest = f.read().strip()
            check_checkpoint_file(latest, f'latest checkpoint (named in {record})')
    else:
        check_checkpoint_file(cfg.get('load_from'),
                              'resume checkpoint' if cfg.get('resume') else 'load_from checkpoint')


_NOT_REGISTERED = re.compile(r'^(\S+) is not in the (?:(\S+)::)?(.+?) registry')


def explain_registry_error(err):
    """Reword mmengine's 'X is not in the registry' KeyError; None for other KeyErrors."""
    found = _NOT_REGISTERED.match(str(err.args[0]) if err.args else '')
    if not found:
        return None
    name, scope, registry = found.groups()
    return RegistryLookupError(
        f"type {name!r} is not registered in the {registry!r} registry (scope "
        f"{scope or 'mmengine'!r}). Check the spelling; a component of another package "
        f"needs its scope prefix (e.g. 'mmpretrain.{name.split('.')[-1]}'); did you forget "
        f"custom_imports=dict(imports=['your.module']) for a component of your own?")


_GROUP_MISMATCH = ('different number of parameter groups',
                   "doesn't match the size of optimizer's group")


def explain_resume_error(err, cfg):
    """Reword PyTorch's optimizer-state mismatch on a resume (the checkpoint's optimizer was
    built with another grouping of the parameters); None for other errors."""
    if not cfg.get('resume') or not any(m in str(err) for m in _GROUP_MISMATCH):
        return None
    ow = cfg.get('optim_wrapper') or {}
    return ValueError(
        f'{err}: the checkpoint\'s optimizer was built with another grouping of the '
        f'parameters than this config\'s (optim_wrapper constructor: '
        f"{ow.get('constructor', 'DefaultOptimWrapperConstructor')!r}; e.g. one written with "
        "MergedGroupsOptimWrapperConstructor resumed without it, or the other way round). "
        'Resume with the optim_wrapper (constructor and paramwise_cfg) it was written with, '
        'or start a new run from its weights with load_from instead of resume.')


STRICT_LOAD_FIX = (
    'Convert the checkpoint to this model\'s layout first (whole MAE models: `python '
    'tools/convert_checkpoint.py IN OUT --out-layout mmmim-mae`; see docs/checkpoints.md), '
    'build the config\'s model to match it, or, if only part of it is meant to load, pass '
    '--allow-partial to tools/train.py (or set load_from_partial = True in the config).')


def make_load_from_strict(runner, allow_partial: bool = False) -> None:
    """Load ``load_from`` strictly: mmengine loads it with ``strict=False`` and only logs
    missing, unexpected or mis-shaped keys, so a checkpoint of another layout or size
    starts training from a silently partial model. With ``allow_partial`` (or
    ``load_from_partial=True`` in the config) mmengine's lenient load is kept.
    A resumed run is unchanged (mmengine's resume loads its own checkpoints)."""
    if allow_partial or runner.cfg.get('load_from_partial', False) or runner.cfg.get('resume'):
        return
    original = runner.load_checkpoint

    def load_checkpoint(filename, map_location='cpu', strict=False, revise_keys=None, **kw):
        kwargs = dict(map_location=map_location, strict=True, **kw)
        if revise_keys is not None:
            kwargs['revise_keys'] = revise_keys
        try:
            return original(filename, **kwargs)
        except RuntimeError as e:
            if 'state_dict' not in str(e) and 'size mismatch' not in str(e):
                raise
            from .convert import CheckpointMismatchError
            raise CheckpointMismatchError(
                f'load_from={filename!r} does not fit the model of this config:\n{e}\n'
                f'{STRICT_LOAD_FIX}') from None
    runner.load_checkpoint = load_checkpoint


def prepare_strategy_config(cfg, amp: bool = False):
    """A config with an FSDP ``strategy`` (``MIMFSDPStrategy`` or mmengine's
    ``FSDPStrategy``): check it and make it run under mmengine's ``FlexibleRunner``.

    - It must be launched as a distributed job (``--launcher pytorch`` / ``slurm``).
    - ``runner_type`` becomes ``'FlexibleRunner'`` (mmengine's ``Runner`` has no
      strategies) unless the config names one.
    - The config is refused, before anything is built, when FSDP would train it
      wrongly (a model with its own ``train_step`` such as GAN-MAE, several optimizers):
      see :func:`mmmim.engine.strategies.check_fsdp_config`.
    - ``--amp`` (``amp=True``) sets FSDP's own mixed precision: bf16 parameters and
      compute, fp32 gradient reduction and buffers (the optimizer keeps fp32 shards), unless
      ``strategy.model_wrapper.mixed_precision`` is set already. On a CPU without native
      bf16 it stays fp32, as ``--amp`` does without FSDP (logged).

    Returns:
        bool: True if ``cfg`` trains with FSDP (and was prepared).
    """
    from mmmim.engine.strategies import FSDPConfigError, check_fsdp_config, is_fsdp_config
    if not is_fsdp_config(cfg):
        return False
    if cfg.get('launcher', 'none') == 'none':
        raise SystemExit('error: this config trains with FSDP (`strategy`), which shards the model '
                         'over distributed processes; start it with tools/dist_train.sh CONFIG '
                         'NPROC (NPROC=1 for one GPU or CPU process), or with --launcher '
                         'pytorch/slurm')
    cfg.setdefault('runner_type', 'FlexibleRunner')
    try:
        check_fsdp_config(cfg)
    except FSDPConfigError as e:
        raise SystemExit(f'error: {e}') from None
    if amp:
        import torch
        wrapper = cfg.strategy.get('model_wrapper') or {}
        if wrapper.get('mixed_precision') is None:
            dtype = 'bfloat16'
            if not torch.cuda.is_available():
                from .precision import auto_dtype
                if auto_dtype('cpu', '--amp (FSDP)') != torch.bfloat16:
                    dtype = None
            if dtype:
                wrapper['mixed_precision'] = dict(param_dtype=dtype, reduce_dtype='float32',
                                                  buffer_dtype='float32')
                cfg.strategy['model_wrapper'] = wrapper
    return True

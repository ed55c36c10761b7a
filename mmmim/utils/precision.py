"""Which precision to run in on a CPU: bf16 only where the CPU executes it natively.

Why this exists: torch autocasts to bf16 on any CPU, but only CPUs with AVX512-BF16 or
AMX instructions run bf16 matmuls in hardware (there bf16 is ~4x faster than fp32). On
an AVX2 CPU bf16 is emulated and a matmul runs ~60x *slower* than in fp32, so a
"mixed-precision" default that is a large win on one laptop is a disaster on the
next. Every place in mmmim that would autocast to bf16 on a CPU by default (``--amp``,
:class:`~mmmim.engine.MixedPrecisionOptimWrapper`, the linear probe's feature pass,
the benchmark commands) asks :func:`cpu_bf16_is_fast` first.

The decision, made once per process:

1. ``MMMIM_CPU_BF16=1`` / ``0`` in the environment forces it (for every tool at once).
2. ``torch.backends.cpu.get_cpu_capability()`` reports ``AVX2`` (or less): no bf16
   instructions, fp32.
3. It reports ``AVX512`` and the CPU has AVX512-BF16 or AMX-BF16: bf16.
4. Anything else (AVX-512 without BF16, non-x86 CPUs, a torch without the flags): a
   short timed probe (256-cubed matmuls, well under a second even where bf16 is
   emulated) picks bf16 only if it is at least 1.2x faster than fp32.

An explicit request for bf16 (``optim_wrapper.dtype='bfloat16'``, ``--amp bf16``) is
always honoured; :func:`warn_if_bf16_slow` then names the measured slowdown.
"""
import functools
import os
import time
from typing import NamedTuple

import torch
from mmengine.logging import print_log

#: bf16 must beat fp32 by this factor in the timed probe to be chosen.
MIN_SPEEDUP = 1.2
FORCE_ENV = 'MMMIM_CPU_BF16'
_logged = set()


class Bf16Decision(NamedTuple):
    fast: bool          # run bf16 autocast on this CPU by default
    reason: str         # one line: what was seen


def log_once(msg: str, level: str = 'INFO') -> None:
    """Log ``msg`` through mmengine's current logger, once per process."""
    if msg in _logged:
        return
    _logged.add(msg)
    import logging
    print_log(msg, logger='current', level=getattr(logging, level))


def _cpu_flag(name: str):
    """``torch.cpu._is_<name>_supported()`` (cpuinfo), or None where torch lacks it."""
    fn = getattr(torch.cpu, f'_is_{name}_supported', None)
    try:
        return bool(fn()) if fn is not None else None
    except Exception:  # pragma: no cover - defensive: a torch build without cpuinfo
        return None


@functools.lru_cache(maxsize=None)
def measure_bf16_speedup(n: int = 256, reps: int = 3) -> float:
    """fp32 time / bf16 time of an ``n x n x n`` CPU matmul (best of ``reps``).

    Cached per process. Stops early once bf16 is clearly emulated (one bf16 product
    slower than 20 fp32 ones), so it costs < 0.5 s on every CPU seen."""
    a32, b32 = torch.randn(n, n), torch.randn(n, n)
    a16, b16 = a32.bfloat16(), b32.bfloat16()

    def best(a, b, limit=None):
        times = []
        for _ in range(reps + 1):  # the first call warms up
            t = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t)
            if limit is not None and times[-1] > limit:
                break
        return min(times[1:]) if len(times) > 1 else times[0]

    t32 = best(a32, b32)
    t16 = best(a16, b16, limit=20 * t32)
    return t32 / max(t16, 1e-9)


def _decide() -> Bf16Decision:
    forced = os.environ.get(FORCE_ENV)
    if forced in ('0', '1'):
        return Bf16Decision(forced == '1', f'forced by {FORCE_ENV}={forced}')
    cap = torch.backends.cpu.get_cpu_capability()
    if cap in ('DEFAULT', 'NO AVX', 'AVX', 'AVX2'):
        return Bf16Decision(False, f'CPU capability {cap}: no bf16 instructions (bf16 would be '
                            f'emulated)')
    if cap == 'AVX512':
        native = [n for n in ('avx512_bf16', 'amx_tile') if _cpu_flag(n)]
        if native:
            return Bf16Decision(True, f'CPU capability AVX512 with native bf16 '
                                f'({", ".join(native).upper()})')
    speedup = measure_bf16_speedup()
    return Bf16Decision(speedup >= MIN_SPEEDUP,
                        f'CPU capability {cap}, timed probe: bf16 matmul {speedup:.2f}x the '
                        f'speed of fp32')


@functools.lru_cache(maxsize=None)
def cpu_bf16_decision() -> Bf16Decision:
    """The cached :class:`Bf16Decision` for this process's CPU."""
    return _decide()


def cpu_bf16_is_fast() -> bool:
    return cpu_bf16_decision().fast


def auto_dtype(device_type: str, what: str = 'autocast',
               hint: str = "optim_wrapper.dtype='bfloat16'"):
    """The autocast dtype a default ("automatic") mixed-precision request gets.

    CUDA: None (the caller keeps its own GPU default). CPU: ``torch.bfloat16`` where
    bf16 is native, else ``torch.float32`` (no autocast), logged once with the reason
    and how to force bf16. ``what`` names the caller in that line, ``hint`` its own way
    to ask for bf16 explicitly."""
    if device_type != 'cpu':
        return None
    decision = cpu_bf16_decision()
    if decision.fast:
        log_once(f'{what}: bf16 autocast on the CPU ({decision.reason})')
        return torch.bfloat16
    log_once(f'{what}: running in fp32 on the CPU: {decision.reason}. To force bf16 anyway, '
             f'set {FORCE_ENV}=1 or ask for it explicitly ({hint})',
             'WARNING' if 'forced' not in decision.reason else 'INFO')
    return torch.float32


def warn_if_bf16_slow(device_type: str, what: str = 'bf16') -> None:
    """An explicit bf16 request on a CPU without native bf16: honour it, but say how
    much slower it is here (measured)."""
    if device_type != 'cpu' or cpu_bf16_is_fast():
        return
    speedup = measure_bf16_speedup()
    log_once(f'{what}: bf16 was requested explicitly and is honoured, but this CPU has no '
             f'native bf16 ({cpu_bf16_decision().reason}): a bf16 matmul measured '
             f'{1 / speedup:.1f}x slower than fp32 here. Drop the request (or use --amp, '
             f'which picks fp32 here) to train faster.', 'WARNING')


def resolve_precision(precision: str, device_type: str, what: str = 'autocast',
                      hint: str = "precision='bf16'"):
    """``'auto'`` | ``'fp32'`` | ``'bf16'`` | ``'fp16'`` -> the autocast dtype, or None
    for no autocast. ``auto``: bf16 on CUDA, :func:`auto_dtype` on a CPU."""
    if precision == 'fp32':
        return None
    if precision == 'auto':
        dtype = auto_dtype(device_type, what, hint)
        if dtype is None:  # CUDA
            return torch.bfloat16
        return None if dtype == torch.float32 else dtype
    if precision == 'bf16':
        warn_if_bf16_slow(device_type, what)
        return torch.bfloat16
    if precision == 'fp16':
        return torch.float16
    raise ValueError(f"precision must be 'auto', 'fp32', 'bf16' or 'fp16', got {precision!r}")


def resolve_amp_choice(choice: str, device: str) -> str:
    """A benchmark command's ``--amp auto`` -> ``'bf16'`` or ``'fp32'`` (the same rule as
    ``tools/train.py --amp``: bf16 on CUDA and on CPUs with native bf16); an explicit
    ``'bf16'`` on a CPU without it is kept and warned about. Other choices pass through."""
    dtype = resolve_precision(choice, torch.device(device).type, f'--amp {choice}',
                              hint='--amp bf16')
    return {None: 'fp32', torch.bfloat16: 'bf16', torch.float16: 'fp16'}[dtype]


def describe_cpu() -> str:
    """One line naming this machine's CPU for every printed time: model, vector
    capability and whether bf16 is native, cores available, torch threads."""
    import platform
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            names = [line.split(':', 1)[1].strip() for line in f if line.startswith('model name')]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    decision = cpu_bf16_decision()
    bf16 = 'native bf16' if decision.fast else 'no native bf16'
    return (f'{cpu}, {torch.backends.cpu.get_cpu_capability()} ({bf16}), {cores} cores, '
            f'torch {torch.__version__} ({torch.get_num_threads()} threads)')

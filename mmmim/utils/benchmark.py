"""Timing helpers shared by the benchmark commands in tools/."""
import time

import torch


def sync(device) -> None:
    """Wait for queued work on ``device`` (a no-op on CPU)."""
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize()


def matmul_rate(dtype, device, n: int = None, seconds: float = 1.5) -> float:
    """Sustained FLOP/s of an ``n x n x n`` matmul of ``dtype`` on ``device``: the
    denominator of MFU. ``n`` defaults to 8192 on CUDA (smaller products do not reach
    the GPU's peak) and 2048 on CPU (512 for bf16 on a CPU without native bf16, where
    one 2048-cubed product takes half a minute)."""
    if n is None:
        if torch.device(device).type == 'cuda':
            n = 8192
        else:
            from mmmim.utils.precision import cpu_bf16_is_fast
            n = 512 if dtype == torch.bfloat16 and not cpu_bf16_is_fast() else 2048
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    for _ in range(2):
        a @ b
    sync(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
        if count % 4 == 0:
            sync(device)
    sync(device)
    return 2 * n**3 * count / (time.perf_counter() - start)


# The modules whose transformer layers can be compiled in place (``compile_blocks``,
# :func:`mmmim.models.layers.compile_blocks`: same outputs, same state dict).
COMPILABLE = {'backbone': ('MaskedViT', ), 'neck': ('MAEDecoder', )}


def set_compile_blocks(model: dict, mode: str = 'default', option: str = 'compile') -> None:
    """Set ``compile_blocks`` on a model config's MaskedViT backbone and MAE decoder neck,
    in place: True for ``mode='default'``, else ``dict(mode=mode)`` (e.g.
    ``'reduce-overhead'``: each compiled layer replayed as a CUDA graph, one launch per
    layer instead of one per kernel). Used by ``tools/benchmark.py --compile-blocks`` and
    ``tools/analysis/fmnist_benchmark.py --compile-blocks``; ``option`` names the flag in
    the error. A model with neither is refused, rather than run eager while the report
    says compiled."""
    found = []
    for key, types in COMPILABLE.items():
        module = model.get(key)
        if module and str(module.get('type', '')).split('.')[-1] in types:
            module['compile_blocks'] = True if mode == 'default' else dict(mode=mode)
            found.append(key)
    if not found:
        names = ' or '.join(t for ts in COMPILABLE.values() for t in ts)
        raise ValueError(f'{option}: the model ({model.get("type")}) has no {names} to '
                         f'compile; run it without {option}')

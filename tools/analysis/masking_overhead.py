"""Masking overhead of SBAM and SBAM + AMR as a share of an MAE training step.

Times one MAE training step (forward + backward + AdamW) and, separately, the masker
alone (random, SBAM, SBAM + AMR per batch, SBAM + AMR per sample) on the same tokens,
and prints a table: median milliseconds after warm-up, and each masker's time as a
percentage of the step. Runs on CPU by default, in fp32 and, where the CPU runs bf16
natively (or on CUDA), under bf16 autocast (`--precision fp32 bf16` forces both).

    python tools/analysis/masking_overhead.py                 # ViT-B/16, 224, batch 16
    python tools/analysis/masking_overhead.py --arch large
    python tools/analysis/masking_overhead.py --tiny --steps 2 # seconds, for a smoke test

The step uses random masking; per-sample AMR also pads the encoder input to the longest
visible set of the batch, which costs encoder time beyond the masker itself (not counted
here: it depends on the images).
"""
import argparse
import contextlib
import logging
import statistics
import time

import torch
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

import mmmim.models  # noqa: F401  (registers)
from mmmim.registry import MODELS
from mmmim.utils.benchmark import sync

MASKERS = {
    'random': dict(type='RandomMasker', ratio=0.75),
    'sbam': dict(type='SalienceMasker', ratio=0.75, noise=0.5),
    'sbam+amr (batch)': dict(type='SalienceMasker', noise=0.5,
                             ratio=dict(type='AdaptiveRatio', per_sample=False)),
    'sbam+amr (sample)': dict(type='SalienceMasker', noise=0.5,
                              ratio=dict(type='AdaptiveRatio', per_sample=True)),
}
TINY_ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', default='base', help="MaskedViT arch (default 'base')")
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--patch-size', type=int, default=16)
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--steps', type=int, default=5, help='timed training steps')
    parser.add_argument('--warmup', type=int, default=1, help='untimed steps first')
    parser.add_argument('--mask-reps', type=int, default=20, help='timed masker calls')
    parser.add_argument('--precision', nargs='+', default=['fp32', 'auto'],
                        choices=['fp32', 'bf16', 'auto'],
                        help="default: fp32, plus bf16 where it is native or on CUDA ('auto'); "
                             'an explicit bf16 on a CPU without native bf16 is emulated and warned '
                             'about')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--tiny', action='store_true',
                        help='a 2-layer 32-d ViT on 32x32 images (smoke test, seconds)')
    args = parser.parse_args()
    from mmmim.utils.precision import resolve_amp_choice
    args.precision = list(dict.fromkeys(resolve_amp_choice(p, args.device)
                                        for p in args.precision))
    if args.tiny:
        args.img_size, args.patch_size = 32, 4
    if min(args.steps, args.mask_reps, args.batch) < 1 or args.warmup < 0:
        parser.error('--steps, --mask-reps and --batch must be >= 1, --warmup >= 0')
    return args


def build_model(args) -> torch.nn.Module:
    decoder = dict(decoder_embed_dims=512, decoder_depth=8, decoder_num_heads=16)
    if args.tiny:
        decoder = dict(decoder_embed_dims=24, decoder_depth=1, decoder_num_heads=2)
    model = MODELS.build(dict(
        type='MAE',
        backbone=dict(type='MaskedViT', arch=TINY_ARCH if args.tiny else args.arch,
                      img_size=args.img_size, patch_size=args.patch_size),
        neck=dict(type='MAEDecoder', **decoder),
        head=dict(type='ReconstructionHead', norm_pix=True),
        masker=MASKERS['random']))
    model.init_weights()
    return model.to(args.device).train()


def median_ms(fn, reps: int, warmup: int, device) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def autocast(precision: str, device):
    if precision == 'bf16':
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def main():
    args = parse_args()
    init_default_scope('mmmim')
    MMLogger.get_current_instance().setLevel(logging.WARNING)  # no per-parameter init log
    torch.manual_seed(0)
    model = build_model(args)
    grid = model.backbone.patch_resolution
    maskers = {}
    for name, cfg in MASKERS.items():
        maskers[name] = MODELS.build(cfg).to(args.device)
        maskers[name].validate(grid)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1.5e-4, betas=(0.9, 0.95),
                                  weight_decay=0.05)
    img = torch.randn(args.batch, 3, args.img_size, args.img_size, device=args.device)

    def train_step():
        losses = model.loss(img)
        loss = sum(v for k, v in losses.items() if k.startswith('loss'))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    arch = 'tiny' if args.tiny else args.arch
    print(f'MAE ViT-{arch}/{args.patch_size}, {args.img_size}px ({grid[0] * grid[1]} patches), '
          f'batch {args.batch}, device {args.device}, {torch.get_num_threads()} threads; '
          f'median of {args.steps} steps after {args.warmup} warm-up, '
          f'{args.mask_reps} masker calls')
    header = f'{"precision":<10}{"step ms":>10}  {"masker":<19}{"mask ms":>9}{"% of step":>11}'
    print(header)
    print('-' * len(header))
    for precision in args.precision:
        with autocast(precision, args.device):
            step = median_ms(train_step, args.steps, args.warmup, args.device)
            with torch.no_grad():
                tokens = model.backbone.embed(img)
            for name, masker in maskers.items():
                ms = median_ms(lambda: masker(tokens), args.mask_reps, 2, args.device)
                print(f'{precision:<10}{step:>10.1f}  {name:<19}{ms:>9.2f}'
                      f'{100 * ms / step:>10.2f}%')


if __name__ == '__main__':
    main()

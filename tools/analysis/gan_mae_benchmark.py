"""Step throughput and MFU of each GAN-MAE scheme next to MAE on the same model.

    python tools/analysis/gan_mae_benchmark.py                      # ViT-B/16 from the config
    python tools/analysis/gan_mae_benchmark.py --tiny               # seconds-long smoke run
    python tools/analysis/gan_mae_benchmark.py configs/gan_mae/vit-s_800e.py --amp bf16

Every variant runs the model's own ``train_step`` (data preprocessor, forward, backward,
optimizer step(s)) on a synthetic batch: MAE with one AdamW wrapper, GAN-MAE with the
config's two role wrappers. The variants' steps are interleaved (one step of each in
turn) so all see the same machine load; the median step time is reported.

FLOPs are counted once per variant with ``torch.utils.flop_counter.FlopCounterMode``
(matmuls, convolutions, attention; forward and backward), so GAN-MAE's extra work
(two discriminator passes, the discriminator's backward) is counted and any wasted
work shows as a lower MFU. MFU = counted FLOPs per second / the matmul rate measured in
the same run for the same dtype (the better of a measurement before and after the steps). The target: each GAN-MAE scheme's MFU within 10% of
MAE's. ``two-stage`` is reported per stage: its first stage is an MAE step run by
GANMAE, its second the ``two_stage_scheme`` step.
"""
import argparse
import copy
import os.path as osp
import statistics
import sys
import time

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmmim.utils.benchmark import matmul_rate, sync  # noqa: E402

TINY = dict(
    type='GANMAE',
    data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[127.5], std=[127.5],
                           to_rgb=False),
    backbone=dict(type='MaskedViT', img_size=32, patch_size=4, in_channels=1,
                  arch=dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=256)),
    neck=dict(type='MAEDecoder', decoder_embed_dims=48, decoder_depth=2, decoder_num_heads=4),
    head=dict(type='ReconstructionHead', norm_pix=True))
GAN_KEYS = ('scheme', 'two_stage_scheme', 'backbone_mode', 'discriminator_backbone',
            'discriminator_head', 'gamma', 'gamma_scale', 'gamma_max', 'gamma_eps', 'adv_loss',
            'lambda_disc', 'adv_updates_disc_backbone', 'adv_warmup_epochs', 'adv_warmup_iters',
            'flat_patch_std', 'flat_patch_weight', 'shared_update')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config', nargs='?', default='configs/gan_mae/vit-b_800e.py',
                   help='a GAN-MAE config (its model and optim_wrapper are used)')
    p.add_argument('--tiny', action='store_true',
                   help='a 4-layer 64-d ViT on 32x32 grey images instead of the config model')
    p.add_argument('--batch-size', type=int, default=None, help='default 4 (64 with --tiny)')
    p.add_argument('--steps', type=int, default=5, help='timed steps per variant (median)')
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--amp', choices=['fp32', 'bf16', 'auto'], default='fp32',
                   help='bf16: autocast in every step and a bf16 matmul rate (on a CPU without '
                        'native bf16 it is emulated: a warning says how much slower); auto: '
                        'bf16 where it is native or on CUDA, else fp32')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    return p.parse_args(argv)


def build_variants(model_cfg, optim_cfg, device, amp):
    """``{name: (model, optim_wrapper)}`` for MAE and every GAN-MAE scheme/stage."""
    from mmengine.optim import DefaultOptimWrapperConstructor
    from mmmim.models.algorithms.gan_mae import GANMAEOptimWrapperConstructor
    from mmmim.registry import MODELS

    wrapper_type = 'MixedPrecisionOptimWrapper' if amp == 'bf16' else 'OptimWrapper'
    extra = dict(dtype='bfloat16') if amp == 'bf16' else {}
    roles = {role: dict(optim_cfg[role], type=wrapper_type, **extra)
             for role in ('generator', 'discriminator')}

    def build(cfg):
        torch.manual_seed(0)
        model = MODELS.build(cfg).to(device)
        model.init_weights()
        return model.train()

    mae_cfg = {k: v for k, v in copy.deepcopy(model_cfg).items() if k not in GAN_KEYS}
    mae = build(dict(mae_cfg, type='MAE'))
    mae_wrapper = DefaultOptimWrapperConstructor(copy.deepcopy(roles['generator']),
                                                 optim_cfg.get('paramwise_cfg'))(mae)
    variants = {'MAE': (mae, mae_wrapper)}
    for name, scheme, active in [('adversarial', 'adversarial', None),
                                 ('combined', 'combined', None),
                                 ('two-stage: MAE stage', 'two-stage', False),
                                 ('two-stage: 2nd stage', 'two-stage', True)]:
        cfg = copy.deepcopy(model_cfg)
        # the steps after the adversarial warm-up are timed
        cfg.update(type='GANMAE', scheme=scheme, adv_warmup_epochs=0, adv_warmup_iters=0)
        model = build(cfg)
        if active is not None:
            model.set_discriminator_active(active)
        wrappers = GANMAEOptimWrapperConstructor(copy.deepcopy(roles))(model)
        variants[name] = (model, wrappers)
    return variants


def count_flops(model, wrapper, batch):
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        model.train_step(batch, wrapper)
    return counter.get_total_flops()


def main(argv=None):
    args = parse_args(argv)
    from mmmim.utils.precision import resolve_amp_choice
    args.amp = resolve_amp_choice(args.amp, args.device)
    import mmmim.engine  # noqa: F401
    import mmmim.models  # noqa: F401
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    DefaultScope.get_instance('gan-mae-benchmark', scope_name='mmmim')

    cfg = Config.fromfile(args.config)
    model_cfg = copy.deepcopy(TINY) if args.tiny else cfg.model.to_dict()
    for key in GAN_KEYS:  # keep the config's GAN-MAE options (backbone mode, gamma, ...)
        if key in cfg.model and key != 'scheme':
            model_cfg[key] = copy.deepcopy(cfg.model[key])
    optim_cfg = cfg.optim_wrapper.to_dict()
    batch_size = args.batch_size or (64 if args.tiny else 4)
    bb = model_cfg['backbone']
    size = bb.get('img_size', 224)
    size = (size, size) if isinstance(size, int) else tuple(size)
    channels = bb.get('in_channels', 3)
    batch = dict(inputs=torch.randint(0, 256, (batch_size, channels, *size), dtype=torch.uint8),
                 data_samples=None)
    dtype = torch.bfloat16 if args.amp == 'bf16' else torch.float32

    variants = build_variants(model_cfg, optim_cfg, args.device, args.amp)
    flops = {name: count_flops(m, w, batch) for name, (m, w) in variants.items()}
    times = {name: [] for name in variants}
    peak = matmul_rate(dtype, args.device)
    for step in range(args.warmup + args.steps):
        order = list(variants) if step % 2 else list(variants)[::-1]
        for name in order:  # interleaved, alternating order: same machine state for all
            model, wrapper = variants[name]
            sync(args.device)
            start = time.perf_counter()
            model.train_step(batch, wrapper)
            sync(args.device)
            if step >= args.warmup:
                times[name].append(time.perf_counter() - start)
    peak = max(peak, matmul_rate(dtype, args.device))  # the better of before / after

    arch = bb['arch'] if isinstance(bb['arch'], str) else 'x'.join(
        str(bb['arch'][k]) for k in ('embed_dims', 'num_layers'))
    print(f'\nGAN-MAE vs MAE train_step on {args.device} ({args.amp}), backbone {arch}, '
          f'{channels}x{size[0]}x{size[1]}, batch {batch_size}, median of {args.steps} steps, '
          f'backbone_mode={model_cfg.get("backbone_mode", "shared")}, '
          f'gamma={model_cfg.get("gamma", "adaptive")}')
    print(f'matmul rate ({args.amp}, measured now): {peak / 1e9:.1f} GFLOP/s')
    header = (f'{"variant":<22}{"step s":>9}{"img/s":>9}{"GFLOP/step":>12}'
              f'{"x MAE FLOPs":>12}{"GFLOP/s":>9}{"MFU":>8}{"MFU / MAE":>11}')
    print(header)
    print('-' * len(header))
    base_mfu = None
    for name in variants:
        t = statistics.median(times[name])
        mfu = flops[name] / t / peak
        base_mfu = base_mfu or mfu
        print(f'{name:<22}{t:>9.4f}{batch_size / t:>9.1f}{flops[name] / 1e9:>12.3f}'
              f'{flops[name] / flops["MAE"]:>12.2f}{flops[name] / t / 1e9:>9.1f}'
              f'{100 * mfu:>7.1f}%{mfu / base_mfu:>11.2f}')
    print('target: every GAN-MAE row within 10% of MAE\'s MFU (MFU / MAE >= 0.90)')
    return flops, times


if __name__ == '__main__':
    main()

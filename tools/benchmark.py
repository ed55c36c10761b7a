"""Training-step throughput, memory and MFU of any mmmim pre-training or fine-tune config.

    python tools/benchmark.py configs/mae/vit-b_800e.py --batch-size 16 --amp bf16
    python tools/benchmark.py configs/mae/vit-b_800e.py --amp bf16 --compare mmpretrain
    python tools/benchmark.py configs/emae/vit-b_800e.py --batch-size 4 --amp bf16 \
        --compare configs/mae/vit-b_800e.py        # per-view cost of EMAE K=4 vs MAE

    python tools/benchmark.py configs/mae/vit-b_800e.py --batch-size 512 --amp bf16 \
        --compile-blocks --pin-memory --profile 2  # compiled blocks; top ops of 2 steps

A step is the model's own ``train_step`` (data preprocessor, forward, backward, optimizer
step) on a synthetic batch, with the optimizer wrapper(s) the config builds, so MAE,
EMAE, SBAM/AMR and GAN-MAE (two optimizers) are all measured the same way. A classifier
config (``mmpretrain.ImageClassifier``, e.g. the fine-tunes under ``configs/fashion_mnist/``)
is timed the same way on a batch with random labels (a ``Pretrained`` init is dropped:
the weights do not change the cost, and the checkpoint need not exist here):

    python tools/benchmark.py configs/fashion_mnist/benchmark/finetune-recipe_vit-mini-p4.py \
        --batch-size 256 --amp auto                # the full-label recipe's step

FLOPs are counted once with ``torch.utils.flop_counter`` (matmuls, convolutions and attention;
forward + backward); MFU is that count per second divided by the matmul rate measured
in the same run for the same precision. With ``--compare mmpretrain`` the same step of
mmpretrain's MAE (same architecture, batch, mask ratio and precision) runs alternately
with ours, so both see the same machine state, and the ratio is printed.

``--compile-blocks`` sets ``compile_blocks=True`` on our backbone and decoder (each
transformer layer ``torch.compile``-d in place), also in a compared mmmim config
(``--compare OTHER_CONFIG``); mmpretrain's model is left as it is.
The ``--warmup`` steps are timed apart, and printed beside the median: with ``--compile``
or ``--compile-blocks`` they carry the compilation, which a training run pays once.
``--pin-memory`` hands the step a batch in page-locked memory, as a data loader with
``pin_memory=True`` does, so the host-to-device copy is not timed as a pageable one.
``--profile N`` runs ``torch.profiler`` over N more steps of our model and prints the
top operators by device time (CPU time on a CPU) and, per step, how many copy-type
operators ran (``aten::copy_``, ``_to_copy``, ``clone``, ``cat``, ``stack``) and their
share of the time, and how many operators a step dispatches in all (``aten::`` calls):
the evidence for where a step's time goes. Where a step is bound by launching kernels
rather than by arithmetic (small models on a GPU), that count is what sets its time.
"""
import argparse
import copy
import os
import os.path as osp
import resource
import statistics
import sys
import time

import torch
from mmengine.config import DictAction

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mmmim.utils.benchmark import matmul_rate, set_compile_blocks, sync  # noqa: E402
from mmmim.utils.precision import describe_cpu, resolve_amp_choice  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config')
    p.add_argument('--batch-size', type=int, default=16, help='images per step')
    p.add_argument('--amp', choices=['fp32', 'bf16', 'fp16', 'auto'], default='fp32',
                   help='fp16 needs CUDA; bf16 runs on CPU and CUDA (on a CPU without native '
                        'bf16 it is emulated and much slower: a warning says how much); auto: '
                        'bf16 where it is native or on CUDA, else fp32 (as tools/train.py --amp)')
    p.add_argument('--steps', type=int, default=7, help='timed steps (median is reported)')
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--compare', default=None, metavar='mmpretrain|CONFIG',
                   help="'mmpretrain': mmpretrain's MAE of the same architecture; or another "
                        'mmmim config, run with the same number of views per step (e.g. '
                        'EMAE K=4 at batch 4 against MAE at batch 16: per-view cost)')
    p.add_argument('--compile', action='store_true', help='torch.compile the model')
    p.add_argument('--compile-blocks', action='store_true',
                   help='torch.compile each transformer layer of our backbone and decoder '
                        '(compile_blocks=True), and of a compared mmmim config; mmpretrain\'s '
                        'model is not changed')
    p.add_argument('--pin-memory', action='store_true',
                   help='page-locked input batch (as a DataLoader with pin_memory=True); CUDA only')
    p.add_argument('--profile', type=int, default=0, metavar='N',
                   help='after timing, profile N steps of our model and print the top operators '
                        'and the copy-type operator counts per step')
    p.add_argument('--profile-rows', type=int, default=15, help='operators listed by --profile')
    p.add_argument('--adamw', choices=['config', 'single', 'foreach', 'fused'], default='config',
                   help="AdamW implementation: as the config says (default), torch's "
                        "per-tensor loop, foreach, or fused")
    p.add_argument('--img-size', type=int, default=None, help='override the input size')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                   help='key=value overrides, as in tools/train.py (applied to a --compare '
                        'config too, as is --img-size)')
    return p.parse_args()


def num_views(model):
    """Views per image of a pre-training model (its masker's); 1 for a classifier."""
    masker = getattr(model, 'masker', None)
    return masker.num_views if masker is not None else 1


def synthetic_batch(model, batch, img_size, channels, seed=0):
    """Random uint8 images; for a classifier (a model with ``head.num_classes``) every
    sample also gets a random label, which its loss needs."""
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(seed)
    samples = [DataSample() for _ in range(batch)]
    num_classes = getattr(getattr(model, 'head', None), 'num_classes', None)
    if num_classes is not None and getattr(model, 'masker', None) is None:
        labels = torch.randint(0, num_classes, (batch, ), generator=g)
        for sample, label in zip(samples, labels):
            sample.set_gt_label(int(label))
    return dict(inputs=torch.randint(0, 256, (batch, channels, img_size, img_size),
                                     generator=g, dtype=torch.uint8),
                data_samples=samples)


LAUNCH_CALLS = ('cudaLaunchKernel', 'cudaLaunchKernelExC', 'cuLaunchKernel', 'cuLaunchKernelEx')
COPY_OPS = ('aten::copy_', 'aten::_to_copy', 'aten::clone', 'aten::cat', 'aten::stack')


def profile_steps(bench, steps, rows):
    """Profile ``steps`` steps of ``bench``; print the top operators by self time (device
    time on CUDA) and, per step, the count and time share of the copy-type operators."""
    from torch.profiler import ProfilerActivity, profile
    cuda = bench.device.startswith('cuda')
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            bench.step(record=False)
    events = prof.key_averages()
    key = 'self_device_time_total' if cuda else 'self_cpu_time_total'
    unit = 'device' if cuda else 'CPU'
    total = sum(getattr(e, key) for e in events) or 1.
    print(f'profile of {steps} step(s) of {bench.name}, top {rows} operators by self {unit} time:')
    for e in sorted(events, key=lambda e: -getattr(e, key))[:rows]:
        print(f'  {e.key[:60]:<60} {getattr(e, key) / 1e3 / steps:9.2f} ms/step '
              f'{100 * getattr(e, key) / total:5.1f}%  calls/step {e.count / steps:g}')
    copies = {e.key: e for e in events if e.key in COPY_OPS}
    share = sum(getattr(e, key) for e in copies.values()) / total
    counts = ', '.join(f'{name} {copies[name].count / steps:g}' if name in copies else f'{name} 0'
                       for name in COPY_OPS)
    print(f'copy-type operators per step: {counts}; their self {unit} time: {100 * share:.1f}%')
    calls = sum(e.count for e in events if e.key.startswith('aten::'))
    print(f'operator calls per step: {calls / steps:g} (aten::, nested calls included)')
    if cuda:  # what a launch-bound step pays for: the CUDA runtime's launch calls
        kernels = sum(e.count for e in events if e.key in LAUNCH_CALLS)
        graphs = sum(e.count for e in events if e.key == 'cudaGraphLaunch')
        print(f'CUDA launches per step: {kernels / steps:g} kernels, {graphs / steps:g} graphs')


def drop_pretrained(node):
    """Remove every ``init_cfg=dict(type='Pretrained', ...)`` in place: a step costs the
    same from any weights, and a fine-tune config's checkpoint need not exist here."""
    if isinstance(node, dict):
        init = node.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            node['init_cfg'] = None
        for value in node.values():
            drop_pretrained(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            drop_pretrained(value)


def optim_cfg(cfg_optim, amp, device, adamw):
    cfg = copy.deepcopy(cfg_optim)

    def patch(wrapper):
        if amp != 'fp32':
            wrapper['type'] = 'MixedPrecisionOptimWrapper'
            wrapper['dtype'] = 'bfloat16' if amp == 'bf16' else 'float16'
        opt = wrapper.get('optimizer', {})
        if adamw != 'config' and opt.get('type') == 'AdamW':
            opt.pop('fused', None)
            opt.pop('foreach', None)
            if adamw == 'single':
                opt['foreach'] = False
            else:
                opt[adamw] = True
        return wrapper

    if 'optimizer' in cfg:
        return patch(cfg)
    for key, value in cfg.items():  # OptimWrapperDict: one wrapper per role
        if isinstance(value, dict) and 'optimizer' in value:
            patch(value)
    return cfg


def mmpretrain_mae(model):
    """mmpretrain's MAE with our model's architecture, patching and mask ratio."""
    from mmpretrain.registry import MODELS as PRE
    bb, neck = model.backbone, model.neck
    if bb.in_channels != 3:
        raise SystemExit('--compare mmpretrain: mmpretrain MAEViT is RGB only; use an RGB config')
    layer = bb.layers[0]
    arch = dict(embed_dims=bb.embed_dims, num_layers=bb.num_layers,
                num_heads=layer.attn.num_heads,
                feedforward_channels=layer.ffn.layers[0][0].out_features)
    dec = neck.decoder_blocks[0]
    ratio = getattr(model.masker.ratio_policy, 'ratio', 0.75)
    cfg = dict(
        type='mmpretrain.MAE',
        data_preprocessor=copy.deepcopy(model._bench_preprocessor_cfg),
        backbone=dict(type='mmpretrain.MAEViT', arch=arch, img_size=bb.img_size[0],
                      patch_size=bb.patch_size, mask_ratio=ratio),
        neck=dict(type='mmpretrain.MAEPretrainDecoder', num_patches=bb.num_patches,
                  patch_size=bb.patch_size, in_chans=3, embed_dim=bb.embed_dims,
                  decoder_embed_dim=neck.decoder_embed.out_features,
                  decoder_depth=len(neck.decoder_blocks),
                  decoder_num_heads=dec.attn.num_heads,
                  mlp_ratio=dec.ffn.layers[0][0].out_features / neck.decoder_embed.out_features),
        head=dict(type='mmpretrain.MAEPretrainHead', norm_pix=True, patch_size=bb.patch_size,
                  loss=dict(type='mmpretrain.PixelReconstructionLoss', criterion='L2')))
    return PRE.build(cfg)


class Bench:
    """One model + its optimizer wrapper(s), stepping on a fixed synthetic batch."""

    def __init__(self, name, model, optim_wrapper_cfg, batch, device, compile_):
        from mmengine.optim import build_optim_wrapper
        self.name, self.device = name, device
        model.init_weights()
        self.model = model.to(device).train()
        if hasattr(self.model, 'set_train_progress'):
            # GAN-MAE: in a run GANSchemeHook tells the model the iteration (its
            # adversarial warm-up needs it); time the step after the warm-up
            self.model.set_train_progress(10**9, 1)
        self.optim = build_optim_wrapper(self.model, optim_wrapper_cfg)
        self.batch = batch
        self.step_fn = self.model.train_step
        if compile_:
            self.model.forward = torch.compile(self.model.forward)
        self.times = []

    def step(self, record=True):
        sync(self.device)
        start = time.perf_counter()
        log = self.step_fn(self.batch, self.optim)
        sync(self.device)
        if record:
            self.times.append(time.perf_counter() - start)
        return log

    def flops(self):
        """Model FLOPs of one step (forward + backward), counted in fp32.

        Counting outside the precision context makes the count identical for every
        precision and attention kernel, so MFU compares like with like. Compiled code
        (``--compile``, ``--compile-blocks``) counts the same: torch.compile runs frames
        eagerly while a dispatch mode such as the counter is active
        (``tests/test_step_speed.py`` checks the equality).
        """
        from mmengine.model import BaseModel
        from torch.utils.flop_counter import FlopCounterMode
        counter = FlopCounterMode(display=False)
        if type(self.model).train_step is not BaseModel.train_step:
            # an algorithm with its own step (GAN-MAE: two backward passes): count the step
            with counter:
                self.step(record=False)
            return counter.get_total_flops()
        data = self.model.data_preprocessor(self.batch, True)
        with counter:
            losses = self.model(**data, mode='loss')
            loss = sum(v for k, v in losses.items() if 'loss' in k and v.requires_grad)
            loss.backward()
        self.model.zero_grad(set_to_none=True)
        return counter.get_total_flops()


def main():
    args = parse_args()
    import mmmim  # noqa: F401
    import mmmim.engine  # noqa: F401
    import mmmim.models  # noqa: F401
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmmim.registry import MODELS
    def load(path):
        """A config with the command line's overrides (also used for --compare CONFIG,
        so that an architecture override applies to both sides)."""
        cfg = Config.fromfile(path)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        drop_pretrained(cfg.model)
        if args.img_size:
            cfg.model.backbone.img_size = args.img_size
        if args.compile_blocks:
            set_compile_blocks(cfg.model, 'default', '--compile-blocks')
        return cfg

    cfg = load(args.config)
    DefaultScope.get_instance('benchmark', scope_name=cfg.get('default_scope', 'mmmim'))
    torch.manual_seed(0)
    device = args.device
    if args.amp == 'fp16' and not device.startswith('cuda'):
        raise SystemExit('--amp fp16 needs a CUDA device; use bf16 on CPU')
    args.amp = resolve_amp_choice(args.amp, device)

    def build_ours():
        model = MODELS.build(copy.deepcopy(cfg.model))
        model._bench_preprocessor_cfg = cfg.model.data_preprocessor
        return model

    ours = build_ours()
    img = ours.backbone.img_size[0]
    views = num_views(ours)
    batch = synthetic_batch(ours, args.batch_size, img, ours.backbone.in_channels)
    if args.pin_memory:
        if not device.startswith('cuda'):
            raise SystemExit('--pin-memory pins host memory for a CUDA device; drop it on a CPU')
        batch['inputs'] = batch['inputs'].pin_memory()
    ocfg = optim_cfg(cfg.optim_wrapper, args.amp, device, args.adamw)
    benches = [Bench('mmmim', ours, ocfg, batch, device, args.compile)]
    if args.compare == 'mmpretrain':
        if getattr(ours, 'masker', None) is None:
            raise SystemExit('--compare mmpretrain compares an MAE pre-training config; '
                             f'{args.config} has no masker (a classifier?): compare it '
                             'with another config instead')
        theirs = mmpretrain_mae(ours)
        benches.append(Bench('mmpretrain', theirs, ocfg, batch, device, args.compile))
    elif args.compare:
        other_cfg = load(args.compare)
        other = MODELS.build(copy.deepcopy(other_cfg.model))
        other_views = num_views(other)
        if (args.batch_size * views) % other_views:
            raise SystemExit(f'--compare: {args.batch_size} x {views} views is not a multiple of '
                             f'the other config\'s {other_views} views per image')
        other_batch = args.batch_size * views // other_views
        benches.append(Bench(osp.basename(args.compare), other,
                             optim_cfg(other_cfg.optim_wrapper, args.amp, device, args.adamw),
                             synthetic_batch(other, other_batch, img, other.backbone.in_channels),
                             device, args.compile))
        if args.pin_memory:
            benches[-1].batch['inputs'] = benches[-1].batch['inputs'].pin_memory()
        benches[-1].views, benches[-1].images = other_views, other_batch
    benches[0].views, benches[0].images = views, args.batch_size
    if args.compare == 'mmpretrain':
        benches[1].views, benches[1].images = views, args.batch_size

    dtype = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}[args.amp]
    print(f'config: {args.config}\ndevice: {device} '
          f'({torch.cuda.get_device_name() if device.startswith("cuda") else describe_cpu()}), '
          f'precision: {args.amp}, batch: {args.batch_size} images x {views} view(s), '
          f'compile: {args.compile}, compile blocks: {args.compile_blocks}, '
          f'pinned batch: {args.pin_memory}, AdamW: {args.adamw}')
    flops = {b.name: b.flops() for b in benches}
    for b in benches:  # the first steps compile (--compile, --compile-blocks): say how long
        start = time.perf_counter()
        for _ in range(args.warmup):
            b.step(record=False)
        b.warmup_s = time.perf_counter() - start
    if device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    from mmengine.utils import ProgressBar
    bar = ProgressBar(args.steps)  # shows elapsed time and ETA
    for _ in range(args.steps):
        for b in benches:  # alternate, so both see the same machine state
            b.step()
        bar.update()
    print()
    rate = matmul_rate(dtype, device)
    print(f'measured {args.amp} matmul rate: {rate / 1e9:.0f} GFLOP/s')
    rows = {}
    for b in benches:
        t = statistics.median(b.times)
        ips = b.images / t
        mfu = flops[b.name] / t / rate
        rows[b.name] = ips * b.views
        print(f'{b.name:>10}: {t * 1000:8.1f} ms/step  {ips:8.2f} img/s  '
              f'{ips * b.views:8.2f} views/s  {flops[b.name] / b.images / 1e9:6.2f} GFLOP/img  '
              f'MFU {mfu * 100:5.1f}%  (min {min(b.times) * 1000:.1f} ms, max {max(b.times) * 1000:.1f} ms; '
              f'{args.warmup} warm-up step(s) {b.warmup_s:.1f} s)')
    if args.compare:
        other = benches[1].name
        print(f'ratio (views/s) mmmim / {other}: {rows["mmmim"] / rows[other]:.3f}x; '
              f'cost per view: {rows[other] / rows["mmmim"]:.3f}x')
    if device.startswith('cuda'):
        print(f'peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB')
    else:
        print(f'peak process memory (RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB')
    if args.profile:
        profile_steps(benches[0], args.profile, args.profile_rows)


if __name__ == '__main__':
    main()

"""Whole MAE models and Hugging Face / timm layouts: the converted model computes the same
function in the other library (same weights, same images, same masking noise), round trips
are bit-exact, and bad input is refused without writing anything."""
import json
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmmim.models.maskers.plan import MaskPlan
from mmmim.utils.checkpoint import CheckpointError
from mmmim.utils.convert import from_mmmim
from mmmim.utils.convert_mae import (hf_config, hf_from_mmmim, mmmim_from_hf,
                                     mmmim_from_official, official_from_mmmim)
from conftest import build_tiny, load_tool, tiny_cfg

transformers = pytest.importorskip('transformers')
timm = pytest.importorskip('timm')
tool = load_tool('tools/convert_checkpoint.py')


def tiny_mae(norm_pix=True):
    """The tiny MAE with every weight moved off its initialisation (biases, norms and
    tokens non-trivial), so a wrongly mapped tensor shows."""
    model = build_tiny(head=dict(norm_pix=norm_pix))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model.eval()


def images(b=3, seed=0):
    return torch.randn(b, 1, 32, 32, generator=torch.Generator().manual_seed(seed))


def hf_mae(model, norm_pix):
    sd = model.state_dict()
    config = hf_config(sd, tiny_cfg(), 'hf', norm_pix=norm_pix)
    config._attn_implementation = 'eager'
    hf = transformers.ViTMAEForPreTraining(config).eval()
    hf_sd, left = hf_from_mmmim(sd)
    assert not left
    hf.load_state_dict(hf_sd, strict=True)
    return hf


def mmmim_loss(model, img, noise):
    plan = MaskPlan(ids_shuffle=torch.argsort(noise, dim=1), n_keep=16)
    _, _, pred = model.reconstruct(img, plan)
    return model.head.loss(pred, img, plan)['loss_rec'], pred, plan


@pytest.mark.parametrize('norm_pix', [True, False])
def test_hf_vitmae_for_pretraining_gives_mmmims_loss_and_predictions(norm_pix):
    model = tiny_mae(norm_pix)
    hf = hf_mae(model, norm_pix)
    img = images()
    noise = torch.rand(3, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = hf(pixel_values=img, noise=noise)
        loss, pred, plan = mmmim_loss(model, img, noise)
    assert torch.equal(out.mask, plan.mask)
    assert torch.allclose(out.logits, pred, atol=1e-5, rtol=0)
    assert abs(out.loss.item() - loss.item()) < 1e-5


def _features(model, img):
    vit = model.backbone
    return vit.encode(vit.embed(img))  # (B, 1 + L, D): cls token and patch tokens, normed


def test_timm_and_transformers_encoders_give_maskedvits_features():
    model = tiny_mae()
    img = images()
    with torch.no_grad():
        ours = _features(model, img)
    enc = {k[len('backbone.'):]: v for k, v in model.state_dict().items()
           if k.startswith('backbone.')}
    vit = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=4, in_chans=1, embed_dim=32, depth=2, num_heads=2,
        mlp_ratio=2., qkv_bias=True, num_classes=0).eval()
    timm_sd, dropped = from_mmmim(enc, 'timm')
    assert not dropped
    vit.load_state_dict(timm_sd, strict=True)
    with torch.no_grad():
        assert torch.allclose(vit.forward_features(img), ours, atol=1e-5, rtol=0)

    sd = model.state_dict()
    for layout, cls in (('hf-vit', transformers.ViTModel),
                        ('hf-vitmae', transformers.ViTMAEModel)):
        config = hf_config(sd, tiny_cfg(), layout)
        config._attn_implementation = 'eager'
        if layout == 'hf-vitmae':
            config.mask_ratio = 0.
        hf = (cls(config, add_pooling_layer=False) if layout == 'hf-vit' else cls(config)).eval()
        hf_sd, _ = hf_from_mmmim({k: v for k, v in sd.items() if k.startswith('backbone.')}, '')
        hf.load_state_dict(hf_sd, strict=True)
        kwargs = {} if layout == 'hf-vit' else dict(noise=torch.arange(64.).expand(3, 64))
        with torch.no_grad():
            got = hf(pixel_values=img, **kwargs).last_hidden_state
        assert torch.allclose(got, ours, atol=1e-5, rtol=0), layout


def _same(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_round_trips_are_bit_exact(tmp_path):
    model = tiny_mae()
    sd = model.state_dict()
    official, left = official_from_mmmim(sd)
    assert not left and 'decoder_blocks.0.mlp.fc1.weight' in official and 'mask_token' in official
    back, left = mmmim_from_official(official)
    assert not left
    _same(back, sd)
    hf, _ = hf_from_mmmim(sd)
    back, left = mmmim_from_hf(hf)
    assert not left
    _same(back, sd)
    # through the tool and files: mmmim -> HF directory -> mmmim, mmmim -> official -> mmmim
    src = tmp_path / 'mae.pth'
    # as mmengine's CheckpointHook saves it: the config (head counts, norm_pix) in meta
    torch.save({'state_dict': sd, 'meta': {'cfg': Config(dict(model=tiny_cfg())).pretty_text}},
               src)
    assert tool.main([str(src), str(tmp_path / 'hf'), '--out-layout', 'hf']) == 0
    assert sorted(os.listdir(tmp_path / 'hf')) == ['config.json', 'model.safetensors']
    loaded = transformers.ViTMAEForPreTraining.from_pretrained(str(tmp_path / 'hf'))
    assert loaded.config.num_attention_heads == 2 and loaded.config.decoder_num_attention_heads == 2
    tool.main([str(tmp_path / 'hf'), str(tmp_path / 'back.pth'), '--in-layout', 'hf',
               '--out-layout', 'mmmim-mae'])
    _same(torch.load(tmp_path / 'back.pth')['state_dict'], sd)
    tool.main([str(src), str(tmp_path / 'official.pth'), '--out-layout', 'mae-full'])
    tool.main([str(tmp_path / 'official.pth'), str(tmp_path / 'back2.pth'),
               '--out-layout', 'mmmim-mae'])
    _same(torch.load(tmp_path / 'back2.pth')['state_dict'], sd)
    # encoders: mmmim -> HF ViTModel directory -> mmmim encoder
    tool.main([str(src), str(tmp_path / 'vit'), '--out-layout', 'hf-vit'])
    assert transformers.ViTModel.from_pretrained(str(tmp_path / 'vit')).config.hidden_size == 32
    tool.main([str(tmp_path / 'vit'), str(tmp_path / 'enc.pth')])
    enc = torch.load(tmp_path / 'enc.pth')['state_dict']
    _same(enc, {k: v for k, v in sd.items() if k.startswith('backbone.')})
    tool.main([str(src), str(tmp_path / 'vitmae'), '--out-layout', 'hf-vitmae'])
    assert transformers.ViTMAEModel.from_pretrained(str(tmp_path / 'vitmae')).config.mask_ratio == 0.75
    tool.main([str(tmp_path / 'vitmae'), str(tmp_path / 'enc2.pth'), '--out-layout', 'timm'])
    tool.main([str(tmp_path / 'enc2.pth'), str(tmp_path / 'enc3.pth')])  # timm -> mmmim
    _same(torch.load(tmp_path / 'enc3.pth')['state_dict'],
          {k: v for k, v in sd.items() if k.startswith('backbone.')})


def test_continued_pretraining_from_a_converted_hf_model_starts_at_its_loss(tmp_path):
    from mmengine.runner.checkpoint import load_checkpoint
    source = tiny_mae()
    hf = hf_mae(source, True)
    hf.save_pretrained(str(tmp_path / 'hf'))
    img = images()
    noise = torch.rand(3, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        hf_loss = hf(pixel_values=img, noise=noise).loss.item()
    tool.main([str(tmp_path / 'hf'), str(tmp_path / 'mae.pth'), '--out-layout', 'mmmim-mae'])
    fresh = build_tiny()  # a new model of the config, then load_from's strict load
    load_checkpoint(fresh, str(tmp_path / 'mae.pth'), strict=True)
    with torch.no_grad():
        assert abs(mmmim_loss(fresh.eval(), img, noise)[0].item() - hf_loss) < 1e-5


def test_train_py_loads_load_from_strictly(tmp_path):
    from types import SimpleNamespace

    from mmmim.utils.convert import CheckpointMismatchError
    from mmmim.utils.launch import make_load_from_strict
    calls = []

    def lenient(filename, map_location='cpu', strict=False, revise_keys=None):
        calls.append(strict)
        if strict:
            raise RuntimeError('missing keys in source state_dict: neck.decoder_pred.weight')

    runner = SimpleNamespace(cfg=dict(), load_checkpoint=lenient)
    make_load_from_strict(runner)
    with pytest.raises(CheckpointMismatchError, match=r'(?s)decoder_pred.*--out-layout mmmim-mae'):
        runner.load_checkpoint('enc.pth')
    runner = SimpleNamespace(cfg=dict(load_from_partial=True), load_checkpoint=lenient)
    make_load_from_strict(runner)
    runner.load_checkpoint('enc.pth')
    assert calls == [True, False]


# ------------------------------------------------------------------ bad input
def test_bad_input_is_refused_and_nothing_is_written(tmp_path):
    model = tiny_mae()
    sd = model.state_dict()
    enc_only = tmp_path / 'enc.pth'
    torch.save({'state_dict': {k: v for k, v in sd.items() if k.startswith('backbone.')}},
               enc_only)
    whole = tmp_path / 'mae.pth'
    torch.save({'state_dict': sd}, whole)

    def refused(args, match):
        before = set(os.listdir(tmp_path))
        with pytest.raises(SystemExit, match='(?s)' + match):
            tool.main([str(a) for a in args])
        assert set(os.listdir(tmp_path)) == before  # no output, no temporary left behind

    # an encoder-only file where a whole model is needed
    refused([enc_only, tmp_path / 'out_hf', '--out-layout', 'hf'], 'encoder only.*whole MAE')
    # another architecture
    other = tmp_path / 'resnet.pth'
    torch.save({'state_dict': {'conv1.weight': torch.zeros(8, 3, 7, 7),
                               'fc.weight': torch.zeros(10, 8)}}, other)
    refused([other, tmp_path / 'out.pth', '--out-layout', 'mae-full'], 'no ViT')
    # a truncated file
    data = whole.read_bytes()
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(data[:len(data) // 2])
    refused([cut, tmp_path / 'out.pth', '--out-layout', 'hf'], 'cut|corrupt|incomplete|trunc')
    # a HF directory without weights
    (tmp_path / 'noweights').mkdir()
    (tmp_path / 'noweights' / 'config.json').write_text(json.dumps({'model_type': 'vit_mae'}))
    refused([tmp_path / 'noweights', tmp_path / 'out.pth', '--out-layout', 'mmmim-mae'],
            'no weights.*model.safetensors')
    # a GAN-MAE checkpoint carries weights an MAE cannot hold: refused unless --allow-partial
    gan_sd = dict(sd, **{'disc_head.fc.weight': torch.zeros(1, 32)})
    torch.save({'state_dict': gan_sd}, tmp_path / 'gan.pth')
    refused([tmp_path / 'gan.pth', tmp_path / 'g.pth', '--out-layout', 'mae-full'],
            'disc_head.*--allow-partial')
    assert tool.main([str(tmp_path / 'gan.pth'), str(tmp_path / 'g.pth'), '--out-layout',
                      'mae-full', '--allow-partial']) == 0
    # an existing output is replaced only by a complete one
    assert osp.isfile(tmp_path / 'g.pth')


MAE_CONFIG = """
model = {model!r}
train_dataloader = dict(
    batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='mmpretrain.CustomDataset', data_root='{data}', data_prefix='',
                 with_label=False, pipeline=[dict(type='mmpretrain.LoadImageFromFile',
                                                  color_type='grayscale'),
                                             dict(type='mmpretrain.PackInputs')]))
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4))
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1)
default_hooks = dict(logger=dict(type='LoggerHook', interval=1),
                     checkpoint=dict(type='CheckpointHook', interval=1))
default_scope = 'mmmim'
"""


def test_train_py_continues_from_a_converted_hf_model_and_refuses_a_partial_one(tmp_path):
    import subprocess
    import sys

    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    os.makedirs(tmp_path / 'data')
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(
            tmp_path / 'data' / f'{i}.png')
    cfg = tmp_path / 'mae.py'
    cfg.write_text(MAE_CONFIG.format(model=tiny_cfg(), data=tmp_path / 'data'))
    hf_mae(tiny_mae(), True).save_pretrained(str(tmp_path / 'hf'))
    tool.main([str(tmp_path / 'hf'), str(tmp_path / 'mae.pth'), '--out-layout', 'mmmim-mae'])
    enc = {k: v for k, v in torch.load(tmp_path / 'mae.pth')['state_dict'].items()
           if k.startswith('backbone.')}
    torch.save({'state_dict': enc}, tmp_path / 'enc.pth')
    repo = osp.dirname(osp.dirname(osp.abspath(__file__)))

    def train(ckpt, *extra):
        proc = subprocess.run(
            [sys.executable, 'tools/train.py', str(cfg), '--work-dir', str(tmp_path / 'w'),
             '--cfg-options', f'load_from={ckpt}', *extra], cwd=repo, capture_output=True,
            text=True, env=dict(os.environ, PYTHONPATH=repo), timeout=600)
        return proc.returncode, proc.stdout + proc.stderr
    rc, log = train(tmp_path / 'mae.pth')
    assert rc == 0, log[-2000:]
    assert 'Load checkpoint from' in log and 'missing keys' not in log
    rc, log = train(tmp_path / 'enc.pth')  # the decoder is missing: refused, keys named
    assert rc != 0 and 'neck.decoder_pred.weight' in log and '--allow-partial' in log
    rc, log = train(tmp_path / 'enc.pth', '--allow-partial')
    assert rc == 0 and 'missing keys' in log

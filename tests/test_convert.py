"""Checkpoint conversion: layouts round-trip, conversions compute the same function,
position embeddings resize, GAN-MAE encoders are chosen by role, bad input is refused."""
import importlib.util
import os.path as osp
from collections import OrderedDict

import pytest
import torch
from mmengine.runner import save_checkpoint

from mmmim.models.downstream import PlainViTBackbone
from mmmim.utils.convert import (CheckpointMismatchError, detect_layout, from_mmmim,
                                 interpolate_pos_embed, load_vit_checkpoint, match_state_dict,
                                 select_backbone,
                                 to_mmmim)
from conftest import build_tiny

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


def cli():
    spec = importlib.util.spec_from_file_location('convert_cli',
                                                  osp.join(ROOT, 'tools/convert_checkpoint.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def encoder_sd(seed=0):
    """A pre-trained-looking encoder: every tensor random (biases and norms too)."""
    g = torch.Generator().manual_seed(seed)
    sd = build_tiny().backbone.state_dict()
    return OrderedDict((k, torch.randn(v.shape, generator=g) * 0.2) for k, v in sd.items())


def backbone(**kw):
    kw = {**dict(arch=ARCH, img_size=32, patch_size=4, in_channels=1, out_indices=(0, 1)), **kw}
    return PlainViTBackbone(**kw).eval()


@pytest.mark.parametrize('layout', ['timm', 'mmpretrain', 'mae'])
def test_lossless_layouts_round_trip_exactly(layout):
    sd = encoder_sd()
    theirs, dropped = from_mmmim(sd, layout)
    assert dropped == []
    if layout == 'timm':
        assert 'blocks.1.mlp.fc2.weight' in theirs and 'patch_embed.proj.bias' in theirs
        assert torch.equal(theirs['norm.weight'], sd['ln1.weight'])
    back, dropped = to_mmmim(theirs, detect_layout(theirs) if layout == 'timm' else layout)
    assert dropped == [] and list(back) == list(sd)
    assert all(torch.equal(back[k], sd[k]) for k in sd)


def test_mmseg_layout_is_the_same_function():
    """k bias dropped (it cancels in softmax), layer scales folded on the way back."""
    sd = encoder_sd()
    seg, dropped = from_mmmim(sd, 'mmseg')
    assert dropped == [] and detect_layout(seg) == 'mmseg'
    assert torch.equal(seg['layers.0.attn.q_bias'], sd['layers.0.attn.qkv.bias'][:32])
    assert torch.equal(seg['layers.1.attn.v_bias'], sd['layers.1.attn.qkv.bias'][64:])
    # random layer scales: the folded weights must still give the same outputs
    seg['layers.0.gamma_1'] = torch.rand(32) + 0.5
    seg['layers.1.gamma_2'] = torch.rand(32) + 0.5
    back, _ = to_mmmim(seg, 'mmseg')
    assert torch.equal(back['layers.0.attn.qkv.bias'][32:64], torch.zeros(32))
    assert torch.allclose(back['layers.0.attn.proj.weight'],
                          sd['layers.0.attn.proj.weight'] * seg['layers.0.gamma_1'][:, None])
    x = torch.randn(2, 1, 32, 32)
    ref, got = backbone(), backbone()
    ref.load_state_dict(sd)
    got.load_state_dict(back)
    # reference with the layer scales applied by hand
    for layer, g1, g2 in [(ref.layers[0], seg['layers.0.gamma_1'], None),
                          (ref.layers[1], None, seg['layers.1.gamma_2'])]:
        with torch.no_grad():
            if g1 is not None:
                layer.attn.proj.weight.mul_(g1[:, None]), layer.attn.proj.bias.mul_(g1)
            if g2 is not None:
                layer.ffn.layers[1].weight.mul_(g2[:, None]), layer.ffn.layers[1].bias.mul_(g2)
    for a, b in zip(ref(x), got(x)):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)


def test_mmseg_mae_backbone_computes_what_our_backbone_computes():
    """mmseg's own MAE backbone (no qkv bias, layer scales) -> our keys -> same maps."""
    from mmseg.models.backbones import MAE
    theirs = MAE(img_size=32, patch_size=4, in_channels=1, embed_dims=32, num_layers=2,
                 num_heads=2, mlp_ratio=2, out_indices=(0, 1), norm_cfg=dict(type='LN', eps=1e-6),
                 init_values=0.5)
    theirs.eval()
    torch.manual_seed(1)
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
        for layer in theirs.layers:  # as in mmseg's MAE before fine-tuning
            layer.attn.relative_position_bias_table.zero_()
    ours_sd, dropped = to_mmmim(theirs.state_dict(), detect_layout(theirs.state_dict()))
    assert dropped and all('relative_position' in k for k in dropped)
    ours = backbone(final_norm=False)
    ours.load_state_dict(ours_sd, strict=True)
    x = torch.randn(2, 1, 32, 32)
    for a, b in zip(theirs(x), ours(x)):
        assert torch.allclose(a, b, atol=1e-4)
    # a trained relative-position table has no place in a plain ViT: refused, named
    with torch.no_grad():
        theirs.layers[1].attn.relative_position_bias_table.fill_(0.1)
    kept, _ = to_mmmim(theirs.state_dict(), 'mmseg')
    with pytest.raises(CheckpointMismatchError,
                       match=r'unexpected.*layers\.1\.attn\.relative_position_bias_table'):
        match_state_dict(ours.state_dict(), kept)
    # and the way back: every tensor of mmseg's MAE is provided, layer scales at 1
    sd = encoder_sd()
    seg, dropped = from_mmmim(sd, 'mmseg-mae')
    assert dropped == [] and torch.equal(seg['layers.1.gamma_2'], torch.ones(32))
    missing = set(theirs.state_dict()) - set(seg)
    assert missing and all('relative_position' in k for k in missing)
    theirs.load_state_dict(seg, strict=False)
    ours.load_state_dict({k: v for k, v in sd.items() if not k.startswith('ln1.')})
    theirs.layers[1].attn.relative_position_bias_table.data.zero_()
    for a, b in zip(theirs(x), ours(x)):
        assert torch.allclose(a, b, atol=1e-4)


def test_pos_embed_interpolation():
    pos = torch.randn(1, 1 + 16, 8)
    assert interpolate_pos_embed(pos, (4, 4)) is pos
    big = interpolate_pos_embed(pos, (8, 6))
    assert big.shape == (1, 1 + 48, 8) and torch.equal(big[:, 0], pos[:, 0])
    const = torch.ones(1, 1 + 16, 8) * 3
    assert torch.allclose(interpolate_pos_embed(const, (7, 7)), torch.full((1, 50, 8), 3.),
                          atol=1e-5)
    no_cls = interpolate_pos_embed(torch.randn(1, 16, 8), (2, 2))
    assert no_cls.shape == (1, 4, 8)


def test_gan_mae_backbone_choice():
    gen, disc = encoder_sd(0), encoder_sd(1)
    key = 'patch_embed.projection.weight'
    # generator mode: the generator is exported under backbone., the other kept by role
    sd = {**{'backbone.' + k: v for k, v in gen.items()},
          **{'discriminator.backbone.' + k: v for k, v in disc.items()},
          'neck.decoder_pred.weight': torch.zeros(1)}
    assert select_backbone(sd) == 'backbone.'
    assert select_backbone(sd, 'generator') == 'backbone.'
    assert select_backbone(sd, 'discriminator') == 'discriminator.backbone.'
    assert select_backbone(sd, 'discriminator.backbone') == 'discriminator.backbone.'
    # discriminator mode: the discriminator is exported, the generator stored by role
    sd2 = {**{'backbone.' + k: v for k, v in disc.items()},
           **{'generator_backbone.' + k: v for k, v in gen.items()}}
    assert select_backbone(sd2, 'generator') == 'generator_backbone.'
    assert select_backbone(sd2, 'discriminator') == 'backbone.'
    with pytest.raises(Exception, match='several encoders'):
        select_backbone({'a.' + key: gen[key], 'b.' + key: gen[key]})
    with pytest.raises(Exception, match="no encoder under prefix 'x.'"):
        select_backbone(sd, 'x')


def test_cli_converts_pretraining_checkpoint_and_resizes(tmp_path, capsys):
    model = build_tiny()
    src = tmp_path / 'mae.pth'
    save_checkpoint({'state_dict': model.state_dict(), 'meta': {}}, str(src))
    tool = cli()
    dst = tmp_path / 'seg.pth'
    assert tool.main([str(src), str(dst), '--out-layout', 'mmseg', '--img-size', '48']) == 0
    out = torch.load(dst, weights_only=True)['state_dict']
    assert out['pos_embed'].shape == (1, 1 + 144, 32)
    assert torch.equal(out['layers.1.ffn.layers.1.weight'],
                       model.state_dict()['backbone.layers.1.ffn.layers.1.weight'])
    printed = capsys.readouterr().out
    assert "prefix 'backbone.'" in printed and 'pos_embed 1x65x32 -> 1x145x32' in printed
    # official-MAE file back to mmmim: keys and values as the original
    mae = tmp_path / 'mae_official.pth'
    tool.main([str(src), str(mae), '--out-layout', 'mae'])
    back = tmp_path / 'back.pth'
    tool.main([str(mae), str(back)])
    sd = torch.load(back, weights_only=True)['state_dict']
    orig = {k: v for k, v in model.state_dict().items() if k.startswith('backbone.')}
    assert set(sd) == set(orig) and all(torch.equal(sd[k], orig[k]) for k in orig)
    # vitdet has no cls token / final norm: refused unless --allow-partial
    with pytest.raises(SystemExit, match='would silently drop'):
        tool.main([str(src), str(tmp_path / 'd2.pth'), '--out-layout', 'vitdet'])
    tool.main([str(src), str(tmp_path / 'd2.pth'), '--out-layout', 'vitdet', '--allow-partial'])
    d2 = torch.load(tmp_path / 'd2.pth', weights_only=True)['model']
    assert 'backbone.net.blocks.0.norm1.weight' in d2 and 'backbone.net.cls_token' not in d2
    enc, info = load_vit_checkpoint(str(tmp_path / 'd2.pth'))
    assert info['layout'] == 'vitdet' and info['prefix'] == 'backbone.net.'
    assert torch.equal(enc['layers.0.ln1.weight'], orig['backbone.layers.0.ln1.weight'])


def test_wrong_patch_size_is_refused_with_keys_shapes_and_fix(tmp_path):
    src = tmp_path / 'mae.pth'
    save_checkpoint({'state_dict': build_tiny().state_dict(), 'meta': {}}, str(src))
    bb = backbone(patch_size=8, init_cfg=dict(type='Pretrained', checkpoint=str(src)))
    with pytest.raises(CheckpointMismatchError) as err:
        bb.init_weights()
    msg = str(err.value)
    assert 'patch_embed.projection.weight: checkpoint 32x1x4x4 vs model 32x1x8x8' in msg
    assert 'patch_size=4' in msg and 'tools/convert_checkpoint.py' in msg
    # a different width is a different architecture
    wide = backbone(arch=dict(ARCH, embed_dims=48, num_heads=2),
                    init_cfg=dict(type='Pretrained', checkpoint=str(src)))
    with pytest.raises(CheckpointMismatchError, match='embed dims differ'):
        wide.init_weights()


def test_partial_load_needs_consent(tmp_path):
    src = tmp_path / 'mae.pth'
    save_checkpoint({'state_dict': build_tiny().state_dict(), 'meta': {}}, str(src))
    deeper = dict(ARCH, num_layers=3)
    bb = backbone(arch=deeper, init_cfg=dict(type='Pretrained', checkpoint=str(src)))
    with pytest.raises(CheckpointMismatchError) as err:
        bb.init_weights()
    assert 'layers.2.attn.qkv.weight' in str(err.value)
    assert 'allow_partial_load=True' in str(err.value) and '2 blocks, the model 3' in str(err.value)
    ok = backbone(arch=deeper, allow_partial_load=True,
                  init_cfg=dict(type='Pretrained', checkpoint=str(src)))
    ok.init_weights()
    ref = build_tiny().backbone.state_dict()
    assert torch.equal(ok.layers[1].attn.qkv.weight, ref['layers.1.attn.qkv.weight'])
    # the CLI check against a config's backbone reports the same
    tool = cli()
    cfg = tmp_path / 'cfg.py'
    cfg.write_text("custom_imports = dict(imports=['mmmim.models.downstream'])\n"
                   "default_scope = 'mmseg'\n"
                   f"model = dict(backbone=dict(type='PlainViTBackbone', arch={deeper!r}, "
                   "img_size=32, patch_size=4, in_channels=1))\n")
    with pytest.raises(SystemExit, match='missing'):
        tool.main([str(src), str(tmp_path / 'o.pth'), '--config', str(cfg)])

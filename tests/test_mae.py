import pytest
import torch
from mmengine.runner import save_checkpoint

from mmmim.models.heads import ReconstructionHead, patchify, unpatchify
from mmmim.models.maskers import MaskPlan
from mmmim.registry import MODELS
from conftest import build_tiny, tiny_cfg


def images(b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 1, 32, 32, generator=g)


def test_patchify_roundtrip_and_layout():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float).reshape(2, 3, 8, 8)
    p = patchify(x, 4)
    assert p.shape == (2, 4, 48)
    # patch 1 is the top-right 4x4 block, pixel-major then channel
    assert torch.equal(p[0, 1].reshape(4, 4, 3).permute(2, 0, 1), x[0, :, :4, 4:])
    assert torch.equal(unpatchify(p, 4, (2, 2), 3), x)


def test_norm_pix_target_matches_direct_computation():
    head = ReconstructionHead(patch_size=4, in_channels=1, norm_pix=True)
    x = images()
    target = head.target(x)
    for b, i, j in [(0, 0, 0), (1, 3, 5), (3, 7, 7)]:
        patch = x[b, 0, 4 * i:4 * i + 4, 4 * j:4 * j + 4].flatten()
        expected = (patch - patch.mean()) / torch.sqrt(patch.var() + 1e-6)
        assert torch.allclose(target[b, i * 8 + j], expected, atol=1e-5)
    raw = ReconstructionHead(patch_size=4, in_channels=1, norm_pix=False).target(x)
    assert torch.equal(raw, patchify(x, 4))


def test_loss_zero_for_perfect_prediction_and_masked_only():
    head = ReconstructionHead(patch_size=4, in_channels=1)
    x = images()
    torch.manual_seed(0)
    plan = MaskPlan(ids_shuffle=torch.argsort(torch.rand(4, 64), 1), n_keep=16)
    target = head.target(x)
    assert head.loss(target.clone(), x, plan)['loss_rec'].item() == 0
    # garbage at the visible patches does not count
    pred = target.clone() + (1 - plan.mask)[..., None] * 100
    assert head.loss(pred, x, plan)['loss_rec'].item() == 0
    # an error of 1 at every masked element gives exactly 1
    pred = target + plan.mask[..., None]
    assert head.loss(pred, x, plan)['loss_rec'].item() == pytest.approx(1.0)


def test_encoder_ignores_masked_pixels(tiny_model):
    tiny_model.eval()
    x = images()
    tokens = tiny_model.backbone.embed(x)
    torch.manual_seed(0)
    plan = tiny_model.masker(tokens)
    latent = tiny_model.backbone.encode(tokens, plan)
    assert latent.shape == (4, 1 + 16, 32)
    pix_mask = unpatchify(plan.mask[..., None].expand(-1, -1, 16), 4, (8, 8), 1)
    x2 = x + pix_mask * torch.randn_like(x) * 10  # change only masked pixels
    latent2 = tiny_model.backbone.encode(tiny_model.backbone.embed(x2), plan)
    assert torch.allclose(latent, latent2, atol=1e-5)
    x3 = x + (1 - pix_mask) * torch.randn_like(x)  # change visible pixels: output changes
    latent3 = tiny_model.backbone.encode(tiny_model.backbone.embed(x3), plan)
    assert not torch.allclose(latent, latent3, atol=1e-3)


def test_full_plan_equals_plain_vit(tiny_model):
    tiny_model.eval()
    x = images()
    plan = MaskPlan(ids_shuffle=torch.arange(64).repeat(4, 1), n_keep=64)
    latent = tiny_model.backbone.encode(tiny_model.backbone.embed(x), plan)
    plain = tiny_model.backbone(x)[0]  # out_type cls_token
    assert torch.allclose(latent[:, 0], plain, atol=1e-5)


def test_gradients_reach_encoder_and_decoder_not_fixed_pos_embed(tiny_model):
    losses = tiny_model.loss(images())
    losses['loss_rec'].backward()
    bb, neck = tiny_model.backbone, tiny_model.neck
    assert bb.patch_embed.projection.weight.grad.abs().sum() > 0
    assert bb.layers[0].attn.qkv.weight.grad.abs().sum() > 0
    assert bb.cls_token.grad.abs().sum() > 0
    assert neck.mask_token.grad.abs().sum() > 0
    assert neck.decoder_pred.weight.grad.abs().sum() > 0
    assert not bb.pos_embed.requires_grad and bb.pos_embed.grad is None
    assert losses['mask_ratio'].item() == pytest.approx(0.75)


def test_training_reduces_loss():
    model = build_tiny()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    x = images(8)
    first = None
    for _ in range(40):
        torch.manual_seed(0)  # the same masks every step: a pure fitting problem
        loss = model.loss(x)['loss_rec']
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first


@pytest.mark.parametrize('masker', [dict(type='BlockMasker', ratio=0.6), dict(type='GridMasker')])
def test_mae_runs_with_other_maskers(masker):
    model = build_tiny(masker=masker)
    loss = model.loss(images())['loss_rec']
    assert torch.isfinite(loss) and loss > 0


def test_bad_inputs_fail_at_build():
    with pytest.raises(ValueError, match='not divisible by patch_size'):
        MODELS.build(tiny_cfg(backbone=dict(img_size=30)))
    with pytest.raises(ValueError, match='mask ratio must be in'):
        MODELS.build(tiny_cfg(masker=dict(type='RandomMasker', ratio=1.0)))
    with pytest.raises(ValueError, match='keeps 0 of 64'):
        MODELS.build(tiny_cfg(masker=dict(type='RandomMasker', ratio=0.99)))
    with pytest.raises(ValueError, match='makes 4'):
        MODELS.build(tiny_cfg(masker=dict(type='ParallelMasker', num_parts=4)))
    with pytest.raises(ValueError, match='does not match the backbone'):
        MODELS.build(tiny_cfg(neck=dict(patch_size=8)))


def test_backbone_loads_into_mmpretrain_classifier(tmp_path, tiny_model):
    """backbone.* of a pre-training checkpoint loads into mmpretrain's ImageClassifier."""
    from mmpretrain.models import ImageClassifier
    ckpt = tmp_path / 'mae.pth'
    save_checkpoint({'state_dict': tiny_model.state_dict(), 'meta': {}}, str(ckpt))
    clf = ImageClassifier(
        backbone=dict(type='VisionTransformer',
                      arch=dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
                      img_size=32, patch_size=4, in_channels=1, out_type='cls_token',
                      init_cfg=dict(type='Pretrained', checkpoint=str(ckpt), prefix='backbone.')),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=32))
    clf.init_weights()
    ours = tiny_model.backbone.state_dict()
    theirs = clf.backbone.state_dict()
    assert set(ours) == set(theirs)
    for key, value in ours.items():
        assert torch.equal(value, theirs[key]), key
    # and it computes the same function
    tiny_model.eval(), clf.eval()
    x = images()
    assert torch.allclose(clf.backbone(x)[0], tiny_model.backbone(x)[0], atol=1e-5)

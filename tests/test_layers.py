import pytest
import torch
import torch.nn.functional as F

from mmmim.models.layers import Attention, _attention_bf16_cpu, sincos_pos_embed


@pytest.mark.parametrize('masked', [False, True])
def test_cpu_bf16_attention_path_equals_sdpa(masked):
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 4, 7, 8).unbind(0)
    mask = None
    if masked:
        mask = torch.ones(2, 1, 1, 7, dtype=torch.bool)
        mask[0, ..., 5:] = False
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.allclose(_attention_bf16_cpu(q, k, v, mask), ref, atol=1e-5)


def test_attention_under_bf16_autocast_matches_fp32():
    torch.manual_seed(0)
    attn = Attention(32, 4)
    x = torch.randn(3, 9, 32)
    pad = torch.zeros(3, 9, dtype=torch.bool)
    pad[1, 6:] = True
    ref = attn(x, pad)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = attn(x, pad)
    assert out.dtype == torch.bfloat16
    assert torch.allclose(out.float(), ref, atol=0.05)
    # padded keys do not influence the real tokens
    x2 = x.clone()
    x2[1, 6:] = 100.
    assert torch.allclose(attn(x2, pad)[1, :6], ref[1, :6], atol=1e-5)


def test_sincos_pos_embed_values():
    emb = sincos_pos_embed((2, 3), 8)
    assert emb.shape == (1, 7, 8)
    assert torch.equal(emb[0, 0], torch.zeros(8))
    # token (row 1, col 2): first half encodes the column, second half the row
    freqs = 1. / 10000**(torch.arange(2, dtype=torch.float64) / 2.)
    col = torch.cat([torch.sin(2 * freqs), torch.cos(2 * freqs)])
    row = torch.cat([torch.sin(1 * freqs), torch.cos(1 * freqs)])
    assert torch.allclose(emb[0, 1 + 1 * 3 + 2].double(), torch.cat([col, row]), atol=1e-6)

import pytest
import torch

from qwenvl.models.adapter import MLPConfig, MLPProjector, Resampler, ResamplerConfig


def _resampler(**kw):
    sizes = {"num_queries": 16, "kv_width": 32, "width": 64, "heads": 4}
    return Resampler(ResamplerConfig(**{**sizes, **kw})).eval()


@pytest.mark.parametrize("patches", [64, 256, 1024])
def test_resampler_output_length_is_fixed_whatever_the_resolution(patches):
    out = _resampler()(torch.randn(2, patches, 32))
    assert out.shape == (2, 16, 64)


def test_position_embedding_changes_the_output():
    torch.manual_seed(0)
    a = _resampler(pos_embed="sincos2d")
    b = _resampler(pos_embed="none")
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 64, 32)
    assert not torch.allclose(a(x), b(x), atol=1e-4)


def _transpose_grid(x, side):
    return x.reshape(x.shape[0], side, side, -1).transpose(1, 2).reshape(x.shape)


def test_transposing_the_image_grid_changes_keys_only_with_positions():
    x = torch.randn(1, 64, 32)
    xt = _transpose_grid(x, 8)
    with_pos, without = _resampler(pos_embed="sincos2d"), _resampler(pos_embed="none")
    with torch.no_grad():
        # Without positions, cross-attention is blind to where a patch is: same output.
        assert torch.allclose(without(x), without(xt), atol=1e-5)
        assert not torch.allclose(with_pos(x), with_pos(xt), atol=1e-4)


def test_pos_out_tells_tokens_apart_where_the_pictures_do_not():
    torch.manual_seed(0)
    plain, placed = _resampler(), _resampler(pos_out=True)
    placed.load_state_dict(plain.state_dict())
    x = torch.randn(1, 1, 32).expand(1, 64, 32)  # every patch the same: nothing says where
    with torch.no_grad():
        out, out_placed = plain(x), placed(x)
    # Values carry no position: every query averages the same value, so every token is the same.
    assert torch.allclose(out, out[:, :1].expand_as(out), atol=1e-5)
    assert not torch.allclose(out_placed, out_placed[:, :1].expand_as(out_placed), atol=1e-3)
    with pytest.raises(ValueError, match="pos_embed=sincos2d"):
        ResamplerConfig(pos_embed="none", pos_out=True)


def test_pos_values_say_where_the_attended_patch_lies():
    """Each query attending to one patch of random features: where that patch lies is readable
    from the tokens only when the values carry the key positions."""
    from qwenvl.evaluation.position_probe import cell_centres, ridge_r2

    torch.manual_seed(0)
    plain, placed = _resampler(heads=1), _resampler(heads=1, pos_values=True)
    with torch.no_grad():
        plain.attn.in_proj_weight[:128].mul_(20.0)  # sharp attention: about one patch per query
    placed.load_state_dict(plain.state_dict())
    x = torch.randn(64, 64, 32)  # 64 pictures of 8 x 8 patches whose features say nothing of place
    with torch.no_grad():
        attended = plain.attention(x)[:, 0] @ cell_centres(8)  # [B, Q, 2]: (row, col) looked at
        r2_plain = ridge_r2(plain(x).reshape(-1, 64), attended.reshape(-1, 2))
        r2_placed = ridge_r2(placed(x).reshape(-1, 64), attended.reshape(-1, 2))
    assert attended.std(0).mean() > 0.2  # the queries do look at different places
    assert min(r2_placed) > 0.9 and max(r2_plain) < 0.3
    with pytest.raises(ValueError, match="pos_embed=sincos2d"):
        ResamplerConfig(pos_embed="none", pos_values=True)


@pytest.mark.parametrize("local_bias", [0.0, 4.0])
def test_attention_weights_are_the_forwards(local_bias):
    torch.manual_seed(0)
    resampler = _resampler(pos_values=True, local_bias=local_bias)
    x = torch.randn(2, 64, 32)
    weights = resampler.attention(x)
    assert weights.shape == (2, 4, 16, 64) and torch.allclose(weights.sum(-1), torch.ones(2, 4, 16))
    with torch.no_grad():  # the forward pass, rebuilt from the weights by hand
        q, k, v = resampler._attention_inputs(x)
        attn = resampler.attn
        wv, bv = attn.in_proj_weight[128:], attn.in_proj_bias[128:]
        heads = (v @ wv.T + bv).reshape(2, 64, 4, 16).transpose(1, 2)  # [B, H, P, d]
        out = (weights @ heads).transpose(1, 2).reshape(2, 16, 64)
        out = resampler.ln_post(attn.out_proj(out)) @ resampler.proj
        assert torch.allclose(out, resampler(x), atol=1e-5)


@pytest.mark.parametrize("patches", [16, 64])  # the query grid's own size, and four patches a cell
def test_local_bias_keeps_each_query_on_the_patches_under_it(patches):
    from qwenvl.evaluation.position_probe import attention_distance

    torch.manual_seed(0)
    spread, local = _resampler(), _resampler(local_bias=4.0)
    local.load_state_dict(spread.state_dict())
    x = torch.randn(8, patches, 32)
    with torch.no_grad():
        near, even = attention_distance(local.attention(x))
        anywhere, _ = attention_distance(spread.attention(x))
    # A query of a 4 x 4 grid sits a quarter of the side from its neighbours' centres; the patches
    # under it (64 patches: four a cell) are 0.088 from its own
    assert near < 0.15 and near < 0.3 * even and anywhere > 0.8 * even
    bias = local.locality(patches)
    assert bias.shape == (16, patches) and bias.max() <= 0 and spread.locality(patches) is None
    with pytest.raises(ValueError, match="local_bias must be >= 0"):
        ResamplerConfig(local_bias=-1.0)
    unplaced = _resampler(local_bias=4.0, pos_embed="none")
    with pytest.raises(ValueError, match="square patch grid, got 60 patches"):
        unplaced(torch.randn(1, 60, 32))


def test_num_queries_must_be_square():
    with pytest.raises(ValueError, match="square"):
        ResamplerConfig(num_queries=100 + 1)


def test_mlp_projector_keeps_one_token_per_patch():
    mlp = MLPProjector(MLPConfig(kv_width=32, width=64))
    assert mlp(torch.randn(2, 49, 32)).shape == (2, 49, 64)
    assert mlp.num_tokens(49) == 49

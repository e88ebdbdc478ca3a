import pytest
import torch

from qwenvl.models.adapter import MLPConfig, MLPProjector, Resampler, ResamplerConfig


def _resampler(**kw):
    return Resampler(ResamplerConfig(num_queries=16, kv_width=32, width=64, heads=4, **kw)).eval()


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


def test_num_queries_must_be_square():
    with pytest.raises(ValueError, match="square"):
        ResamplerConfig(num_queries=100 + 1)


def test_mlp_projector_keeps_one_token_per_patch():
    mlp = MLPProjector(MLPConfig(kv_width=32, width=64))
    assert mlp(torch.randn(2, 49, 32)).shape == (2, 49, 64)
    assert mlp.num_tokens(49) == 49

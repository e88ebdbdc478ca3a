import pytest
import torch
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
from safetensors.torch import save_file

from qwenvl.models.encoder import EncoderConfig, VisionEncoder


@pytest.mark.parametrize("size", [224, 448])
def test_patch_features_shape_follows_resolution(size):
    enc = VisionEncoder(EncoderConfig(image_size=224))
    out = enc(torch.randn(2, 3, size, size))
    assert out.shape == (2, (size // 14) ** 2, 64)


def test_resize_pos_embed_regrids_the_learned_table():
    enc = VisionEncoder(EncoderConfig(image_size=224))
    enc.resize_pos_embed(448)
    assert enc.positional_embedding.shape == (32 * 32, 64)
    assert enc.config.image_size == 448


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="multiple of patch_size"):
        EncoderConfig(image_size=225)


@pytest.mark.parametrize("size", [224, 448])
def test_conv_stem_gives_the_same_patch_grid_and_sees_within_a_patch(size):
    enc = VisionEncoder(EncoderConfig(image_size=224, patch_size=28, width=32, heads=4, stem="conv")).eval()
    x = torch.rand(1, 3, size, size)
    out = enc(x)
    assert out.shape == (1, (size // 28) ** 2, 32)
    assert enc.conv1.weight.shape == (32, 32, 7, 7)  # 7 x 7 cells of 4 px per 28-px patch
    assert {k.split(".")[0] for k in enc.state_dict()} >= {"stem", "conv1"}
    # The stem is nonlinear: a patch's embedding is not the sum of its halves' embeddings, which a
    # single linear patch conv would give.
    left, right = x.clone(), x.clone()
    left[..., :, 14:28], right[..., :, :14] = 0, 0
    with torch.no_grad():
        emb = [enc.conv1(enc.stem(i))[..., 0, 0] for i in (x, left, right)]
    assert not torch.allclose(emb[0], emb[1] + emb[2], atol=1e-3)


def test_conv_stem_refuses_what_it_cannot_build():
    with pytest.raises(ValueError, match="'patch' or 'conv'"):
        EncoderConfig(stem="cnn")
    with pytest.raises(ValueError, match="multiple of 4"):
        EncoderConfig(image_size=224, patch_size=14, stem="conv")
    with pytest.raises(ValueError, match="encoder.stem=patch"):
        EncoderConfig(image_size=224, patch_size=28, stem="conv", checkpoint="clip.safetensors")


def _open_clip_model():
    vision = CLIPVisionCfg(layers=2, width=64, head_width=16, patch_size=14, image_size=224, mlp_ratio=4.0)
    text = CLIPTextCfg(context_length=8, vocab_size=50, width=32, heads=2, layers=1)
    return CLIP(embed_dim=16, vision_cfg=vision, text_cfg=text).eval()


def test_loads_an_open_clip_checkpoint_and_matches_its_blocks(tmp_path):
    clip = _open_clip_model()
    path = tmp_path / "clip.safetensors"
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(path))
    enc = VisionEncoder(
        EncoderConfig(width=64, layers=2, heads=4, final_ln=True, checkpoint=str(path))
    ).eval()
    v = clip.visual
    assert torch.equal(enc.positional_embedding, v.positional_embedding[1:])
    # Reference: open_clip's own modules on the patch tokens, without the class token.
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ref = v.conv1(x).flatten(2).transpose(1, 2) + v.positional_embedding[1:]
        ref = v.ln_post(v.transformer(v.ln_pre(ref)))
        assert torch.allclose(enc(x), ref, atol=1e-5)


def test_checkpoint_that_does_not_fit_names_the_keys(tmp_path):
    clip = _open_clip_model()
    path = tmp_path / "clip.safetensors"
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(path))
    with pytest.raises(ValueError, match="missing"):
        VisionEncoder(EncoderConfig(width=64, layers=3, heads=4, checkpoint=str(path)))


def test_pickled_checkpoint_is_refused(tmp_path):
    import pickle

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"x": object()}))
    with pytest.raises(ValueError, match="unpickling"):
        VisionEncoder(EncoderConfig(checkpoint=str(path)))

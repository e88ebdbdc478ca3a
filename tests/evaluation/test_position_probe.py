"""The position probe: is a patch's or a token's place on the grid linearly readable from it?"""

import copy

import pytest
import torch

from qwenvl import QwenVLModel, QwenVLProcessor
from qwenvl.evaluation.position_probe import (
    attention_distance,
    cell_centres,
    grid_places,
    main,
    probe,
    ridge_r2,
)
from qwenvl.models import EncoderConfig, MLPConfig, ResamplerConfig

# 16 patches on a 32-wide encoder: a linear read-out can tell all 16 places apart
SMALL = EncoderConfig(image_size=64, patch_size=16, width=32, layers=1, heads=2)


def test_ridge_r2_is_one_for_a_linear_target_and_near_zero_for_noise():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(400, 16, generator=gen)
    y = torch.stack([x @ torch.randn(16, generator=gen), torch.randn(400, generator=gen)], -1)
    linear, noise = ridge_r2(x, y)
    assert linear > 0.99 and noise < 0.1
    with pytest.raises(ValueError, match="at least 8"):
        ridge_r2(x[:4], y[:4])


def test_grid_places_are_row_major():
    places = grid_places(9)
    assert places[5].tolist() == [1.0, 2.0] and places[8].tolist() == [2.0, 2.0]
    with pytest.raises(ValueError, match="square grid"):
        grid_places(10)


def test_attention_distance_is_zero_on_the_query_s_own_place_and_the_mean_when_even():
    own = torch.eye(16).expand(2, 3, 16, 16)  # each query of a 4 x 4 grid on its own patch
    assert attention_distance(own)[0] == pytest.approx(0.0, abs=1e-6)
    even = torch.full((2, 3, 4, 16), 1 / 16)  # a 2 x 2 query grid spread over 4 x 4 patches
    spread, expected = attention_distance(even)
    assert spread == pytest.approx(expected) and expected == pytest.approx(
        torch.cdist(cell_centres(2), cell_centres(4)).mean().item()
    )
    # the four patches under a query of the 2 x 2 grid: a quarter of the picture's side at most
    under = torch.zeros(4, 16)
    for q in range(4):
        rows, cols = divmod(q, 2)
        for p in range(16):
            under[q, p] = (p // 4) // 2 == rows and (p % 4) // 2 == cols
    local = attention_distance((under / 4).expand(1, 1, 4, 16))[0]
    assert local == pytest.approx(0.25 * 2**0.5 / 2, abs=1e-6) and local < expected / 2


def _scaled_table(model, factor: float):
    out = copy.deepcopy(model)
    with torch.no_grad():
        out.encoder.positional_embedding.mul_(factor)
    return out


def test_the_encoders_position_table_is_what_carries_the_place():
    torch.manual_seed(0)
    model = QwenVLModel.from_config(encoder=SMALL, adapter=ResamplerConfig(num_queries=4)).eval()
    proc = QwenVLProcessor.from_model(model)
    # A position table that dominates the patch features: the place is readable from them.
    kept = probe(_scaled_table(model, 50.0), proc, pictures=24, batch_size=12)
    assert kept["patch_row_r2"] > 0.8 and kept["patch_col_r2"] > 0.8
    # Without the table a patch feature depends on what the patch shows, not where it is.
    lost = probe(_scaled_table(model, 0.0), proc, pictures=24, batch_size=12)
    assert lost["patch_row_r2"] < 0.5 and lost["patch_col_r2"] < 0.5
    assert set(lost) == {
        "patch_row_r2",
        "patch_col_r2",
        "token_row_r2",
        "token_col_r2",
        "attention_distance",
        "even_distance",
    }
    # a freshly built resampler's queries gather from the whole picture, not from under their place
    assert lost["attention_distance"] == pytest.approx(lost["even_distance"], rel=0.1)


def test_a_projector_without_cross_attention_gets_no_attention_figures():
    torch.manual_seed(0)
    model = QwenVLModel.from_config(encoder=SMALL, adapter=MLPConfig()).eval()
    result = probe(model, QwenVLProcessor.from_model(model), pictures=16, batch_size=8)
    assert "attention_distance" not in result and "token_row_r2" in result


def test_cli_reads_a_saved_model(model, tmp_path, capsys):
    model.save_pretrained(tmp_path / "m")
    result = main([str(tmp_path / "m"), "--pictures", "16"])
    out = capsys.readouterr().out
    assert "encoder patches" in out and -10 < result["token_row_r2"] <= 1
    assert "resampler attention" in out and 0 < result["attention_distance"] < 1

"""Loss curves: the centred running mean, the losses file, and the picture."""

import pytest
from PIL import Image

from qwenvl.training.loss_chart import loss_png, read_losses, running_mean, write_losses


def test_running_mean_is_centred_and_uses_fewer_values_at_the_ends():
    assert running_mean([0, 0, 0, 3, 0, 0, 0], 3) == [0, 0, 1, 1, 1, 0, 0]
    assert running_mean([2, 4, 6], 5) == [4, 4, 4]  # the whole series fits in every window
    assert running_mean([1.5, 2.5], 1) == [1.5, 2.5]


def test_losses_round_trip_and_a_run_without_them_reads_empty(tmp_path):
    write_losses(tmp_path / "run", "warmup", [3.0, 2.5, 2.0])
    assert read_losses(tmp_path / "run") == [3.0, 2.5, 2.0]
    assert read_losses(tmp_path / "other") == []


def test_one_panel_per_stage_and_an_empty_stage_keeps_its_panel(tmp_path):
    falling = [5 / (i + 1) for i in range(200)]
    one = Image.open(loss_png([("objects", falling)], tmp_path / "one.png"))
    three = Image.open(loss_png([("a", falling), ("b", []), ("c", falling[:7])], tmp_path / "three.png"))
    assert three.width > 2 * one.width and three.height == one.height
    assert len(set(three.convert("L").getdata())) > 10  # drawn, not blank
    with pytest.raises(ValueError, match="no loss curves"):
        loss_png([], tmp_path / "none.png")

"""The shape probe trains an encoder config on single-object pictures through a chosen readout."""

import pytest

from qwenvl.evaluation.shape_probe import POOLS, Probe, main, probe
from qwenvl.models import EncoderConfig

SMALL = EncoderConfig(image_size=64, patch_size=16, width=32, layers=1, heads=2)


def test_colour_is_learned_through_max_pooling_within_a_few_dozen_steps():
    rows = probe(SMALL, "max", steps=60, batch_size=16, lr=3e-3, eval_every=60, eval_samples=64)
    assert len(rows) == 1 and rows[0]["step"] == 60
    assert rows[0]["colour_acc"] > 0.5  # chance is 1/6
    assert 0.0 <= rows[0]["shape_acc"] <= 1.0


@pytest.mark.parametrize("pool", POOLS)
def test_every_readout_runs_and_reports_each_evaluation(pool):
    rows = probe(SMALL, pool, steps=4, batch_size=2, eval_every=2, eval_samples=4)
    assert [r["step"] for r in rows] == [2, 4]
    assert all(set(r) == {"step", "seconds", "shape_acc", "colour_acc"} for r in rows)


def test_unknown_readout_is_refused():
    from qwenvl import QwenVLModel

    with pytest.raises(ValueError, match="pool must be one of"):
        Probe(QwenVLModel.from_config(encoder=SMALL), "median")


def test_cli(capsys):
    rows = main(["--steps", "2", "--eval-every", "2", "--image-size", "56", "--patch-size", "28",
                 "--width", "32", "--layers", "1"])  # fmt: skip
    assert rows[-1]["step"] == 2 and "shape acc" in capsys.readouterr().out

"""`global_batch`: gradient accumulation reaches it in every trainer config, exactly or not at all."""

import pytest
import torch
from hydra import compose, initialize_config_dir

from qwenvl.cli.train import main
from qwenvl.paths import CONF_DIR


def _accumulation(*overrides) -> int:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["paths.output_dir=/tmp/x", *overrides])
    return cfg.trainer.accumulate_grad_batches


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ([], 1),  # no global batch: one batch per process and step
        (["global_batch=32", "data.batch_size=4"], 8),
        (["global_batch=32", "data.batch_size=4", "trainer=ddp", "trainer.devices=2"], 4),
        (
            [
                "global_batch=32",
                "data.batch_size=2",
                "trainer=fsdp",
                "trainer.devices=2",
                "trainer.num_nodes=2",
            ],
            4,
        ),
        (["global_batch=16", "data.batch_size=4", "trainer=gpu"], 4),
    ],
)
def test_accumulation_reaches_the_global_batch(overrides, expected):
    assert _accumulation(*overrides) == expected


def test_a_global_batch_out_of_reach_is_refused_with_the_sizes():
    with pytest.raises(
        Exception, match=r"global_batch=30 is not a multiple of data.batch_size x processes = 4 x 1"
    ):
        _accumulation("global_batch=30", "data.batch_size=4")


def test_a_run_with_a_global_batch_takes_that_many_samples_per_optimizer_step(tmp_path, run_app):
    args = ["logger=none", "callbacks.progress=null", "data.val.size=2", "adapter.num_queries=16"]
    args += [f"hydra.run.dir={tmp_path}", "stage.image_size=224", "global_batch=8", "data.batch_size=2"]
    assert run_app(main, *args, "max_steps=3").code == 0
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 3  # optimizer steps
    progress = ckpt["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]["processed"]
    assert progress == 12  # micro-batches of 2: 4 per step

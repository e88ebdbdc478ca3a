import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

from qwenvl.paths import CONF_DIR


@pytest.fixture
def train_cli():
    """Run `python -m qwenvl.cli.train` into `out` with overrides, as a user launches it; fails loudly."""

    def run(out, *overrides):
        cmd = [sys.executable, "-m", "qwenvl.cli.train", f"hydra.run.dir={out}", *overrides]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=out.parent)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
        return r

    return run


@pytest.fixture(scope="session")
def compose_train():
    """The `train` config for a quick in-process run into `out`: no logger, small batches and queries."""

    def make(out, *overrides, batch_size: int = 2, val_size: int = 4):
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(
                config_name="train",
                overrides=[
                    "logger=none",
                    "callbacks=none",
                    f"paths.output_dir={out}",
                    f"data.batch_size={batch_size}",
                    f"data.val.size={val_size}",
                    "adapter.num_queries=16",
                    *overrides,
                ],
            )

    return make

import subprocess
import sys

import pytest


@pytest.fixture
def train_cli():
    """Run `python -m qwenvl.cli.train` into `out` with overrides, as a user launches it; fails loudly."""

    def run(out, *overrides):
        cmd = [sys.executable, "-m", "qwenvl.cli.train", f"hydra.run.dir={out}", *overrides]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=out.parent)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
        return r

    return run

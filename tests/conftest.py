import os
import subprocess
import sys
import time
from types import SimpleNamespace

if "PYTEST_XDIST_WORKER" in os.environ:
    # Under pytest-xdist (`make test`: one worker per core) each worker computes on one thread, and
    # so do the processes a test starts (they inherit it): with torch's default of one thread per
    # core in every worker, the workers would contend for the cores and each run far slower.
    os.environ["OMP_NUM_THREADS"] = "1"

import pytest
import torch

from qwenvl import QwenVLModel, QwenVLProcessor
from qwenvl.models import ResamplerConfig


def pytest_collection_modifyitems(config, items):
    """GPU tests are skipped, visibly, where no CUDA device exists."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def model():
    """A tiny random model (16 queries) in eval mode; a module may define its own."""
    torch.manual_seed(0)
    return QwenVLModel.from_config(adapter=ResamplerConfig(num_queries=16)).eval()


@pytest.fixture(scope="module")
def proc(model):
    return QwenVLProcessor.from_model(model)


@pytest.fixture
def wait_for_step():
    """wait(run_dir, step, proc): block until run_dir/checkpoints/last.ckpt holds `step` or later,
    failing with the process's stderr if it dies first (for tests that kill a run mid-way)."""

    def wait(out, step, proc, timeout=300):
        last = out / "checkpoints" / "last.ckpt"
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            if last.is_file():
                try:
                    if torch.load(last, weights_only=True, map_location="cpu")["global_step"] >= step:
                        return
                except Exception:  # mid-rename on a slow disk; look again
                    pass
            time.sleep(0.2)
        raise TimeoutError(f"no checkpoint at step {step} in {out}")

    return wait


@pytest.fixture
def launch():
    """launch(module, run_dir, *overrides, wait=True): a Hydra entry point in its own process.

    wait=True: runs it to the end (CompletedProcess, output captured); wait=False: returns the
    running Popen (stderr piped), for tests that stop it mid-way."""

    def run(module, out, *overrides, wait=True):
        cmd = [sys.executable, "-m", module, f"hydra.run.dir={out}", *overrides]
        if not wait:
            return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=600)

    return run


@pytest.fixture
def run_app(monkeypatch, capsys, tmp_path):
    """run_app(main, *argv) -> .code, .out, .err: a Hydra entry point run in this process, for
    short runs (a process of its own would spend seconds importing torch), in `tmp_path` as its
    working directory (apps whose run directory is relative, or `.`, write there).
    Hydra configures logging for the job; the root logger's handlers are put back afterwards, so
    later tests do not log into this one's closed streams."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def run(main, *argv):
        monkeypatch.setattr(sys, "argv", ["app", *argv])
        monkeypatch.chdir(tmp_path)
        try:
            main()
            code = 0
        except SystemExit as stop:
            code = stop.code
        finally:
            root.handlers[:], root.level = handlers, level
        captured = capsys.readouterr()
        return SimpleNamespace(code=code, out=captured.out, err=captured.err)

    return run

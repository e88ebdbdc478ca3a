"""A run killed at any step and resumed ends with the same weights as an uninterrupted run."""

import json
import signal

import pytest
import torch

from qwenvl.cli.train import PREEMPTED_EXIT, main

STEPS = 12
COMMON = [
    "logger=none",
    f"max_steps={STEPS}",
    "checkpoint_every=1",
    "data.batch_size=2",
    "data.train.size=40",  # 20 batches an epoch: the kill lands mid-epoch
    "data.val.size=2",
    "adapter.num_queries=16",
    "stage.image_size=224",
    "callbacks.progress=null",
]


@pytest.fixture
def train(launch):
    """train(run_dir, *overrides, wait=True): qwenvl-train on the small common config."""

    def run(out, *extra, wait=True):
        r = launch("qwenvl.cli.train", out, *COMMON, *extra, wait=wait)
        if wait:
            assert r.returncode == 0, r.stderr[-3000:]
        return r

    return run


def _finish(proc) -> None:
    """Wait for a run started with wait=False (the uninterrupted one, alongside the killed one: the
    two processes' imports overlap on the machine's cores) and check it ended well."""
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]


def _weights(out):
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert ckpt["global_step"] == STEPS
    return ckpt["state_dict"]


@pytest.mark.parametrize(
    "stage, workers",
    # a language stage and the encoder's own; with a loader process, whose iterator draws the
    # sampler's order before training starts, so a resume must set its skip before that
    [("multitask", 0), ("objects", 0), ("multitask", 1)],
)
def test_killed_run_resumes_to_identical_weights(tmp_path, stage, workers, wait_for_step, train):
    straight = train(tmp_path / "straight", f"stage={stage}", f"data.num_workers={workers}", wait=False)
    proc = train(tmp_path / "killed", f"stage={stage}", f"data.num_workers={workers}", wait=False)
    wait_for_step(tmp_path / "killed", 3 if stage == "objects" else 5, proc)
    proc.send_signal(signal.SIGKILL)  # a real kill: no handler runs, no cleanup
    proc.wait()
    killed_at = torch.load(tmp_path / "killed" / "checkpoints" / "last.ckpt", weights_only=True)[
        "global_step"
    ]
    assert killed_at < STEPS  # the kill landed mid-run, so the resume below has work to do
    train(tmp_path / "killed", f"stage={stage}", f"data.num_workers={workers}", "ckpt_path=last")
    _finish(straight)
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "killed")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _write_pair_shards(root, n_shards: int, per_shard: int) -> str:
    """WebDataset shards of small random pictures with captions; returns their brace pattern."""
    import io

    import webdataset as wds
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for s in range(n_shards):
        with wds.TarWriter(str(root / f"pairs-{s:06d}.tar")) as sink:
            for i in range(per_shard):
                pixels = torch.randint(0, 256, (32, 32, 3), generator=g, dtype=torch.uint8).numpy()
                png = io.BytesIO()
                Image.fromarray(pixels).save(png, format="PNG")
                sink.write(
                    {"__key__": f"s{s}_{i:03d}", "png": png.getvalue(), "txt": f"picture {s} {i}".encode()}
                )
    return f"pairs-{{000000..{n_shards - 1:06d}}}.tar"


def test_killed_run_on_streamed_shards_resumes_to_identical_weights(tmp_path, wait_for_step, launch):
    """The stream has no sampler to restore: the resumed epoch starts each worker where it stood."""
    shards = tmp_path / "shards"
    shards.mkdir()
    pattern = _write_pair_shards(shards, n_shards=4, per_shard=10)  # 20 batches of 2 an epoch
    stream = ["logger=none", "stage=pretrain", "data=webdataset", f"data_root={shards}",
              f"data.train.annotation_file='{pattern}'", "data.batch_size=2", "data.num_workers=2",
              f"max_steps={STEPS}", "checkpoint_every=1", "adapter.num_queries=16",
              "callbacks.progress=null"]  # fmt: skip

    def train(out, *extra, wait=True):
        r = launch("qwenvl.cli.train", out, *stream, *extra, wait=wait)
        assert not wait or r.returncode == 0, r.stderr[-3000:]
        return r

    straight = train(tmp_path / "straight", wait=False)
    proc = train(tmp_path / "killed", wait=False)
    wait_for_step(tmp_path / "killed", 6, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(tmp_path / "killed" / "checkpoints" / "last.ckpt", weights_only=True)[
        "global_step"
    ]
    assert killed_at < STEPS
    r = train(tmp_path / "killed", "ckpt_path=last")
    assert "resuming a streamed epoch where each worker stopped" in r.stdout + r.stderr
    _finish(straight)
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "killed")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_sigterm_saves_a_checkpoint_before_exiting(tmp_path, train, wait_for_step):
    out = tmp_path / "term"
    proc = train(out, "stage=multitask", "checkpoint_every=50", "max_steps=400", wait=False)
    # The first periodic checkpoint says training is under way, with Lightning's SIGTERM handler in
    # place: after a fixed sleep instead, a cold start (a fresh environment compiling its imports)
    # could still be setting up, and the default handler ended the process without a checkpoint.
    wait_for_step(out, 50, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == PREEMPTED_EXIT  # pre-empted is no success to a scheduler or `&&`
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert 50 < ckpt["global_step"] < 100  # saved on the signal, between two periodic checkpoints


def test_resuming_a_finished_run_keeps_its_validation_results(tmp_path, run_app):
    """`ckpt_path=last` on a run that had finished trains nothing: its results.json is rewritten
    with the same validation losses (the restored weights validated again), not emptied. Where
    there is no checkpoint yet it starts the run, and each case says which it is."""
    out = tmp_path / "done"
    args = [f"hydra.run.dir={out}", *COMMON, "stage=multitask", "max_steps=3"]
    started = run_app(main, *args, "ckpt_path=last")  # in this process: two runs of 3 steps need no own
    assert started.code == 0
    assert (
        f"ckpt_path=last: no checkpoint at {out / 'checkpoints' / 'last.ckpt'} yet"
        in started.out + started.err
    )
    first = json.loads((out / "results.json").read_text())["benchmarks"]["val"]["metrics"]
    assert "loss" in first
    resumed = run_app(main, *args, "ckpt_path=last")
    assert resumed.code == 0
    assert f"ckpt_path=last: resuming from {out / 'checkpoints' / 'last.ckpt'}" in resumed.out + resumed.err
    again = json.loads((out / "results.json").read_text())["benchmarks"]["val"]["metrics"]
    assert again == first
    assert len(json.loads((out / "losses.json").read_text())["losses"]) == 3  # the history kept

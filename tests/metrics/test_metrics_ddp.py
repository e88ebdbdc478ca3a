"""Every metric gives the single-process result on 2 processes (gloo, CPU), with the sample that
`DistributedSampler` repeats to pad the shards counted once."""

import socket
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DistributedSampler

from qwenvl.metrics import (
    ANLS,
    CIDEr,
    ExactMatch,
    GroundedCaptionMAP,
    GroundingAccuracy,
    RelaxedAccuracy,
    VQAAccuracy,
)
from qwenvl.metrics.bench_cider import synthetic_corpus

N = 7  # odd: with 2 processes the sampler pads with a repeat of sample 0

CAPTIONS, REFERENCES = synthetic_corpus(N, 3, seed=11)
VQA = (
    ["yes", "2.", "red", "no", "Two", "cat", "blue"],
    [["yes"] * 10, ["2"] * 10, ["red"] * 4 + ["blue"] * 6, ["yes"] * 10, ["2"] * 9 + ["3"], ["dog"] * 10, []],
)
DOCS = (["total", "ab", "Paris", "12", "0", "x", "42%"], ["total", ["ac"], "paris", "12.5", "0", "y", "0.42"])
BOXES = (
    [f"<ref>thing</ref><box>({10 * i},{10 * i}),({500 + 10 * i},{400})</box>" for i in range(N - 1)]
    + ["none"],
    [(10 * i, 0, 400, 300) for i in range(N)],
    [(800, 600)] * N,
)
DETECTIONS = (
    [
        f"<ref>dog</ref><box>({i},{i}),({300 + i},{300 + i})</box>"
        + "<ref>cat</ref><box>(500,500),(900,900)</box>"
        for i in range(N)
    ],
    [[("dog", (0, 0, 300, 300)), ("cat", (480, 520, 900, 900))] for _ in range(N)],
)


def run_metrics(rank: int, world: int) -> dict:
    """Feed this process's shard (as DistributedSampler deals it) in batches of 2; compute everything."""
    order = list(DistributedSampler(range(N), num_replicas=world, rank=rank, shuffle=False))
    metrics = {
        "cider": CIDEr(),
        "vqa": VQAAccuracy(),
        "anls": ANLS(),
        "relaxed": RelaxedAccuracy(),
        "exact": ExactMatch(),
        "exact_without_ids": ExactMatch(),
        "grounding": GroundingAccuracy(thresholds=(0.5, 0.75)),
        "map": GroundedCaptionMAP(),
    }
    for start in range(0, len(order), 2):
        idx = order[start : start + 2]
        ids = [f"s{i}" for i in idx]

        def pick(seq, idx=idx):
            return [seq[i] for i in idx]

        metrics["cider"].update(pick(CAPTIONS), pick(REFERENCES), ids=ids)
        metrics["vqa"].update(pick(VQA[0]), pick(VQA[1]), ids=ids)
        metrics["anls"].update(pick(DOCS[0]), pick(DOCS[1]), ids=ids)
        metrics["relaxed"].update(pick(DOCS[0]), pick(DOCS[1]), ids=ids)
        metrics["exact"].update(pick(DOCS[0]), pick(DOCS[1]), ids=ids)
        metrics["exact_without_ids"].update(pick(DOCS[0]), pick(DOCS[1]))
        metrics["grounding"].update(pick(BOXES[0]), pick(BOXES[1]), image_sizes=pick(BOXES[2]), ids=ids)
        metrics["map"].update(pick(DETECTIONS[0]), pick(DETECTIONS[1]), ids=ids)
    out = {}
    for name, metric in metrics.items():
        value = metric.compute()
        out[name] = {k: float(v) for k, v in value.items()} if isinstance(value, dict) else float(value)
        out[f"{name}/local_records"] = len(metric.records)  # local state is restored after the sync
    return out


def _worker(rank: int, world: int, port: int, results: dict) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        results[rank] = run_metrics(rank, world)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_two_processes_match_one():
    single = run_metrics(0, 1)
    with mp.Manager() as manager:
        results = manager.dict()
        ctx = mp.spawn(_worker, args=(2, _free_port(), results), nprocs=2, join=False)
        deadline = time.monotonic() + 240
        while not ctx.join(timeout=5):
            if time.monotonic() > deadline:
                for p in ctx.processes:
                    p.kill()
                pytest.fail("distributed workers did not finish")
        results = dict(results)
    assert set(results) == {0, 1}
    for rank in (0, 1):
        got = results[rank]
        for name, value in single.items():
            if name.endswith("/local_records") or name == "exact_without_ids":
                continue
            assert got[name] == pytest.approx(value, abs=1e-12), (rank, name)
        # each rank fed 2 batches of its 4 padded samples, and keeps exactly those after compute()
        assert got["cider/local_records"] == 4
    # without ids the padded repeat of sample 0 (an exact hit) is counted twice
    assert results[0]["exact_without_ids"] != pytest.approx(single["exact_without_ids"])
    assert single["exact"] == single["exact_without_ids"]
    assert torch.isfinite(torch.tensor(single["cider"])) and single["cider"] > 0

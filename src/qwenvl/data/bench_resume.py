"""Resume benchmark for streamed shards: time to the first batch of a resumed epoch, started at the
stream's saved positions against reading past the batches trained on (the fallback).

    python -m qwenvl.data.bench_resume                       # 4 shards of 250 JPEGs, resume at 100 batches
    python -m qwenvl.data.bench_resume --batches 100 --workers 2 --repeats 5

Shards of random 640x480 JPEG photos with captions are written to a temporary folder, read by
`WebDatasetPairs` through a `QwenVLDataModule` (224-px processor, batch 8), and the positions are
taken as the training module takes them, from the first `--batches` batches. Each repeat times
both resumes, side by side; medians and their ratio are printed.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import webdataset as wds
from PIL import Image

from qwenvl.data.datamodule import QwenVLDataModule
from qwenvl.data.formats.webdataset_pairs import WebDatasetPairs
from qwenvl.processor import QwenVLProcessor
from qwenvl.tokenizer import QwenVLTokenizer
from qwenvl.training.stream_positions import record


def write_shards(root: Path, shards: int, per_shard: int) -> str:
    """`shards` tar files of `per_shard` random 640x480 JPEGs with captions; their brace pattern."""
    rng = np.random.default_rng(0)
    for s in range(shards):
        with wds.TarWriter(str(root / f"pairs-{s:06d}.tar")) as sink:
            for i in range(per_shard):
                jpeg = io.BytesIO()
                Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(jpeg, format="JPEG")
                sink.write(
                    {"__key__": f"s{s}_{i:04d}", "jpg": jpeg.getvalue(), "txt": f"photo {s} {i}".encode()}
                )
    return f"pairs-{{000000..{shards - 1:06d}}}.tar"


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--per-shard", type=int, default=250)
    ap.add_argument("--batches", type=int, default=100, help="batches trained before the interruption")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    processor = QwenVLProcessor(QwenVLTokenizer.default(), image_size=224, image_tokens=16)
    with tempfile.TemporaryDirectory() as tmp:
        pattern = write_shards(Path(tmp), args.shards, args.per_shard)

        def module() -> QwenVLDataModule:
            pairs = WebDatasetPairs(tmp, pattern)
            return QwenVLDataModule(
                pairs, processor=processor, batch_size=args.batch_size, num_workers=args.workers
            )

        state: dict = {}
        batches = iter(module().train_dataloader())
        for _ in range(args.batches):
            state = record(state, next(batches)["stream_position"], epoch=0)
        del batches
        seek, past = [], []
        for _ in range(args.repeats):
            for times, resume in (
                (seek, {"resume_stream": state}),
                (past, {"resume_samples": args.batches * args.batch_size}),
            ):
                dm = module()
                for key, value in resume.items():
                    setattr(dm, key, value)
                start = time.perf_counter()
                next(iter(dm.train_dataloader()))
                times.append(time.perf_counter() - start)
    a, b = statistics.median(seek), statistics.median(past)
    print(
        f"first batch after a resume at {args.batches} batches of {args.batch_size} ({args.workers} workers, "
        f"median of {args.repeats}): at the saved positions {a:.3f} s, reading past the batches {b:.3f} s "
        f"({b / a:.0f}x)"
    )
    return {"at_positions_s": a, "reading_past_s": b}


if __name__ == "__main__":
    main()

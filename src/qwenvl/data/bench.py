"""Input-pipeline benchmark for stage 2: samples/s from image files on disk, and packing efficiency.

    python -m qwenvl.data.bench                                  # 256 samples, workers 0,1,2
    python -m qwenvl.data.bench --samples 256 --workers 0,2,4 --batch-size 16

1. Throughput: the synthetic world is exported at 448 px in the stage-2 public formats (COCO
   captions, VQAv2, RefCOCO, DocVQA as JPEG files in a temporary folder), read back through the
   format loaders and collated by a `Collator` with a 448-px processor, exactly as training reads
   real data (loader -> `Guarded(collator.encode)` -> DataLoader). Reported per `num_workers`:
   samples/s over the whole pass (worker start-up included), steady samples/s (after the first
   batch, once every worker is up) and that rate per worker (num_workers=0 is one process, run
   with one torch thread like a worker unless `--torch-threads` says otherwise).
2. Packing: a batch of the stage-2 task mixture straight from `SyntheticWorld`, packed into rows
   of `--max-seq-len` tokens. Efficiency = real tokens / (rows x longest row), the collator's own
   `packing_efficiency`; the share of rows x max_seq_len and the padded batch are shown beside it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from qwenvl.data.collate import Collator
from qwenvl.data.formats import LOADERS
from qwenvl.data.robust import Guarded
from qwenvl.data.synthetic import SyntheticWorld
from qwenvl.data.synthetic import export as ex
from qwenvl.paths import CONF_DIR
from qwenvl.processor import QwenVLProcessor
from qwenvl.tokenizer import QwenVLTokenizer

IMAGE_SIZE = 448  # stage 2's resolution, pixels
IMAGE_TOKENS = 256  # resampler queries per image
# The stage-2 tasks that have a public format, with the exporter and the loader reading it back.
FORMATS = {
    "caption": ("coco_karpathy", "coco_captions"),
    "vqa": ("vqav2", "vqav2"),
    "grounding": ("refcoco", "refcoco"),
    "ocr": ("docvqa", "docvqa"),
}


def stage2_mixture() -> dict[str, float]:
    """Task -> weight of stage 2, read from conf/stage/multitask.yaml so the two never drift."""
    stage = OmegaConf.load(CONF_DIR / "stage" / "multitask.yaml")
    return dict(zip(stage.tasks, stage.task_weights or [1.0] * len(stage.tasks), strict=True))


def split_counts(total: int, weights: dict[str, float]) -> dict[str, int]:
    """`total` samples over the keys in proportion to their weights, at least one each."""
    norm = sum(weights.values())
    counts = {k: max(1, round(total * w / norm)) for k, w in weights.items()}
    biggest = max(counts, key=counts.get)
    counts[biggest] += total - sum(counts.values())  # rounding leftovers go to the largest share
    return counts


def export_stage2(out_dir: Path, total: int, seed: int = 0) -> Dataset:
    """Write `total` 448-px samples in the stage-2 formats under `out_dir`; the loaders over them."""
    world = SyntheticWorld(seed=seed, split="train", size=total, image_size=IMAGE_SIZE)
    mixture = stage2_mixture()
    counts = split_counts(total, {t: mixture.get(t, 1.0) for t in FORMATS})
    parts = []
    for task, (exporter, loader) in FORMATS.items():
        root = out_dir / exporter
        written = ex.EXPORTS[exporter](world, root, counts[task])
        kwargs = {"on_error": "raise"}
        if exporter == "vqav2":
            questions, answers = written
            written = questions
            kwargs.update(answers_file=answers, image_template="images/COCO_{split}_{image_id:012d}.jpg")
        parts.append(LOADERS[loader](root, written, **kwargs))
    return ConcatDataset(parts)


def loader_throughput(dataset: Dataset, collator: Collator, workers: int, batch_size: int) -> dict:
    """One pass over `dataset` with `workers` DataLoader processes; rates in samples/s."""
    loader = DataLoader(
        Guarded(dataset, collator.encode, "raise"),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collator,
    )
    t0 = time.perf_counter()
    first_at, first_n, n = None, 0, 0
    for batch in loader:
        n += len(batch["tasks"])
        if first_at is None:
            first_at, first_n = time.perf_counter(), n
    end = time.perf_counter()
    steady = (n - first_n) / (end - first_at) if n > first_n and end > first_at else None
    return {
        "workers": workers,
        "samples": n,
        "seconds": end - t0,
        "samples_per_s": n / (end - t0),
        "steady_samples_per_s": steady,
        "per_worker": None if steady is None else steady / max(1, workers),
    }


def packing(processor: QwenVLProcessor, samples: int, max_seq_len: int, seed: int = 0) -> dict:
    """Pack `samples` of the stage-2 mixture into rows of `max_seq_len`; compare with padding."""
    mixture = stage2_mixture()
    world = SyntheticWorld(
        seed=seed, split="train", size=samples, image_size=IMAGE_SIZE,
        tasks=list(mixture), weights=list(mixture.values()),
    )  # fmt: skip
    packer = Collator(processor, "plain", max_seq_len, pack=True)
    encoded = [packer.encode(world[i]) for i in range(samples)]
    packed = packer(encoded)
    padded = Collator(processor, "plain", max_seq_len, pack=False)(encoded)
    tokens = sum(len(e.input_ids) for e in encoded)
    rows = packed["input_ids"].shape[0]
    return {
        "samples": samples,
        "tokens": tokens,
        "rows": rows,
        "row_width": packed["input_ids"].shape[1],
        "efficiency": float(packed["packing_efficiency"]),
        "fill_of_max": tokens / (rows * max_seq_len),
        "padded_efficiency": tokens / padded["input_ids"].numel(),
    }


def _workers(text: str) -> list[int]:
    try:
        values = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--workers wants comma-separated integers, got {text!r}") from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"--workers wants integers >= 0, got {text!r}")
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m qwenvl.data.bench", description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=256, help="samples exported to disk and read back (256)")
    p.add_argument("--workers", type=_workers, default=[0, 1, 2], help="DataLoader num_workers list (0,1,2)")
    p.add_argument("--batch-size", type=int, default=8, help="samples per batch (8)")
    p.add_argument("--max-seq-len", type=int, default=2048, help="tokens per packed row (2048)")
    p.add_argument("--pack-samples", type=int, default=64, help="samples in the packed batch (64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", type=Path, default=None, help="export here and keep the files")
    p.add_argument(
        "--torch-threads", type=int, default=1,
        help="intra-op threads of this process (1, as a DataLoader worker has; 0 = torch's default)",
    )  # fmt: skip
    args = p.parse_args(argv)
    if args.samples < len(FORMATS):
        p.error(f"--samples must be at least {len(FORMATS)} (one per format)")
    if args.batch_size < 1 or args.pack_samples < 1 or args.max_seq_len < IMAGE_TOKENS + 3:
        p.error(f"need --batch-size >= 1, --pack-samples >= 1, --max-seq-len >= {IMAGE_TOKENS + 3}")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    threads = torch.get_num_threads()
    if args.torch_threads > 0:
        # Workers run with one thread each; the main process (num_workers=0) matches, so the rates
        # compare per process. Image transforms gain nothing from more threads on small machines
        # and lose several-fold when the threads outnumber free cores.
        torch.set_num_threads(args.torch_threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)  # callers in the same process keep their setting


def _run(args: argparse.Namespace) -> dict:
    processor = QwenVLProcessor(QwenVLTokenizer.default(), image_size=IMAGE_SIZE, image_tokens=IMAGE_TOKENS)
    collator = Collator(processor, "plain", args.max_seq_len, pack=False)
    with tempfile.TemporaryDirectory(prefix="qwenvl-data-bench-") as tmp:
        out_dir = args.out_dir or Path(tmp)
        t0 = time.perf_counter()
        dataset = export_stage2(out_dir, args.samples, args.seed)
        print(
            f"exported {len(dataset)} samples at {IMAGE_SIZE} px (coco_captions, vqav2, refcoco, docvqa; "
            f"JPEG) in {time.perf_counter() - t0:.1f} s; batch {args.batch_size}, "
            f"main-process torch threads {torch.get_num_threads()}"
        )
        runs = []
        for w in args.workers:
            r = loader_throughput(dataset, collator, w, args.batch_size)
            runs.append(r)
            steady = (
                "steady n/a (one batch)" if r["steady_samples_per_s"] is None
                else f"steady {r['steady_samples_per_s']:.1f}/s, {r['per_worker']:.1f}/s per worker"
            )  # fmt: skip
            print(f"num_workers {w}: {r['samples_per_s']:.1f} samples/s ({steady}) in {r['seconds']:.2f} s")
    pk = packing(processor, args.pack_samples, args.max_seq_len, args.seed)
    print(
        f"packing efficiency {pk['efficiency']:.3f}: {pk['samples']} stage-2 samples, {pk['tokens']} tokens "
        f"in {pk['rows']} rows of {pk['row_width']} (max_seq_len {args.max_seq_len}: "
        f"{pk['fill_of_max']:.3f} filled); padded batch efficiency {pk['padded_efficiency']:.3f}"
    )
    return {"loader": runs, "packing": pk}


if __name__ == "__main__":
    main()

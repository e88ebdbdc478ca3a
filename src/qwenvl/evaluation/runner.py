"""The benchmark runner: batched generation, one predictions JSONL per benchmark, resumable.

Each line of `<out>/predictions/<benchmark>.jsonl` is one finished sample:
    {"id", "task", "prediction", "answers", "boxes", "image_size", "lang", "expression", "question_type"}
An interrupted evaluation keeps every finished line; a rerun skips the ids already there.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

import torch
from rich.progress import Progress

from qwenvl.atomic import write_text
from qwenvl.data.templates import render
from qwenvl.evaluation.benchmark import Benchmark, postprocess
from qwenvl.evaluation.controls import check_control, grey_like, sample_under
from qwenvl.evaluation.scoring import score
from qwenvl.models.qwen_vl import QwenVLModel
from qwenvl.processor import QwenVLProcessor

log = logging.getLogger(__name__)


def read_predictions(path: Path) -> list[dict]:
    """Finished records; a line cut off by an interruption is dropped (it will be redone)."""
    if not path.is_file():
        return []
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("%s line %d is incomplete (interrupted write); that sample is redone", path, n)
    return records


def _resume(path: Path) -> list[dict]:
    """The finished records; the file is rewritten without a line an interruption cut off, so
    that new lines are not appended to a broken one."""
    records = read_predictions(path)
    if path.is_file() and len(records) != len(path.read_text(encoding="utf-8").splitlines()):
        _write(path, records)
    return records


def _write(path: Path, records: list[dict]) -> None:
    """Replace `path` with `records`, atomically (a kill never leaves half a file)."""
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def _record(sample, prediction: str) -> dict:
    return {
        "id": sample.id,
        "task": sample.task,
        "prediction": prediction,
        "answers": sample.answers,
        "boxes": [list(b) for b in sample.boxes],
        "image_size": list(sample.meta.get("image_size", ())),
        "lang": sample.lang,
        "expression": sample.meta.get("expression"),
        # The synthetic world's question kind (colour, count, relation, ...): scores split by it
        # show which questions a model answers from the pictures (`compare_runs(by_type=True)`).
        "question_type": sample.meta.get("question_type"),
        **({"pictures_of": sample.meta["pictures_of"]} if "pictures_of" in sample.meta else {}),
    }


@torch.no_grad()
def run_benchmark(
    model: QwenVLModel,
    processor: QwenVLProcessor,
    bench: Benchmark,
    out_dir: Path,
    batch_size: int = 16,
    progress: Progress | None = None,
    control: str | None = None,
) -> dict:
    """Generate for every sample not yet finished, then score the whole set.

    `control` shows every sample other pictures (`qwenvl.evaluation.controls`: `grey`, or
    `swapped` for another sample's); None shows its own.

    Under torch.distributed (e.g. `torchrun --nproc_per_node 8 -m qwenvl.cli.eval ...`) rank r
    takes samples r, r + world, ... and writes its own `<name>.rank<r>.jsonl`; rank 0 merges them
    into `<name>.jsonl` (each id once) and scores. Other ranks return an empty dict.
    """
    check_control(control)
    rank, world = _rank_world()
    pred_dir = Path(out_dir) / "predictions"
    pred_dir.mkdir(parents=True, exist_ok=True)
    merged = pred_dir / f"{bench.name}.jsonl"
    path = merged if world == 1 else pred_dir / f"{bench.name}.rank{rank}.jsonl"
    done = {r["id"] for r in _resume(path)} | (
        {r["id"] for r in read_predictions(merged)} if world > 1 else set()
    )
    mine = range(rank, len(bench), world)
    # A sample's id comes from building the sample: only worth it when resuming.
    todo = [i for i in mine if bench.dataset[i].id not in done] if done else list(mine)
    t0 = time.perf_counter()
    task = (
        progress.add_task(bench.name, total=len(bench), completed=len(bench) - len(todo))
        if progress
        else None
    )
    model.eval()
    with path.open("a", encoding="utf-8") as f:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            samples = [sample_under(bench.dataset, i, control, len(bench)) for i in batch]
            for line in _generate(model, processor, bench, samples, control == "grey"):
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
            f.flush()  # every finished batch survives an interruption
            if progress is not None:
                progress.advance(task, len(samples) * world)
    if world > 1:
        torch.distributed.barrier()
        if rank != 0:
            return {}
        _merge(merged, sorted(pred_dir.glob(f"{bench.name}.rank*.jsonl")))
    records = read_predictions(merged)[: len(bench)]
    return {
        "metrics": score(records, bench.metrics, bench.extra),
        # how the scores were made, so that qwenvl-compare re-scores resamples the same way
        "scoring": {"metrics": list(bench.metrics), "extra": dict(bench.extra)},
        "samples": len(records),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _rank_world() -> tuple[int, int]:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _merge(merged: Path, parts: list[Path]) -> None:
    """Fold rank files into the merged predictions, each id once, in id order; drop the parts."""
    by_id = {r["id"]: r for p in [merged, *parts] for r in read_predictions(p)}
    _write(merged, [by_id[k] for k in sorted(by_id)])
    for p in parts:
        p.unlink()


def _generate(model, processor, bench: Benchmark, samples: list, grey: bool = False) -> list[dict]:
    """Records for a batch. A sample whose image cannot be read is recorded as a miss, with the reason."""
    ok, out = [], []
    for x in samples:
        try:
            images = [
                grey_like(processor.load_image(im)) if grey else processor.load_image(im) for im in x.images
            ]
            ok.append((x, images))
        except Exception as e:  # a bad image costs one sample, never the evaluation
            log.warning("%s: sample %s scored as a miss: %s", bench.name, x.id, e)
            out.append({**_record(x, ""), "error": f"{type(e).__name__}: {e}"})
    if not ok:
        return out
    prompts = ["".join(s.markup for s in render(x, bench.fmt, with_target=False)) for x, _ in ok]
    inputs = processor(prompts, images=[images for _, images in ok])
    device = next(model.parameters()).device
    inputs = {k: v.to(device) for k, v in inputs.items()}
    if bench.kind == "choice":
        answers = choose(model, processor, inputs, prompts)
    else:
        new = model.generate(
            **inputs,
            max_new_tokens=bench.max_new_tokens,
            min_new_tokens=bench.min_new_tokens,
            do_sample=False,
        )
        answers = [
            t.split("<|im_end|>")[0].split("<|endoftext|>")[0]  # the stop token and the padding after it
            for t in processor.batch_decode(new, skip_special_tokens=False)
        ]
    out += [_record(x, postprocess(a, bench.postprocess)) for (x, _), a in zip(ok, answers, strict=True)]
    return out


LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_OPTION_RE = re.compile(r"^([A-Z])\. ", re.M)


@torch.no_grad()
def choose(model, processor, inputs: dict, prompts: list[str]) -> list[str]:
    """Multiple choice by likelihood: the option letter whose token the model finds most likely.

    Every option is a single letter after the prompt, so one forward pass scores them all.
    """
    logits = model(**inputs).logits[:, -1].float()  # (B, V): next token after the left-padded prompt
    picks = []
    for row, prompt in zip(logits, prompts, strict=True):
        letters = _OPTION_RE.findall(prompt) or list(LETTERS[:4])
        ids = [processor.tokenizer.encode_text(letter)[0] for letter in letters]
        picks.append(letters[int(torch.stack([row[i] for i in ids]).argmax())])
    return picks

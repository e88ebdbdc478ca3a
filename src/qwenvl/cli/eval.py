"""qwenvl-eval: score a checkpoint on benchmarks; results.json + one predictions JSONL each.

    qwenvl-eval ckpt=runs/x/checkpoints/last.ckpt                      # the synthetic benchmarks
    qwenvl-eval ckpt=qwen_vl_dir benchmarks=[refcoco_val,textvqa_val] data_root=/data
    qwenvl-eval ckpt=... control=swapped # control: each sample shown another's pictures (chance)
    qwenvl-eval ckpt=... blind=true      # control: images replaced by grey (what pixels are worth)
    qwenvl-eval ckpt=qwen_vl_dir protocol=qwen_vl benchmarks=[flickr30k_karpathy_test]  # as the paper

    torchrun --nproc_per_node 8 -m qwenvl.cli.eval ckpt=... hydra.run.dir=runs/eval/x   # 8 devices

Interrupted? Run the same command with hydra.run.dir=<that run>: finished samples are kept.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from qwenvl.cli.key_hints import with_key_hints
from qwenvl.evaluation.benchmark import check_benchmarks, load_benchmark
from qwenvl.evaluation.controls import check_control, sample_under
from qwenvl.evaluation.gallery import write_gallery
from qwenvl.evaluation.load import load_for_eval
from qwenvl.evaluation.protocol import apply_protocol
from qwenvl.evaluation.runner import read_predictions, run_benchmark
from qwenvl.paths import BENCH_DIR, CONF_DIR

log = logging.getLogger(__name__)


def evaluate(
    ckpt: str,
    benchmarks: list[str],
    out_dir: Path,
    data_root: str = "data",
    limit: int | None = None,
    batch_size: int = 16,
    blind: bool = False,
    overrides: list[str] | None = None,
    config: dict | None = None,
    write: bool = True,
    protocol: str = "default",
    gallery: int = 8,
    control: str | None = None,
    tokenizer: str | None = None,
) -> dict:
    """Score `ckpt` on each benchmark and write `<out_dir>/results.json` (unless `write=False`),
    and a picture of each benchmark's first `gallery` predictions, `<out_dir>/gallery/<name>.png`
    (0: none). `control` shows other pictures (`qwenvl.evaluation.controls`: grey or swapped);
    `blind=True` is short for `control="grey"`. `tokenizer`: a local tokenizer directory for a model
    directory saved without its processor (`load_for_eval`)."""
    control = _control(control, blind)
    check_benchmarks(benchmarks, BENCH_DIR)
    torch.manual_seed(0)
    rank = _init_distributed()
    model, processor = load_for_eval(ckpt, tokenizer=tokenizer)
    model.to(_device(rank))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*columns, disable=rank != 0) as progress:
        for name in benchmarks:
            bench = load_benchmark(name, BENCH_DIR, image_size=model.image_size, data_root=data_root)
            bench = apply_protocol(bench, protocol)
            if limit is not None:
                bench.limit = min(limit, bench.limit or limit)
            results[name] = run_benchmark(model, processor, bench, out_dir, batch_size, progress, control)
            if rank == 0:
                log.info("%s: %s", name, results[name]["metrics"])
                if gallery > 0:
                    _gallery(bench, processor, out_dir, gallery, control)
    report = {
        "model": {
            "name": Path(ckpt).parent.parent.name or str(ckpt),
            "ckpt": str(ckpt),
            "parameters": model.num_parameters(),
        },
        "config": config or {},
        "overrides": overrides or [],
        "control": control,
        "blind": control == "grey",
        "protocol": protocol,
        "benchmarks": results,
        "created": datetime.now().isoformat(timespec="seconds"),
    }
    if write and rank == 0:  # a training run folds the scores into its own results.json instead
        (out_dir / "results.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return report


def _control(control: str | None, blind: bool) -> str | None:
    """The control to run: `control`, or grey for `blind=True`; both set must agree."""
    check_control(control)
    if blind and control not in (None, "grey"):
        raise ValueError(f"blind=true means control=grey, but control={control!r} was also given: set one")
    return "grey" if blind else control


SEEN = {
    None: "with the pictures",
    "grey": "blind: the model saw grey pictures",
    "swapped": "swapped: the model saw the next sample's pictures, drawn here",
}


def _gallery(bench, processor, out_dir: Path, n: int, control: str | None) -> None:
    """`<out_dir>/gallery/<name>.png`: the first `n` samples with their predictions drawn, on the
    pictures the model saw (another sample's under `swapped`; the own ones under grey)."""
    try:  # a picture for people must never cost the scores it illustrates
        samples = [sample_under(bench.dataset, i, control, len(bench)) for i in range(min(n, len(bench)))]
        records = read_predictions(out_dir / "predictions" / f"{bench.name}.jsonl")
        seen = SEEN[control]
        title = f"{bench.name}, {seen}: model in red, reference in green"
        target = out_dir / "gallery" / f"{bench.name}.png"
        path = write_gallery(samples, records, target, title, processor.load_image)
        if path is not None:
            log.info("%s: gallery of %d predictions in %s", bench.name, len(samples), path)
    except Exception:
        log.exception("%s: the gallery could not be drawn; the scores stand", bench.name)


def _init_distributed() -> int:
    """Join the process group torchrun describes (one process per device); returns this rank."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    return torch.distributed.get_rank() if torch.distributed.is_initialized() else 0


def _device(rank: int) -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", rank % torch.cuda.device_count())
    return torch.device("cpu")


@with_key_hints("eval")
@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    report = evaluate(
        cfg.ckpt,
        list(cfg.benchmarks),
        Path(cfg.out_dir),
        cfg.data_root,
        cfg.limit,
        cfg.batch_size,
        cfg.blind,
        control=cfg.control,
        overrides=list(HydraConfig.get().overrides.task),
        config=OmegaConf.to_container(cfg, resolve=True),
        protocol=cfg.protocol,
        gallery=cfg.gallery,
        tokenizer=cfg.tokenizer,
    )
    if torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        return
    for name, r in report["benchmarks"].items():
        print(f"{name:28s} {r['samples']:6d} samples  {r['metrics']}")
    print(f"results: {Path(cfg.out_dir) / 'results.json'}")


if __name__ == "__main__":
    main()

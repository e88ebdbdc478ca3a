"""Validation through the benchmark code: a few synthetic benchmarks scored at every validation,
with a table of predictions (pictures with their boxes drawn) for W&B.

The same runner, templates and metrics as `qwenvl-eval`, so a number seen during training means
what it means in a leaderboard.
"""

from __future__ import annotations

import logging

import lightning as L
import torch

from qwenvl import boxes
from qwenvl.data.templates import render
from qwenvl.evaluation.benchmark import load_benchmark
from qwenvl.evaluation.runner import _generate
from qwenvl.evaluation.scoring import score
from qwenvl.paths import BENCH_DIR
from qwenvl.visualize import draw_groundings

log = logging.getLogger(__name__)


class BenchmarkValidation(L.Callback):
    """Scores `benchmarks` on their first `limit` samples at each validation; logs `bench/<name>/<metric>`."""

    def __init__(self, benchmarks: list[str], limit: int = 16, batch_size: int = 16, table_rows: int = 8):
        self.benchmarks, self.limit, self.batch_size, self.table_rows = (
            list(benchmarks),
            limit,
            batch_size,
            table_rows,
        )

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not self.benchmarks or pl_module.stage.objective != "lm":
            return  # nothing to answer with before a stage that trains the language side
        try:
            self._validate(trainer, pl_module)
        except Exception:  # a report must never end the training run it reports on
            log.exception("benchmark validation failed; training continues")

    def _validate(self, trainer, pl_module) -> None:
        if trainer.world_size > 1:  # generation is not sharded: a sharded model would need every rank
            log.info("benchmark validation runs on single-process training only; skipped")
            return
        model, processor = pl_module.model, pl_module.processor
        rows = []
        for name in self.benchmarks:
            bench = load_benchmark(name, BENCH_DIR, image_size=model.image_size)
            bench.limit = self.limit
            samples = [bench.dataset[i] for i in range(len(bench))]
            records = []
            with torch.no_grad():
                for i in range(0, len(samples), self.batch_size):
                    records += _generate(model, processor, bench, samples[i : i + self.batch_size])
            metrics = score(records, bench.metrics, bench.extra)
            for key, value in metrics.items():
                pl_module.log(f"bench/{name}/{key}", float(value), batch_size=len(records))
            rows += [(name, s, r) for s, r in list(zip(samples, records, strict=True))[: self.table_rows]]
        _log_table(trainer, rows)


def _log_table(trainer, rows) -> None:
    """A W&B table: picture (boxes drawn for grounding), prompt, prediction, reference."""
    wandb_logger = next((lg for lg in trainer.loggers if type(lg).__name__ == "WandbLogger"), None)
    if wandb_logger is None or not rows:
        return
    import wandb

    data = []
    for name, sample, record in rows:
        image = sample.images[0] if sample.images else None
        if image is not None and name.endswith("grounding"):
            found = boxes.parse("<box>" + record["prediction"])
            truth = [boxes.Grounding("truth", tuple(b)) for b in sample.boxes]
            image = draw_groundings(image, truth + [boxes.Grounding("model", g.box) for g in found[:1]])
        prompt = "".join(s.markup for s in render(sample, "plain", with_target=False))
        reference = record["answers"][0] if record["answers"] else str(record["boxes"])
        data.append(
            [name, wandb.Image(image) if image is not None else None, prompt, record["prediction"], reference]
        )
    columns = ["benchmark", "image", "prompt", "prediction", "reference"]
    wandb_logger.experiment.log({"predictions": wandb.Table(columns=columns, data=data)}, commit=False)

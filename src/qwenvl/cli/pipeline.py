"""qwenvl-pipeline: stage 1 -> 2 -> 3 on one config, each stage starting from the last, then a summary.

On the embedded default, `objects` and `warmup` come first: stand-ins for pretrained weights; and
stage 2 begins at 224 px (`multitask_224`, encoder frozen) before `multitask` at 448 px.

    qwenvl-pipeline                                   # tiny model, synthetic world, CPU
    qwenvl-pipeline adapter.num_queries=64 steps.multitask=400
    qwenvl-pipeline logger=csv                        # without W&B
    torchrun --nproc_per_node=8 -m qwenvl.cli.pipeline trainer=fsdp hydra.run.dir=DIR   # cli/launch.py

Overrides apply to every stage; `per_stage` holds overrides for one stage alone
(`"per_stage.multitask=['stage.lr=5e-4']"`). Each stage writes into `<run dir>/<n>_<stage>/`; the summary
(train loss at the start and end of each stage, validation loss per task, the image gap per task:
answer loss with other samples' pictures minus with the right ones, > 0 once the model reads them;
for the encoder's `objects` stage, its accuracies on the validation object maps), then the
synthetic benchmarks with the right pictures and under each control of `eval.controls` (each
sample shown the next sample's pictures, `eval_swapped/`: chance for a model that reads them; grey
pictures, `eval_blind/`), each metric's difference with a paired-bootstrap 95 % interval
(`eval_vs_swapped.png`, `eval_vs_blind.png`), is printed and written to `<run dir>/summary.md` and
`summary.json`.

Interrupted (a kill, a pre-empted job)? Run the same command with `hydra.run.dir=<that run dir>`:
finished stages are reused (`<stage dir>/stage.json`), the interrupted one resumes from its
`last.ckpt` exactly, and the evaluation keeps the predictions it had written.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import NamedTuple

import hydra
from hydra import compose
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from qwenvl.cli.key_hints import missing_keys_with, with_key_hints
from qwenvl.cli.known_keys import check_known_keys
from qwenvl.cli.launch import check_launch, processes
from qwenvl.cli.train import draw_losses, train
from qwenvl.data.sample import TASKS
from qwenvl.paths import CONF_DIR
from qwenvl.training.stage_record import read_record, write_record
from qwenvl.training.stages import StageConfig, objective

log = logging.getLogger(__name__)
PIPELINE_KEYS = ("stages", "steps", "per_stage", "hydra", "out_dir", "eval")
# Set by the pipeline for each stage; an override of them would be silently replaced.
SET_PER_STAGE = {
    "stage": "stages=[...]",
    "max_steps": "steps.<stage>=N",
    "paths.output_dir": "hydra.run.dir=DIR",
}


def stage_dir(cfg: DictConfig, i: int, stage: str) -> Path:
    """Where stage `i` writes: its checkpoints, logs, losses and stage.json."""
    return Path(cfg.out_dir) / f"{i}_{stage}"


def stage_overrides(cfg: DictConfig, user: list[str], i: int, stage: str, init_from: str | None) -> list[str]:
    """The user's overrides (every stage), then `per_stage.<stage>`'s (this stage only, so they win)."""
    keep = [o for o in user if o.lstrip("+~").split("=")[0].split(".")[0] not in PIPELINE_KEYS]
    out = [
        *keep,
        *(cfg.get("per_stage") or {}).get(stage, []),
        f"stage={stage}",
        f"max_steps={cfg.steps[stage]}",
        f"paths.output_dir={stage_dir(cfg, i, stage)}",
    ]
    if init_from:
        out.append(f"stage.init_from={init_from}")
    return out


def summarize(results: list[tuple[str, dict]]) -> str:
    """A Markdown table: one row per stage."""
    tasks = sorted({k.removeprefix("val/loss_") for _, m in results for k in m if k.startswith("val/loss_")})
    gaps = list(dict.fromkeys(k.removeprefix("gap/") for _, m in results for k in m if k.startswith("gap/")))
    # The `objects` stage's accuracies on its validation maps (shape, colour, char, background cells).
    accs = list(
        dict.fromkeys(k.removeprefix("val/") for _, m in results for k in m if k.startswith("val/acc_"))
    )
    head = [
        "stage",
        "steps",
        "train loss start",
        "train loss end",
        "val loss",
        *[f"val {t}" for t in tasks],
        *[f"gap {t}" for t in gaps],
        *[f"val {a.replace('_', ' ')}" for a in accs],
        "min",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for stage, m in results:
        cells = [
            stage,
            str(m.get("steps", "")),
            *(_f(m.get(k)) for k in ("train/loss_first", "train/loss_last")),
        ]
        cells += [_f(m.get("val/loss")), *(_f(m.get(f"val/loss_{t}")) for t in tasks)]
        cells += [*(_f(m.get(f"gap/{t}")) for t in gaps), *(_f(m.get(f"val/{a}")) for a in accs)]
        cells.append(_f(m.get("minutes")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _f(v) -> str:
    return "—" if v is None else f"{v:.3f}"


@with_key_hints("pipeline")
@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="pipeline")
def main(cfg: DictConfig) -> None:
    run = HydraConfig.get()
    check_launch(cfg.trainer, list(run.overrides.hydra))
    user = list(run.overrides.task)
    check_known_keys(cfg, run.job.config_name, user, list(run.overrides.hydra))
    check_eval(cfg.eval)
    check_stages(cfg, user)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: list[tuple[str, dict]] = []
    init_from = None
    for i, stage in enumerate(cfg.stages, start=1):
        overrides = stage_overrides(cfg, user, i, stage, init_from)
        metrics = run_stage(cfg, overrides, i, stage)
        results.append((stage, metrics))
        init_from = metrics["checkpoint"]
    if rank_zero_only.rank != 0:  # the other processes of a launched run (cli/launch.py) train and
        if cfg.eval.benchmarks:  # take their share of the evaluation's samples (evaluation.runner)
            evaluate_final(init_from, cfg.eval, out)
        return
    table = summarize(results)
    runs = [(f"{i} {stage}", stage_dir(cfg, i, stage)) for i, stage in enumerate(cfg.stages, start=1)]
    draw_losses(runs, out / "losses.png", "training loss, stage by stage")
    table += "\n\nEvery step's training loss, stage by stage: losses.png."
    scores = {}
    if cfg.eval.benchmarks:
        scores = evaluate_final(init_from, cfg.eval, out)
        scores["paired"] = {}
        for control in cfg.eval.controls:
            comparisons = compare_with_control(cfg.eval, out, control)
            scores["paired"][control] = [c.to_dict() for c in comparisons]
            table += "\n\n" + summarize_paired(comparisons, cfg.eval.resamples, control)
        if cfg.eval.gallery:
            table += (
                "\n\nEach benchmark's first predictions, drawn (boxes: model red, reference green): "
                "eval/gallery/<benchmark>.png, and under each control in its own folder's gallery/."
            )
    (out / "summary.md").write_text(table + "\n")
    (out / "summary.json").write_text(json.dumps({"stages": dict(results), "evaluation": scores}, indent=2))
    print(f"\n{table}\n\nrun directory: {out}")


def stage_options() -> list[str]:
    """The `stage` group's options, as Hydra's config loader lists them."""
    from hydra.core.global_hydra import GlobalHydra

    return GlobalHydra.instance().config_loader().get_group_options("stage")


def check_stages(cfg: DictConfig, user: list[str]) -> None:
    """Check every stage before the first one trains, so that nothing fails after the stages before
    it have trained. `per_stage` must name stage options, each with a list of `key=value`
    overrides (a misspelt stage would leave its overrides silently unused; entries for stages left
    out of `stages` are allowed and unused, so `stages=[objects]` keeps the default's). Each stage
    in `stages` must be an option with a step count, and its config is composed with every
    override it will get (the user's, then its `per_stage` ones): a fraction of a second a stage;
    each is composed again when it runs, with the checkpoint it starts from."""
    options = stage_options()
    per_stage = cfg.get("per_stage") or {}
    world = processes(cfg.trainer)
    for override in [*user, *(o for items in per_stage.values() for o in items)]:
        key = str(override).lstrip("+~").split("=")[0]
        if key in SET_PER_STAGE:
            raise ValueError(
                f"{override!r}: the pipeline sets {key} for each stage; use {SET_PER_STAGE[key]} instead"
            )
    unknown = [s for s in per_stage if s not in options]
    if unknown:
        raise ValueError(f"per_stage names {unknown}, which are no stage; the stages: {options}")
    for stage, items in per_stage.items():
        if isinstance(items, str) or not all(isinstance(o, str) and "=" in o for o in items):
            raise ValueError(
                f"per_stage.{stage} must be a list of overrides like ['stage.lr=5e-4'], got {items!r}"
            )
    for i, stage in enumerate(cfg.stages, start=1):
        if stage not in options:
            raise ValueError(f"stages names {stage!r}, which is no stage; the stages: {options}")
        if stage not in cfg.steps:
            raise ValueError(f"stage {stage!r} has no step count; give it one: +steps.{stage}=N")
        steps = cfg.steps[stage]
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(
                f"steps.{stage}={steps!r}; a stage trains at least 1 step (or leave it out of stages)"
            )
        composed = _compose_stage(cfg, user, i, stage)
        if (n := processes(composed.trainer)) != world:  # e.g. a per-stage trainer=ddp
            raise ValueError(
                f"stage {i} ({stage}): its trainer asks for {n} processes, the run's for {world}: every "
                f"stage runs on the run's processes; give it the same trainer.devices and trainer.num_nodes"
            )
        try:  # the values too (types, options), not only the keys
            StageConfig.from_mapping(OmegaConf.to_container(composed.stage, resolve=True))
        except (TypeError, ValueError) as e:
            raise ValueError(f"stage {i} ({stage}): {e}") from e


def _compose_stage(cfg: DictConfig, user: list[str], i: int, stage: str) -> DictConfig:
    """Stage `i`'s config; a composition error says which stage and `per_stage` entry it came from
    and, for a misspelt key, the keys that exist there (Hydra's message names neither)."""
    overrides = stage_overrides(cfg, user, i, stage, None)
    try:
        return compose(config_name="pipeline", overrides=overrides)
    except ConfigCompositionException as e:
        own = list((cfg.get("per_stage") or {}).get(stage, []))
        where = f"stage {i} ({stage})" + (f", with per_stage.{stage}={own}" if own else "")
        hints = missing_keys_with(lambda ov: compose(config_name="pipeline", overrides=ov), overrides)
        # from None: the message holds what the chained composition traceback would (pages of it)
        raise ValueError("\n".join([f"{where}: {e}", *hints])) from None


def check_eval(cfg: DictConfig) -> None:
    """The final evaluation's benchmarks and controls and the image gap's tasks, before any stage
    trains: a misspelt one would fail only after the training."""
    from qwenvl.evaluation.benchmark import check_benchmarks
    from qwenvl.evaluation.controls import check_control
    from qwenvl.paths import BENCH_DIR

    for control in cfg.controls:
        check_control(control)
    check_benchmarks(list(cfg.benchmarks or []), BENCH_DIR)
    unknown = [t for t in cfg.get("gap_tasks") or [] if t not in TASKS]
    if unknown:
        raise ValueError(f"eval.gap_tasks names {unknown}, which are no task; the tasks: {TASKS}")


def run_stage(cfg: DictConfig, overrides: list[str], i: int, stage: str) -> dict:
    """Train stage `i` (or pick it up where an earlier run of this directory stopped), then measure
    its image gap; returns the stage's metrics. Progress is kept in `<stage dir>/stage.json`."""
    where = stage_dir(cfg, i, stage)
    n = len(cfg.stages)
    lead = rank_zero_only.rank == 0  # the records and the image gap are global rank 0's
    record = read_record(where, stage, overrides)
    status = record["status"] if record else None
    if status == "done":
        log.info("stage %d/%d: %s finished in an earlier run of %s; reused", i, n, stage, cfg.out_dir)
        return record["metrics"]
    resume = ["ckpt_path=last"] if status == "training" else []  # the stage's own last.ckpt
    stage_cfg = compose(config_name="pipeline", overrides=overrides + resume)
    if status == "trained":
        metrics = record["metrics"]
    elif not lead:
        metrics = train(stage_cfg)
    else:
        log.info(
            "stage %d/%d: %s for %d steps%s",
            i,
            n,
            stage,
            stage_cfg.max_steps,
            " (resuming from its last checkpoint)" if resume else "",
        )
        write_record(where, stage, overrides, "training")
        t0 = time.perf_counter()
        metrics = train(stage_cfg)
        # minutes of this process: a resumed stage counts only the part after its checkpoint
        # the steps taken, not those asked for (debug=fdr takes one)
        metrics.update(steps=metrics["global_step"], minutes=(time.perf_counter() - t0) / 60)
        write_record(where, stage, overrides, "trained", metrics)
    if not lead:
        return metrics
    # The image gap needs a language side that answers: none after `objects` (the encoder alone);
    # after `bridge` it shows whether the language model still reads the new resolution's tokens.
    if objective(stage_cfg.stage) != "object_maps":
        metrics.update(stage_gap(metrics["checkpoint"], cfg.eval, stage_cfg.stage.fmt))
    write_record(where, stage, overrides, "done", metrics)
    return metrics


def stage_gap(ckpt: str, cfg: DictConfig, fmt: str) -> dict[str, float]:
    """`gap/<task>`: answer loss with swapped pictures minus with the right ones (evaluation.image_gap);
    `gap/<task>:colour` and `gap/<task>:shape` the same over colour and shape words alone."""
    tasks = list(cfg.get("gap_tasks") or [])
    if not tasks:
        return {}
    from qwenvl.evaluation.image_gap import image_gap, synthetic_samples, synthetic_word_classes
    from qwenvl.evaluation.load import load_for_eval

    model, processor = load_for_eval(ckpt)
    samples = synthetic_samples(tasks, cfg.gap_samples, model.image_size)
    classes = synthetic_word_classes(processor)
    gaps = image_gap(model, processor, samples, fmt=fmt, batch_size=cfg.batch_size, classes=classes)
    out = {}
    for task, g in gaps.items():
        # Colour and shape words of the answers apart: a gap from colours alone reads no shapes.
        per_class = {c: g[f"gap_{c}"] for c in classes if f"gap_{c}" in g}
        log.info(
            "image gap %s: answer loss %.3f with its pictures, %.3f swapped, %.3f grey%s",
            task,
            g["loss"],
            g["loss_swapped"],
            g["loss_blind"],
            "; gap on " + ", ".join(f"{c} {v:.3f}" for c, v in per_class.items()) if per_class else "",
        )
        out[f"gap/{task}"] = g["gap"]
        out.update({f"gap/{task}:{c}": v for c, v in per_class.items()})
    return out


class ControlOutput(NamedTuple):
    """Where a control's evaluation goes and how the summary names it (qwenvl.evaluation.controls)."""

    folder: str  # the evaluation directory under the run
    name: str  # the column name in the tables
    key: str  # summary.json's key for its scores
    chart: str  # the forest plot against the right pictures


CONTROL_OUTPUTS = {
    "swapped": ControlOutput("eval_swapped", "swapped pictures", "swapped", "eval_vs_swapped.png"),
    "grey": ControlOutput("eval_blind", "blind (grey images)", "blind", "eval_vs_blind.png"),
}


def evaluate_final(ckpt: str, cfg: DictConfig, out: Path) -> dict:
    """The final checkpoint on the synthetic benchmarks, with its pictures and under each control."""
    from qwenvl.cli.eval import evaluate

    kw = {
        "benchmarks": list(cfg.benchmarks),
        "limit": cfg.limit,
        "batch_size": cfg.batch_size,
        "gallery": cfg.gallery,
    }
    scores = {"with_images": evaluate(ckpt, out_dir=out / "eval", **kw)["benchmarks"]}
    for control in cfg.controls:
        where = CONTROL_OUTPUTS[control]
        scores[where.key] = evaluate(ckpt, out_dir=out / where.folder, control=control, **kw)["benchmarks"]
    return scores


def compare_with_control(cfg: DictConfig, out: Path, control: str) -> list:
    """Paired bootstrap of the scores with the right pictures against `control`
    (qwenvl.evaluation.paired): whether each benchmark reads the pictures beyond the luck of the
    samples; a forest plot beside it (`eval_vs_swapped.png`, `eval_vs_blind.png`)."""
    from qwenvl.evaluation.paired import compare_runs, is_by_type
    from qwenvl.evaluation.paired_chart import forest_png

    where = CONTROL_OUTPUTS[control]
    comparisons = compare_runs(out / "eval", out / where.folder, resamples=cfg.resamples, by_type=True)
    whole = [c for c in comparisons if not is_by_type(c)]  # the chart keeps to whole benchmarks
    forest_png(whole, out / where.chart, "with images", where.name)
    return comparisons


def summarize_paired(comparisons: list, resamples: int, control: str) -> str:
    """Markdown: each metric with the right pictures and under `control`, the difference with its
    95 % interval and p-value; then the same per question type, where the benchmark records one."""
    from qwenvl.evaluation.paired import is_by_type, to_markdown

    where = CONTROL_OUTPUTS[control]
    names = ("with images", where.name)
    whole = [c for c in comparisons if not is_by_type(c)]
    by_type = [c for c in comparisons if is_by_type(c)]
    text = (
        f"With images against {names[1]}, paired bootstrap over the same samples ({resamples} "
        f"resamples; {where.chart}):\n\n" + to_markdown(whole, *names)
    )
    if by_type:
        text += "\n\nThe same per question type (each type's samples resampled alone):\n\n"
        text += to_markdown(by_type, *names)
    return text


if __name__ == "__main__":
    main()

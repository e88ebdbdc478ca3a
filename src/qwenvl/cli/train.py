"""qwenvl-train: one training stage, composed from Hydra config groups.

qwenvl-train                                              # stage 1 on the synthetic world, CPU
qwenvl-train stage=multitask stage.init_from=runs/.../checkpoints/last.ckpt max_steps=200
qwenvl-train ckpt_path=last hydra.run.dir=runs/my_run      # resume that run exactly
qwenvl-train -m adapter.num_queries=64,144,256             # a sweep
"""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.strategies import ModelParallelStrategy
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from qwenvl.cli.key_hints import with_key_hints
from qwenvl.cli.known_keys import check_known_keys
from qwenvl.cli.launch import check_run_dir
from qwenvl.host_memory import (
    available_host_memory,
    check_host_memory,
    count_parameters,
    is_local_leader,
)
from qwenvl.models.build import load_tokenizer
from qwenvl.paths import CONF_DIR
from qwenvl.training.callbacks import LossHistory, PreemptionCheckpoint
from qwenvl.training.checkpoint_io import AtomicCheckpointIO
from qwenvl.training.export import EXPORT_NAME, export_full_model
from qwenvl.training.loss_chart import loss_png, read_losses, write_losses
from qwenvl.training.module import QwenVLLitModule
from qwenvl.training.stages import StageConfig, module_class
from qwenvl.training.wandb_resume import resume_kwargs

log = logging.getLogger(__name__)
# Lightning advertises a cloud logger at every fit; runs here send nothing anywhere, so drop it.
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
    lambda record: "litlogger" not in record.getMessage()
)
PREEMPTED_EXIT = 128 + signal.SIGTERM  # 143: the exit code of a run stopped by SIGTERM


def _container(node) -> dict:
    return OmegaConf.to_container(node, resolve=True)


def build(cfg: DictConfig) -> tuple[QwenVLLitModule, L.LightningDataModule, L.Trainer]:
    """Module, data and trainer from a composed config. Fails before any work on a bad config: the
    trainer first (a GPU asked for where there is none), then the model's size against this
    machine's memory, before the model is built."""
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    callbacks += [LossHistory(), PreemptionCheckpoint(Path(cfg.paths.output_dir) / "checkpoints")]
    resuming = _resolve_ckpt(cfg) is not None  # a resumed run logs on to its W&B run
    logger_cfgs = [c for c in (cfg.get("logger") or {}).values() if c is not None]
    loggers = [instantiate(c, **resume_kwargs(c, resuming)) for c in logger_cfgs]
    trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()]
    )
    _check_host_memory(cfg, trainer)
    module = module_class(cfg.stage)(
        encoder=_container(cfg.encoder),
        adapter=_container(cfg.adapter),
        llm=_container(cfg.llm),
        stage=_container(cfg.stage),
        tokenizer=cfg.tokenizer,
        max_steps=cfg.max_steps,
        parallel=_container(cfg.get("parallel") or {}),
        meta_init=_rank0_init(cfg, trainer) and rank_zero_only.rank != 0,
    )
    datamodule = module.datamodule(cfg)  # the stage's module knows what it learns from
    return module, datamodule, trainer


def _rank0_init(cfg: DictConfig, trainer: L.Trainer) -> bool:
    """`parallel.rank0_init` on an FSDP run: one whole model per machine on the CPU, not one a rank."""
    return bool((cfg.get("parallel") or {}).get("rank0_init")) and isinstance(
        trainer.strategy, ModelParallelStrategy
    )


def _check_host_memory(cfg: DictConfig, trainer: L.Trainer) -> None:
    """Refuse a model this machine's memory cannot hold (host_memory), once per machine."""
    if not is_local_leader():
        return
    stage = StageConfig.from_mapping(_container(cfg.stage))
    total, trained = count_parameters(cfg.encoder, cfg.adapter, cfg.llm, stage, load_tokenizer(cfg.tokenizer))
    on_cpu = isinstance(trainer.accelerator, CPUAccelerator)
    sharded = isinstance(trainer.strategy, ModelParallelStrategy)
    processes, rank0_init = trainer.num_devices, _rank0_init(cfg, trainer)
    check_host_memory(total, trained, processes, on_cpu, available_host_memory(), sharded, rank0_init)


def _resolve_ckpt(cfg: DictConfig) -> str | None:
    if cfg.ckpt_path == "last":
        last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"  # a dir under FSDP
        if last.exists():
            log.info("ckpt_path=last: resuming from %s", last)
            return str(last)
        # Nothing to resume: start fresh, so that one command both starts a pre-emptible job and
        # resumes it; said aloud, since a mistyped run directory lands here too.
        log.info("ckpt_path=last: no checkpoint at %s yet; training starts at step 0", last)
        return None
    return cfg.ckpt_path


def train(cfg: DictConfig) -> dict[str, float]:
    """Run one stage; returns the final logged metrics (floats), for sweepers and the pipeline."""
    L.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision("high")
    module, datamodule, trainer = build(cfg)
    log.info("trainable parameters per part: %s", module.trainable_counts)
    for lg in trainer.loggers:  # the whole resolved run config, not only the module's arguments
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=_resolve_ckpt(cfg))
        if _finished_before(trainer, cfg):
            # A resume of a run that had already finished trains nothing and validates nothing:
            # validate its restored weights, so that results.json keeps its validation losses.
            log.info("the run had finished at step %d; validating its last checkpoint", trainer.global_step)
            trainer.validate(module, datamodule=datamodule, verbose=False)
    except SIGTERMException as e:  # pre-empted: a SystemExit with no code, which would exit 0
        raise _preempted(cfg, trainer) from e
    finally:
        _finish_wandb()  # a multirun must not fold its jobs into one W&B run
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    metrics.update(_skipped(datamodule))
    history = next(c for c in trainer.callbacks if isinstance(c, LossHistory))
    metrics.update(history.summary())
    if trainer.is_global_zero:  # every step's loss, for the loss curves (training/loss_chart.py)
        write_losses(cfg.paths.output_dir, cfg.stage.name, history.losses)
    metrics["global_step"] = trainer.global_step  # optimizer steps taken (debug=fdr: 1, whatever max_steps)
    checkpoints = Path(cfg.paths.output_dir) / "checkpoints"
    metrics["checkpoint"] = str(checkpoints / "last.ckpt")
    if isinstance(trainer.strategy, ModelParallelStrategy):  # last.ckpt is shards: export the model
        metrics["checkpoint"] = str(export_full_model(module, trainer, checkpoints / EXPORT_NAME))
    return metrics


def _finished_before(trainer: L.Trainer, cfg: DictConfig) -> bool:
    """Fit restored a checkpoint at `max_steps` (or past it) and so ran no step and no validation."""
    validated = any(k.startswith("val/") for k in trainer.callback_metrics)
    return trainer.global_step >= cfg.max_steps and not validated and trainer.limit_val_batches != 0


def _preempted(cfg: DictConfig, trainer: L.Trainer) -> SystemExit:
    """The exit of a run stopped by SIGTERM: code 143 (128 + SIGTERM, what a shell reports for a job
    the signal ended), so schedulers, `&&` chains and qwenvl-pipeline see it did not finish; its
    last.ckpt (PreemptionCheckpoint) is where `ckpt_path=last` resumes it."""
    log.warning(
        "stopped by SIGTERM at step %d of %d; resume with ckpt_path=last hydra.run.dir=%s",
        trainer.global_step,
        cfg.max_steps,
        cfg.paths.output_dir,
    )
    return SystemExit(PREEMPTED_EXIT)


def draw_losses(runs: list[tuple[str, str | Path]], path: Path, title: str = "") -> None:
    """`path`: the loss curves of (name, run directory) pairs, one panel each, from their losses.json."""
    try:  # a picture for people must never fail the run it shows
        loss_png([(name, read_losses(d)) for name, d in runs], path, title)
        log.info("loss curves: %s", path)
    except Exception:
        log.exception("the loss curves could not be drawn; the run stands")


def _skipped(datamodule) -> dict[str, float]:
    """Bad samples skipped during this run, by reason; logged and reported in results.json."""
    counts = getattr(datamodule, "skipped", lambda: {})()
    if counts:
        log.warning("data: skipped %d bad samples: %s", sum(counts.values()), dict(counts))
    return {f"data/skipped_{reason}": float(n) for reason, n in counts.items()}


def _finish_wandb() -> None:
    try:
        import wandb

        if wandb.run is not None:
            wandb.finish()
    except ImportError:
        pass


def write_results(cfg: DictConfig, metrics: dict, overrides: list[str]) -> dict:
    """results.json in the run directory: validation losses, and benchmark scores when `evaluate` asks.
    Every process of a multi-process run calls it (the evaluation is shared out); rank 0 writes.

    Leaderboards (`qwenvl-leaderboard`, and the one a multirun writes) read these files.
    """
    from datetime import datetime

    out = Path(cfg.paths.output_dir)
    val = {k.removeprefix("val/"): round(v, 4) for k, v in metrics.items() if k.startswith("val/")}
    benchmarks = {"val": {"metrics": val}}
    for key, value in metrics.items():  # the BenchmarkValidation callback's scores
        if key.startswith("bench/"):
            name, metric = key.removeprefix("bench/").split("/", 1)
            benchmarks.setdefault(f"{name}@val", {"metrics": {}})["metrics"][metric] = round(value, 4)
    if cfg.evaluate.benchmarks and Path(metrics["checkpoint"]).exists():
        from qwenvl.cli.eval import evaluate

        report = evaluate(
            metrics["checkpoint"],
            list(cfg.evaluate.benchmarks),
            out / "eval",
            limit=cfg.evaluate.limit,
            write=False,
        )
        benchmarks.update(report["benchmarks"])
    if rank_zero_only.rank != 0:  # it took its share of the evaluation's samples (evaluation.runner)
        return {}
    results = {
        "model": {"name": cfg.stage.name, "ckpt": metrics["checkpoint"]},
        "config": OmegaConf.to_container(cfg, resolve=True),
        "overrides": overrides,
        "benchmarks": benchmarks,
        "data_skipped": {
            k.removeprefix("data/skipped_"): v for k, v in metrics.items() if k.startswith("data/")
        },
        "created": datetime.now().isoformat(timespec="seconds"),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    return results


def check_evaluation(cfg: DictConfig) -> None:
    """`evaluate.benchmarks` and `optimize` checked before training: a misspelt benchmark would
    fail only after the run, a misspelt `optimize` would hand a sweeper nothing to optimize."""
    from qwenvl.evaluation.benchmark import check_benchmarks
    from qwenvl.paths import BENCH_DIR

    benchmarks = list(cfg.evaluate.benchmarks or [])
    check_benchmarks(benchmarks, BENCH_DIR)
    if not cfg.get("optimize"):
        return
    bench, slash, metric = cfg.optimize.partition("/")
    if not (slash and metric and (bench == "val" or bench.endswith("@val") or bench in benchmarks)):
        raise ValueError(
            f"optimize={cfg.optimize!r}: expected `val/<metric>` or `<benchmark>/<metric>` with the "
            f"benchmark among evaluate.benchmarks {benchmarks}"
        )


@with_key_hints("train")
@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Returns the metric named by `optimize` (for sweepers such as optuna)."""
    from hydra.core.hydra_config import HydraConfig

    run = HydraConfig.get()
    check_run_dir(cfg.trainer, list(run.overrides.hydra))
    check_known_keys(cfg, run.job.config_name, list(run.overrides.task), list(run.overrides.hydra))
    check_evaluation(cfg)
    metrics = train(cfg)
    results = write_results(cfg, metrics, list(run.overrides.task))
    if rank_zero_only.rank != 0:  # one results.json and one picture per run
        return None
    draw_losses([(cfg.stage.name, cfg.paths.output_dir)], Path(cfg.paths.output_dir) / "losses.png")
    bench, _, metric = cfg.optimize.partition("/")
    value = results["benchmarks"].get(bench, {}).get("metrics", {}).get(metric)
    return None if value is None else float(value)


if __name__ == "__main__":
    main()

"""QwenVLLitModule: one training stage of a QwenVLModel as a LightningModule.

The model is composed from the `encoder`/`adapter`/`llm` config groups; the stage declares which
parts learn (see stages.py). Training and validation report the loss overall and per task, and
training the learning rate of each part.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from contextlib import nullcontext

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from torch import nn

from qwenvl.data.sample import TASKS
from qwenvl.models.build import load_tokenizer
from qwenvl.models.qwen_vl import QwenVLModel
from qwenvl.processor import QwenVLProcessor
from qwenvl.training import init_from, stream_positions
from qwenvl.training.optim import build_optimizer, part_of
from qwenvl.training.parallel import broadcast_from_rank0, enable_activation_checkpointing, shard_fsdp2
from qwenvl.training.stages import StageConfig, apply_freezing

# `val/loss_<task>` is summed over ranks by hand (on_validation_epoch_end) and logged unsynced, the
# same value on every rank; Lightning cannot know that and would advise `sync_dist=True`.
warnings.filterwarnings("ignore", r".*self\.log\('val/loss_", PossibleUserWarning)
# Lightning's pytree helper tests `isinstance(treespec, LeafSpec)`, which this torch deprecates: a
# warning about Lightning's code in every run that nothing here can act on.
warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated")
# Lightning warns that a mid-epoch resume is "unreliable" unless the loader has a state_dict; here
# `on_load_checkpoint` restores the data position itself (both data modules start the resumed
# epoch's sampler that many samples in), and the resume tests check the weights come out identical.
warnings.filterwarnings("ignore", "You're resuming from a checkpoint that ended before the epoch ended")


class QwenVLLitModule(L.LightningModule):
    def __init__(
        self,
        encoder: dict,
        adapter: dict,
        llm: dict,
        stage: dict,
        tokenizer: str | None = None,
        max_steps: int = 100,
        parallel: dict | None = None,
        meta_init: bool = False,
    ):
        super().__init__()
        # Plain containers only, so checkpoints load with torch.load(weights_only=True). `meta_init`
        # says how this process builds, not what the run is: a checkpoint loads without it.
        self.save_hyperparameters(ignore=["meta_init"])
        self.stage = StageConfig.from_mapping(stage)
        self.tokenizer = load_tokenizer(tokenizer)
        enc = instantiate(encoder)
        enc.image_size = self.stage.image_size  # the stage sets the resolution
        if meta_init:
            enc.checkpoint = None  # rank 0 reads it; its weights reach this rank once sharded
        # An FSDP rank other than 0 builds on the meta device (no memory): rank 0's weights, its
        # init_from included, are broadcast to the shards in configure_model.
        with torch.device("meta") if meta_init else nullcontext():
            self.model = QwenVLModel.from_config(enc, instantiate(adapter), instantiate(llm), self.tokenizer)
        if self.stage.init_from and not meta_init:
            init_from.load_into(self.model, self.stage.init_from)
        self.trainable_counts = apply_freezing(self.model, self.stage)
        self.processor = QwenVLProcessor.from_model(self.model, self.tokenizer)
        self.max_steps = max_steps
        self.parallel = dict(parallel or {})
        if self.parallel.get("activation_checkpointing"):
            enable_activation_checkpointing(self.model)
        self._train_tasks: torch.Tensor | None = None  # task_totals since the last logging step
        self._train_tasks_step = 0  # the global_step they were last written at
        self._val_tasks: torch.Tensor | None = None  # task_totals of this validation so far
        self._part_groups: dict[str, int] = {}  # part -> optimizer group (on_train_start)
        self._stream: dict = {}  # a streamed loader's positions at the last batch (stream_positions)

    def datamodule(self, cfg) -> L.LightningDataModule:
        """The stage's data from the composed run config: `data`, with this model's processor."""
        return instantiate(cfg.data, processor=self.processor)

    def forward(self, batch: dict):
        keys = ("input_ids", "attention_mask", "pixel_values", "labels", "position_ids")
        return self.model(**{k: batch[k] for k in keys if k in batch})

    def loss(self, out, batch: dict) -> torch.Tensor:
        """The stage's objective: the model's mean over answer tokens, or over samples' own means."""
        if self.stage.loss_mean == "sample":
            return sample_mean_loss(
                out.token_loss, batch["labels"], batch["sample_index"], len(batch["tasks"])
            )
        return out.loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self(batch)
        loss, n = self.loss(out, batch), len(batch["tasks"])
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        totals = self._task_totals(out, batch)
        self._train_tasks = totals if self._train_tasks is None else self._train_tasks + totals
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=n)
        if "packing_efficiency" in batch:
            self.log("train/packing_efficiency", batch["packing_efficiency"], batch_size=n)
        return loss

    def on_before_optimizer_step(self, optimizer) -> None:
        # `lr/<part>`: the rates this update uses, as `lr` (the scheduler steps before the batch
        # ends). A hook, not training_step, so that the stages with their own steps log them too.
        for part, i in self._part_groups.items():
            self.log(f"lr/{part}", optimizer.param_groups[i]["lr"])

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # Before the step, not after it: a checkpoint saved at this batch's end (a callback, which
        # runs before the module's own batch-end hook) must know where the stream stood after it.
        if isinstance(batch, dict) and batch.get("stream_position") is not None:
            self._stream = stream_positions.record(self._stream, batch["stream_position"], self.current_epoch)

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self._log_train_tasks()

    def _log_train_tasks(self) -> None:
        """`train/loss_<task>`: the mean loss of the task's samples since the last logging step.

        Written to the loggers directly, only for the tasks seen: `self.log` would repeat a task's
        last value at every later step that lacks the task. Local to each rank (rank 0's is written),
        as a sync every step costs time. Runs when Lightning writes its own step metrics, under its
        step, which counts the optimizer steps before this one (global_step counts this one too).
        """
        step, every = self.trainer.global_step, self.trainer.log_every_n_steps
        if not every or step % every or step == self._train_tasks_step:
            return  # not a logging step, or no optimizer step since the last (gradient accumulation)
        totals, self._train_tasks, self._train_tasks_step = self._train_tasks, None, step
        if totals is None:  # a subclass's own training_step keeps no per-task totals
            return
        metrics = {f"train/loss_{task}": loss for task, loss in task_means(totals).items()}
        for logger in self.loggers:  # rank-zero-only methods: the other ranks write nothing
            logger.log_metrics(metrics, step=step - 1)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out = self(batch)
        self.log(
            "val/loss", self.loss(out, batch), prog_bar=True, batch_size=len(batch["tasks"]), sync_dist=True
        )
        self._val_tasks += self._task_totals(out, batch)

    def on_validation_epoch_start(self) -> None:
        self._val_tasks = torch.zeros(2, len(TASKS), device=self.device)

    def on_validation_epoch_end(self) -> None:
        """`val/loss_<task>`: the mean loss of the task's samples over the whole validation set.

        Which tasks a rank met, and in what order, depends on its batches, so per-key syncs
        could pair different tasks across ranks (or wait forever). One all-reduce of a tensor over
        all of TASKS instead: every rank then holds the same totals and logs the same keys.
        """
        totals = self.trainer.strategy.reduce(self._val_tasks, reduce_op="sum")  # as is on one process
        for task, loss in task_means(totals).items():
            self.log(f"val/loss_{task}", loss)

    def _task_totals(self, out, batch: dict) -> torch.Tensor:
        """Per-task loss sums and sample counts of this batch [2, len(TASKS)] (see task_totals)."""
        owner, n = batch["sample_index"], len(batch["tasks"])
        per_sample = sample_losses(out.token_loss.detach(), batch["labels"], owner, n)
        return task_totals(per_sample, batch["tasks"])

    def configure_model(self) -> None:
        """FSDP2 under ModelParallelStrategy: shard each encoder block and LLM layer, then the root."""
        from torch.distributed.fsdp import FSDPModule

        # Lightning calls this hook again for each trainer stage (`validate` after `fit` too);
        # fully_shard may be applied once.
        if self.device_mesh is None or isinstance(self.model, FSDPModule):
            return
        mesh = self.device_mesh["data_parallel"]
        rank0_init, lead = self.parallel.get("rank0_init"), self.global_rank == 0
        if rank0_init:  # the other ranks built on the meta device: rank 0's state, before sharding
            full = self.model.state_dict()
            buffers = {k: b if lead else None for k, b in self.model.named_buffers() if k not in full}
        units = shard_fsdp2(self.model, mesh, self.parallel.get("param_dtype"))
        if rank0_init:
            broadcast_from_rank0(self.model, full if lead else {}, buffers, self.trainer.strategy.root_device)
            del full, buffers
        print(f"FSDP2: {units} units sharded over {mesh.size()} ranks (rank {self.global_rank})", flush=True)

    # -- exact resume --------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["rng"] = {"torch": torch.get_rng_state()}  # a tensor: loads with weights_only=True
        world = self._trainer.world_size if self._trainer is not None else 1
        states = stream_positions.gather(self._stream, world)  # every rank saves, so every rank gathers
        if any(states):
            checkpoint["stream_positions"] = states

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "rng" in checkpoint:
            torch.set_rng_state(checkpoint["rng"]["torch"])
        progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_loop.batch_progress", {})
        # Saved at a batch end, where `processed` counts the batches this epoch has consumed. A
        # resumed epoch continues where the interrupted one stopped, not from its first batch: the
        # data module starts its next training loader that far in (this runs before Lightning asks
        # for the loader; per rank, as the sampler shards).
        done = progress.get("current", {}).get("processed", 0)
        datamodule = self._trainer.datamodule if self._trainer is not None else None
        if datamodule is not None and hasattr(datamodule, "resume_samples"):
            datamodule.resume_samples = done * datamodule.batch_size
        # A stream that says where it stands starts each worker there instead (stream_resume).
        world = self._trainer.world_size if self._trainer is not None else 1
        mine = stream_positions.for_rank(checkpoint.get("stream_positions"), self.global_rank, world)
        self._stream = mine or {}
        if datamodule is not None and hasattr(datamodule, "resume_stream"):
            datamodule.resume_stream = mine

    def on_train_start(self) -> None:
        self._part_groups = part_groups(self, self.trainer.optimizers[0])  # for lr/<part>
        self._train_tasks_step = self.trainer.global_step  # logged before a resume, if at all

    def configure_optimizers(self):
        s = self.stage
        opt, sched = build_optimizer(  # over the whole module: a stage's own head learns too
            self, s.lr, s.weight_decay, s.betas, s.warmup_steps, self.max_steps, s.min_lr_ratio, s.lr_scale
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def task_totals(per_sample: torch.Tensor, tasks: Sequence[str]) -> torch.Tensor:
    """[2, len(TASKS)]: the summed losses (row 0) and the number (row 1) of the samples of each task.

    `per_sample` [n]: each sample's mean token loss, as `sample_losses` gives it; `tasks`: the n
    samples' tasks. A fixed size and order, so totals add up across batches and ranks.
    """
    idx = torch.tensor([TASKS.index(t) for t in tasks], device=per_sample.device)
    totals = torch.zeros(2, len(TASKS), device=per_sample.device)
    totals[0].index_add_(0, idx, per_sample.float())
    totals[1].index_add_(0, idx, torch.ones_like(totals[1, idx]))
    return totals


def task_means(totals: torch.Tensor) -> dict[str, torch.Tensor]:
    """{task: mean loss of its samples} from `task_totals` [2, len(TASKS)], for the tasks seen."""
    counts = totals[1].tolist()  # one device sync, not one per task
    return {t: totals[0, i] / counts[i] for i, t in enumerate(TASKS) if counts[i] > 0}


def part_groups(module: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """{part: index of an optimizer group holding its parameters}, for the parts that train.

    Groups are keyed by rate, not by part (optim.param_groups), so a part is found by its
    parameters; its decay and no-decay groups share one rate, so either serves.
    """
    group_of = {id(p): i for i, g in enumerate(optimizer.param_groups) for p in g["params"]}
    groups: dict[str, int] = {}
    for name, p in module.named_parameters():
        part = part_of(name)
        if part is not None and part not in groups and id(p) in group_of:
            groups[part] = group_of[id(p)]
    return groups


def sample_losses(
    token_loss: torch.Tensor, labels: torch.Tensor, owner: torch.Tensor, n: int
) -> torch.Tensor:
    """Mean next-token loss of each sample [n], from per-position losses [B, T-1] and labels/owners [B, T]."""
    total, count = _per_sample_sums(token_loss, labels, owner, n)
    return total / count.clamp(min=1)


def sample_mean_loss(
    token_loss: torch.Tensor, labels: torch.Tensor, owner: torch.Tensor, n: int
) -> torch.Tensor:
    """The mean over samples of each sample's mean token loss (samples without answer tokens left out)."""
    total, count = _per_sample_sums(token_loss, labels, owner, n)
    answered = count > 0
    return (total[answered] / count[answered]).sum() / answered.sum().clamp(min=1)


def _per_sample_sums(
    token_loss: torch.Tensor, labels: torch.Tensor, owner: torch.Tensor, n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each sample's summed token loss and its number of answer tokens, both [n]."""
    valid = (labels[:, 1:] != -100) & (owner[:, 1:] >= 0)
    idx = owner[:, 1:][valid]
    total = torch.zeros(n, device=token_loss.device).index_add_(0, idx, token_loss[valid].float())
    count = torch.zeros(n, device=token_loss.device).index_add_(0, idx, torch.ones_like(total[idx]))
    return total, count

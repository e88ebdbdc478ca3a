"""QwenVLLitModule: one training stage of a QwenVLModel as a LightningModule.

The model is composed from the `encoder`/`adapter`/`llm` config groups; the stage declares which
parts learn (see stages.py). Validation reports the loss overall and per task.
"""

from __future__ import annotations

from collections import defaultdict

import lightning as L
import torch
from hydra.utils import instantiate

from qwenvl.models.qwen_vl import QwenVLModel
from qwenvl.processor import QwenVLProcessor
from qwenvl.tokenizer import QwenVLTokenizer
from qwenvl.training import init_from
from qwenvl.training.optim import build_optimizer
from qwenvl.training.parallel import enable_activation_checkpointing, shard_fsdp2
from qwenvl.training.stages import StageConfig, apply_freezing


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
    ):
        super().__init__()
        # Plain containers only, so checkpoints load with torch.load(weights_only=True).
        self.save_hyperparameters()
        self.stage = StageConfig(**{k: v for k, v in stage.items() if k != "_target_"})
        self.tokenizer = (
            QwenVLTokenizer.from_pretrained(tokenizer) if tokenizer else QwenVLTokenizer.default()
        )
        enc = instantiate(encoder)
        enc.image_size = self.stage.image_size  # the stage sets the resolution
        self.model = QwenVLModel.from_config(enc, instantiate(adapter), instantiate(llm), self.tokenizer)
        if self.stage.init_from:
            init_from.load_into(self.model, self.stage.init_from)
        self.trainable_counts = apply_freezing(self.model, self.stage)
        self.processor = QwenVLProcessor.from_model(self.model, self.tokenizer)
        self.max_steps = max_steps
        self.parallel = dict(parallel or {})
        if self.parallel.get("activation_checkpointing"):
            enable_activation_checkpointing(self.model)

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
        self._log_per_task("train", out, batch)
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=n)
        if "packing_efficiency" in batch:
            self.log("train/packing_efficiency", batch["packing_efficiency"], batch_size=n)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out = self(batch)
        self.log(
            "val/loss", self.loss(out, batch), prog_bar=True, batch_size=len(batch["tasks"]), sync_dist=True
        )
        self._log_per_task("val", out, batch)

    def _log_per_task(self, split: str, out, batch: dict) -> None:
        """`<split>/loss_<task>`: the mean loss of the samples of each task in this batch."""
        owner, n = batch["sample_index"], len(batch["tasks"])
        per_sample = sample_losses(out.token_loss.detach(), batch["labels"], owner, n)
        by_task = defaultdict(list)
        for task, value in zip(batch["tasks"], per_sample, strict=True):
            by_task[task].append(value)
        sync = split == "val"  # per-step training logs stay local: a sync every step costs time
        for task, values in by_task.items():
            self.log(
                f"{split}/loss_{task}", torch.stack(values).mean(), batch_size=len(values), sync_dist=sync
            )

    def configure_model(self) -> None:
        """FSDP2 under ModelParallelStrategy: shard each encoder block and LLM layer, then the root."""
        if self.device_mesh is None:
            return
        mesh = self.device_mesh["data_parallel"]
        units = shard_fsdp2(self.model, mesh, self.parallel.get("param_dtype"))
        print(f"FSDP2: {units} units sharded over {mesh.size()} ranks (rank {self.global_rank})", flush=True)

    # -- exact resume --------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["rng"] = {"torch": torch.get_rng_state()}  # a tensor: loads with weights_only=True

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "rng" in checkpoint:
            torch.set_rng_state(checkpoint["rng"]["torch"])
        progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_loop.batch_progress", {})
        # Saved at a batch end, where `processed` counts the batches this epoch has consumed.
        self._resume_batches = progress.get("current", {}).get("processed", 0)

    def on_train_start(self) -> None:
        # A resumed epoch continues where the interrupted one stopped, not from its first batch.
        # (Lightning skips on_train_epoch_start when it restarts mid-epoch, so this runs here.)
        done, self._resume_batches = getattr(self, "_resume_batches", 0), 0
        sampler = getattr(self.trainer.datamodule, "train_sampler", None)
        skip = done * getattr(self.trainer.datamodule, "batch_size", 0)  # per rank: the sampler shards
        if sampler is not None and 0 < skip < len(sampler):  # a checkpoint at an epoch end skips nothing
            sampler.skip(skip)

    def configure_optimizers(self):
        s = self.stage
        opt, sched = build_optimizer(  # over the whole module: a stage's own head learns too
            self, s.lr, s.weight_decay, s.betas, s.warmup_steps, self.max_steps, s.min_lr_ratio, s.lr_scale
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


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

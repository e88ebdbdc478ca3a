"""The `objects` stage: the visual encoder pretrained on object maps, before any language.

Qwen-VL's encoder arrives pretrained (OpenCLIP ViT-bigG), so its patches already tell a star from
a circle. A random encoder trained through the language loss alone does not get there: early on
the adapter's attention is uniform, the loss sees an average over patches, and an average keeps
colour but not shape (docs/pipeline.md). This stage gives every patch its own target instead: a
linear head on each patch feature predicts, for each of its `cells x cells` cells, the shape
kind, colour and text character there, and which shape (colour and kind) has its centre there
(`qwenvl.data.synthetic.object_maps`). The head is discarded afterwards: it lives outside
`model`, so `stage.init_from` reads only the model.
"""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics import MeanMetric

from qwenvl.data.object_datamodule import ObjectMapDataModule
from qwenvl.data.synthetic.object_maps import CENTRE_CLASSES, CHAR_CLASSES, COLOUR_CLASSES, KIND_CLASSES
from qwenvl.training.module import QwenVLLitModule

MAPS = {
    "kind": len(KIND_CLASSES),
    "colour": len(COLOUR_CLASSES),
    "char": len(CHAR_CLASSES),
    "centre": len(CENTRE_CLASSES),
}


class ObjectMapHead(nn.Module):
    """Patch features [B, P, W] -> logits per map: {"kind": [B, P, C, 7], "colour": [B, P, C, 7],
    "char": [B, P, C, 33], "centre": [B, P, C, 31]}, C = cells * cells cells per patch."""

    def __init__(self, width: int, cells: int):
        super().__init__()
        self.cells = cells
        self.proj = nn.Linear(width, cells * cells * sum(MAPS.values()))

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        b, p, _ = features.shape
        logits = self.proj(features).view(b, p, self.cells * self.cells, sum(MAPS.values()))
        return dict(zip(MAPS, logits.split(list(MAPS.values()), dim=-1), strict=True))


class ObjectMapModule(QwenVLLitModule):
    """Stage `objects`: the encoder and the head learn; adapter and LLM are frozen (the stage config).

    Loss: cross-entropy per map summed. Background cells (and cells without a character) weigh
    `background_weight` in every map: they are most of the picture and would otherwise teach mostly
    "background". The centre map marks one cell per object with its (colour, kind): counting
    "how many red shapes" then reads flagged cells instead of areas that grow with the shape's size
    (measured with two seeds: VQA and the two-picture questions gained on their blind scores;
    docs/pipeline.md).
    Validation logs `val/loss` and accuracies over the cells that matter: `val/acc_shape` (kind on
    shape cells), `val/acc_colour` (colour on shape cells), `val/acc_char` (character on text cells),
    `val/acc_background` and `val/acc_centre` (the pair on the cells holding a shape's centre).
    """

    def __init__(self, *args, cells: int = 4, background_weight: float = 0.1, **kwargs):
        super().__init__(*args, **kwargs)
        self.object_head = ObjectMapHead(self.model.encoder.width, cells)
        self.background_weight = background_weight
        accs = ("shape", "colour", "char", "background", "centre")
        self.val_acc = nn.ModuleDict({k: MeanMetric() for k in accs})

    def datamodule(self, cfg) -> ObjectMapDataModule:
        """The synthetic world's pictures and maps, with the run's `data` batch settings."""
        return ObjectMapDataModule.from_run(
            cfg,
            self.processor,
            self.model.encoder.config.patch_size,
            "object maps",
            cells=self.object_head.cells,
        )

    def configure_model(self) -> None:
        if self.device_mesh is not None:
            # FSDP2 shards `model` only; the head's gradients would stay per rank and drift apart.
            raise ValueError(
                f"stage={self.stage.name} (object maps) runs on one process or with trainer=ddp, not "
                "under FSDP: its small encoder-only run gains nothing from sharding. In an FSDP "
                f"pipeline give it its own trainer: \"+per_stage.{self.stage.name}=['trainer=ddp']\""
            )

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        return self.object_head(self.model.encoder(batch["pixel_values"]))

    def object_loss(self, logits: dict[str, torch.Tensor], batch: dict) -> torch.Tensor:
        loss = logits["kind"].new_zeros(())
        for name, n in MAPS.items():
            # Class 0 (background, or no character) weighs less in every map: it covers most cells,
            # and at full weight the character map learned to answer "none" (text-cell accuracy
            # 0.04 after 1,500 steps against 0.11 down-weighted; docs/pipeline.md).
            weight = torch.ones(n, device=loss.device)
            weight[0] = self.background_weight
            loss = loss + nn.functional.cross_entropy(
                logits[name].flatten(0, 2), batch[name].flatten(), weight
            )
        return loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.object_loss(self(batch), batch)
        n = len(batch["pixel_values"])
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=n)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self(batch)
        n = len(batch["pixel_values"])
        self.log("val/loss", self.object_loss(logits, batch), prog_bar=True, batch_size=n, sync_dist=True)
        kind, colour, char, centre = (batch[m] for m in MAPS)
        on_shape = (kind > 0) & (kind < KIND_CLASSES.index("text"))
        for name, predicted, target, where in (
            ("shape", logits["kind"], kind, on_shape),
            ("colour", logits["colour"], colour, on_shape),
            ("char", logits["char"], char, char > 0),
            ("background", logits["kind"], kind, kind == 0),
            ("centre", logits["centre"], centre, centre > 0),
        ):
            hits = (predicted.argmax(-1) == target)[where]
            if hits.numel():  # weighted by cells, so the epoch value is the accuracy over all cells
                self.val_acc[name].update(hits.float().mean(), hits.numel())
        for name, metric in self.val_acc.items():
            self.log(f"val/acc_{name}", metric, batch_size=n)

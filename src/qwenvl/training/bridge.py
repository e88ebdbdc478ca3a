"""The `bridge` stage: the encoder at a new resolution taught to give the image tokens it gave before.

On the embedded default, stage 2 begins at 224 px (`multitask_224`), where a step is cheap, and
goes on at 448 px. At 448 px the tiny encoder sees each shape over four times as many patches, its
features change, and a lookup the language model learned in the 224-px image tokens is partly lost
before `multitask` at 448 px has trained a step (which picture has more: +17.5 points over chance at
224 px, +9.6 at 448 px; docs/pipeline.md). This stage closes that gap: the encoder and adapter at
the stage's resolution learn to give, for each picture, the image tokens that the previous stage's
model (the teacher: `stage.init_from`, read again at its own resolution and frozen) gives for the
same picture scaled down to that resolution. The language model takes no part (frozen, never run),
so a step costs about the encoder's share of one. Measured: the lookup reaches 448 px whole (+17.9),
and in the default pipeline, whose `multitask` trains the encoder at 448 px anyway, the scores do
not change; the stage is there to run by name (`stages=[..., multitask_224, bridge, multitask, ...]`),
not in the default.

Loss: the mean squared error between the image tokens [N, Q, D] of the two, over the teacher's
mean square (a relative error: 1.0 for tokens all zero, 0.0 for the teacher's own).

A stand-in, as `objects` is: a pretrained OpenCLIP encoder's features already hold across
resolutions once its position table is resized. With real weights, leave it out of `stages`.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch.nn import functional as F

from qwenvl.data.object_datamodule import ObjectMapDataModule
from qwenvl.models.qwen_vl import QwenVLModel
from qwenvl.training.init_from import POS_KEY, load_into, read_weights
from qwenvl.training.module import QwenVLLitModule


def teacher_size(state: dict[str, torch.Tensor], init_from: str, patch_size: int) -> int:
    """Pixels the checkpoint's encoder was trained at (`state`: its weights, read from `init_from`):
    the side of its position table x patch size."""
    table = state.get(POS_KEY)
    if table is None:
        raise ValueError(f"stage.init_from={init_from}: no {POS_KEY} to tell the teacher's resolution")
    return math.isqrt(table.shape[0]) * patch_size


def relative_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the teacher's mean square; both [N, Q, D]."""
    return (student - teacher).pow(2).mean() / teacher.pow(2).mean().clamp_min(1e-12)


class BridgeModule(QwenVLLitModule):
    """Stage `bridge`: encoder and adapter learn (the stage config); the LLM is frozen and unused.

    The teacher is built when training starts, not with the module, so that a checkpoint of this
    stage loads for evaluation without the file it started from. It is kept outside `model` and
    outside the module's state: checkpoints hold the student alone.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._teacher: list[QwenVLModel] = []  # a list, so that Module.__setattr__ does not register it

    @property
    def teacher(self) -> QwenVLModel:
        return self._teacher[0]

    def setup(self, stage: str) -> None:
        if stage != "fit" or self._teacher:
            return
        if not self.stage.init_from:
            raise ValueError(
                f"stage={self.stage.name} (objective image_tokens) needs stage.init_from=CKPT: the model "
                "whose image tokens the encoder learns to give at the new resolution"
            )
        config = self.model.config
        if config.encoder.pos_grid is not None:
            raise ValueError(
                f"stage={self.stage.name} reads the teacher's resolution off its position table, which "
                f"encoder.pos_grid={config.encoder.pos_grid} fixes whatever the resolution; the bridge is "
                "for the embedded encoder (encoder=tiny), whose table follows the patch grid"
            )
        state = read_weights(self.stage.init_from)  # read once: for the resolution, then the weights
        size = teacher_size(state, self.stage.init_from, config.encoder.patch_size)
        if size == config.encoder.image_size:
            raise ValueError(
                f"stage={self.stage.name}: stage.init_from={self.stage.init_from} was trained at {size} px, "
                f"the stage's own image_size; the bridge is for a change of resolution (e.g. 224 -> 448)"
            )
        teacher = QwenVLModel(replace(config, encoder=replace(config.encoder, image_size=size)))
        load_into(teacher, self.stage.init_from, state)
        teacher.requires_grad_(False)
        self._teacher.append(teacher.eval())

    def on_fit_start(self) -> None:
        self._teacher[0] = self.teacher.to(self.device)

    def datamodule(self, cfg) -> ObjectMapDataModule:
        """The synthetic world's pictures at the stage's resolution (their object maps are unused)."""
        return ObjectMapDataModule.from_run(
            cfg, self.processor, self.model.encoder.config.patch_size, "image tokens", maps=False
        )

    def configure_model(self) -> None:
        if self.device_mesh is not None:
            raise ValueError(
                f"stage={self.stage.name} (image tokens across resolutions) runs on one process or with "
                "trainer=ddp, not under FSDP: its teacher is a whole second model on every rank. In an "
                f"FSDP pipeline give it its own trainer: \"+per_stage.{self.stage.name}=['trainer=ddp']\""
            )

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(student tokens at the stage's resolution, teacher tokens at its own), each [N, Q, D]."""
        pixels = batch["pixel_values"]
        size = self.teacher.image_size
        small = F.interpolate(pixels, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
        with torch.no_grad():
            target = self.teacher.encode_images(small)
        return self.model.encode_images(pixels), target

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = relative_mse(*self(batch))
        n = len(batch["pixel_values"])
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=n)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        loss = relative_mse(*self(batch))
        self.log("val/loss", loss, prog_bar=True, batch_size=len(batch["pixel_values"]), sync_dist=True)

"""Qwen-VL's three training stages: which parts learn, at what resolution, in which prompt format.

| stage     | trained           | frozen  | px  | format |
|-----------|-------------------|---------|-----|--------|
| pretrain  | encoder + adapter | LLM     | 224 | plain  |
| multitask | everything        | -       | 448 | plain  |
| sft       | adapter + LLM     | encoder | 448 | chatml |

Qwen-VL starts from a pretrained ViT and LLM. The embedded default has neither (nothing is
downloaded), so its pipeline first runs two stand-ins for those checkpoints: `objects`, the
encoder alone learning the synthetic world's object maps (which shape, colour and character
covers each cell of each patch; training/object_maps.py), then `warmup`: adapter and LLM on the
world's captions and text at 224 px (a random LLM frozen in `pretrain` barely learns to read image
tokens). `bridge`, not in the default, can go between stage 2's 224-px and 448-px parts: the
encoder at 448 px learns to give the image tokens it gave at 224 px (training/bridge.py). `lm`
warms up the LLM alone on text, images dropped, for a pretrained encoder with a random LLM. With
real weights, leave these out of `stages`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from qwenvl.data.sample import TASKS

PARTS = ("encoder", "adapter", "llm")
OBJECTIVES = ("lm", "object_maps", "image_tokens")
LOSS_MEANS = ("token", "sample")
FORMATS = ("plain", "chatml")  # the training prompt formats (data/templates.py)


@dataclass
class StageConfig:
    """One stage. `trainable` declares per part whether it learns (frozen parts get no grads, no state)."""

    name: str = "pretrain"
    trainable: dict[str, bool] = field(
        default_factory=lambda: {"encoder": True, "adapter": True, "llm": False}
    )
    image_size: int = 224
    fmt: str = "plain"
    lr: float = 1e-3
    # Per part, a multiplier on `lr` ({encoder: 0.1}): a part still learns, more slowly.
    lr_scale: dict[str, float] = field(default_factory=dict)
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = 10
    init_from: str | None = None  # the previous stage's checkpoint (.ckpt or save_pretrained dir)
    tasks: list[str] | None = None  # the synthetic world's task mix for this stage (None = all)
    task_weights: list[float] | None = None
    # Synthetic world only: most shapes per picture, one number or per task ({grounding: 1}).
    max_objects: int | dict[str, int] = 4
    text_only: bool = False  # drop images (`lm`: the text warm-up of a randomly initialized LLM)
    # What the stage learns from: `lm` next-token loss on text (every Qwen-VL stage), or
    # `object_maps`: the encoder alone on the synthetic world's object maps (`objects`), or
    # `image_tokens`: encoder and adapter at a new resolution giving the image tokens the
    # `init_from` model gives at its own (`bridge`; training/bridge.py).
    objective: str = "lm"
    # How the `lm` loss is averaged over a batch: `token`, over every answer token, so long answers
    # weigh more (in `multitask`, grounded captions of ~74 tokens are 8 % of the samples and 46 % of
    # the answer tokens; a VQA answer is ~2.5 tokens), or `sample`, each sample's own mean first, so
    # that a task's share of the gradient is its share of the samples (`task_weights`).
    loss_mean: str = "token"

    @classmethod
    def from_mapping(cls, stage) -> StageConfig:
        """From a stage config mapping (a composed `stage` node as a dict), its `_target_` aside."""
        return cls(**{k: v for k, v in stage.items() if k != "_target_"})

    def __post_init__(self) -> None:
        for key in ("trainable", "lr_scale"):  # per-part settings: a misspelt part fails here
            unknown = set(getattr(self, key)) - set(PARTS)
            if unknown:
                raise ValueError(f"stage.{key} has unknown parts {sorted(unknown)}; parts are {PARTS}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"stage.objective={self.objective!r}; expected one of {OBJECTIVES}")
        if self.loss_mean not in LOSS_MEANS:
            raise ValueError(f"stage.loss_mean={self.loss_mean!r}; expected one of {LOSS_MEANS}")
        if self.fmt not in FORMATS:
            raise ValueError(f"stage.fmt={self.fmt!r}; expected one of {FORMATS}")
        self.trainable = {p: self.trainable.get(p, True) for p in PARTS}
        self._check_values()
        self.lr_scale = {p: float(v) for p, v in self.lr_scale.items()}
        self.betas = tuple(self.betas)

    def _check_values(self) -> None:
        """Types and ranges, so that a misspelt value fails when the stage is built: `bool("flase")`
        is True, and a part meant to be frozen would train."""
        flags = {f"trainable.{p}": v for p, v in self.trainable.items()} | {"text_only": self.text_only}
        for key, v in flags.items():
            if not isinstance(v, bool):
                raise ValueError(f"stage.{key}={v!r}; expected true or false")
        numbers = {"lr": self.lr, "min_lr_ratio": self.min_lr_ratio, "weight_decay": self.weight_decay}
        numbers |= {f"lr_scale.{p}": v for p, v in self.lr_scale.items()}
        numbers |= {f"betas[{i}]": v for i, v in enumerate(self.betas)}
        for key, v in numbers.items():
            if not _is_number(v) or v < 0:
                raise ValueError(f"stage.{key}={v!r}; expected a number >= 0")
        for key, low in (("image_size", 1), ("warmup_steps", 0)):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"stage.{key}={v!r}; expected a whole number >= {low}")
        if self.tasks is not None:
            unknown = [t for t in self.tasks if t not in TASKS]
            if not self.tasks or unknown:
                raise ValueError(
                    f"stage.tasks has unknown or no tasks {unknown or self.tasks}; the tasks: {TASKS}"
                )
        if self.task_weights is not None:
            if not all(_is_number(w) and w >= 0 for w in self.task_weights):
                raise ValueError(f"stage.task_weights={self.task_weights!r}; expected numbers >= 0")
            if len(self.task_weights) != len(self.tasks or TASKS):
                raise ValueError(
                    f"stage.task_weights has {len(self.task_weights)} weights for "
                    f"{len(self.tasks or TASKS)} tasks ({list(self.tasks or TASKS)}); give one per task"
                )


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def apply_freezing(model: nn.Module, stage: StageConfig) -> dict[str, int]:
    """Set requires_grad per part (and eval mode on frozen parts). Returns trainable counts per part."""
    counts = {}
    for part in PARTS:
        module: nn.Module = getattr(model, part)
        module.requires_grad_(stage.trainable[part])
        counts[part] = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return counts


def objective(stage) -> str:
    """A stage config's `objective` (a mapping: composed config or saved hyper-parameters)."""
    return stage.get("objective", StageConfig.objective)


def module_class(stage):
    """The LightningModule class that trains `stage` (a stage config mapping; checkpoints rebuild with it)."""
    # Imported here, not at the top: those modules import this one.
    from qwenvl.training.bridge import BridgeModule
    from qwenvl.training.module import QwenVLLitModule
    from qwenvl.training.object_maps import ObjectMapModule

    own = {"object_maps": ObjectMapModule, "image_tokens": BridgeModule}
    return own.get(objective(stage), QwenVLLitModule)

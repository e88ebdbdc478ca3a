"""The Sample: the only contract between data sources and the rest of qwenvl.

A source (the synthetic world or a format loader) yields Samples; the template turns one into
markup segments; the processor turns those into tensors. Text fields are *markup*: literal text
that came from data must already be escaped with `qwenvl.tokenizer.escape`, and boxes are
written with `qwenvl.boxes.format_ref`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from PIL import Image

Role = Literal["system", "user", "assistant"]
TASKS = ("caption", "vqa", "grounding", "grounded_caption", "ocr", "multi_image", "dialog", "text")


@dataclass
class Message:
    """One turn. `num_images` pictures are shown at the start of this turn, in `Sample.images` order."""

    role: Role
    content: str  # markup
    num_images: int = 0


@dataclass
class Sample:
    """One training or evaluation example.

    `messages` alternate user/assistant (an optional system message first). Plain-format tasks
    (stages 1-2) have one user message (the prompt, no loss) and one assistant message (the
    target, with loss). `answers` and `boxes` are references for evaluation: plain unescaped
    strings and normalized [0, 1000) integer boxes.
    """

    task: str
    messages: list[Message]
    images: list[Image.Image | str] = field(default_factory=list)  # PIL images or paths, in order
    answers: list[str] = field(default_factory=list)
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    lang: str = "en"
    id: str = ""
    meta: dict = field(default_factory=dict)  # source file, record index, image size (w, h), ...

    def __post_init__(self) -> None:
        where = f"sample {self.id or '?'} ({self.meta.get('source', 'unknown source')})"
        if self.task not in TASKS:
            raise ValueError(f"{where}: unknown task {self.task!r}; expected one of {TASKS}")
        if not self.messages:
            raise ValueError(f"{where}: has no messages")
        for m in self.messages:
            if m.role not in ("system", "user", "assistant"):
                raise ValueError(f"{where}: bad role {m.role!r}")
        shown = sum(m.num_images for m in self.messages)
        if shown != len(self.images):
            raise ValueError(f"{where}: messages show {shown} images but {len(self.images)} are attached")

    @property
    def prompt(self) -> str:
        """Markup of the first user message (the question of a plain-format task)."""
        return next(m.content for m in self.messages if m.role == "user")

    @property
    def target(self) -> str:
        """Markup of the last assistant message (the answer a plain-format task is trained on)."""
        return next(m.content for m in reversed(self.messages) if m.role == "assistant")

"""SyntheticWorld: a map-style Dataset of synthetic Samples generated on the fly.

Every sample is a pure function of (seed, split, index): its random stream is seeded with a
string naming all three, so the same triple always gives the same pictures and text, in any
process, and train/val/test draw from unrelated streams (their scenes are continuous random
layouts, so an identical picture in two splits is practically impossible).
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Mapping, Sequence
from dataclasses import replace
from itertools import accumulate

from torch.utils.data import Dataset

from qwenvl.data.sample import TASKS, Sample
from qwenvl.data.synthetic.tasks import BUILDERS, MAX_OBJECTS, Settings

SPLITS = ("train", "val", "test")


class SyntheticWorld(Dataset):
    """`size` samples of the tasks `tasks` mixed by `weights` (default: all tasks, equal weights).

    `image_size` is the side of the square pictures in pixels (224; 448 for stage 2). A share
    `zh_ratio` of samples is in Chinese, a share `text_ratio` of pictures carries a text string.
    `max_objects` caps the shapes per picture (1-4; `Settings`) for curricula that start simple:
    one number for every task, or a mapping task -> cap (tasks not named keep 4).
    """

    def __init__(
        self,
        seed: int = 0,
        split: str = "train",
        size: int = 10_000,
        image_size: int = 224,
        tasks: Sequence[str] | None = None,
        weights: Sequence[float] | None = None,
        zh_ratio: float = 0.3,
        text_ratio: float = 0.3,
        max_objects: int | Mapping[str, int] = MAX_OBJECTS,
    ):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        tasks = list(TASKS if tasks is None else tasks)
        unknown = [t for t in tasks if t not in BUILDERS]
        if not tasks or unknown:
            raise ValueError(f"unknown or no tasks {unknown or tasks}; expected some of {sorted(BUILDERS)}")
        weights = [1.0] * len(tasks) if weights is None else [float(w) for w in weights]
        if len(weights) != len(tasks) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(
                f"weights {weights} must be {len(tasks)} non-negative numbers with a positive sum"
            )
        if size < 0 or image_size < 32:
            raise ValueError(f"need size >= 0 and image_size >= 32 pixels, got {size} and {image_size}")
        if not (0 <= zh_ratio <= 1 and 0 <= text_ratio <= 1):
            raise ValueError(f"zh_ratio {zh_ratio} and text_ratio {text_ratio} must lie in [0, 1]")
        # one cap for every task, or caps per task over the default of 4
        per_task = isinstance(max_objects, Mapping)
        cap, caps = (MAX_OBJECTS, dict(max_objects)) if per_task else (max_objects, {})
        bad = [t for t, n in caps.items() if t not in BUILDERS or not 1 <= n <= MAX_OBJECTS]
        if bad or not 1 <= cap <= MAX_OBJECTS:
            raise ValueError(
                f"max_objects={max_objects!r}: a cap must be 1-{MAX_OBJECTS} shapes per picture, for "
                f"every task or per task among {sorted(BUILDERS)}"
            )
        self.seed, self.split, self.size = int(seed), split, int(size)
        self.tasks, self.weights = tasks, weights
        self.zh_ratio = zh_ratio
        self.settings = Settings(int(image_size), text_ratio, int(cap))
        self._settings = {t: replace(self.settings, max_objects=int(n)) for t, n in caps.items()}
        total = sum(weights)
        self._cumulative = [c / total for c in accumulate(weights)]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Sample:
        if index < 0:
            index += self.size
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} out of range for a world of {self.size} samples")
        return self.make(index)

    def _rng(self, index: int, stream: str) -> random.Random:
        # A str seed is hashed with SHA-512 by `random`, independent of PYTHONHASHSEED.
        return random.Random(f"qwenvl.synthetic/{self.seed}/{self.split}/{index}/{stream}")

    def task_of(self, index: int) -> str:
        """The task of sample `index`: a uniform draw mapped through the cumulative weights."""
        u = self._rng(index, "task").random()
        return self.tasks[min(bisect.bisect_right(self._cumulative, u), len(self.tasks) - 1)]

    def lang_of(self, index: int) -> str:
        return "zh" if self._rng(index, "lang").random() < self.zh_ratio else "en"

    def make(self, index: int, task: str | None = None, lang: str | None = None) -> Sample:
        """Sample `index`, optionally forcing its task or language (exports use this).

        Any index >= 0 works, also beyond `size`: `size` only sets the Dataset length.
        """
        task = task or self.task_of(index)
        lang = lang or self.lang_of(index)
        if task not in BUILDERS:
            raise ValueError(f"unknown task {task!r}; expected one of {sorted(BUILDERS)}")
        if lang not in ("en", "zh"):
            raise ValueError(f"unknown language {lang!r}; expected 'en' or 'zh'")
        sample = BUILDERS[task](self._rng(index, task), self._settings.get(task, self.settings), lang)
        sample.id = f"synthetic/{self.split}/{index}/{task}"
        sample.meta.update(split=self.split, index=index, seed=self.seed)
        return sample

    def __repr__(self) -> str:
        return (
            f"SyntheticWorld(seed={self.seed}, split={self.split!r}, size={self.size}, "
            f"image_size={self.settings.image_size}, tasks={self.tasks}, weights={self.weights})"
        )

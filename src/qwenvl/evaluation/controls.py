"""Controls for "does the model read the pictures?": the same samples shown other pictures.

- `grey`: every picture replaced by mid grey of the same size (`qwenvl-eval blind=true`). What
  the pixels are worth at all. Grey is out of distribution, so a model can also fall out of its
  answers' form and score below what a model that ignores the pictures would.
- `swapped`: each sample shown the pictures of the next sample that shows as many (cyclically
  over the benchmark). In distribution: the answers keep their form, and the score is what a
  model gets from the question and the kind of picture, never from the right picture: the chance
  level of a model that reads the pictures. The pipeline's verdicts use it.

Both keep every sample's own question and references, and its id, so the runs pair sample by
sample (`qwenvl.evaluation.paired`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

from PIL import Image

from qwenvl.data.sample import Sample

CONTROLS = ("grey", "swapped")


def check_control(control: str | None) -> str | None:
    """`control` itself, or a ValueError naming the valid ones."""
    if control is not None and control not in CONTROLS:
        raise ValueError(f"control={control!r} is not one of {CONTROLS} (or null: the right pictures)")
    return control


def grey_like(image: Image.Image) -> Image.Image:
    """The grey control: same size, no content. A model that scores as well with it ignores pixels."""
    return Image.new("RGB", image.size, (128, 128, 128))


def greyed(sample: Sample, load_image: Callable[[object], Image.Image]) -> Sample:
    """`sample` with each picture replaced by grey of its size (`load_image` opens a path or passes
    an image through, e.g. `QwenVLProcessor.load_image`)."""
    out = copy.copy(sample)
    out.images = [grey_like(load_image(im)) for im in sample.images]
    return out


def partner(i: int, n: int, count: Callable[[int], int]) -> int:
    """The next index after `i`, cyclically in [0, n), whose sample shows `count(i)` pictures.

    `i` itself when no other sample shows as many: that sample then keeps its pictures and adds
    nothing to a difference, rather than an error. `count(j)` is the number of pictures of sample j.
    """
    want = count(i)
    return next((j for j in ((i + k) % n for k in range(1, n)) if count(j) == want), i)


def swapped(sample: Sample, donor: Sample) -> Sample:
    """`sample` (question, references, id) with `donor`'s pictures; `meta["pictures_of"]` names them."""
    out = copy.copy(sample)
    out.images = list(donor.images)
    out.meta = {**sample.meta, "pictures_of": donor.id}
    return out


def swapped_samples(samples: Sequence[Sample]) -> list[Sample]:
    """Every sample of an in-memory list under the `swapped` control."""
    n, count = len(samples), (lambda j: len(samples[j].images))
    return [swapped(s, samples[partner(i, n, count)]) for i, s in enumerate(samples)]


def sample_under(dataset, i: int, control: str | None, n: int | None = None) -> Sample:
    """Sample `i` of a benchmark dataset as the model is shown it under `control`.

    Grey pictures are made where the pictures are loaded (`runner`); here only `swapped` changes
    the sample, taking the pictures of its `partner` among the first `n` samples (the ones
    scored; all by default).
    """
    sample = dataset[i]
    if control != "swapped":
        return sample
    n = len(dataset) if n is None else n
    built = {i: sample}  # a synthetic sample is drawn when indexed: draw each one once

    def get(k: int) -> Sample:
        if k not in built:
            built[k] = dataset[k]
        return built[k]

    return swapped(sample, get(partner(i, n, lambda k: len(get(k).images))))

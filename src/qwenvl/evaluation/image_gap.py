"""The image gap: how much a model's loss on the reference answers rises without the right pictures.

A benchmark score moves only once the model's argmax answer flips; the teacher-forced loss of the
reference answer moves as soon as the model takes anything from the pixels. Two controls:

- `loss_swapped`: each sample shown another sample's pictures (same count, in-distribution). The
  gap `loss_swapped - loss` (nats per answer token) is what the right pictures are worth: > 0 once
  the model reads them, ~0 while it answers from the text alone.
- `loss_blind`: grey pictures, the blind control of `qwenvl-eval blind=true`. Grey is out of
  distribution, so this loss can also rise (or fall) for a model that reads nothing useful.

Per word class (`gap_colour`, `gap_shape` on the synthetic world): the same gap over the answer
tokens that start a colour word or a shape word only. A caption's gap can come from colours alone
(a colour survives the averaging of uniform attention, a shape does not); these say which
attributes the model takes from the pixels.

    python -m qwenvl.evaluation.image_gap CKPT --tasks caption,vqa --samples 64
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

import torch

from qwenvl.data.collate import Collator
from qwenvl.data.sample import Sample
from qwenvl.evaluation.controls import greyed, swapped_samples
from qwenvl.models.qwen_vl import QwenVLModel
from qwenvl.processor import QwenVLProcessor


def word_classes(processor: QwenVLProcessor, words: dict[str, Sequence[str]]) -> dict[str, set[int]]:
    """{class: ids of the first token of each of its words}, with and without a leading space.

    The first token decides the word (` cross` then `es`); the tokens after it follow from it.
    """
    out = {}
    for name, group in words.items():
        ids = set()
        for word in group:
            for form in (word, " " + word):
                ids.add(processor.tokenizer.encode_text(form)[0])
        out[name] = ids
    return out


def synthetic_word_classes(processor: QwenVLProcessor) -> dict[str, set[int]]:
    """`colour` and `shape` words of the synthetic world (English), as token ids."""
    from qwenvl.data.synthetic.vocab import COLORS, SHAPE_PLURAL, SHAPES

    return word_classes(processor, {"colour": list(COLORS), "shape": [*SHAPES, *SHAPE_PLURAL.values()]})


@torch.no_grad()
def answer_losses(
    model: QwenVLModel,
    collator: Collator,
    samples: Sequence[Sample],
    batch_size: int = 16,
    classes: dict[str, set[int]] | None = None,
) -> dict[str, tuple[float, int]]:
    """{"all" and each class: (mean loss per supervised token in nats, tokens counted)}.

    A class counts the supervised tokens whose target id is one of its ids (0 tokens: loss nan).
    """
    classes = classes or {}
    ids = {name: torch.tensor(sorted(v), dtype=torch.long) for name, v in classes.items()}
    total = dict.fromkeys(["all", *classes], 0.0)
    count = dict.fromkeys(total, 0)
    for i in range(0, len(samples), batch_size):
        batch = collator(samples[i : i + batch_size])
        out = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            pixel_values=batch["pixel_values"],
            labels=batch["labels"],
        )
        target = batch["labels"][:, 1:]
        token_loss = out.token_loss.float().cpu()
        masks = {"all": target != -100} | {n: torch.isin(target, v) for n, v in ids.items()}
        for name, mask in masks.items():
            total[name] += float(token_loss[mask].sum())
            count[name] += int(mask.sum())
    if count["all"] == 0:
        raise ValueError("the samples have no supervised tokens: nothing to measure the gap on")
    return {n: (total[n] / count[n] if count[n] else float("nan"), count[n]) for n in total}


def image_gap(
    model: QwenVLModel,
    processor: QwenVLProcessor,
    samples_by_task: dict[str, Sequence[Sample]],
    fmt: str = "plain",
    batch_size: int = 16,
    classes: dict[str, set[int]] | None = None,
) -> dict[str, dict[str, float]]:
    """{task: {loss, loss_swapped, loss_blind, gap, samples}}; gap = loss_swapped - loss.

    With `classes` (see `synthetic_word_classes`), also `gap_<class>` and `tokens_<class>` for
    each class that occurs among the task's answer tokens.
    """
    was_training = model.training
    model.eval()
    collator = Collator(processor, fmt=fmt)
    out = {}
    try:
        for task, samples in samples_by_task.items():
            seen = answer_losses(model, collator, samples, batch_size, classes)
            swapped = answer_losses(model, collator, swapped_samples(samples), batch_size, classes)
            blind = answer_losses(
                model, collator, [greyed(s, processor.load_image) for s in samples], batch_size
            )
            out[task] = {
                "loss": seen["all"][0],
                "loss_swapped": swapped["all"][0],
                "loss_blind": blind["all"][0],
                "gap": swapped["all"][0] - seen["all"][0],
                "samples": len(samples),
            }
            for name in classes or {}:
                if seen[name][1]:
                    out[task][f"gap_{name}"] = swapped[name][0] - seen[name][0]
                    out[task][f"tokens_{name}"] = seen[name][1]
    finally:
        model.train(was_training)
    return out


def synthetic_samples(
    tasks: Sequence[str], samples: int, image_size: int, seed: int = 0
) -> dict[str, list[Sample]]:
    """`samples` English validation samples of each task from the synthetic world."""
    from qwenvl.data.synthetic import SyntheticWorld

    world = SyntheticWorld(seed=seed, split="val", size=samples, image_size=image_size, tasks=list(tasks))
    return {t: [world.make(i, task=t, lang="en") for i in range(samples)] for t in tasks}


def main(argv: Sequence[str] | None = None) -> dict:
    from qwenvl.evaluation.load import load_for_eval

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ckpt", help="a .ckpt, a save_pretrained directory or a released Qwen-VL directory")
    ap.add_argument("--tasks", default="caption,vqa,grounding,ocr,multi_image")
    ap.add_argument("--samples", type=int, default=64, help="per task")
    ap.add_argument("--fmt", default="plain", choices=["plain", "chatml"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    model, processor = load_for_eval(args.ckpt)
    samples = synthetic_samples(args.tasks.split(","), args.samples, model.image_size, args.seed)
    gaps = image_gap(model, processor, samples, fmt=args.fmt, classes=synthetic_word_classes(processor))
    print(json.dumps(gaps, indent=2))
    return gaps


if __name__ == "__main__":
    main()

"""Collation: Samples -> padded or packed training batches.

    sample --template--> segments --processor--> ids, labels, images --collate--> batch

Padding (`pack=False`): rows right-padded to the longest, `attention_mask` marks real tokens.
Packing (`pack=True`): several samples share one row of `max_seq_len`; `position_ids` restart at 0
for each sample and no `attention_mask` is passed, which makes the Qwen2 attention block-diagonal
(transformers detects the restarts), so no sample can attend to another.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from qwenvl.data.sample import Sample
from qwenvl.data.stream_resume import StreamItem
from qwenvl.data.templates import render
from qwenvl.processor import QwenVLProcessor
from qwenvl.tokenizer import IMG_END, IMG_START

IGNORE = -100


class Encoded(NamedTuple):
    """One sample ready for batching: ids/labels [T], pixel_values [N_img, 3, S, S]."""

    input_ids: list[int]
    labels: list[int]
    pixel_values: torch.Tensor
    task: str


class Collator:
    """Turns Samples into model batches with the processor and the prompt templates.

    `fmt`: `plain` (stages 1-2) or `chatml` (stage 3). `max_seq_len` truncates, never inside an
    image span: a span that would be cut is dropped whole, with its image.
    """

    def __init__(
        self, processor: QwenVLProcessor, fmt: str = "plain", max_seq_len: int = 2048, pack: bool = False
    ):
        self.processor, self.fmt, self.max_seq_len, self.pack = processor, fmt, max_seq_len, pack
        tok = processor.tokenizer
        self.img_start, self.img_end = (
            tok.convert_tokens_to_ids(IMG_START),
            tok.convert_tokens_to_ids(IMG_END),
        )

    def encode(self, sample: Sample) -> Encoded:
        """Template, tokenize, label-mask and load the images of one sample (may raise on bad images)."""
        ids, labels = self.processor.encode_segments(render(sample, self.fmt))
        ids, labels, kept = self._truncate(ids, labels)
        images = [self.processor.transform(img) for img in sample.images[:kept]]
        size = self.processor.image_size
        pixels = torch.stack(images) if images else torch.zeros(0, 3, size, size)
        return Encoded(ids, labels, pixels, sample.task)

    def _truncate(self, ids: list[int], labels: list[int]) -> tuple[list[int], list[int], int]:
        """Cut to max_seq_len, backing off before an `<img>` whose span would be cut. Returns kept images."""
        cut = len(ids)
        if cut > self.max_seq_len:
            cut = self.max_seq_len
            opened = [i for i, t in enumerate(ids[:cut]) if t == self.img_start]
            closed = ids[:cut].count(self.img_end)
            if len(opened) > closed:  # the cut falls inside the last span: drop that span
                cut = opened[-1]
        return ids[:cut], labels[:cut], ids[:cut].count(self.img_start)

    def __call__(self, items: Sequence[Encoded | Sample | StreamItem | None]) -> dict[str, torch.Tensor]:
        # A stream's items say where it stands after each; a batch (one worker's, in order) keeps
        # its last: `stream_position`, which the training module keeps for an exact resume.
        positions = [x.position for x in items if isinstance(x, StreamItem)]
        items = [x.item if isinstance(x, StreamItem) else x for x in items]
        encoded = [self.encode(x) if isinstance(x, Sample) else x for x in items if x is not None]
        if not encoded:
            raise ValueError("every sample of this batch was skipped as bad input; see the data warnings")
        if self.pack:
            batch, order = self._packed(encoded)
        else:
            batch, order = self._padded(encoded), range(len(encoded))
        # The model fills image pads row by row, left to right: stack the images in that order.
        batch["pixel_values"] = torch.cat([encoded[i].pixel_values for i in order])
        if positions:
            batch["stream_position"] = positions[-1]
        return batch

    def _padded(self, encoded: list[Encoded]) -> dict:
        batch = self.processor.pad([e.input_ids for e in encoded], [e.labels for e in encoded], "right")
        batch["tasks"] = [e.task for e in encoded]
        batch["sample_index"] = torch.arange(len(encoded)).unsqueeze(1).expand_as(batch["input_ids"]).clone()
        batch["sample_index"][batch["attention_mask"] == 0] = -1
        return batch

    def _packed(self, encoded: list[Encoded]) -> tuple[dict, list[int]]:
        """First-fit packing; returns the batch and the sample order (row by row) for the images."""
        rows: list[list[int]] = []
        fill: list[int] = []
        for i, e in enumerate(encoded):
            n = len(e.input_ids)
            slot = next((r for r, used in enumerate(fill) if used + n <= self.max_seq_len), None)
            if slot is None:
                rows.append([])
                fill.append(0)
                slot = len(rows) - 1
            rows[slot].append(i)
            fill[slot] += n
        width = max(fill)
        pad = self.processor.tokenizer.pad_token_id
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        labels = torch.full_like(ids, IGNORE)
        pos = torch.zeros_like(ids)
        owner = torch.full_like(ids, -1)
        for r, members in enumerate(rows):
            at = 0
            for i in members:
                n = len(encoded[i].input_ids)
                ids[r, at : at + n] = torch.tensor(encoded[i].input_ids)
                labels[r, at : at + n] = torch.tensor(encoded[i].labels)
                pos[r, at : at + n] = torch.arange(n)
                owner[r, at : at + n] = i
                at += n
            pos[r, at:] = torch.arange(width - at)  # the padding tail is its own segment, never a target
        batch = {
            "input_ids": ids,
            "labels": labels,
            "position_ids": pos,
            "sample_index": owner,
            "tasks": [e.task for e in encoded],
            "packing_efficiency": torch.tensor(sum(fill) / (len(rows) * width)),
        }
        return batch, [i for members in rows for i in members]

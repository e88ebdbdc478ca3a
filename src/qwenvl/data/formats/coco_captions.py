"""COCO / Flickr30k captions in Karpathy's split JSON (`dataset_coco.json`) -> `caption` Samples.

    {"images": [{"filepath": "val2014", "filename": "COCO_val2014_000000000042.jpg", "split": "test",
                 "sentences": [{"raw": "A dog on a couch."}, ...], "cocoid": 42}, ...]}

One Sample per image; the image is `root/filepath/filename` (`filepath` is optional, as in the
Flickr30k file). The target is the first sentence, or one picked at random per image with a
fixed seed; `answers` holds every raw sentence (the references of caption metrics).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from qwenvl.data import templates
from qwenvl.data.formats.base import FormatLoader, read_json
from qwenvl.data.sample import Sample
from qwenvl.tokenizer import escape


class CocoCaptions(FormatLoader):
    """Karpathy-split captions. `split` keeps images whose "split" matches (a name or a list, e.g.
    `["train", "restval"]` for the usual Karpathy training set); None keeps all."""

    name = "coco_captions"

    def __init__(
        self, root, annotation_file, split=None, on_error="skip", lang="en", *, sentence="first", seed=0, **kw
    ):
        if sentence not in ("first", "random"):
            raise ValueError(f"sentence must be 'first' or 'random', got {sentence!r}")
        self.sentence, self.seed = sentence, seed
        super().__init__(root, annotation_file, split, on_error, lang, **kw)

    def records(self) -> Iterator[tuple[Any, Any]]:
        data = read_json(self.annotation_file)
        images = data.get("images") if isinstance(data, dict) else None
        if not isinstance(images, list):
            raise self.layout_error('{"images": [{"filename", "sentences": [{"raw"}], ...}]}')
        yield from enumerate(images)

    def build(self, record: int, raw: Any) -> Sample | None:
        raw = self.as_dict(record, raw)
        if self.split is not None and not self.in_split(self.get(raw, record, "split")):
            return None
        filename = self.get(raw, record, "filename")
        folder = self.get(raw, record, "filepath", default="")
        sentences = self.get(raw, record, "sentences", list)
        texts = []
        for i, s in enumerate(sentences):
            if not isinstance(s, dict) or not isinstance(s.get("raw"), str) or not s["raw"].strip():
                raise self.error(
                    record, "bad_value", f"sentences[{i}] has no non-blank 'raw' string: {s!r:.80}"
                )
            texts.append(s["raw"].strip())
        if not texts:
            raise self.error(record, "bad_value", "field 'sentences' is empty")
        # Seeded per record, so a sample is the same in every worker and every epoch.
        pick = 0 if self.sentence == "first" else random.Random(f"{self.seed}/{record}").randrange(len(texts))
        image_id = raw.get("cocoid", raw.get("imgid", record))
        return self.plain_sample(
            record, image_id, "caption", templates.prompt("caption", self.lang), escape(texts[pick]),
            [self.image(record, f"{folder}/{filename}" if folder else filename)], texts, image_id=image_id,
        )  # fmt: skip

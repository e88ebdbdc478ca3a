"""GQA questions JSON -> `vqa` Samples.

    {"201307251": {"imageId": "n161313", "question": "Is it sunny?", "answer": "yes",
                   "fullAnswer": "Yes, it is sunny."}, ...}

The target and the only reference answer is the short `answer` (GQA accuracy is exact match);
`fullAnswer` is kept in `meta["full_answer"]`. Images are `root / image_template`, by default
`{image_id}.jpg` with root the `images/` folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from qwenvl.data.formats.base import read_json
from qwenvl.data.formats.vqa import _VQALoader
from qwenvl.data.sample import Sample


class GQA(_VQALoader):
    """GQA balanced/all questions. With `require_answers=False`, questions without an answer
    (the submission split) become prompt-only Samples instead of bad input."""

    name = "gqa"

    def __init__(
        self,
        root,
        annotation_file,
        split=None,
        on_error="skip",
        lang="en",
        *,
        image_template="{image_id}.jpg",
        require_answers=True,
        **kw,
    ):
        self.image_template, self.require_answers = image_template, require_answers
        super().__init__(root, annotation_file, split, on_error, lang, **kw)

    def records(self) -> Iterator[tuple[Any, Any]]:
        data = read_json(self.annotation_file)
        if not isinstance(data, dict):
            raise self.layout_error('{question_id: {"imageId", "question", "answer"}}')
        yield from data.items()  # the record is the question id

    def build(self, record: str, raw: Any) -> Sample | None:
        raw = self.as_dict(record, raw)
        image_id = self.get(raw, record, "imageId", (str, int))
        question = self.get(raw, record, "question")
        image = self.templated_image(record, image_id=image_id, question_id=record)
        if not self.require_answers and "answer" not in raw:
            answer = None
        else:
            answer = self.get(raw, record, "answer")
        full = raw.get("fullAnswer")
        meta = {"image_id": image_id, "question_id": record}
        if isinstance(full, str):
            meta["full_answer"] = full
        answers = [] if answer is None else [answer]
        return self.vqa_sample(record, record, question, answers, answer, image, **meta)

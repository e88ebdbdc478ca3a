"""Visual question answering with ten human answers -> `vqa` Samples.

- `VQAv2` / `OKVQA`: a questions JSON `{"data_subtype": "val2014", "questions": [{"question_id",
  "image_id", "question"}]}` and, except for test splits, an annotations JSON
  `{"annotations": [{"question_id", "answers": [{"answer"}]*10, "multiple_choice_answer"}]}`.
  Images are `root / image_template.format(split=..., image_id=..., question_id=...)`.
- `VizWiz`: a list `[{"image", "question", "answers": [{"answer", "answer_confidence"}]}]`.
- `TextVQA`: `{"data": [{"question_id", "image_id", "question", "answers": [10 strings]}]}`,
  images `{image_id}.jpg`.

`answers` are the human answers in file order (the references of VQA accuracy); the target is
`multiple_choice_answer` where the file has it, else the most frequent answer (ties: first seen).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from qwenvl.data.formats.base import DataError, FormatLoader, read_json, resolve_annotation
from qwenvl.data.sample import Sample


def most_frequent(answers: list[str]) -> str:
    """The most common answer; ties go to the one seen first (Counter keeps insertion order)."""
    return Counter(answers).most_common(1)[0][0]


class _VQALoader(FormatLoader):
    """Shared by the VQA layouts: templated image paths and answer lists."""

    image_template = ""
    require_answers = True

    def templated_image(self, record: Any, **fields: Any) -> str:
        """`root / image_template.format(**fields)`, confined to the root."""
        try:
            relative = self.image_template.format(**fields)
        except KeyError as e:
            # A configuration mistake, not bad data: fail at once.
            raise ValueError(
                f"image_template {self.image_template!r} uses unknown field {e}; available: {sorted(fields)}"
            ) from None
        except (ValueError, TypeError) as e:  # e.g. `{image_id:012d}` given a string id
            raise self.error(record, "bad_value", f"cannot fill image_template with {fields} ({e})") from None
        return self.image(record, relative)

    def answer_strings(self, record: Any, answers: list) -> list[str]:
        """Answer texts of `[{"answer": ...}]` or `[str]`, in order."""
        out = []
        for i, a in enumerate(answers):
            text = a.get("answer") if isinstance(a, dict) else a
            if not isinstance(text, str):
                raise self.error(record, "bad_value", f"answers[{i}] has no 'answer' string: {a!r:.80}")
            out.append(text)
        if not out:
            raise self.error(record, "bad_value", "field 'answers' is empty")
        return out

    def answers_of(self, record: Any, raw: dict) -> tuple[list[str], str | None]:
        """(answers, most frequent) of the record's "answers"; ([], None) when absent and not required."""
        if not self.require_answers and "answers" not in raw:
            return [], None
        answers = self.answer_strings(record, self.get(raw, record, "answers", list))
        return answers, most_frequent(answers)


class VQAv2(_VQALoader):
    """VQAv2 (and OK-VQA, same layout). `annotation_file` is the questions JSON; `answers_file`
    the annotations JSON (None for a test split: Samples then have no target). `split` fills
    `{split}` in `image_template`; by default it is the file's `data_subtype` (e.g. "val2014")."""

    name = "vqav2"

    def __init__(
        self,
        root,
        annotation_file,
        split=None,
        on_error="skip",
        lang="en",
        *,
        answers_file=None,
        image_template="COCO_{split}_{image_id:012d}.jpg",
        **kw,
    ):
        self.answers_file, self.image_template = answers_file, image_template
        super().__init__(root, annotation_file, split, on_error, lang, **kw)

    def records(self) -> Iterator[tuple[Any, Any]]:
        data = read_json(self.annotation_file)
        questions = data.get("questions") if isinstance(data, dict) else None
        if not isinstance(questions, list):
            raise self.layout_error('{"questions": [{"question_id", "image_id", "question"}]}')
        self._template_split = self.split if self.split is not None else data.get("data_subtype")
        if self._template_split is None and "{split" in self.image_template:
            raise ValueError(
                f"{self.annotation_file} has no 'data_subtype' to fill {{split}} in image_template "
                f"{self.image_template!r}; set split, e.g. split=val2014"
            )
        self._answers = None if self.answers_file is None else self._read_answers()
        yield from enumerate(questions)

    def _read_answers(self) -> dict[Any, dict]:
        path = resolve_annotation(self.root, self.answers_file)
        data = read_json(path)
        annotations = data.get("annotations") if isinstance(data, dict) else None
        if not isinstance(annotations, list):
            raise DataError(
                f"{path}: not a VQA annotations file; expected "
                '{"annotations": [{"question_id", "answers"}]}; '
                "check answers_file (the questions file goes in annotation_file)",
                file=path, reason="bad_layout",
            )  # fmt: skip
        return {a.get("question_id"): a for a in annotations if isinstance(a, dict)}

    def build(self, record: int, raw: Any) -> Sample | None:
        raw = self.as_dict(record, raw)
        qid = self.get(raw, record, "question_id", (int, str))
        image_id = self.get(raw, record, "image_id", (int, str))
        question = self.get(raw, record, "question")
        image = self.templated_image(record, split=self._template_split, image_id=image_id, question_id=qid)
        answers, target = [], None
        if self._answers is not None:
            ann = self._answers.get(qid)
            if ann is None:
                raise self.error(
                    record, "missing_field", f"question {qid} has no annotation in {self.answers_file}"
                )
            answers = self.answer_strings(record, self.get(ann, record, "answers", list))
            target = ann.get("multiple_choice_answer")
            if not isinstance(target, str) or not target.strip():
                target = most_frequent(answers)
        return self.vqa_sample(
            record, qid, question, answers, target, image, image_id=image_id, question_id=qid
        )


class OKVQA(VQAv2):
    """OK-VQA: the VQAv2 layout over COCO val2014/train2014 images."""

    name = "okvqa"


class VizWiz(_VQALoader):
    """VizWiz-VQA: a JSON list of `{"image", "question", "answers": [{"answer", "answer_confidence"}]}`.

    Images are `root/<image>`. With `require_answers=False`, records without answers (the test
    split) become prompt-only Samples instead of bad input."""

    name = "vizwiz"

    def __init__(
        self, root, annotation_file, split=None, on_error="skip", lang="en", *, require_answers=True, **kw
    ):
        self.require_answers = require_answers
        super().__init__(root, annotation_file, split, on_error, lang, **kw)

    def records(self) -> Iterator[tuple[Any, Any]]:
        data = read_json(self.annotation_file)
        if not isinstance(data, list):
            raise self.layout_error('a list of {"image", "question", "answers": [{"answer"}]}')
        yield from enumerate(data)

    def build(self, record: int, raw: Any) -> Sample | None:
        raw = self.as_dict(record, raw)
        name = self.get(raw, record, "image")
        question = self.get(raw, record, "question")
        answers, target = self.answers_of(record, raw)
        return self.vqa_sample(
            record, record, question, answers, target, self.image(record, name), image_name=name
        )


class TextVQA(VizWiz):
    """TextVQA: `{"data": [{"question_id", "image_id", "question", "answers": [10 strings]}]}`.

    Images are `root / image_template.format(image_id=...)`, by default `{image_id}.jpg`."""

    name = "textvqa"

    def __init__(
        self,
        root,
        annotation_file,
        split=None,
        on_error="skip",
        lang="en",
        *,
        require_answers=True,
        image_template="{image_id}.jpg",
        **kw,
    ):
        self.image_template = image_template
        super().__init__(root, annotation_file, split, on_error, lang, require_answers=require_answers, **kw)

    def records(self) -> Iterator[tuple[Any, Any]]:
        data = read_json(self.annotation_file)
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise self.layout_error('{"data": [{"question_id", "image_id", "question", "answers"}]}')
        yield from enumerate(items)

    def build(self, record: int, raw: Any) -> Sample | None:
        raw = self.as_dict(record, raw)
        qid = self.get(raw, record, "question_id", (int, str))
        image_id = self.get(raw, record, "image_id", (int, str))
        question = self.get(raw, record, "question")
        image = self.templated_image(record, image_id=image_id, question_id=qid)
        answers, target = self.answers_of(record, raw)
        meta: dict[str, Any] = {"image_id": image_id, "question_id": qid}
        w, h = raw.get("image_width"), raw.get("image_height")
        if isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0:
            meta["image_size"] = (w, h)
        return self.vqa_sample(record, qid, question, answers, target, image, **meta)

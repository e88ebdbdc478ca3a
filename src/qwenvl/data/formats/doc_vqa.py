"""Document, chart and diagram QA (DocVQA, ChartQA, OCR-VQA, AI2D) -> `vqa` Samples.

JSON lines, one question a line (a `.json` file holding a list or `{"data": [...]}` is read too,
as in the official DocVQA release):

    {"image": "documents/abc.png", "question": "What is the date?", "answers": ["4/1/1998", "April 1"]}

ChartQA conversions may carry a single `"answer"` string instead of `"answers"`. AI2D records may
carry `"options": [...]`: the options are put into the question as `A. ...\\nB. ...` lines and the
answer becomes the option's letter (an answer given as an index, a letter or the option text).
The target is the first answer; `answers` holds all of them.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qwenvl.data.formats.base import FormatLoader, read_json, read_jsonl
from qwenvl.data.sample import Sample

LETTERS = string.ascii_uppercase


class DocVQA(FormatLoader):
    """JSON-lines document QA. With `require_answers=False`, records without answers (test
    splits) become prompt-only Samples instead of bad input. `split` keeps records whose "split"
    matches (records without one are kept)."""

    name = "docvqa"

    def __init__(
        self, root, annotation_file, split=None, on_error="skip", lang="en", *, require_answers=True, **kw
    ):
        self.require_answers = require_answers
        super().__init__(root, annotation_file, split, on_error, lang, **kw)

    def records(self) -> Iterator[tuple[Any, Any]]:
        if Path(self.annotation_file).suffix == ".json":
            data = read_json(self.annotation_file)
            items = data.get("data") if isinstance(data, dict) else data
            if not isinstance(items, list):
                raise self.layout_error(
                    'JSON lines, a JSON list, or {"data": [...]} of {"image", "question"}'
                )
            yield from enumerate(items)
        else:
            yield from enumerate(read_jsonl(self.annotation_file))

    def build(self, record: int, raw: Any) -> Sample | None:
        raw = self.as_dict(record, raw)
        if self.split is not None and "split" in raw and not self.in_split(raw["split"]):
            return None
        image = self.image(record, self.get(raw, record, "image"))
        question = self.get(raw, record, "question").strip()
        answers = self._answers(record, raw)
        if "options" in raw:
            question, answers = self._with_options(record, raw, question, answers)
        else:  # numbers are answers in their own right (ChartQA values) unless they index options
            answers = [a if isinstance(a, str) else str(a) for a in answers]
        qid = raw.get("question_id", raw.get("questionId"))
        sid = qid if isinstance(qid, (int, str)) and not isinstance(qid, bool) else record
        return self.vqa_sample(record, sid, question, answers, answers[0] if answers else None, image)

    def _answers(self, record: int, raw: dict) -> list:
        if "answers" in raw:
            answers = self.get(raw, record, "answers", list)
        elif "answer" in raw:  # ChartQA conversions; AI2D may give an option index
            answers = [self.get(raw, record, "answer", (str, int, float))]
        elif not self.require_answers:
            return []
        else:
            raise self.error(
                record, "missing_field", f"missing field 'answers' (fields present: {sorted(raw)})"
            )
        if not answers:
            raise self.error(record, "bad_value", "field 'answers' is empty")
        for i, a in enumerate(answers):
            if (
                isinstance(a, bool)
                or not isinstance(a, (str, int, float))
                or (isinstance(a, str) and not a.strip())
            ):
                raise self.error(
                    record, "bad_value", f"answers[{i}] should be a non-blank string, got {a!r:.80}"
                )
        return [a.strip() if isinstance(a, str) else a for a in answers]

    def _with_options(self, record: int, raw: dict, question: str, answers: list) -> tuple[str, list[str]]:
        """Multiple choice: options into the question as lettered lines, answers as letters."""
        options = self.get(raw, record, "options", list)
        if not 2 <= len(options) <= len(LETTERS) or not all(isinstance(o, str) for o in options):
            raise self.error(record, "bad_value", f"options should be 2-26 strings, got {options!r:.80}")
        lines = [f"{LETTERS[i]}. {o.strip()}" for i, o in enumerate(options)]
        letters = [self._letter(record, a, options) for a in answers]
        return question + "\n" + "\n".join(lines), letters

    def _letter(self, record: int, answer: str | float, options: list[str]) -> str:
        if not isinstance(answer, str):
            if answer == int(answer) and 0 <= answer < len(options):
                return LETTERS[int(answer)]
        elif answer in options:
            return LETTERS[options.index(answer)]
        elif len(answer) == 1 and answer.upper() in LETTERS[: len(options)]:
            return answer.upper()
        raise self.error(
            record,
            "bad_value",
            f"answer {answer!r} is neither an option, its index nor its letter: {options}",
        )


class ChartQA(DocVQA):
    name = "chartqa"


class OCRVQA(DocVQA):
    name = "ocrvqa"


class AI2D(DocVQA):
    name = "ai2d"

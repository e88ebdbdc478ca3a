"""Qwen-VL's fine-tuning JSON -> `dialog` Samples.

    [{"id": "identity_0", "conversations": [
        {"from": "user", "value": "Picture 1: <img>images/dog.jpg</img>\\nWhere is the dog?"},
        {"from": "assistant", "value": "<ref>The dog</ref><box>(120,330),(560,900)</box> is on the sofa."}]}]

Each `Picture N: <img>path</img>` (or a bare `<img>path</img>`) in a user turn becomes an image of
the Sample (the path confined to the root) and is counted in that turn's `num_images`; pictures
are shown at the start of their turn, in order. Everything else a user or system turn says is
data and is escaped. Assistant turns keep the dataset's `<ref>text</ref><box>(x1,y1),(x2,y2)</box>`
grounding as structure (boxes in *normalized [0, 1000) integers*, re-emitted with `format_ref`);
the rest of their text is escaped. Qwen-VL's grounding prompt split over a user turn ending in
`<ref>text</ref><box>` and an assistant turn opening with `(x1,y1),(x2,y2)</box>` is kept as
structure too (the plain-format grounding task written as a dialog). A stray `<ref>`/`<box>` tag
that is not part of well-formed grounding is bad input, not silently turned into literal text.
`<quad>` markup is not parsed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from qwenvl.boxes import SCALE, format_box, format_ref
from qwenvl.data.formats.base import FormatLoader, read_json
from qwenvl.data.sample import Message, Sample
from qwenvl.tokenizer import escape

ROLES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant", "system": "system"}

_PICTURE_RE = re.compile(r"(?:Picture\s*\d+\s*:\s*)?<img>(.*?)</img>\n?", re.S)
# `<ref>text</ref>` followed by its boxes, or a bare `<box>`: the shapes `qwenvl.boxes.parse` reads.
_GROUNDING_RE = re.compile(r"<ref>(.*?)</ref>((?:<box>.*?</box>)*)|<box>(.*?)</box>", re.S)
_BOX_RE = re.compile(r"<box>(.*?)</box>", re.S)
_COORDS_RE = re.compile(r"\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)\s*,\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)\s*")
_STRAY_TAGS = ("<ref>", "</ref>", "<box>", "</box>")
# Qwen-VL's grounding prompt split over two turns:
# user `...<ref>text</ref><box>`, then assistant `(x1,y1),(x2,y2)</box>...`.
_ASK_RE = re.compile(r"<ref>([^<]*)</ref><box>\s*$")
_ANSWER_RE = re.compile(r"([^<]*)</box>")


class QwenSFT(FormatLoader):
    """Multi-turn, multi-image dialogs in Qwen-VL's fine-tuning layout ("from": "user"|"assistant";
    "human"/"gpt" are read as the same roles)."""

    name = "qwen_sft"

    def records(self) -> Iterator[tuple[Any, Any]]:
        data = read_json(self.annotation_file)
        if not isinstance(data, list):
            raise self.layout_error('a list of {"id", "conversations": [{"from", "value"}]}')
        yield from enumerate(data)

    def build(self, record: int, raw: Any) -> Sample | None:
        raw = self.as_dict(record, raw)
        turns = self.get(raw, record, "conversations", list)
        messages: list[Message] = []
        images: list[str] = []
        boxes: list[tuple[int, int, int, int]] = []
        open_box = False  # the previous user turn ended in `<ref>..</ref><box>`: this answer closes it
        for t, turn in enumerate(turns):
            where = f"conversations[{t}]"
            if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
                raise self.error(
                    record, "bad_value", f"{where} should be {{'from', 'value': str}}, got {turn!r:.80}"
                )
            role = ROLES.get(turn.get("from"))
            if role is None:
                raise self.error(
                    record,
                    "bad_value",
                    f"{where} has role {turn.get('from')!r}; expected one of {sorted(ROLES)}",
                )
            if role == "assistant":
                content, boxes = self._assistant(record, where, turn["value"], open_box)
                messages.append(Message(role, content))
                open_box = False
                continue
            paths = [m.strip() for m in _PICTURE_RE.findall(turn["value"])]
            for p in paths:
                if "://" in p:
                    raise self.error(
                        record, "remote_image", f"{where} shows a remote image {p!r}",
                        "download it under the dataset root and refer to it by a relative path",
                    )  # fmt: skip
                images.append(self.image(record, p))
            text = _PICTURE_RE.sub("", turn["value"])
            answer = turns[t + 1] if t + 1 < len(turns) else None
            ask = _ASK_RE.search(text)
            if ask and isinstance(answer, dict) and _ANSWER_RE.match(str(answer.get("value"))):
                # The grounding prompt of Qwen-VL, split across the turns: keep it as structure.
                content, open_box = escape(text[: ask.start()]) + format_ref(ask.group(1), []) + "<box>", True
            else:
                content = escape(text)
            messages.append(Message(role, content, num_images=len(paths)))
        self._check_order(record, messages)
        sid = raw.get("id", record)
        sid = sid if isinstance(sid, (str, int)) and not isinstance(sid, bool) else record
        return Sample(
            task="dialog", messages=messages, images=images, boxes=boxes, lang=self.lang,
            id=f"{self.name}/{sid}", meta={"source": str(self.annotation_file), "record": record},
        )  # fmt: skip

    def _assistant(
        self, record: int, where: str, value: str, open_box: bool = False
    ) -> tuple[str, list[tuple[int, int, int, int]]]:
        """Assistant text -> markup with grounding kept as structure, and the boxes it names.

        With `open_box`, the text starts with the `(x1,y1),(x2,y2)</box>` that closes the box
        the user turn opened.
        """
        out: list[str] = []
        boxes: list[tuple[int, int, int, int]] = []
        pos = 0
        if open_box and (m := _ANSWER_RE.match(value)):
            boxes.append(self._box(record, where, m.group(1)))
            out.append(format_box(boxes[-1]) + "</box>")
            pos = m.end()
        for m in _GROUNDING_RE.finditer(value):
            out.append(self._literal(record, where, value[pos : m.start()]))
            pos = m.end()
            ref, box_markup = (
                (m.group(1), m.group(2)) if m.group(1) is not None else (None, f"<box>{m.group(3)}</box>")
            )
            found = [self._box(record, where, b) for b in _BOX_RE.findall(box_markup)]
            boxes += found
            out.append(format_ref(ref, found))
        out.append(self._literal(record, where, value[pos:]))
        return "".join(out), boxes

    def _literal(self, record: int, where: str, text: str) -> str:
        for tag in _STRAY_TAGS:
            if tag in text:
                raise self.error(
                    record, "bad_markup", f"{where} has a stray {tag} outside well-formed "
                    f"<ref>..</ref><box>(x1,y1),(x2,y2)</box> grounding: {text!r:.80}",
                )  # fmt: skip
        return escape(text)

    def _box(self, record: int, where: str, inner: str) -> tuple[int, int, int, int]:
        m = _COORDS_RE.fullmatch(inner)
        if m is None:
            raise self.error(record, "bad_markup", f"{where} has a box {inner!r} that is not (x1,y1),(x2,y2)")
        box = tuple(int(v) for v in m.groups())
        if max(box) >= SCALE:
            raise self.error(record, "box_out_of_range", f"{where} has box {box} outside [0, {SCALE})")
        if box[2] <= box[0] or box[3] <= box[1]:
            raise self.error(
                record, "box_degenerate", f"{where} has box {box} with no area (needs x1<x2, y1<y2)"
            )
        return box  # type: ignore[return-value]

    def _check_order(self, record: int, messages: list[Message]) -> None:
        """An optional system turn, then user/assistant alternating, ending with the assistant."""
        roles = [m.role for m in messages]
        body = roles[1:] if roles[:1] == ["system"] else roles
        expected = ["user", "assistant"] * (len(body) // 2)
        if not body or body != expected:
            raise self.error(
                record,
                "bad_conversation",
                f"turns go {roles}; expected user/assistant pairs (a system turn first)",
            )

"""Questions about scenes with their exact answers, in English or Chinese.

The `*_qa` builders phrase one question about given objects. `ask` picks a question a scene can
answer (used for the follow-up turns of dialogs); the balanced plain VQA set, which builds the
scene to fit a chosen answer, lives in `tasks.py`. Questions and answers are plain text; `QA.markup`
is the answer as markup (escaped, or with boxes).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from qwenvl.boxes import format_ref, to_norm
from qwenvl.data.synthetic.describe import caption
from qwenvl.data.synthetic.scene import Scene, Shape, relation
from qwenvl.data.synthetic.vocab import (
    COLORS,
    OPPOSITE,
    PAIRS,
    SHAPES,
    YES_NO,
    Pair,
    color_word,
    counted,
    definite,
    pair_name,
    picture_word,
    relation_word,
    shape_word,
)
from qwenvl.tokenizer import escape

Box = tuple[int, int, int, int]


@dataclass
class QA:
    """One question and its answer. `boxes` are normalized [0, 1000) boxes the answer gives."""

    kind: str
    question: str
    answer: str
    boxes: list[Box] = field(default_factory=list)
    target: str | None = None  # answer markup when it is not just the escaped answer

    @property
    def markup(self) -> str:
        return self.target if self.target is not None else escape(self.answer)


def yes_no(value: bool, lang: str) -> str:
    return YES_NO[lang][0 if value else 1]


def colour_qa(shape: Shape, lang: str) -> QA:
    """Colour of the only shape of its kind."""
    q = f"What colour is the {shape.kind}?" if lang == "en" else f"{shape_word(shape.kind, lang)}是什么颜色？"
    return QA("colour", q, color_word(shape.color, lang))


def shape_qa(shape: Shape, lang: str) -> QA:
    """Kind of the only shape of its colour."""
    c = color_word(shape.color, lang)
    q = f"What shape is the {c} object?" if lang == "en" else f"{c}的物体是什么形状？"
    return QA("shape", q, shape_word(shape.kind, lang))


def count_qa(scene: Scene, lang: str, kind: str | None = None, color: str | None = None) -> QA:
    """How many shapes (of a kind, or of a colour, or in all); the answer is a digit."""
    if kind is not None:
        n = sum(s.kind == kind for s in scene.shapes)
        q = (
            f"How many {shape_word(kind, lang, plural=True)} are there?"
            if lang == "en"
            else f"图中有几个{shape_word(kind, lang)}？"
        )
    elif color is not None:
        n = sum(s.color == color for s in scene.shapes)
        q = (
            f"How many {color} shapes are there?"
            if lang == "en"
            else f"图中有几个{color_word(color, lang)}的图形？"
        )
    else:
        n = len(scene.shapes)
        q = "How many shapes are there?" if lang == "en" else "图中一共有几个图形？"
    return QA("count", q, str(n))


def exists_qa(scene: Scene, pair: Pair, lang: str) -> QA:
    """Is there a (colour, shape) object? yes/no."""
    q = f"Is there {counted(pair, 1, lang)}?" if lang == "en" else f"图中是否有{pair_name(pair, lang)}？"
    return QA("exists", q, yes_no(bool(scene.find(pair)), lang))


def relation_qa(a: Shape, b: Shape, lang: str) -> QA:
    """Where is a relative to b? left/right/above/below. Both must be unique and clearly apart."""
    rel = relation(a, b)
    if rel is None:
        raise ValueError(f"{a} and {b} have no clear relation")
    an, bn = definite(a.pair, lang), definite(b.pair, lang)
    q = (
        f"Is {an} left of, right of, above or below {bn}?"
        if lang == "en"
        else f"{an}在{bn}的左边、右边、上面还是下面？"
    )
    return QA("relation", q, relation_word(rel, lang))


def relation_yn_qa(a: Shape, b: Shape, asked: str, lang: str) -> QA:
    """Is a `asked` of b? Only asked where the answer is clear: the relation or its opposite holds."""
    rel = relation(a, b)
    if rel not in (asked, OPPOSITE[asked]):
        raise ValueError(f"relation {rel} of {a} to {b} does not settle {asked!r}")
    an, bn = definite(a.pair, lang), definite(b.pair, lang)
    if lang == "en":
        phrase = {"left": "to the left of", "right": "to the right of", "above": "above", "below": "below"}[
            asked
        ]
        q = f"Is {an} {phrase} {bn}?"
    else:
        q = f"{an}在{bn}的{relation_word(asked, lang)}吗？"
    return QA("relation_yn", q, yes_no(rel == asked, lang))


def where_qa(scene: Scene, shape: Shape, lang: str) -> QA:
    """Where is the (unique) object? The answer is `<ref>the red circle</ref><box>..</box>`."""
    name = definite(shape.pair, lang)
    box = to_norm(shape.box, scene.width, scene.height)
    q = f"Where is {name}?" if lang == "en" else f"{name}在哪里？"
    return QA("where", q, name, [box], format_ref(name, [box]))


def text_qa(scene: Scene, lang: str) -> QA:
    q = "What does the text in the image say?" if lang == "en" else "图中的文字是什么？"
    return QA("ocr", q, scene.text.string)


def describe_qa(scene: Scene, lang: str) -> QA:
    q = "Describe the image." if lang == "en" else "描述这张图片。"
    return QA("caption", q, caption(scene, lang))


def more_qa(first: Scene, second: Scene, lang: str, kind: str | None = None, color: str | None = None) -> QA:
    """Which picture has more shapes of a kind (or a colour)? Counts must differ."""

    def n(scene):
        return sum(
            (kind is None or s.kind == kind) and (color is None or s.color == color) for s in scene.shapes
        )

    if n(first) == n(second):
        raise ValueError("a tie has no answer")
    if kind is not None:
        what = shape_word(kind, lang, plural=True)
    else:
        what = f"{color} shapes" if lang == "en" else f"{color_word(color, lang)}的图形"
    q = f"Which picture has more {what}?" if lang == "en" else f"哪张图片中的{what}更多？"
    return QA("more", q, picture_word(1 if n(first) > n(second) else 2, lang))


def change_qa(change: str, pair: Pair, lang: str, new_color: str | None = None) -> QA:
    """What changed from picture 1 to picture 2: `recolor` / `removed` / `added` of one object."""
    q = "What changed between the pictures?" if lang == "en" else "两张图片有什么不同？"
    if change == "recolor":
        a = (
            f"{definite(pair, lang)} turned {new_color}"
            if lang == "en"
            else f"{pair_name(pair, lang)}变成了{color_word(new_color, lang)}"
        )
    elif change == "removed":
        a = f"{definite(pair, lang)} was removed" if lang == "en" else f"{pair_name(pair, lang)}被移除了"
    elif change == "added":
        a = f"{counted(pair, 1, lang)} was added" if lang == "en" else f"增加了{counted(pair, 1, lang)}"
    else:
        raise ValueError(f"unknown change {change!r}")
    return QA("change", q, a)


def ask(rng: random.Random, scene: Scene, lang: str, kind: str) -> QA | None:
    """A random question of `kind` that this scene answers, or None if it has none.

    Kinds: caption, colour, shape, count, exists, relation, where, ocr. Yes/no answers are drawn
    50/50 and the asked object or count is drawn at random, so answers stay close to balanced.
    """
    shapes = list(scene.shapes)
    unique = [s for s in shapes if scene.unique(s.pair)]
    if kind == "caption":
        return describe_qa(scene, lang)
    if kind == "colour":
        fit = [s for s in shapes if sum(t.kind == s.kind for t in shapes) == 1]
        return colour_qa(rng.choice(fit), lang) if fit else None
    if kind == "shape":
        fit = [s for s in shapes if sum(t.color == s.color for t in shapes) == 1]
        return shape_qa(rng.choice(fit), lang) if fit else None
    if kind == "count":
        which = rng.randrange(3)
        if which == 0:
            return count_qa(scene, lang, kind=rng.choice(SHAPES))
        if which == 1:
            return count_qa(scene, lang, color=rng.choice(list(COLORS)))
        return count_qa(scene, lang)
    if kind == "exists":
        present = {s.pair for s in shapes}
        pool = sorted(present) if rng.random() < 0.5 else [p for p in PAIRS if p not in present]
        return exists_qa(scene, rng.choice(pool), lang)
    if kind == "relation":
        clear = [(a, b) for a in unique for b in unique if a is not b and relation(a, b) is not None]
        if not clear:
            return None
        a, b = rng.choice(clear)
        if rng.random() < 0.5:
            return relation_qa(a, b, lang)
        rel = relation(a, b)
        return relation_yn_qa(a, b, rel if rng.random() < 0.5 else OPPOSITE[rel], lang)
    if kind == "where":
        return where_qa(scene, rng.choice(unique), lang) if unique else None
    if kind == "ocr":
        return text_qa(scene, lang) if scene.text is not None else None
    raise ValueError(f"unknown question kind {kind!r}")


ASK_KINDS = ("caption", "colour", "shape", "count", "exists", "relation", "where", "ocr")


def about_picture(qa: QA, k: int, lang: str) -> QA:
    """The same question about picture k of several: `In picture 2, how many ...?`."""
    if qa.kind == "caption":
        q = f"Describe picture {k}." if lang == "en" else f"描述图片{k}。"
    elif lang == "en":
        q = f"In picture {k}, {qa.question[0].lower()}{qa.question[1:]}"
    else:
        q = f"在图片{k}中，{qa.question}"
    return QA(qa.kind, q, qa.answer, qa.boxes, qa.target)

"""Task builders: one function per task turns seeded randomness into a Sample with exact answers.

Scenes are built to fit an answer drawn first (e.g. "3" for "How many stars?", "no" for "Is
there a red circle?"), so answers are balanced and only the pixels tell them apart. Referring
expressions name objects by colour + shape and are only used for objects unique in their scene.
Boxes are normalized [0, 1000) integers (`boxes.to_norm` of the shapes' pixel boxes).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from qwenvl.boxes import format_box, to_norm
from qwenvl.data.sample import Message, Sample
from qwenvl.data.synthetic import describe
from qwenvl.data.synthetic.facts import text_question
from qwenvl.data.synthetic.questions import (
    ASK_KINDS,
    QA,
    about_picture,
    ask,
    change_qa,
    colour_qa,
    count_qa,
    exists_qa,
    more_qa,
    relation_qa,
    relation_yn_qa,
    shape_qa,
)
from qwenvl.data.synthetic.render import render
from qwenvl.data.synthetic.scene import Scene, add_shape, random_pairs, sample_scene
from qwenvl.data.synthetic.vocab import COLORS, OPPOSITE, PAIRS, RELATIONS, SHAPES, Pair, definite
from qwenvl.data.templates import prompt
from qwenvl.tokenizer import escape

MAX_OBJECTS = 4
VQA_KINDS = ("colour", "shape", "count", "relation", "exists", "relation_yn")
TWO_IMAGE_DIALOGS = 0.3  # share of dialogs that show two pictures


@dataclass(frozen=True)
class Settings:
    """`image_size`: side of the square images in pixels; `text_ratio`: share of scenes with text;
    `max_objects`: most shapes in a picture (1-4), except where a question needs more (a count
    answer, two objects of a relation): a curriculum knob, e.g. 1 for grounding a lone object."""

    image_size: int = 224
    text_ratio: float = 0.3
    max_objects: int = MAX_OBJECTS


def _count(rng: random.Random, cfg: Settings, least: int = 1) -> int:
    # max(least, ...): a question that needs `least` objects still gets them under a small cap
    return rng.randint(least, max(least, cfg.max_objects))


def _scene(rng, cfg: Settings, pairs: list[Pair], text: bool | None = None, relation_of=None) -> Scene:
    if text is None:
        text = rng.random() < cfg.text_ratio
    return sample_scene(rng, cfg.image_size, pairs, text, relation_of)


def _sample(
    task: str,
    lang: str,
    scenes: list[Scene],
    messages: list[Message],
    answers: list[str],
    boxes: list,
    **meta,
) -> Sample:
    info = {
        "source": "synthetic",
        "image_size": (scenes[0].width, scenes[0].height) if scenes else None,
        "scene": scenes[0].to_dict() if scenes else None,  # picture 1
        "scenes": [s.to_dict() for s in scenes],  # every picture, in order
        **meta,
    }
    return Sample(task, messages, [render(s) for s in scenes], answers, boxes, lang, "", info)


def _plain(task, lang, scenes, prompt_markup, target_markup, answers, boxes, **meta) -> Sample:
    """One user turn showing the pictures with the prompt, one assistant turn with the target."""
    messages = [Message("user", prompt_markup, len(scenes)), Message("assistant", target_markup)]
    return _sample(task, lang, scenes, messages, answers, boxes, **meta)


# -- plain tasks -----------------------------------------------------------------------------


def caption(rng: random.Random, cfg: Settings, lang: str) -> Sample:
    scene = _scene(rng, cfg, random_pairs(rng, _count(rng, cfg)))
    text = describe.caption(scene, lang)
    return _plain("caption", lang, [scene], prompt("caption", lang), escape(text), [text], [])


def grounded_caption(rng: random.Random, cfg: Settings, lang: str) -> Sample:
    scene = _scene(rng, cfg, random_pairs(rng, _count(rng, cfg)))
    markup, plain, boxes = describe.grounded_caption(scene, lang)
    return _plain("grounded_caption", lang, [scene], prompt("grounded_caption", lang), markup, [plain], boxes)


def grounding(rng: random.Random, cfg: Settings, lang: str) -> Sample:
    """`<ref>the red circle</ref><box>` -> `(x1,y1),(x2,y2)</box>`; the referred object is unique."""
    target = rng.choice(PAIRS)
    scene = _scene(rng, cfg, [target] + random_pairs(rng, _count(rng, cfg) - 1, lambda p: p == target))
    shape = scene.find(target)[0]
    box = to_norm(shape.box, scene.width, scene.height)
    expression = definite(target, lang)
    ask_ = prompt("grounding", lang, expression=escape(expression))
    pixel_box = [round(v, 2) for v in shape.box]
    return _plain(
        "grounding",
        lang,
        [scene],
        ask_,
        format_box(box) + "</box>",
        [],
        [box],
        expression=expression,
        pixel_box=pixel_box,
    )


def ocr(rng: random.Random, cfg: Settings, lang: str) -> Sample:
    scene = _scene(rng, cfg, random_pairs(rng, _count(rng, cfg)), text=True)
    string = scene.text.string
    return _plain("ocr", lang, [scene], prompt("ocr", lang), escape(string), [string], [])


def vqa(rng: random.Random, cfg: Settings, lang: str) -> Sample:
    scene, qa = balanced_vqa(rng, cfg, lang)
    ask_ = prompt("vqa", lang, question=escape(qa.question))
    return _plain(
        "vqa",
        lang,
        [scene],
        ask_,
        qa.markup,
        [qa.answer],
        qa.boxes,
        question=qa.question,
        question_type=qa.kind,
    )


def multi_image(rng: random.Random, cfg: Settings, lang: str) -> Sample:
    scenes, qa = two_picture_qa(rng, cfg, lang)
    ask_ = prompt("vqa", lang, question=escape(qa.question))
    return _plain(
        "multi_image",
        lang,
        scenes,
        ask_,
        qa.markup,
        [qa.answer],
        qa.boxes,
        question=qa.question,
        question_type=qa.kind,
    )


def text(rng: random.Random, cfg: Settings, lang: str) -> Sample:
    """No picture: a question a language model answers from text alone."""
    question, answer = text_question(rng, lang)
    ask_ = prompt("vqa", lang, question=escape(question))
    return _plain("text", lang, [], ask_, escape(answer), [answer], [], question=question)


def dialog(rng: random.Random, cfg: Settings, lang: str) -> Sample:
    """2-3 user/assistant turns about one picture (or two, opened by a comparison question).

    Follow-up questions are the ones the scene can answer: caption, colour, shape, count,
    yes/no, relation, where (answered with a box) and text reading.
    """
    turns = rng.randint(2, 3)
    if rng.random() < TWO_IMAGE_DIALOGS:
        scenes, first = two_picture_qa(rng, cfg, lang)
        qas = [first]
        options = [(k, kind) for k in (1, 2) for kind in ASK_KINDS]
    else:
        scenes = [_scene(rng, cfg, random_pairs(rng, _count(rng, cfg)))]
        qas = []
        options = [(None, kind) for kind in ASK_KINDS]
    rng.shuffle(options)
    for k, kind in options:  # caption/count/exists always fit, so this fills every turn
        if len(qas) == turns:
            break
        qa = ask(rng, scenes[(k or 1) - 1], lang, kind)
        if qa is not None:
            qas.append(qa if k is None else about_picture(qa, k, lang))
    messages: list[Message] = []
    for i, qa in enumerate(qas):
        messages.append(Message("user", escape(qa.question), len(scenes) if i == 0 else 0))
        messages.append(Message("assistant", qa.markup))
    turns_meta = [
        {"kind": qa.kind, "question": qa.question, "answer": qa.answer, "boxes": qa.boxes} for qa in qas
    ]
    return _sample(
        "dialog",
        lang,
        scenes,
        messages,
        [qa.answer for qa in qas],
        [b for qa in qas for b in qa.boxes],
        turns=turns_meta,
    )


BUILDERS = {
    "caption": caption,
    "vqa": vqa,
    "grounding": grounding,
    "grounded_caption": grounded_caption,
    "ocr": ocr,
    "multi_image": multi_image,
    "dialog": dialog,
    "text": text,
}


# -- balanced question sets ------------------------------------------------------------------


def balanced_vqa(rng: random.Random, cfg: Settings, lang: str) -> tuple[Scene, QA]:
    """One picture and a question whose answer was drawn uniformly before the picture was built.

    colour/shape: the asked object is the only one of its kind/colour, its colour/kind uniform;
    count: of a kind or colour (0-4 uniform) or of all shapes (1-4); relation: left/right/above/
    below uniform; exists and relation_yn: yes/no 50/50.
    """
    kind = rng.choice(VQA_KINDS)
    if kind in ("colour", "shape"):
        target = rng.choice(PAIRS)
        same = 1 if kind == "colour" else 0  # the attribute the question names must be unique

        def clash(p):
            return p[same] == target[same]

        scene = _scene(rng, cfg, [target] + random_pairs(rng, _count(rng, cfg) - 1, clash))
        shape = scene.find(target)[0]
        return scene, colour_qa(shape, lang) if kind == "colour" else shape_qa(shape, lang)
    if kind == "count":
        which = rng.randrange(3)
        if which == 2:
            scene = _scene(rng, cfg, random_pairs(rng, _count(rng, cfg)))
            return scene, count_qa(scene, lang)
        answer = rng.randint(0, MAX_OBJECTS)
        n = _count(rng, cfg, max(answer, 1))
        if which == 0:
            shape = rng.choice(SHAPES)
            pairs = [(rng.choice(list(COLORS)), shape) for _ in range(answer)]
            pairs += random_pairs(rng, n - answer, lambda p: p[1] == shape)
            scene = _scene(rng, cfg, pairs)
            return scene, count_qa(scene, lang, kind=shape)
        color = rng.choice(list(COLORS))
        pairs = [(color, rng.choice(SHAPES)) for _ in range(answer)]
        pairs += random_pairs(rng, n - answer, lambda p: p[0] == color)
        scene = _scene(rng, cfg, pairs)
        return scene, count_qa(scene, lang, color=color)
    if kind in ("relation", "relation_yn"):
        a, b = rng.sample(PAIRS, 2)
        asked = rng.choice(RELATIONS)
        rel = asked if kind == "relation" or rng.random() < 0.5 else OPPOSITE[asked]
        pairs = [a, b] + random_pairs(rng, _count(rng, cfg, 2) - 2, lambda p: p in (a, b))
        scene = _scene(rng, cfg, pairs, relation_of=(a, b, rel))
        sa, sb = scene.find(a)[0], scene.find(b)[0]
        return scene, relation_qa(sa, sb, lang) if kind == "relation" else relation_yn_qa(sa, sb, asked, lang)
    # exists: a "no" picture still shows the colour and the shape on other objects where it can,
    # so that the answer needs their binding, not just the presence of a colour.
    target = rng.choice(PAIRS)
    n = _count(rng, cfg)
    if rng.random() < 0.5:
        pairs = [target] + random_pairs(rng, n - 1)
    else:
        color, shape = target
        near = [
            (color, rng.choice([s for s in SHAPES if s != shape])),
            (rng.choice([c for c in COLORS if c != color]), shape),
        ]
        rng.shuffle(near)
        pairs = near[:n] + random_pairs(rng, max(0, n - 2), lambda p: p == target)
    scene = _scene(rng, cfg, pairs)
    return scene, exists_qa(scene, target, lang)


def two_picture_qa(rng: random.Random, cfg: Settings, lang: str) -> tuple[list[Scene], QA]:
    """Two pictures and a comparison: which has more X (never a tie), or what changed (one object
    recoloured, removed or added; picture 2 is picture 1 otherwise unchanged)."""
    if rng.random() < 0.5:
        by_kind = rng.random() < 0.5
        value = rng.choice(SHAPES) if by_kind else rng.choice(list(COLORS))
        c1, c2 = rng.sample(range(MAX_OBJECTS + 1), 2)  # distinct counts: no ties

        named = 1 if by_kind else 0  # index of the compared attribute in a (colour, shape) pair

        def picture(c: int) -> Scene:
            if by_kind:
                pairs = [(rng.choice(list(COLORS)), value) for _ in range(c)]
            else:
                pairs = [(value, rng.choice(SHAPES)) for _ in range(c)]
            pairs += random_pairs(rng, _count(rng, cfg, max(c, 1)) - c, lambda p: p[named] == value)
            return _scene(rng, cfg, pairs)

        scenes = [picture(c1), picture(c2)]
        qa = more_qa(*scenes, lang, kind=value) if by_kind else more_qa(*scenes, lang, color=value)
        return scenes, qa
    change = rng.choice(("recolor", "removed", "added"))
    target = rng.choice(PAIRS)
    if change == "recolor":
        new = rng.choice([c for c in COLORS if c != target[0]])
        after = (new, target[1])  # kept unique too, so "turned blue" names one object in picture 2
        first = _scene(
            rng, cfg, [target] + random_pairs(rng, _count(rng, cfg) - 1, lambda p: p in (target, after))
        )
        second = replace(
            first, shapes=tuple(replace(s, color=new) if s.pair == target else s for s in first.shapes)
        )
        return [first, second], change_qa(change, target, lang, new)
    if change == "removed":
        first = _scene(rng, cfg, [target] + random_pairs(rng, _count(rng, cfg, 2) - 1, lambda p: p == target))
        second = replace(first, shapes=tuple(s for s in first.shapes if s.pair != target))
        return [first, second], change_qa(change, target, lang)
    while True:  # added: retry in the rare picture with no free room left
        first = _scene(rng, cfg, random_pairs(rng, rng.randint(1, MAX_OBJECTS - 1), lambda p: p == target))
        second = add_shape(rng, first, target)
        if second is not None:
            return [first, second], change_qa(change, target, lang)

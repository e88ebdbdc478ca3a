"""Captions of a scene, plain and grounded, in English or Chinese.

Objects are listed left to right (by centre x). Plain captions group identical objects ("two
blue squares"); grounded captions name every object with its own normalized [0, 1000) box.
"""

from __future__ import annotations

from qwenvl.boxes import format_ref, to_norm
from qwenvl.data.synthetic.scene import Scene
from qwenvl.data.synthetic.vocab import counted, join

Box = tuple[int, int, int, int]


def _end(lang: str) -> str:
    return "." if lang == "en" else "。"


def _text_phrase(string: str, lang: str) -> str:
    return f'the text "{string}"' if lang == "en" else f"文字“{string}”"


def caption(scene: Scene, lang: str = "en") -> str:
    """Plain text, e.g. `a red circle and two blue squares.` / `一个红色的圆形和两个蓝色的正方形。`.

    A scene with text ends with `, with the text "K3P".` / `，还有文字“K3P”。`.
    """
    groups: dict = {}  # pair -> count, in order of each group's leftmost member
    for shape in scene.left_to_right():
        groups[shape.pair] = groups.get(shape.pair, 0) + 1
    out = join([counted(pair, n, lang) for pair, n in groups.items()], lang)
    if scene.text is not None:
        out += (", with " if lang == "en" else "，还有") + _text_phrase(scene.text.string, lang)
    return out + _end(lang)


def grounded_caption(scene: Scene, lang: str = "en") -> tuple[str, str, list[Box]]:
    """(markup, plain text, normalized boxes): every object, then the text, each with its box.

    Markup: `<ref>a red circle</ref><box>(x1,y1),(x2,y2)</box> and <ref>a blue square</ref><box>..</box>.`
    """
    refs: list[tuple[str, tuple[float, float, float, float]]] = [
        (counted(s.pair, 1, lang), s.box) for s in scene.left_to_right()
    ]
    if scene.text is not None:
        refs.append((_text_phrase(scene.text.string, lang), scene.text.box))
    boxes = [to_norm(box, scene.width, scene.height) for _, box in refs]
    # The joiners are fixed words with no markup characters, so only the refs need escaping
    # (format_ref does it).
    markup = join([format_ref(name, [b]) for (name, _), b in zip(refs, boxes, strict=True)], lang) + _end(
        lang
    )
    plain = join([name for name, _ in refs], lang) + _end(lang)
    return markup, plain, boxes

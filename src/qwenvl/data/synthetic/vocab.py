"""Words of the synthetic world in English and Chinese: colours, shapes, numbers, positions.

Only plain text lives here (never markup): callers escape it before placing it in a prompt.
"""

from __future__ import annotations

# Six saturated colours, far apart in RGB and far from the light backgrounds, so that every
# pixel of a shape names its colour exactly (shapes are drawn without anti-aliasing).
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "yellow": (240, 200, 20),
    "purple": (140, 40, 180),
    "orange": (250, 130, 0),
}
COLOR_ZH = {
    "red": "红色",
    "green": "绿色",
    "blue": "蓝色",
    "yellow": "黄色",
    "purple": "紫色",
    "orange": "橙色",
}

SHAPES = ("circle", "square", "triangle", "star", "cross")
SHAPE_PLURAL = {
    "circle": "circles",
    "square": "squares",
    "triangle": "triangles",
    "star": "stars",
    "cross": "crosses",
}
SHAPE_ZH = {"circle": "圆形", "square": "正方形", "triangle": "三角形", "star": "星形", "cross": "十字形"}

NUMBER_EN = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
COUNT_ZH = ("零个", "一个", "两个", "三个", "四个")  # with the measure word 个

RELATIONS = ("left", "right", "above", "below")  # where object A lies relative to object B
RELATION_ZH = {"left": "左边", "right": "右边", "above": "上面", "below": "下面"}
OPPOSITE = {"left": "right", "right": "left", "above": "below", "below": "above"}

YES_NO = {"en": ("yes", "no"), "zh": ("是", "否")}

# OCR strings: uppercase letters and digits without the look-alike pairs O/0 and I/1, so that
# every string can be read back exactly from the pixels.
TEXT_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

Pair = tuple[str, str]  # (colour, shape): what makes an object describable
PAIRS: tuple[Pair, ...] = tuple((c, s) for c in COLORS for s in SHAPES)


def color_word(color: str, lang: str) -> str:
    """`red` / `红色`."""
    return color if lang == "en" else COLOR_ZH[color]


def shape_word(shape: str, lang: str, plural: bool = False) -> str:
    """`circle` (or `circles`) / `圆形` (Chinese has no plural)."""
    if lang == "zh":
        return SHAPE_ZH[shape]
    return SHAPE_PLURAL[shape] if plural else shape


def pair_name(pair: Pair, lang: str) -> str:
    """`red circle` / `红色的圆形`, with no article."""
    color, shape = pair
    return f"{color} {shape}" if lang == "en" else f"{COLOR_ZH[color]}的{SHAPE_ZH[shape]}"


def definite(pair: Pair, lang: str) -> str:
    """`the red circle` / `红色的圆形`: a referring expression for a unique object."""
    return f"the {pair_name(pair, lang)}" if lang == "en" else pair_name(pair, lang)


def counted(pair: Pair, count: int, lang: str) -> str:
    """`a red circle`, `an orange star`, `two blue squares` / `一个红色的圆形`, `两个蓝色的正方形`."""
    color, shape = pair
    if lang == "zh":
        return COUNT_ZH[count] + pair_name(pair, lang)
    if count == 1:
        return f"{'an' if color[0] in 'aeiou' else 'a'} {color} {shape}"
    return f"{NUMBER_EN[count]} {color} {SHAPE_PLURAL[shape]}"


def join(items: list[str], lang: str) -> str:
    """`a`, `a and b`, `a, b and c` / `a和b`, `a、b和c`."""
    if len(items) <= 1:
        return "".join(items)
    if lang == "zh":
        return "、".join(items[:-1]) + "和" + items[-1]
    return ", ".join(items[:-1]) + " and " + items[-1]


def relation_word(relation: str, lang: str) -> str:
    return relation if lang == "en" else RELATION_ZH[relation]


def picture_word(k: int, lang: str) -> str:
    """`Picture 2` / `图片2`: how answers name one of several pictures (1-based)."""
    return f"Picture {k}" if lang == "en" else f"图片{k}"

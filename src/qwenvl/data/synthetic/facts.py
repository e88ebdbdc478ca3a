"""Text-only questions (no image): small arithmetic and word facts about the world's vocabulary.

They stand in for the pure-text data that keeps a vision-language model's language ability.
Questions and answers are plain text.
"""

from __future__ import annotations

import random

from qwenvl.data.synthetic.vocab import COLOR_ZH, COLORS, SHAPE_ZH, SHAPES, color_word

SIDES = {"triangle": 3, "square": 4}
POINTS = {"star": 5, "cross": 4}  # the world's star has five points, its cross four arms
MIXES = {("red", "yellow"): "orange", ("blue", "yellow"): "green", ("red", "blue"): "purple"}


def arithmetic(rng: random.Random, lang: str) -> tuple[str, str]:
    op = rng.choice("+-*")
    if op == "*":
        a, b = rng.randint(0, 10), rng.randint(0, 10)
        value, en, zh = a * b, "times", "乘"
    else:
        a, b = rng.randint(0, 20), rng.randint(0, 20)
        if op == "-":
            a, b = max(a, b), min(a, b)  # keep results non-negative
            value, en, zh = a - b, "minus", "减"
        else:
            value, en, zh = a + b, "plus", "加"
    q = f"What is {a} {en} {b}?" if lang == "en" else f"{a}{zh}{b}等于多少？"
    return q, str(value)


def word_fact(rng: random.Random, lang: str) -> tuple[str, str]:
    which = rng.randrange(5)
    if which == 0:
        shape = rng.choice(list(SIDES))
        q = f"How many sides does a {shape} have?" if lang == "en" else f"{SHAPE_ZH[shape]}有几条边？"
        return q, str(SIDES[shape])
    if which == 1:
        shape = rng.choice(list(POINTS))
        q = f"How many points does a {shape} have?" if lang == "en" else f"{SHAPE_ZH[shape]}有几个角？"
        return q, str(POINTS[shape])
    if which == 2:  # translate a word of the world's vocabulary
        en, zh = rng.choice(list(COLOR_ZH.items()) + list(SHAPE_ZH.items()))
        if rng.random() < 0.5:
            return (f"What is the Chinese word for {en}?" if lang == "en" else f"{en}的中文是什么？"), zh
        return (f"What is the English word for {zh}?" if lang == "en" else f"{zh}的英文是什么？"), en
    if which == 3:
        (a, b), mix = rng.choice(list(MIXES.items()))
        if rng.random() < 0.5:
            a, b = b, a
        q = (
            f"What colour do you get by mixing {a} and {b}?"
            if lang == "en"
            else f"{COLOR_ZH[a]}和{COLOR_ZH[b]}混合得到什么颜色？"
        )
        return q, color_word(mix, lang)
    word = rng.choice(list(COLORS) + list(SHAPES))
    q = f'How many letters are in the word "{word}"?' if lang == "en" else f"单词“{word}”有几个字母？"
    return q, str(len(word))


def text_question(rng: random.Random, lang: str) -> tuple[str, str]:
    """(question, answer), half arithmetic and half word facts."""
    return arithmetic(rng, lang) if rng.random() < 0.5 else word_fact(rng, lang)

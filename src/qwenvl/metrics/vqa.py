"""VQA accuracy: per question, min(1, #matching answers / 3) averaged over the leave-one-out
subsets of its (usually 10) human answers; the metric is the mean over questions.

Inputs per sample: a predicted answer (str) and the list of human answers (list of str), plus
an optional sample id. Output: a float64 scalar in [0, 1].

Leave-one-out is by *position*: with answers [a1..a10], subset i drops ai only, even when other
answers have the same text. With fewer than 10 answers the same is done over those present (one
answer alone can never be matched by "the others", so it scores 0, as in the official code). A
missing or empty answer list counts as a miss and logs a warning naming the sample id.

Normalization (official VQA eval script): newline/tab -> space and strip; `processPunctuation`
(the `punct` characters are deleted when they touch a space or the text contains a digit,comma,digit
group, otherwise replaced by a space; periods not before a digit are removed - by a regex whose
`(?!<=\\d)` is a typo, so "2." loses its period and "2.5" keeps it - at most 32 of them, since the
script passes `re.UNICODE` as `count`); `processDigitArticle` (lower-case, number words
"zero".."ten" and "none" -> digits, articles a/an/the dropped, contractions map "dont" ->
"don't"). The three `mode`s differ in *when* this is applied:

* ``"evalai"`` (default): prediction and answers are always fully normalized.
* ``"vqa_toolkit"``: the official toolkit's current script: prediction and answers are fully
  normalized only when the answers are not all identical; otherwise both are compared as typed
  (after strip).
* ``"qwen_vl"``: Qwen-VL's (older toolkit) logic: the prediction is always fully normalized, the
  answers only get `processPunctuation`, and only when they are not all identical.

Examples, prediction vs answers:

==================================  ========  ===========  ========
prediction vs answers               evalai    vqa_toolkit  qwen_vl
==================================  ========  ===========  ========
"2." vs 10 x "2"                    1.0       0.0          1.0
"Two" vs 10 x "2"                   1.0       0.0          1.0
"two" vs 10 x "two"                 1.0       1.0          0.0
"cat" vs 9 x "the cat", 1 x "dog"   1.0       1.0          0.0
"yes" vs 3 x "yes", 7 x "no"        0.9       0.9          0.9
==================================  ========  ===========  ========

(In ``qwen_vl`` mode "two" becomes "2" but the identical answers stay "two", and the answers
"the cat" keep their article; the last row is the leave-one-out average: the 7 subsets that drop
a "no" keep all 3 "yes" -> 1, the 3 that drop a "yes" keep 2 -> 2/3.)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from qwenvl.metrics.answers import AnswerMetric
from qwenvl.metrics.base import mean

CONTRACTIONS = {
    "aint": "ain't",
    "arent": "aren't",
    "cant": "can't",
    "couldve": "could've",
    "couldnt": "couldn't",
    "couldn'tve": "couldn't've",
    "couldnt've": "couldn't've",
    "didnt": "didn't",
    "doesnt": "doesn't",
    "dont": "don't",
    "hadnt": "hadn't",
    "hadnt've": "hadn't've",
    "hadn'tve": "hadn't've",
    "hasnt": "hasn't",
    "havent": "haven't",
    "hed": "he'd",
    "hed've": "he'd've",
    "he'dve": "he'd've",
    "hes": "he's",
    "howd": "how'd",
    "howll": "how'll",
    "hows": "how's",
    "Id've": "I'd've",
    "I'dve": "I'd've",
    "Im": "I'm",
    "Ive": "I've",
    "isnt": "isn't",
    "itd": "it'd",
    "itd've": "it'd've",
    "it'dve": "it'd've",
    "itll": "it'll",
    "let's": "let's",
    "maam": "ma'am",
    "mightnt": "mightn't",
    "mightnt've": "mightn't've",
    "mightn'tve": "mightn't've",
    "mightve": "might've",
    "mustnt": "mustn't",
    "mustve": "must've",
    "neednt": "needn't",
    "notve": "not've",
    "oclock": "o'clock",
    "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at",
    "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at",
    "shant": "shan't",
    "shed've": "she'd've",
    "she'dve": "she'd've",
    "she's": "she's",
    "shouldve": "should've",
    "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll",
    "somebodys": "somebody's",
    "someoned": "someone'd",
    "someoned've": "someone'd've",
    "someone'dve": "someone'd've",
    "someonell": "someone'll",
    "someones": "someone's",
    "somethingd": "something'd",
    "somethingd've": "something'd've",
    "something'dve": "something'd've",
    "somethingll": "something'll",
    "thats": "that's",
    "thered": "there'd",
    "thered've": "there'd've",
    "there'dve": "there'd've",
    "therere": "there're",
    "theres": "there's",
    "theyd": "they'd",
    "theyd've": "they'd've",
    "they'dve": "they'd've",
    "theyll": "they'll",
    "theyre": "they're",
    "theyve": "they've",
    "twas": "'twas",
    "wasnt": "wasn't",
    "wed've": "we'd've",
    "we'dve": "we'd've",
    "weve": "we've",
    "werent": "weren't",
    "whatll": "what'll",
    "whatre": "what're",
    "whats": "what's",
    "whatve": "what've",
    "whens": "when's",
    "whered": "where'd",
    "wheres": "where's",
    "whereve": "where've",
    "whod": "who'd",
    "whod've": "who'd've",
    "who'dve": "who'd've",
    "wholl": "who'll",
    "whos": "who's",
    "whove": "who've",
    "whyll": "why'll",
    "whyre": "why're",
    "whys": "why's",
    "wont": "won't",
    "wouldve": "would've",
    "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've",
    "yall": "y'all",
    "yall'll": "y'all'll",
    "y'allll": "y'all'll",
    "yall'd've": "y'all'd've",
    "y'alld've": "y'all'd've",
    "y'all'dve": "y'all'd've",
    "youd": "you'd",
    "youd've": "you'd've",
    "you'dve": "you'd've",
    "youll": "you'll",
    "youre": "you're",
    "youve": "you've",
}  # fmt: skip  (verbatim from the official script, including its never-matching capitalized keys)
MANUAL_MAP = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
ARTICLES = frozenset(["a", "an", "the"])
PUNCT = [
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
]
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")  # sic: the official pattern
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")
MODES = ("evalai", "vqa_toolkit", "qwen_vl")


def process_punctuation(text: str) -> str:
    """The official `processPunctuation`, verbatim in behaviour."""
    out = text
    digit_comma = _COMMA_STRIP.search(text) is not None
    for p in PUNCT:
        if (p + " " in text or " " + p in text) or digit_comma:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out, count=re.UNICODE)  # the script passes re.UNICODE (32) as count


def process_digit_article(text: str) -> str:
    """The official `processDigitArticle`: lower-case, number words -> digits, drop articles, contractions."""
    words = [MANUAL_MAP.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in ARTICLES]
    return " ".join(CONTRACTIONS.get(w, w) for w in words)


def normalize_answer(text: str) -> str:
    """Full normalization: punctuation, then digits/articles/contractions."""
    return process_digit_article(process_punctuation(text))


def _clean(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def vqa_score(pred: str, answers: Sequence[str], mode: str = "evalai") -> float:
    """One question's accuracy (see the module docstring). `answers` must be non-empty."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "qwen_vl":
        res = normalize_answer(_clean(pred))
        gts = list(answers)
        if len(set(gts)) > 1:
            gts = [process_punctuation(a) for a in gts]
    else:
        res = _clean(pred)
        gts = [_clean(a) for a in answers]
        if mode == "evalai" or len(set(gts)) > 1:
            res = normalize_answer(res)
            gts = [normalize_answer(a) for a in gts]
    matches = [a == res for a in gts]
    total = sum(matches)
    # leave answer i out (by position): the others match `total - matches[i]` times
    return mean(min(1.0, (total - m) / 3.0) for m in matches)


class VQAAccuracy(AnswerMetric):
    """Mean VQA accuracy over questions.

    Args:
        mode: "evalai" (default), "vqa_toolkit" or "qwen_vl"; see the module docstring.

    `update(preds, targets, ids=None)`: `preds` list of str (None = empty answer), `targets`
    list of answer lists (None or [] is a miss, with a warning).
    """

    def __init__(self, mode: str = "evalai", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode

    def _score_sample(self, pred: str, references: list[str]) -> float:
        return vqa_score(pred, references, self.mode)

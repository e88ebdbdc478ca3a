"""The pure-Python PTB tokenizer against outputs of CoreNLP 3.4.1 (pycocoevalcap's Java tokenizer)."""

import importlib.util
import shutil
from pathlib import Path

import pytest

from qwenvl.metrics.bench_cider import synthetic_corpus
from qwenvl.metrics.ptb import ptb_tokenize

# (caption, what pycocoevalcap's PTBTokenizer returns for it), recorded from the Java tokenizer
GOLDEN = [
    ("A man's dog isn't here.", "a man 's dog is n't here"),
    (
        "I can't, won't, cannot, they're, we've, I'll, he'd, I'm",
        "i ca n't wo n't can not they 're we 've i 'll he 'd i 'm",
    ),
    ("gonna wanna gotta lemme gimme 'tis", "gon na wan na got ta lem me gim me 't is"),
    ("The dogs' bowls are \"red\" and 'blue' here", "the dogs bowls are red and blue here"),
    (
        "A cat (sitting) on a [mat] with {braces}",
        "a cat -lrb- sitting -rrb- on a -lsb- mat -rsb- with -lcb- braces -rcb-",
    ),
    ("colour grey centre", "colour grey centre"),  # no americanization in 3.4.1
    (
        "It costs $5.50 or 10% or 1,000 or 3.5 or 2:30 or -5",
        "it costs $ 5.50 or 10 % or 1,000 or 3.5 or 2:30 or -5",
    ),
    ("e-mail t-shirt two-story 3-d 2nd '80s", "e-mail t-shirt two-story 3-d 2nd '80s"),
    (
        "U.S. Mr. Smith and Dr. Who at St. Mark's near Mt. Everest etc.",
        "u.s. mr. smith and dr. who at st. mark 's near mt. everest etc.",
    ),
    ("the letter a. the letter B. vitamin c. now", "the letter a. the letter b. vitamin c. now"),
    ("Wait... what?! Really?? Yes!!! no -- maybe", "wait what ?! really ?? yes !!! no maybe"),
    ("a/b and/or 50/50 A*B & ~ ^ | = +", "a/b and/or 50/50 a * b & ~ ^ | = +"),
    ("café naïve São Paulo", "café naïve são paulo"),
    ("a man on a skateboard.A woman", "a man on a skateboard.a woman"),
    ("  leading spaces\tand tabs  ", "leading spaces and tabs"),
    ("o'clock rock'n'roll y'all ma'am 'em", "o'clock rock 'n' roll y' all ma'am 'em"),
    ("No. 5 and Fig. 3 but no. thing", "no. 5 and fig. 3 but no thing"),
    ("Co. Inc. Ltd. vs. Jr.", "co. inc. ltd. vs. jr."),
    ("x. The end", "x the end"),  # a one-letter abbreviation before "The" ends the sentence
    ("cat., etc.; jan.x", "cat. etc. jan. x"),
    ("#hashtag @user #1 C++ c# :) ;-)", "#hashtag @user # 1 c++ c# :-rrb- ;--rrb-"),
    ("“curly” ‘quotes’ « guillemets »", "curly quotes guillemets"),
    ("", ""),
]


@pytest.mark.parametrize(("caption", "expected"), GOLDEN)
def test_golden_tokenizations(caption, expected):
    assert ptb_tokenize(caption) == expected


def test_newlines_inside_a_caption_are_spaces():
    assert ptb_tokenize("two\nlines") == "two lines"


# Realistic captions plus the tricky forms above, each followed by a plain caption so that
# CoreNLP's look-ahead into the next line of its file is the same as ours.
PARITY_CASES = [c for c, _ in GOLDEN[:-1]] + [
    "A group of people standing around a kitchen, cooking.",
    "Two giraffes (one young) eat leaves from a tall tree!",
    "A woman's hand holds a phone -- it's an old flip-phone...",
    "The 3 dogs aren't allowed on the couch; they're on the rug.",
    "Someone's 10-speed bike is parked at 5th Ave. in N.Y.",
    'A sign reads "STOP" at the corner of Main St. and 2nd.',
    "A plate w/ pizza & fries, $9.99 at Joe's.",
    "An 18-wheeler truck drives down the I-95 highway at 65mph.",
]


def _ptb_jar_missing() -> str | None:
    """Why pycocoevalcap's Java tokenizer cannot run here, or None."""
    if shutil.which("java") is None:
        return "no `java` on PATH: pycocoevalcap's PTBTokenizer is a Java program"
    spec = importlib.util.find_spec("pycocoevalcap")  # a namespace package: no __init__.py
    if spec is None or not spec.submodule_search_locations:
        return "pycocoevalcap is not installed (pip install -e '.[dev]')"
    jars = [Path(p) / "tokenizer" / "stanford-corenlp-3.4.1.jar" for p in spec.submodule_search_locations]
    if not any(j.exists() for j in jars):
        return "pycocoevalcap ships without stanford-corenlp-3.4.1.jar"
    return None


@pytest.mark.skipif(_ptb_jar_missing() is not None, reason=str(_ptb_jar_missing()))
def test_parity_with_pycocoevalcap_ptbtokenizer():
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    cands, refs = synthetic_corpus(150, 5, seed=3)
    captions = PARITY_CASES + cands + [r for rs in refs for r in rs]
    # every caption is followed by one starting with "A ", as ours assumes
    lines = {i: [{"caption": c}, {"caption": "A dog."}] for i, c in enumerate(captions)}
    tokenized = PTBTokenizer().tokenize(lines)
    mismatches = [(c, tokenized[i][0], ptb_tokenize(c)) for i, c in enumerate(captions)]
    mismatches = [m for m in mismatches if m[1] != m[2]]
    assert not mismatches

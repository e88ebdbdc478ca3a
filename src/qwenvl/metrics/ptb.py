"""Caption tokenization as pycocoevalcap's `PTBTokenizer` does it, in pure Python.

pycocoevalcap pipes every caption through Stanford CoreNLP 3.4.1's `PTBTokenizer`
(`-preserveLines -lowerCase`, a Java program) and then drops the tokens in `PUNCTUATIONS`.
This module re-implements that lexer's rules that matter for captions, so CIDEr can be
computed without a Java runtime:

    >>> ptb_tokenize("A man's dog isn't here.")
    "a man 's dog is n't here"
    >>> ptb_tokenize('Two dogs (one is brown) play in the grass, near St. Mark\\'s')
    "two dogs -lrb- one is brown -rrb- play in the grass near st. mark 's"

Like CoreNLP it works by longest match over an ordered list of rules (ties go to the rule
listed first), with JFlex-style trailing context: a rule `r1/r2` competes with the length of
`r1 r2` but consumes only `r1`.

Quirks reproduced on purpose, because pycocoevalcap has them:

* `PUNCTUATIONS` lists `-LRB-` etc. in upper case but the text is lower-cased first, so
  bracket tokens such as `-lrb-` survive; `u.s.` keeps its period.
* Contractions split (`ca n't`, `gon na`, `can not`); hyphenated words stay whole.

Known differences, all rare in captions: each caption is lexed on its own, whereas pycocoevalcap
lexes all captions as one file, so a rule can look into the next caption - we assume it starts
with "A " (a caption ending in a one-letter abbreviation, "vitamin c.", then loses the period),
and a stray `\\r` or U+2028 inside a caption, which shifts every later caption there, is a space
here; odd forms such as phone numbers run into dates, or characters whose Unicode class changed
since 2014-era Java, may split differently. `tests/metrics/test_ptb_tokenizer.py` checks
agreement with the Java tokenizer where `java` is installed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache

# Tokens that pycocoevalcap removes after tokenization (verbatim, including the upper-case ones
# that can no longer occur after lower-casing).
PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)


def _numeric_non_digits() -> str:
    """A regex character class of the characters in Unicode categories No and Nl (½, ², Ⅻ).

    Python's `\\w` counts them as word characters; Java's isLetter/isDigit (CoreNLP's classes)
    do not: "½" is a fraction token there, not part of a word.
    """
    ranges: list[tuple[int, int]] = []
    for c in range(0x30000):
        if unicodedata.category(chr(c)) in ("No", "Nl"):
            if ranges and ranges[-1][1] == c - 1:
                ranges[-1] = (ranges[-1][0], c)
            else:
                ranges.append((c, c))
    return (
        "[" + "".join(re.escape(chr(a)) + ("-" + re.escape(chr(b)) if b > a else "") for a, b in ranges) + "]"
    )


_NUMERIC = _numeric_non_digits()
_L = rf"(?:(?!{_NUMERIC})[^\W\d_])"  # a letter (Java Character.isLetter)
_D = r"\d"
_AN = rf"(?:{_L}|\d)"  # letter or digit
_APOS = r"(?:['\u0092\u2019]|&apos;)"
_APOSX = r"(?:['`\u0092\u2019\u0091\u2018\u201b]|&apos;)"  # also found inside words
_SPACE = r"[ \t\u00a0\u2000-\u200a\u3000]"
_SPACENL = r"[ \t\u00a0\u2000-\u200a\u3000\r\n\u2028\u2029\u000b\u000c\u0085]"
_HYPHEN = r"[-_\u058a\u2010\u2011]"

_WORD1 = rf"{_L}(?:{_L}|{_D})*"
_WORD = rf"{_WORD1}(?:[.!?]{_WORD1})*"  # "cat.dog" and "what?why" are single tokens in 3.4.1
_REDAUX = rf"{_APOS}(?:[msdMSD]|(?i:re|ve|ll))"
_SWORD = r"[A-Za-z\u00ad]*[A-MO-Za-mo-z]\u00ad*"
_SREDAUX = rf"(?i:n){_APOSX}(?i:t)"
_ACRO = (
    r"[A-Za-z](?:\.[A-Za-z])+|(?i:Canada|Sino|Korean|EU|Japan|non)-(?i:U\.S)|(?i:U\.S\.-(?:U\.K|U\.S\.S\.R))"
)
_NUM = rf"{_D}*(?:[.:,\u00ad\u066b\u066c]{_D}+)+|{_D}+"
_THING = rf"(?:[dDoOlL]{_APOSX}{_AN})?{_AN}+(?:{_HYPHEN}(?:[dDoOlL]{_APOSX}{_AN})?{_AN}+)*"
_HTHING = rf"[A-Za-z0-9][A-Za-z0-9.,\u00ad]*(?:-(?:(?:{_ACRO})\.|[A-Za-z0-9\u00ad]+))+"

# Abbreviations that keep their final period, measured against CoreNLP 3.4.1. The original is
# caseless except inside character classes, hence the mixed forms. Group 1 also wins against a
# longer dotted word when one letter follows ("jan.x" -> "jan." "x"); group 2 does not.
_AB1 = (
    "jan feb mar apr jun jul aug sep sept oct nov dec mon tue tues wed thu thurs fri "
    "ala ariz calif colo conn dak fla ga ind kan kans ky md mich minn mo mont neb nev okla penn tenn va vt "
    "wis wisc wyo inc co cos corp ltd plc bancorp bhd assn univ intl sys bldg ct "
    "tel est ext sq jr sr bros blvd rd esq etc al seq ph.d ed.d"
)
_AB1_MIXED = (
    r"A(?i:rk)|I(?i:ll)|M(?i:ass|iss)|O(?i:re)|W(?i:ash)|D(?i:el)|L(?i:a)|P(?i:a)|T(?i:ex)|(?i:pp?t)y(?i:s)?"
)
_AB2 = (
    "mr mrs ms drs dr prof profs sen sens rep reps atty attys lt col gen messrs gov govs adm rev maj sgt "
    "cpl pvt mt capt st ste ave pres lieut hon brig cmdr comdr pfc spc supt supts det mme mlle "
    "vs alex wm jos cie cf treas invt elec natl dept ph ft a.k.a"
)
_AB2_MIXED = r"(?i:m)[ft](?i:g)"
_AB_BEFORE_NUMBER = "no nos prop fig figs pp art op"  # only when a number follows: "No. 5"


def _alternation(words: str) -> str:
    # Longest first: Python takes the first alternative that matches, JFlex the longest.
    return "|".join(re.escape(w) for w in sorted(words.split(), key=len, reverse=True))


_ABBREV1 = rf"(?:(?i:{_alternation(_AB1)})|{_AB1_MIXED})\."
_ABBREV2 = rf"(?:(?i:{_alternation(_AB2)})|{_AB2_MIXED}|{_ACRO}|[A-Za-z])\."
_ABBREV_NUMBER = rf"(?i:{_alternation(_AB_BEFORE_NUMBER)})\."
# A single-letter abbreviation before one of these words ends a sentence. The end of a caption
# counts as one too: in pycocoevalcap's file the next caption follows, and most start with "A ".
_SENTENCE_START = (
    rf"{_SPACE}+(?:A(?i:bout|ccording|dditionally|fter|n|s|t)?|B(?i:ut)|E(?i:arlier)|H(?i:e|er|ere|owever)"
    r"|I(?i:f|n|t)|L(?i:ast)|M(?i:any|ore|r\.|s\.)|N(?i:ow)|O(?i:nce|ne|ther|ur)|S(?i:he|ince|o|ome|uch)"
    rf"|T(?i:hat|he|hen|here|hese|hey|his)|W(?i:e|hen|hile|hat)|Y(?i:et|ou)){_SPACENL}|{_SPACE}*\n\Z"
)
_SMILEY = r"[<>]?[:;=][\-o*']?[()DPdpO\\{@|\[\]]"
_ASIAN_SMILEY = (
    r"[\^xX=~<>]\.\[[\^xX=~<>]|[\-\^xX=~<>']_[\-\^xX=~<>']|\([\-\^xX=~<>'][_.]?[\-\^xX=~<>']\)"
    r"|\([\^xX=~<>']-[\^xX=~<>'`]\)"
)

_OPEN_CLOSE = {"(": "-LRB-", ")": "-RRB-", "[": "-LSB-", "]": "-RSB-", "{": "-LCB-", "}": "-RCB-"}
_CURRENCY = {"\u00a2": "cents", "\u00a3": "#", "\u0080": "$", "\u00a4": "$", "\u20a0": "$", "\u20ac": "$"}
_FRACTIONS = {"\u00bc": "1/4", "\u00bd": "1/2", "\u00be": "3/4", "\u2153": "1/3"}
_MISC = (
    "\u00a6\u00a7\u00a8\u00a9\u00ac\u00ae\u00af\u00b0-\u00b3\u00b4-\u00ba\u00d7\u00f7\u0387\u05be\u05c0\u05c3"
    "\u05c6\u05f3\u05f4\u0600-\u0603\u0606-\u060a\u060c\u0614\u061b\u061e\u066a\u066d\u0703-\u070d\u07f6-\u07f8"
    "\u0964\u0965\u0e4f\u2020-\u2023\u2032-\u2038\u2044\u207a-\u207f\u208a-\u208e\u2100-\u214f\u2190-\u21ff"
    "\u2200-\u22ff\u2300-\u23ff\u2460-\u24ff\u25a0-\u25ff\u2600-\u27bf\u3001-\u3003\u3012\u30fb"
    "\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65"
)

Action = Callable[[str], list[str]]


def _same(text: str) -> list[str]:
    return [text]


def _drop(text: str) -> list[str]:
    return []


def _nbsp(text: str) -> list[str]:
    return [text.replace(" ", "\u00a0")]


def _phone(text: str) -> list[str]:
    # phone numbers and emoticons: spaces -> U+00A0, parentheses -> -LRB- / -RRB-
    return [text.replace(" ", "\u00a0").replace("(", "-LRB-").replace(")", "-RRB-")]


def _hyphens(text: str) -> list[str]:
    return ["--" if 3 <= len(text) <= 4 else text]


def _assimilation(text: str) -> list[str]:
    # cannot -> can not; gonna -> gon na; 'tis -> 't is
    if text.lower() == "cannot":
        return [text[:3], text[3:]]
    if text.startswith(("'", "\u2019")):
        return [text[:2], text[2:]]
    return [text[:-2], text[-2:]]


_LATEX_QUOTES = str.maketrans(
    {
        "\u0091": "`",
        "\u2018": "`",
        "\u201b": "`",
        "\u2039": "`",
        "\u0092": "'",
        "\u2019": "'",
        "\u203a": "'",
        "\u0093": "``",
        "\u201c": "``",
        "\u00ab": "``",
        "\u0094": "''",
        "\u201d": "''",
        "\u00bb": "''",
    }
)


def _quote(text: str, left: bool = False) -> str:
    """CoreNLP's latexQuotes normalization: every quote character becomes ` ' `` or ''."""
    text = text.replace("&apos;", "'").replace("&quot;", '"')
    text = text.replace("'", "`") if left else text
    return text.replace('"', "``" if left else "''").translate(_LATEX_QUOTES)


def _quoted(text: str) -> list[str]:
    return [_quote(text)]


def _currency(text: str) -> list[str]:
    return [_CURRENCY.get(text, text)]


def _fraction(text: str) -> list[str]:
    return [_FRACTIONS.get(text, text)]


def _bracket(text: str) -> list[str]:
    return [_OPEN_CLOSE[text]]


# (pattern consumed, trailing context or None, action). Order breaks ties between equal lengths.
_RULES: list[tuple[str, str | None, Action]] = [
    (r"(?i:cannot|gonna|gotta|lemme|gimme|wanna)|['\u2019](?i:tis|twas)", None, _assimilation),
    (r"<\/?[A-Za-z!][^>]*>", None, _nbsp),  # SGML tag
    (r"&(?i:MD|mdash|ndash);|[\u0096\u0097\u2013\u2014\u2015]", None, lambda t: ["--"]),
    (r"(?i:&amp;)", None, lambda t: ["&"]),
    (r"&(?i:HT|TL|UR|LR|QC|QL|QR|odq|cdq|#[0-9]+);", None, _same),
    (_WORD, _REDAUX, _same),  # man|'s
    (_SWORD, _SREDAUX, _same),  # is|n't
    (_ABBREV1, _L, _same),
    (_WORD, None, _same),
    (
        rf"{_APOS}(?i:n){_APOS}?|[lLdDjJ]{_APOS}|(?i:dunkin|somethin|ol){_APOS}|{_APOS}(?i:em)"
        rf"|[A-HJ-XZn]{_APOSX}{_L}{{2}}{_L}*|{_APOS}[2-9]0(?i:s)|{_APOS}(?i:till?)"
        rf"|{_L}+[aeiouyAEIOUY]{_APOSX}[aeiouA-Z]{_L}*|{_APOS}(?i:cause)"
        r"|(?i:cont'd\.?|nor'easter|c'mon|e'er|s'mores|ev'ry|li'l|nat'l)",
        None,
        _same,
    ),
    (rf"(?i:y){_APOS}", _L, _same),  # y'|all
    (r"(?i:https?):\/\/[^ \t\n\f\r\"<>|()]+[^ \t\n\f\r\"<>|.!?(){},-]", None, _same),
    (
        r"(?:(?i:www)\.(?:[^ \t\n\f\r\"<>|.!?(){},]+\.)+[a-zA-Z]{2,4}"
        r"|(?:[^ \t\n\f\r\"`'<>|.!?(){},-_$]+\.)+(?i:com|net|org|edu))"  # ",-_" is a range
        r"(?:\/[^ \t\n\f\r\"<>|()]+[^ \t\n\f\r\"<>|.!?(){},-])?",
        None,
        _same,
    ),
    (
        r"[a-zA-Z0-9][^ \t\n\f\r\"<>|()\u00a0]*@"  # e-mail
        r"(?:[^ \t\n\f\r\"<>|().\u00a0]+\.)*[^ \t\n\f\r\"<>|().\u00a0]+",
        None,
        _same,
    ),
    (_SMILEY, r"[^A-Za-z0-9]", _phone),
    (_ASIAN_SMILEY, None, _phone),
    (_REDAUX, r"[^A-Za-z]", _quoted),
    (_SREDAUX, None, _quoted),
    (rf"{_D}{{1,2}}[\-\/]{_D}{{1,2}}[\-\/]{_D}{{2,4}}", None, _same),  # date
    (rf"[\-+]?(?:{_NUM})", None, lambda t: [t.replace("\u00ad", "")]),
    (
        r"[\u207a\u207b\u208a\u208b]?(?:[\u2070\u00b9\u00b2\u00b3\u2074-\u2079]+|[\u2080-\u2089]+)",
        None,
        _same,
    ),
    (rf"(?:{_D}{{1,4}}[- \u00a0])?{_D}{{1,4}}(?:\\?\/|\u2044){_D}{{1,4}}", None, _nbsp),  # fraction
    (r"[\u00bc\u00bd\u00be\u2153-\u215e]", None, _fraction),
    (
        r"-(?i:RRB|LRB|RCB|LCB|RSB|LSB)-|(?i:C\.D\.s|pro-|anti-|S(?:&|&amp;)P-500|S(?:&|&amp;)Ls)"
        rf"|(?i:cap){_APOS}(?i:n)|(?i:c){_APOS}(?i:est)",
        None,
        _same,
    ),
    (r"[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}(?:\\?\/[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}){1,2}", None, _same),
    (r"[A-Z]*\$|#", None, _same),
    (rf"#{_L}+|@[a-zA-Z_][a-zA-Z_0-9]*", None, _same),  # hashtag, user name
    (r"(?i:c\+\+|[cf]#)", None, _same),
    (
        r"[\u00a2\u00a3\u00a4\u00a5\u0080\u20a0\u20ac\u060b\u0e3f\u20a4\ufe69\uff04\uffe0\uffe1\uffe5\uffe6]",
        None,
        _currency,
    ),
    (r"[A-Za-z]\.", _SENTENCE_START, lambda t: [t[0], "."]),  # "x. The" -> x . The
    (_ABBREV1, None, _same),
    (_ABBREV2, None, _same),
    (_ABBREV_NUMBER, rf"{_SPACE}*{_D}", _same),
    (rf"(?:{_ACRO})", _SPACENL, _same),
    (rf"{_APOS}[0-9][0-9]", _SPACENL, _same),
    (rf"{_WORD}\.", r"[,;:]", _same),
    (r"(?:\([0-9]{3}\)[ \u00a0]?|[0-9]{3}[\- \u00a0.])[0-9]{3}[\- \u00a0.][0-9]{4}", None, _phone),
    (r"\"|(?i:&quot;)", r"[A-Za-z0-9$]", lambda t: [_quote(t, left=True)]),
    (r"\"|(?i:&quot;)", None, _quoted),
    (r"[+%&~^|\\\u2030\u2031=/<>]", None, _same),
    (r"[\[\](){}]", None, _bracket),
    (r"(?i:&lt;|&gt;)", None, _same),
    (r"-+", None, _hyphens),
    (r"\.{3,5}|(?:\.[ \u00a0]){2,4}\.|[\u0085\u2026]", None, lambda t: ["..."]),
    (r"@+|#+|_+", None, _same),
    (r"\*+|(?:\\\*){1,3}", None, _same),
    (r"[,;:]", None, _same),
    (r"[?!]+", None, _same),
    (r"[.\u00a1\u00bf\u037e\u0589\u061f\u06d4\u0700-\u0702\u07fa\u3002]", None, _same),
    (_HTHING + r"\.", r"[,;:]", _same),
    (_HTHING, None, _same),
    (_THING + r"\.", r"[,;:]", _same),
    (_THING, None, _same),
    (r"[A-Z]+(?:(?:[+&]|&amp;)[A-Z]+)+", None, lambda t: [re.sub("(?i)&amp;", "&", t)]),
    (r"'", r"[A-Za-z][^ \t\n\r\u00a0]", lambda t: ["`"]),  # opening quote
    (_REDAUX, None, _quoted),
    (
        rf"''|{_APOS}|[`\u2018\u2019\u201a\u201b\u201c\u201d\u0091\u0092\u0093\u0094\u201e\u201f\u2039\u203a"
        r"\u00ab\u00bb]{1,2}",
        None,
        _quoted,
    ),
    (rf"[{_MISC}]", None, _same),
    (r"\x00|[ \t\u00a0\u2000-\u200a\u3000]+|[\u200b\u200e\u200f\ufeff]|(?i:&nbsp;)", None, _drop),
    (r"[\r\n\u2028\u2029\u000b\u000c\u0085]", None, _drop),
    (r".", None, _drop),  # untokenizable characters are deleted (CoreNLP's default)
]
_COMPILED = [(re.compile(p, re.S), re.compile(c, re.S) if c else None, act) for p, c, act in _RULES]

# Fast paths for the bulk of caption text, equivalent to the rules above. A run of ASCII letters
# before white space, before , ; : ! ? and white space, or before a period and white space is one
# WORD token - unless it is a split form (cannot, gonna, ...) or the period makes it an
# abbreviation. A lone , ; : ! ? or . before white space is one punctuation token, unless the
# period starts a spaced ellipsis ". . .".
_FAST = re.compile(r"[A-Za-z]+(?=[ \t\n]|[,;:!?]+[ \t\n]|\.[ \t\n])")
_FAST_SPECIAL = frozenset(["cannot", "gonna", "gotta", "lemme", "gimme", "wanna"])
_FAST_PUNCT = re.compile(r"[,;:](?=[ \t\n])|[!?]+(?=[ \t\n])|\.(?=[ \t\n])(?! \.)")
_ABBREV_ANY = re.compile(rf"{_ABBREV1}|{_ABBREV2}|{_ABBREV_NUMBER}")
_WS = re.compile(r"[ \t\n]+")


def _lex(text: str) -> list[str]:
    out: list[str] = []
    pos, end = 0, len(text)
    while pos < end:
        m = _WS.match(text, pos)
        if m is not None:
            pos = m.end()
            continue
        m = _FAST.match(text, pos)
        if (
            m is not None
            and m.group().lower() not in _FAST_SPECIAL
            and not (text[m.end()] == "." and _ABBREV_ANY.fullmatch(text, pos, m.end() + 1))
        ):
            out.append(m.group())
            pos = m.end()
            continue
        m = _FAST_PUNCT.match(text, pos)
        if m is not None:
            out.append(m.group())
            pos = m.end()
            continue
        best_len, best_total, best_act = 0, 0, _same
        for pat, ctx, act in _COMPILED:
            m = pat.match(text, pos)
            if m is None or m.end() == pos:
                continue
            n = m.end() - pos
            total = n
            if ctx is not None:
                c = ctx.match(text, m.end())
                if c is None:
                    continue
                total += c.end() - m.end()
            if total > best_total:
                best_len, best_total, best_act = n, total, act
        out.extend(best_act(text[pos : pos + best_len]))
        pos += best_len
    return out


# Most captions are plain words with , ; : ! ? or . attached or standing alone (a lone period
# only at the end, where it cannot start an ellipsis); those need no lexer: every word is a token
# and every punctuation token is dropped, unless a word is a split form or an abbreviation.
_P = r"(?:[,;:]|[!?](?![!?]))+"  # "?!" is one token, not dropped: such captions take the lexer
_SIMPLE = re.compile(rf"[ \t]*(?:(?:[A-Za-z]+(?:{_P}|\.)?|{_P})(?:[ \t]+|$))*(?:\.[ \t]*)?")
_WORD_RUN = re.compile(r"[a-z]+")
_WORD_DOT = re.compile(r"[A-Za-z]+\.")


def _simple(text: str) -> str | None:
    if any(_ABBREV_ANY.fullmatch(w) for w in _WORD_DOT.findall(text)):
        return None
    words = _WORD_RUN.findall(text.lower())  # ASCII letters only: lower() maps them one to one
    if not _FAST_SPECIAL.isdisjoint(words):
        return None
    return " ".join(words)


@lru_cache(maxsize=1 << 16)
def ptb_tokenize(caption: str) -> str:
    """One caption -> space-joined lower-case tokens with punctuation tokens removed.

    The result is what pycocoevalcap's `PTBTokenizer().tokenize` yields for that caption.
    """
    if _SIMPLE.fullmatch(caption) and (fast := _simple(caption)) is not None:
        return fast
    # Every caption but the last is followed by a newline in the file CoreNLP reads; rules with
    # trailing context (`it'll` -> `it 'll`) depend on it.
    text = caption.replace("\n", " ") + "\n"
    return " ".join(t for t in (tok.lower() for tok in _lex(text)) if t not in PUNCTUATIONS)

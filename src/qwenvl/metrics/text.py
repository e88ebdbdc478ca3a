"""Text helpers shared by the metrics: input checking, white space, CJK detection and tokenization."""

from __future__ import annotations

import logging
import re
from typing import Any

log = logging.getLogger("qwenvl.metrics")

# Han ideographs (incl. extensions and compatibility forms), kana: written without spaces.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_CJK_RE = re.compile(f"[{_CJK}]")
# One CJK character, or a run of other letters/digits; everything else (punctuation, symbols,
# white space) separates tokens and is dropped, as PTB punctuation is for English.
_ZH_TOKEN_RE = re.compile(f"[{_CJK}]|(?:(?![{_CJK}])[^\\W_])+")


def has_cjk(text: str) -> bool:
    """Whether `text` contains a Chinese/Japanese character."""
    return _CJK_RE.search(text) is not None


def char_tokenize(text: str) -> str:
    """Chinese-style tokenization: each CJK character is a token, other words stay whole.

    >>> char_tokenize("一只猫，坐在 sofa 上。")
    '一 只 猫 坐 在 sofa 上'
    """
    return " ".join(_ZH_TOKEN_RE.findall(text.lower()))


def collapse_ws(text: str) -> str:
    """Strip and collapse white space: DocVQA's `' '.join(s.strip().lower().split())` minus lower()."""
    return " ".join(text.split())


def as_text(value: Any, sample_id: Any, what: str = "prediction") -> str:
    """A prediction or answer as a string. None becomes "" (scored as a miss); other types raise."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise ValueError(f"sample {sample_id!r}: {what} must be a string, got {type(value).__name__}")


def as_text_list(value: Any, sample_id: Any, what: str = "answers") -> list[str]:
    """A list of reference strings; a bare string is one reference; None is an empty list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list | tuple):
        raise ValueError(
            f"sample {sample_id!r}: {what} must be a list of strings, got {type(value).__name__}"
        )
    return [as_text(v, sample_id, what) for v in value]

"""Tokenizer: Qwen-VL's special tokens over a byte-level BPE, with tag strings in data escaped.

Prompts are *markup*: text in which the special tags (`<img>`, `<ref>`, `<|im_start|>`, ...)
are structure. Text that comes from data or users is passed through `escape()` before it is
placed in markup, so a caption that says "<img>" is tokenized as the five characters, never as
the special id: no image span or box can be injected through text.

    >>> tok = QwenVLTokenizer.default()
    >>> ids = tok.encode("<ref>" + escape("a <box> b") + "</ref>")
    >>> ids.count(tok.convert_tokens_to_ids("<box>"))
    0
    >>> tok.decode(tok.encode(escape("红色的圆形 <img>")))
    '红色的圆形 <img>'

The built-in default is `assets/tokenizer.json`, a 4,096-entry byte-level BPE trained on the
project's own English + Chinese text by `python -m qwenvl.tokenizer_build` (deterministic);
`tokenizer=letters` names `assets/letters/tokenizer.json`, the same with capitals one token each.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tokenizers import Tokenizer

ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
REF_START, REF_END, BOX_START, BOX_END = "<ref>", "</ref>", "<box>", "</box>"
QUAD_START, QUAD_END = "<quad>", "</quad>"
IMG_START, IMG_END, IMG_PAD = "<img>", "</img>", "<imgpad>"
SPECIAL_TOKENS = (
    ENDOFTEXT, IM_START, IM_END, REF_START, REF_END, BOX_START, BOX_END,
    QUAD_START, QUAD_END, IMG_START, IMG_END, IMG_PAD,
)  # fmt: skip
DEFAULT_FILE = Path(__file__).parent / "assets" / "tokenizer.json"
# Built-in tokenizers by name (`tokenizer=letters`): the default BPE with capitals one token each
# (tokenizer_build --letters), for OCR on the tiny model (docs/pipeline.md, "One token per letter").
BUILT_IN = {"letters": DEFAULT_FILE.parent / "letters" / "tokenizer.json"}
TOKENIZER_FILES = ("tokenizer.json", "qwen.tiktoken")  # what from_pretrained reads, in its order

# A backslash escapes the next character; any special tag is structure. Longest tags first so
# that "</img>" is never read as "<" + ... .
_MARKUP_RE = re.compile(
    r"\\(.)|(" + "|".join(re.escape(t) for t in sorted(SPECIAL_TOKENS, key=len, reverse=True)) + ")", re.S
)


def escape(text: str) -> str:
    """Make untrusted text safe to embed in markup: every `<` and `\\` loses its meaning."""
    return text.replace("\\", "\\\\").replace("<", "\\<")


def split_markup(markup: str) -> list[tuple[str, bool]]:
    """Markup -> [(piece, is_special)]: literal text (unescaped) and special tag strings, in order."""
    out: list[tuple[str, bool]] = []
    literal: list[str] = []
    pos = 0
    for m in _MARKUP_RE.finditer(markup):
        literal.append(markup[pos : m.start()])
        pos = m.end()
        if m.group(1) is not None:
            literal.append(m.group(1))
            continue
        if text := "".join(literal):
            out.append((text, False))
        literal = []
        out.append((m.group(2), True))
    literal.append(markup[pos:])
    if text := "".join(literal):
        out.append((text, False))
    return out


class QwenVLTokenizer:
    """Markup-aware tokenizer over any backend that can encode plain text without special tokens.

    Subclasses implement `encode_text`, `decode`, `_special_id` and `vocab_size`.
    """

    pad_token = ENDOFTEXT  # Qwen pads with <|endoftext|>; padded positions are masked anyway

    def encode(self, markup: str) -> list[int]:
        """Token ids of markup. Literal pieces never produce special ids."""
        ids: list[int] = []
        for piece, special in split_markup(markup):
            ids.extend([self.convert_tokens_to_ids(piece)] if special else self.encode_text(piece))
        return ids

    def convert_tokens_to_ids(self, token: str) -> int:
        if token not in SPECIAL_TOKENS:
            raise KeyError(f"{token!r} is not a special token; special tokens are {SPECIAL_TOKENS}")
        return self._special_id(token)

    @property
    def pad_token_id(self) -> int:
        return self.convert_tokens_to_ids(self.pad_token)

    @property
    def eos_token_ids(self) -> list[int]:
        """Generation stops at either: `<|im_end|>` ends a ChatML turn, `<|endoftext|>` a document."""
        return [self.convert_tokens_to_ids(IM_END), self.convert_tokens_to_ids(ENDOFTEXT)]

    def __len__(self) -> int:
        return self.vocab_size

    # -- implemented by backends -------------------------------------------------------------
    def encode_text(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        raise NotImplementedError

    def _special_id(self, token: str) -> int:
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def save_pretrained(self, directory: str | Path) -> None:
        raise NotImplementedError

    # -- loading -----------------------------------------------------------------------------
    @staticmethod
    def from_pretrained(directory: str | Path) -> QwenVLTokenizer:
        """Load from a local directory: `tokenizer.json` (HF tokenizers) or `qwen.tiktoken` (Qwen)."""
        directory = Path(directory)
        if (directory / "tokenizer.json").is_file():
            return BPETokenizer.from_file(directory / "tokenizer.json")
        if (directory / "qwen.tiktoken").is_file():
            from qwenvl.qwen_tiktoken import QwenTiktokenTokenizer  # optional dependency: tiktoken

            return QwenTiktokenTokenizer.from_file(directory / "qwen.tiktoken")
        raise FileNotFoundError(
            f"no tokenizer in {directory}: expected tokenizer.json (HF tokenizers) or qwen.tiktoken"
        )

    @staticmethod
    def default() -> BPETokenizer:
        """The built-in bilingual byte-level BPE."""
        return BPETokenizer.from_file(DEFAULT_FILE)

    @staticmethod
    def load(name_or_dir: str | Path | None) -> QwenVLTokenizer:
        """What a `tokenizer` setting names: null, the default; a name of `BUILT_IN`; else a local
        directory. A name that is also a directory here is refused, not guessed."""
        if not name_or_dir:
            return QwenVLTokenizer.default()
        if str(name_or_dir) in BUILT_IN:
            if Path(name_or_dir).exists():
                raise ValueError(
                    f"tokenizer={name_or_dir} names the built-in {name_or_dir!r} tokenizer and also "
                    f"{Path(name_or_dir).resolve()}; write ./{name_or_dir} for the directory"
                )
            return BPETokenizer.from_file(BUILT_IN[str(name_or_dir)])
        return QwenVLTokenizer.from_pretrained(name_or_dir)


class BPETokenizer(QwenVLTokenizer):
    """A HF `tokenizers` byte-level BPE with the Qwen-VL special tokens registered as special."""

    def __init__(self, backend: Tokenizer):
        missing = [t for t in SPECIAL_TOKENS if backend.token_to_id(t) is None]
        if missing:
            raise ValueError(f"tokenizer lacks the special tokens {missing}; add them as special tokens")
        self.backend = backend
        # Literal text must never turn into special ids, even if it spells a tag exactly.
        self.backend.encode_special_tokens = True
        self._ids = {t: backend.token_to_id(t) for t in SPECIAL_TOKENS}

    @classmethod
    def from_file(cls, path: str | Path) -> BPETokenizer:
        path = Path(path)
        try:
            return cls(Tokenizer.from_file(str(path)))
        except Exception as e:  # tokenizers raises a bare Exception on malformed JSON
            raise ValueError(f"{path}: not a valid tokenizers JSON file ({e})") from e

    def encode_text(self, text: str) -> list[int]:
        return self.backend.encode(text, add_special_tokens=False).ids

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        ids = [int(i) for i in ids]
        return self.backend.decode(ids, skip_special_tokens=skip_special_tokens)

    def _special_id(self, token: str) -> int:
        return self._ids[token]

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def save_pretrained(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.backend.save(str(directory / "tokenizer.json"))
        meta = {"tokenizer_class": "BPETokenizer", "special_tokens": list(SPECIAL_TOKENS)}
        (directory / "tokenizer_config.json").write_text(json.dumps(meta, indent=2))

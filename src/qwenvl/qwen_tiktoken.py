"""The released Qwen(-VL) tokenizer (`qwen.tiktoken`) through the `tiktoken` package.

`qwen.tiktoken` holds 151,643 byte-level BPE ranks, one `<base64 token> <rank>` per line. The
special tokens are not in the file: they take the ids right after the ranks, in the order of
`QWEN_SPECIAL_TOKENS`, so the released file gives `<|endoftext|>` = 151643 ... `<imgpad>` = 151859
and a tokenizer of 151,860 ids. The model's embedding matrix is padded to `PADDED_VOCAB_SIZE`
(151,936) rows; the padding rows are never produced by the tokenizer.

Plain text is encoded like the original `tokenization_qwen.py` encodes it (NFC normalization, then
byte-level BPE over the split pattern `PAT_STR`), except that special tokens are never recognized
in plain text: a caption that spells `<|im_end|>` is tokenized as those characters. Special ids
only come from markup tags, through `QwenVLTokenizer.encode`.

    >>> tok = QwenTiktokenTokenizer.from_file("Qwen-VL/qwen.tiktoken")  # doctest: +SKIP
    >>> tok.encode("<img></img>")  # doctest: +SKIP
    [151857, 151858]
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import shutil
import unicodedata
from collections.abc import Iterable
from pathlib import Path

import tiktoken

from qwenvl.tokenizer import (
    BOX_END,
    BOX_START,
    ENDOFTEXT,
    IM_END,
    IM_START,
    IMG_END,
    IMG_PAD,
    IMG_START,
    QUAD_END,
    QUAD_START,
    REF_END,
    REF_START,
    SPECIAL_TOKENS,
    QwenVLTokenizer,
)

VOCAB_FILE = "qwen.tiktoken"
CONFIG_FILE = "tokenizer_config.json"

PAT_STR = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Reserved ids between <|im_end|> and <ref>; the released models never emit them but they occupy ids.
EXTRAS = tuple(f"<|extra_{i}|>" for i in range(205))
# Order matters: the ids are assigned in this order starting at the number of ranks.
QWEN_SPECIAL_TOKENS = (
    ENDOFTEXT, IM_START, IM_END, *EXTRAS,
    REF_START, REF_END, BOX_START, BOX_END, QUAD_START, QUAD_END, IMG_START, IMG_END, IMG_PAD,
)  # fmt: skip

QWEN_N_RANKS = 151_643  # ranks in the released qwen.tiktoken
QWEN_VOCAB_SIZE = QWEN_N_RANKS + len(QWEN_SPECIAL_TOKENS)  # 151,860 ids the tokenizer can produce
PADDED_VOCAB_SIZE = 151_936  # rows of the released embedding / LM head (a multiple of 128)

# One line of the rank file: standard base64 (with padding), one space, a decimal rank.
_LINE_RE = re.compile(rb"([A-Za-z0-9+/]+={0,2}) (0|[1-9][0-9]*)")


def special_token_ids(n_ranks: int) -> dict[str, int]:
    """Special token -> id for a rank file of `n_ranks` ranks: consecutive ids from `n_ranks` on."""
    return {token: n_ranks + i for i, token in enumerate(QWEN_SPECIAL_TOKENS)}


def load_ranks(path: str | Path) -> dict[bytes, int]:
    """Parse a `qwen.tiktoken` file strictly; returns token bytes -> rank.

    Every line must be `<base64 token> <rank>` (a final newline is allowed, `\\r\\n` endings
    too); tokens and ranks must be unique, the ranks must be exactly 0..n-1 (special ids are
    numbered from n) and all 256 single bytes must be present (otherwise some text could not be
    encoded). Any violation raises ValueError naming the file and, where it applies, the line.
    """
    path = Path(path)
    lines = path.read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the last line
    if not lines:
        raise ValueError(f"{path}: empty rank file")
    ranks: dict[bytes, int] = {}
    line_of_rank: dict[int, int] = {}
    for lineno, raw in enumerate(lines, start=1):
        line = raw.removesuffix(b"\r")
        m = _LINE_RE.fullmatch(line)
        token = None
        if m is not None:
            try:
                token = base64.b64decode(m.group(1), validate=True)
            except binascii.Error:
                token = None
        if token is None:
            raise ValueError(
                f"{path}, line {lineno}: malformed line {line[:80]!r}; expected '<base64 token> <rank>'"
            )
        rank = int(m.group(2))
        if token in ranks:
            raise ValueError(f"{path}, line {lineno}: token {token!r} repeats (first at rank {ranks[token]})")
        if rank in line_of_rank:
            raise ValueError(
                f"{path}, line {lineno}: rank {rank} repeats (first on line {line_of_rank[rank]})"
            )
        ranks[token] = rank
        line_of_rank[rank] = lineno
    n = len(ranks)
    # Ranks are unique, so they are 0..n-1 exactly when none is >= n.
    for rank, lineno in line_of_rank.items():
        if rank >= n:
            raise ValueError(
                f"{path}, line {lineno}: rank {rank} is out of range; {n} ranks must be numbered 0..{n - 1}"
            )
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise ValueError(
            f"{path}: single bytes {[hex(b) for b in missing[:8]]}{'...' if len(missing) > 8 else ''} "
            "have no rank; a byte-level BPE needs all 256"
        )
    return ranks


class QwenTiktokenTokenizer(QwenVLTokenizer):
    """Qwen's byte-level BPE (`qwen.tiktoken`) with the Qwen-VL special ids, encoded by tiktoken."""

    def __init__(
        self,
        mergeable_ranks: dict[bytes, int],
        *,
        source: str | Path | None = None,
        errors: str = "replace",
        nfc: bool = True,
    ):
        """`mergeable_ranks` as returned by `load_ranks`; `source` is the file `save_pretrained` copies.

        `errors` is the UTF-8 error handler of `decode` ("replace", like the original, shows a cut
        multi-byte character as U+FFFD). `nfc` NFC-normalizes text before encoding, as the original
        does; turn it off only if the ids must round-trip non-NFC text exactly.
        """
        self.mergeable_ranks = mergeable_ranks
        self.n_ranks = len(mergeable_ranks)
        self.special_tokens = special_token_ids(self.n_ranks)
        self.source = Path(source) if source is not None else None
        self.errors = errors
        self.nfc = nfc
        self._enc = tiktoken.Encoding(
            "Qwen",
            pat_str=PAT_STR,
            mergeable_ranks=mergeable_ranks,
            special_tokens=self.special_tokens,
            explicit_n_vocab=self.n_ranks + len(self.special_tokens),  # tiktoken checks ids are dense
        )

    @classmethod
    def from_file(cls, path: str | Path, **kwargs) -> QwenTiktokenTokenizer:
        """Load a `qwen.tiktoken` rank file (see `load_ranks` for what is checked).

        Settings not given in kwargs come from a `tokenizer_config.json` beside the file when it was
        written by `save_pretrained` (other tools' configs, e.g. the original's, are ignored).
        """
        path = Path(path)
        config = path.parent / CONFIG_FILE
        if config.is_file():
            try:
                meta = json.loads(config.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ValueError(f"{config}: not valid JSON ({e})") from e
            if isinstance(meta, dict) and meta.get("tokenizer_class") == cls.__name__:
                for key in ("errors", "nfc"):
                    if key in meta:
                        kwargs.setdefault(key, meta[key])
        return cls(load_ranks(path), source=path, **kwargs)

    def encode_text(self, text: str) -> list[int]:
        """Ids of plain text; specials spelled in the text stay ordinary tokens (`encode_ordinary`)."""
        if self.nfc:
            text = unicodedata.normalize("NFC", text)
        return self._enc.encode_ordinary(text)

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """Text of ids; special ids become their tag strings, or are dropped with `skip_special_tokens`.

        Ids outside the tokenizer (for instance an embedding padding row) raise ValueError, unless
        `skip_special_tokens` is set, which like the original drops every id >= the number of ranks.
        """
        ids = [int(i) for i in ids]
        if skip_special_tokens:
            ids = [i for i in ids if i < self.n_ranks]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"ids {bad[:8]} are outside the tokenizer's {self.vocab_size} ids")
        return self._enc.decode(ids, errors=self.errors)

    def _special_id(self, token: str) -> int:
        return self.special_tokens[token]

    @property
    def vocab_size(self) -> int:
        """Ids the tokenizer can produce: ranks + 217 specials (151,860 for the released file)."""
        return self._enc.n_vocab

    def save_pretrained(self, directory: str | Path) -> None:
        """Write `qwen.tiktoken` (a copy of the loaded file) and `tokenizer_config.json` to directory."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / VOCAB_FILE
        if self.source is not None:
            if not (target.exists() and target.samefile(self.source)):
                shutil.copyfile(self.source, target)
        else:
            # Built from ranks in memory: write them in the same format, in rank order.
            by_rank = sorted(self.mergeable_ranks.items(), key=lambda kv: kv[1])
            target.write_bytes(b"".join(base64.b64encode(t) + b" %d\n" % r for t, r in by_rank))
        meta = {
            "tokenizer_class": type(self).__name__,
            "vocab_file": VOCAB_FILE,
            "n_ranks": self.n_ranks,
            "vocab_size": self.vocab_size,
            "padded_vocab_size": PADDED_VOCAB_SIZE,
            "errors": self.errors,
            "nfc": self.nfc,
            "special_tokens": list(SPECIAL_TOKENS),
        }
        (directory / CONFIG_FILE).write_text(json.dumps(meta, indent=2))

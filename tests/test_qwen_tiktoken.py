"""QwenTiktokenTokenizer over a small rank file in the real `qwen.tiktoken` format.

The released file is not available offline, so the tests learn a few hundred BPE merges from a
small English + Chinese + code text and check the tokenizer against an independent pure-Python
byte-level BPE over the same ranks.
"""

from __future__ import annotations

import base64
import json
from collections import Counter

import pytest
import regex

from qwenvl.qwen_tiktoken import (
    EXTRAS,
    PADDED_VOCAB_SIZE,
    PAT_STR,
    QWEN_N_RANKS,
    QWEN_SPECIAL_TOKENS,
    QWEN_VOCAB_SIZE,
    QwenTiktokenTokenizer,
    load_ranks,
    special_token_ids,
)
from qwenvl.tokenizer import SPECIAL_TOKENS, QwenVLTokenizer, escape

# Written out again rather than imported, so that a typo in the module's copy is caught.
PAT = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""  # noqa: E501
SPLIT = regex.compile(PAT)

CORPUS = """\
The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs into the forest.
A picture of two cats sitting on a red sofa, next to a window with the curtains drawn.
Describe the image in detail. What is the man holding? He's holding a blue umbrella.
They're walking along the river and we've seen the boats that'll sail tomorrow.
一只棕色的狐狸跳过了懒惰的狗。图片中有两只猫坐在红色的沙发上，旁边是一扇窗户。
请详细描述这张图片。这个男人手里拿着什么？他拿着一把蓝色的雨伞。我们在河边散步。
def encode(self, text: str) -> list[int]:
    ids = []
    for piece in self.split(text):
        ids.extend(self.bpe(piece))
    return ids

for i in range(10):
    if i % 2 == 0:
        print(f"value {i} = {i * i}")
"""

TEXTS = {
    "english": "The lazy dogs were sleeping when the quick foxes jumped over them! Isn't it odd?",
    "chinese": "图片中的狗在沙发上睡觉，狐狸在森林里奔跑。请描述一下这幅图像。",
    "code": "def bpe(self, piece: bytes) -> list[int]:\n\treturn [self.ranks[p] for p in piece]\r\n\n  # ok\n"
    "x = {'a': [1, 2]}  // 注释 \\n",
    "emoji": "I love 🐍 and 🦊!! 👨‍👩‍👧 family 🏳️‍🌈 — ok 😀😀",
    "tags": "a caption with <img>x.png</img> and <|im_end|> and <ref>dog</ref><box>(1,2),(3,4)</box>",
    "mixed": "  leading spaces, numbers 12345 and 3.14159, tabs\t\tand\n\nnewlines   \n end",
    "edge": "",
}


def bpe_encode_piece(piece: bytes, ranks: dict[bytes, int]) -> list[bytes]:
    """Byte-level BPE of one piece: repeatedly merge the leftmost lowest-ranked adjacent pair."""
    parts = [bytes([b]) for b in piece]
    while len(parts) > 1:
        best = None  # (rank, index)
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and (best is None or rank < best[0]):
                best = (rank, i)
        if best is None:
            break
        i = best[1]
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
    return parts


def reference_encode(text: str, ranks: dict[bytes, int]) -> list[int]:
    """Token ids of text by the split pattern and `bpe_encode_piece` (no special tokens)."""
    return [ranks[p] for piece in SPLIT.findall(text) for p in bpe_encode_piece(piece.encode("utf-8"), ranks)]


def learn_ranks(text: str, n_merges: int) -> dict[bytes, int]:
    """All 256 bytes as ranks 0..255, then up to n_merges merges of the most frequent pair, greedily.

    Words are segmented with the rank-based `bpe_encode_piece` itself, so the learned table encodes
    every token it contains to that single token (as a trained BPE table does).
    """
    ranks = {bytes([b]): b for b in range(256)}
    words = Counter(piece.encode("utf-8") for piece in SPLIT.findall(text))
    segs = {w: bpe_encode_piece(w, ranks) for w in words}
    for _ in range(n_merges):
        pairs: Counter[tuple[bytes, bytes]] = Counter()
        for w, count in words.items():
            seg = segs[w]
            for a, b in zip(seg, seg[1:], strict=False):
                pairs[a, b] += count
        # Most frequent first, ties broken by the bytes themselves, so the table is deterministic.
        for (a, b), _count in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0])):
            token = a + b
            if token in ranks:
                continue
            ranks[token] = len(ranks)
            if bpe_encode_piece(token, ranks) == [token]:
                break
            del ranks[token]
        else:
            break  # no pair left to merge
        segs.update({w: bpe_encode_piece(w, ranks) for w in words if token in w})
    return ranks


def rank_lines(ranks: dict[bytes, int]) -> list[str]:
    """Lines of the `qwen.tiktoken` format, in rank order, without newlines."""
    return [
        base64.b64encode(t).decode("ascii") + f" {r}" for t, r in sorted(ranks.items(), key=lambda x: x[1])
    ]


def write_ranks(path, ranks: dict[bytes, int]) -> None:
    path.write_text("".join(line + "\n" for line in rank_lines(ranks)))


@pytest.fixture(scope="module")
def ranks() -> dict[bytes, int]:
    return learn_ranks(CORPUS, 300)


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory, ranks):
    d = tmp_path_factory.mktemp("qwen_tok")
    write_ranks(d / "qwen.tiktoken", ranks)
    return d


@pytest.fixture(scope="module")
def tok(tok_dir) -> QwenTiktokenTokenizer:
    return QwenTiktokenTokenizer.from_file(tok_dir / "qwen.tiktoken")


def test_rank_table_is_learned(ranks):
    assert len(ranks) == 256 + 300
    assert sorted(ranks.values()) == list(range(len(ranks)))
    assert any(len(t) > 3 for t in ranks)  # real multi-byte merges, e.g. " the"


def test_pattern_matches_the_released_one():
    assert PAT_STR == PAT


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_round_trip(tok, name):
    text = TEXTS[name]
    assert tok.decode(tok.encode_text(text)) == text


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_agrees_with_reference_bpe(tok, ranks, name):
    text = TEXTS[name]
    assert tok.encode_text(text) == reference_encode(text, ranks)


def test_agrees_with_reference_on_corpus_lines(tok, ranks):
    for line in CORPUS.splitlines(keepends=True):
        assert tok.encode_text(line) == reference_encode(line, ranks), line
    # Merges actually fire: the corpus takes far fewer tokens than bytes.
    assert len(tok.encode_text(CORPUS)) < 0.6 * len(CORPUS.encode("utf-8"))


def test_tag_strings_in_plain_text_are_never_special(tok, ranks):
    n = len(ranks)
    for token in QWEN_SPECIAL_TOKENS[:5] + SPECIAL_TOKENS:
        ids = tok.encode_text(f"x {token} y{token}")
        assert all(i < n for i in ids), token
        assert tok.decode(ids) == f"x {token} y{token}"
    # Escaped text inside markup is literal, the tags around it are structure.
    ids = tok.encode("<ref>" + escape("a <box> b <|im_end|>") + "</ref>")
    assert [i for i in ids if i >= n] == [tok.special_tokens["<ref>"], tok.special_tokens["</ref>"]]
    assert tok.decode(ids) == "<ref>a <box> b <|im_end|></ref>"


def test_special_ids_follow_the_ranks(tok, ranks):
    n = len(ranks)
    assert tok.n_ranks == n
    assert tok.encode("<|endoftext|><|im_start|><|im_end|>") == [n, n + 1, n + 2]
    assert tok.encode("<img></img>") == [n + 3 + 205 + 6, n + 3 + 205 + 7]
    assert tok.encode("<imgpad>") == [n + 216]
    assert tok.vocab_size == len(tok) == n + 217
    assert tok.pad_token_id == n
    assert tok.eos_token_ids == [n + 2, n]
    ids = tok.encode("<|im_start|>user\n" + escape("<img>图片</img>") + "<|im_end|>")
    assert tok.decode(ids) == "<|im_start|>user\n<img>图片</img><|im_end|>"
    assert tok.decode(ids, skip_special_tokens=True) == "user\n<img>图片</img>"


def test_released_special_token_table():
    table = special_token_ids(QWEN_N_RANKS)
    assert QWEN_N_RANKS == 151643 and len(table) == len(QWEN_SPECIAL_TOKENS) == 217
    assert table["<|endoftext|>"] == 151643
    assert table["<|im_start|>"] == 151644
    assert table["<|im_end|>"] == 151645
    assert table["<|extra_0|>"] == 151646 and table["<|extra_204|>"] == 151850 and len(EXTRAS) == 205
    expected = {
        "<ref>": 151851, "</ref>": 151852, "<box>": 151853, "</box>": 151854, "<quad>": 151855,
        "</quad>": 151856, "<img>": 151857, "</img>": 151858, "<imgpad>": 151859,
    }  # fmt: skip
    assert {t: table[t] for t in expected} == expected
    assert sorted(table.values()) == list(range(151643, 151860))
    assert QWEN_VOCAB_SIZE == 151860 and PADDED_VOCAB_SIZE == 151936
    assert PADDED_VOCAB_SIZE >= QWEN_VOCAB_SIZE and PADDED_VOCAB_SIZE % 128 == 0
    assert set(SPECIAL_TOKENS) <= set(table)  # every markup tag has an id


def test_decode_replaces_cut_characters_and_rejects_unknown_ids(tok, ranks):
    ids = tok.encode_text("狗")
    first_byte = [ranks["狗".encode()[:1]]]
    assert tok.decode(first_byte) == "\ufffd"
    assert tok.decode(ids) == "狗"
    with pytest.raises(ValueError, match="outside"):
        tok.decode([tok.vocab_size])
    with pytest.raises(ValueError, match="outside"):
        tok.decode([-1])
    # Padding rows and specials are dropped with skip_special_tokens, like the original.
    assert tok.decode(ids + [tok.vocab_size + 3, len(ranks)], skip_special_tokens=True) == "狗"


def test_nfc_normalization_like_the_original(tok, ranks):
    decomposed = "cafe\u0301 nai\u0308ve"
    assert tok.encode_text(decomposed) == tok.encode_text("café naïve")
    raw = QwenTiktokenTokenizer(ranks, nfc=False)
    assert raw.decode(raw.encode_text(decomposed)) == decomposed


def test_from_pretrained_and_save_pretrained(tok, tok_dir, tmp_path):
    loaded = QwenVLTokenizer.from_pretrained(tok_dir)
    assert isinstance(loaded, QwenTiktokenTokenizer)
    text = TEXTS["tags"] + TEXTS["chinese"]
    assert loaded.encode_text(text) == tok.encode_text(text)

    tok.save_pretrained(tmp_path / "out")
    assert (tmp_path / "out" / "qwen.tiktoken").read_bytes() == (tok_dir / "qwen.tiktoken").read_bytes()
    meta = json.loads((tmp_path / "out" / "tokenizer_config.json").read_text())
    assert meta["tokenizer_class"] == "QwenTiktokenTokenizer" and meta["vocab_size"] == tok.vocab_size
    again = QwenVLTokenizer.from_pretrained(tmp_path / "out")
    assert again.encode("<img></img>" + escape(text)) == tok.encode("<img></img>" + escape(text))
    tok.save_pretrained(tok_dir)  # saving onto its own file is harmless

    # A tokenizer built from ranks in memory writes the file in the same format.
    QwenTiktokenTokenizer(load_ranks(tok_dir / "qwen.tiktoken")).save_pretrained(tmp_path / "mem")
    assert (tmp_path / "mem" / "qwen.tiktoken").read_bytes() == (tok_dir / "qwen.tiktoken").read_bytes()


def test_saved_settings_are_reloaded(ranks, tmp_path):
    QwenTiktokenTokenizer(ranks, nfc=False, errors="ignore").save_pretrained(tmp_path)
    tok = QwenVLTokenizer.from_pretrained(tmp_path)
    assert (tok.nfc, tok.errors) == (False, "ignore")
    assert tok.decode([ranks["狗".encode()[:1]]]) == ""


@pytest.mark.parametrize(
    "line3, message",
    [
        ("not-base64 2", "malformed"),
        ("Ag==  2", "malformed"),  # two spaces
        ("Ag== 2 extra", "malformed"),
        ("Ag== -2", "malformed"),
        ("Ag== 02", "malformed"),
        ("Ag= 2", "malformed"),  # bad padding
        ("", "malformed"),  # blank line in the middle
        ("AQ== 2", "repeats"),  # token of line 2 again
        ("Ag== 1", "repeats"),  # rank of line 2 again
        ("Ag== 9999", "out of range"),
    ],
)
def test_malformed_file_names_file_and_line(ranks, tmp_path, line3, message):
    lines = rank_lines(ranks)
    lines[2] = line3
    path = tmp_path / "qwen.tiktoken"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=message) as e:
        QwenTiktokenTokenizer.from_file(path)
    assert str(path) in str(e.value) and "line 3" in str(e.value)


def test_file_level_errors(ranks, tmp_path):
    path = tmp_path / "qwen.tiktoken"
    path.write_text("")
    with pytest.raises(ValueError, match="empty"):
        load_ranks(path)
    # Drop byte 0x41 ('A') and renumber: every line is well formed but a byte has no rank.
    kept = [t for t, _ in sorted(ranks.items(), key=lambda x: x[1]) if b"A" not in t]
    write_ranks(path, {t: i for i, t in enumerate(kept)})
    with pytest.raises(ValueError, match="0x41") as e:
        load_ranks(path)
    assert str(path) in str(e.value)
    # Windows line endings and a missing final newline are accepted.
    path.write_bytes(b"\r\n".join(line.encode() for line in rank_lines(ranks)))
    assert load_ranks(path) == ranks

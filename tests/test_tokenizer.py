import pytest

from qwenvl import tokenizer_build
from qwenvl.tokenizer import SPECIAL_TOKENS, QwenVLTokenizer, escape, split_markup
from qwenvl.tokenizer_build import build


@pytest.fixture(scope="module")
def tok():
    return QwenVLTokenizer.default()


def test_every_special_token_is_one_id(tok):
    ids = [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS]
    assert len(set(ids)) == len(SPECIAL_TOKENS)
    for t, i in zip(SPECIAL_TOKENS, ids, strict=True):
        assert tok.encode(t) == [i]


@pytest.mark.parametrize(
    "text",
    [
        "a red circle left of two blue squares.",
        "一个红色的圆形和两个蓝色的正方形。",
        "mixed 中文 and English, digits 0123 and emoji 🟥",
        "  leading and trailing spaces \n\t newlines \\ backslashes",
    ],
)
def test_text_round_trips_exactly(tok, text):
    assert tok.decode(tok.encode(escape(text))) == text
    assert tok.decode(tok.encode_text(text)) == text


@pytest.mark.parametrize("tag", SPECIAL_TOKENS)
def test_tag_strings_in_text_never_become_special_tokens(tok, tag):
    specials = {tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text = f"look: {tag} here {tag}{tag}"
    ids = tok.encode(escape(text))
    assert not specials & set(ids)
    assert tok.decode(ids) == text
    assert not specials & set(tok.encode_text(text))  # even without escape, plain text is plain


def test_markup_structure_survives_around_escaped_text(tok):
    markup = "<ref>" + escape("the <ref> sign") + "</ref><box>"
    pieces = split_markup(markup)
    assert pieces == [("<ref>", True), ("the <ref> sign", False), ("</ref>", True), ("<box>", True)]
    ids = tok.encode(markup)
    assert ids.count(tok.convert_tokens_to_ids("<ref>")) == 1


def test_escaped_backslash_before_tag_keeps_the_tag(tok):
    markup = escape("path\\") + "<img></img>"
    assert split_markup(markup) == [("path\\", False), ("<img>", True), ("</img>", True)]


def test_save_and_load_directory(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    again = QwenVLTokenizer.from_pretrained(tmp_path)
    text = "Picture 1: <img></img>\n红色 circle"
    assert again.encode(text) == tok.encode(text)


def test_missing_tokenizer_dir_says_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        QwenVLTokenizer.from_pretrained(tmp_path)


def test_default_tokenizer_is_reproducible_from_the_build_script(tok):
    rebuilt = build()
    text = "a yellow star above the green triangle 三角形"
    assert rebuilt.encode(text).ids == tok.encode_text(text)
    assert rebuilt.get_vocab_size() == tok.vocab_size


@pytest.fixture(scope="module")
def letters():
    return QwenVLTokenizer.load("letters")


@pytest.mark.parametrize("string", ["B9V", "NLSQW", "XHHBB7"])
def test_the_letters_tokenizer_makes_each_capital_one_token(letters, string):
    """OCR strings are random capitals and digits: `tokenizer=letters` gives one token per character."""
    assert [letters.decode([i]) for i in letters.encode_text(string)] == list(string)
    assert letters.decode(letters.encode_text("Picture 1: " + string)) == "Picture 1: " + string


def test_the_default_build_merges_capitals_into_pairs(tok):
    assert len(tok.encode_text("NLSQWX")) < 6


def test_the_letters_tokenizer_is_reproducible_from_the_build_script(letters, tmp_path):
    tokenizer_build.main(["--letters", str(tmp_path)])
    rebuilt = QwenVLTokenizer.from_pretrained(tmp_path)
    text = "Picture 2: the text XHHBB7 上面 (274,33)"
    default_ids = QwenVLTokenizer.default().encode_text(text)
    assert rebuilt.encode_text(text) == letters.encode_text(text) != default_ids
    assert rebuilt.vocab_size == letters.vocab_size == QwenVLTokenizer.default().vocab_size


def test_a_built_in_name_that_is_also_a_directory_here_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert QwenVLTokenizer.load(None).vocab_size == QwenVLTokenizer.load("letters").vocab_size
    (tmp_path / "letters").mkdir()
    with pytest.raises(ValueError, match="write ./letters for the directory"):
        QwenVLTokenizer.load("letters")

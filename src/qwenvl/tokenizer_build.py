r"""Build the default tokenizer: a byte-level BPE trained on the project's own bilingual text.

    python -m qwenvl.tokenizer_build            # rewrites src/qwenvl/assets/tokenizer.json
    python -m qwenvl.tokenizer_build --letters  # rewrites src/qwenvl/assets/letters/tokenizer.json
    python -m qwenvl.tokenizer_build [--letters] DIR   # DIR/tokenizer.json

The corpus is generated here from fixed word lists (shapes, colours, positions, digits, the task
prompts, ChatML scaffolding, English and Chinese), so the result is deterministic and needs no
download. Byte-level BPE covers every string, so any text still round-trips exactly; the merges
only make the project's own vocabulary short. Digits are split one per token before the merges,
as Qwen's own tokenizer does (its pattern's `\p{N}`): a box coordinate such as 274 is then
2 7 4, ten digit tokens shared by every number, instead of a thousand number tokens each seen
rarely.

`--letters` builds the same BPE with every capital letter one token too. The synthetic world's OCR
strings are random capitals and digits, which the default cuts into letter pairs (about a thousand
distinct pieces, each seen rarely); one token per letter lets an encoder that reads letters
(`encoder.stem=conv`) answer OCR far sooner: it is built in as `tokenizer=letters`
(docs/pipeline.md, "One token per letter"). It is not the default: with the default encoder it
changes nothing measurable, and it would change every figure measured with the default.
"""

from __future__ import annotations

import argparse
import itertools
import random
import string
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from qwenvl.tokenizer import BUILT_IN, DEFAULT_FILE, SPECIAL_TOKENS

VOCAB_SIZE = 4096  # small enough for a tiny CPU model's embedding, large enough for whole words

_EN_COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black", "grey", "pink"]
_ZH_COLOURS = ["红色", "绿色", "蓝色", "黄色", "紫色", "橙色", "白色", "黑色", "灰色", "粉色"]
_EN_SHAPES = ["circle", "square", "triangle", "star", "cross", "rectangle", "diamond", "heart"]
_ZH_SHAPES = ["圆形", "正方形", "三角形", "星形", "十字形", "长方形", "菱形", "心形"]
_EN_WORDS = (
    "a an the and of in on at to is are was there what which where how many picture image left right "
    "above below top bottom middle next changed turned removed added more fewer same different yes no "
    "answer question caption generate english chinese grounding text read says you helpful assistant "
    "user system object objects shape shapes colour color count number one two three four five six "
    "seven eight nine ten zero has have with without between first second describe please this that"
).split()
_ZH_WORDS = (
    "一个 两个 三个 四个 图片 图中 左边 右边 上面 下面 中间 是 有 的 和 什么 哪个 多少 颜色 形状 文字 "
    "答案 问题 描述 生成 用中文 带定位 变成了 被移除 更多 相同 不同 对 不对 你好 助手 第一张 第二张"
).split()


def corpus(n_lines: int = 20000, seed: int = 0) -> list[str]:
    """Deterministic bilingual training text for the BPE."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        c, s = rng.randrange(len(_EN_COLOURS)), rng.randrange(len(_EN_SHAPES))
        code = "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(rng.randint(3, 6)))
        x1, y1 = rng.randrange(0, 900), rng.randrange(0, 900)
        box = f"({x1},{y1}),({x1 + rng.randrange(10, 99)},{y1 + rng.randrange(10, 99)})"
        lines += [
            f"a {_EN_COLOURS[c]} {_EN_SHAPES[s]} {rng.choice(_EN_WORDS)} {rng.choice(_EN_WORDS)}.",
            f"一个{_ZH_COLOURS[c]}的{_ZH_SHAPES[s]}{rng.choice(_ZH_WORDS)}{rng.choice(_ZH_WORDS)}。",
            f"the {_EN_COLOURS[c]} {_EN_SHAPES[s]} {box} {code} {rng.randrange(100)}",
            " ".join(rng.choice(_EN_WORDS) for _ in range(rng.randint(3, 12))) + "?",
            "".join(rng.choice(_ZH_WORDS) for _ in range(rng.randint(2, 8))) + "？",
        ]
    lines += [f"Picture {i}: " for i in range(1, 10)] * 100
    lines += ["Generate the caption in English:", "Answer:", "user\n", "assistant\n", "system\n"] * 200
    lines += [" ".join(p) for p in itertools.product(_EN_COLOURS, _EN_SHAPES)]
    return lines


def build(vocab_size: int = VOCAB_SIZE, letters: bool = False) -> Tokenizer:
    """Train the byte-level BPE; special tokens take the first ids. `letters`: every capital letter
    is split off before the merges, so it is always one token."""
    tok = Tokenizer(models.BPE())
    split = [pre_tokenizers.Split(Regex("[A-Z]"), behavior="isolated")] if letters else []
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            *split,
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte: any text round-trips
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    return tok


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m qwenvl.tokenizer_build", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "out_dir", nargs="?", type=Path, help="write DIR/tokenizer.json (default: the built-in)"
    )
    parser.add_argument("--letters", action="store_true", help="every capital letter one token")
    args = parser.parse_args(argv)
    built_in = BUILT_IN["letters"] if args.letters else DEFAULT_FILE
    out = built_in if args.out_dir is None else args.out_dir / DEFAULT_FILE.name
    out.parent.mkdir(parents=True, exist_ok=True)
    build(letters=args.letters).save(str(out))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

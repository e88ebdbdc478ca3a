"""CIDEr-D: hand-computed cases and agreement with pycocoevalcap's scorer."""

import math
import random

import pytest
from pycocoevalcap.cider.cider import Cider

from qwenvl.metrics import CIDEr, cider_d
from qwenvl.metrics.bench_cider import synthetic_corpus
from qwenvl.metrics.ptb import ptb_tokenize


def reference(cands, refs):
    """pycocoevalcap's CIDEr on already tokenized text."""
    gts = {i: list(r) for i, r in enumerate(refs)}
    res = {i: [c] for i, c in enumerate(cands)}
    return Cider().compute_score(gts, res)


def test_single_image_scores_zero_as_in_pycocoevalcap():
    # with one image every n-gram of the references has df = N = 1, so every weight is 0
    cands, refs = ["a man riding a horse"], [["a man riding a horse", "a person on a horse"]]
    score, scores = cider_d(cands, refs)
    assert score == 0.0 and scores == [0.0]
    assert reference(cands, refs)[0] == 0.0


def test_hand_computed_two_images():
    # image 0: identical 2-word caption and reference; orders 1 and 2 have cosine 1, orders 3 and 4
    # are empty, lengths agree: (1 + 1 + 0 + 0) / 4 * 10 = 5. image 1 shares nothing: 0.
    score, scores = cider_d(["a b", "c"], [["a b"], ["d"]])
    assert scores == pytest.approx([5.0, 0.0], abs=1e-12)
    assert score == pytest.approx(2.5, abs=1e-12)
    assert reference(["a b", "c"], [["a b"], ["d"]])[0] == pytest.approx(2.5, abs=1e-12)


def test_length_penalty_counts_bigrams_like_pycocoevalcap():
    # same words, different length: the Gaussian penalty uses len - 1 on both sides
    cands = ["a b c d e f g h", "x"]
    refs = [["a b c d"], ["y"]]
    assert cider_d(cands, refs)[0] == pytest.approx(reference(cands, refs)[0], abs=1e-12)


def _random_corpus(rng, images, vocab, max_refs):
    def sent():
        return " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 12)))

    refs = [[sent() for _ in range(rng.randint(1, max_refs))] for _ in range(images)]
    # keep at least one non-empty reference somewhere (pycocoevalcap fails otherwise)
    refs[0][0] = refs[0][0] or "w0"
    return [sent() for _ in range(images)], refs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_corpora_match_pycocoevalcap(seed):
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(rng.choice([5, 30, 200]))]
    cands, refs = _random_corpus(rng, rng.choice([2, 17, 150]), vocab, max_refs=6)
    score, scores = cider_d(cands, refs)
    ref_score, ref_scores = reference(cands, refs)
    assert score == pytest.approx(ref_score, abs=1e-6)
    assert scores == pytest.approx(list(ref_scores), abs=1e-6)


def test_realistic_corpus_matches_pycocoevalcap_through_the_metric():
    cands, refs = synthetic_corpus(300, 5, seed=7)
    metric = CIDEr()
    for start in range(0, 300, 64):  # several batches, as in an eval loop
        stop = min(start + 64, 300)
        metric.update(cands[start:stop], refs[start:stop], ids=list(range(start, stop)))
    tok_c = [ptb_tokenize(c) for c in cands]
    tok_r = [[ptb_tokenize(r) for r in rs] for rs in refs]
    assert float(metric.compute()) == pytest.approx(reference(tok_c, tok_r)[0], abs=1e-6)


def test_duplicate_ids_counted_once():
    cands, refs = synthetic_corpus(20, 3, seed=1)
    once = CIDEr()
    once.update(cands, refs, ids=[f"img{i}" for i in range(20)])
    twice = CIDEr()
    twice.update(cands[:12], refs[:12], ids=[f"img{i}" for i in range(12)])
    twice.update(cands[8:], refs[8:], ids=[f"img{i}" for i in range(8, 20)])  # 8..11 repeated
    assert float(twice.compute()) == float(once.compute())


def test_chinese_is_tokenized_by_character():
    metric = CIDEr()  # lang="auto"
    metric.update(["一只猫坐在沙发上。", "两只狗"], [["一只猫在沙发上"], ["两只狗在草地上跑"]], ids=[0, 1])
    zh = CIDEr(lang="zh")
    zh.update(["一只猫坐在沙发上。", "两只狗"], [["一只猫在沙发上"], ["两只狗在草地上跑"]], ids=[0, 1])
    expected = reference(
        ["一 只 猫 坐 在 沙 发 上", "两 只 狗"], [["一 只 猫 在 沙 发 上"], ["两 只 狗 在 草 地 上 跑"]]
    )[0]
    assert float(metric.compute()) == pytest.approx(expected, abs=1e-9)
    assert float(zh.compute()) == pytest.approx(expected, abs=1e-9)
    assert expected > 0


def test_bad_inputs():
    metric = CIDEr()
    metric.update(["a dog", None], [["a dog runs"], ["a cat"]], ids=["ok1", "empty-pred"])  # None = ""
    with pytest.raises(ValueError, match="'no-refs'"):
        metric.update(["a cat"], [[]], ids=["no-refs"])
    with pytest.raises(ValueError, match="'bad-pred'"):
        metric.update([3], [["a cat"]], ids=["bad-pred"])
    with pytest.raises(ValueError, match="2 predictions but 1"):
        metric.update(["a", "b"], [["a"]])
    assert len(metric.records) == 2  # the failed updates stored nothing
    assert math.isfinite(float(metric.compute()))
    with pytest.raises(ValueError, match="lang"):
        CIDEr(lang="fr")


def test_empty_metric_is_nan():
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert math.isnan(float(CIDEr().compute()))

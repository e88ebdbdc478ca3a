"""CIDEr-D, computed exactly as pycocoevalcap's `Cider` computes it, without Java.

Inputs per sample: one generated caption (str) and its reference captions (list of str), plus
an optional sample id. Output: the corpus CIDEr-D (a float64 scalar tensor, the mean over
samples; COCO papers report it x100).

Definition (pycocoevalcap `cider_scorer.py`, reproduced quirk for quirk):

* texts are tokenized like pycocoevalcap's `PTBTokenizer` (lower-case, PTB splitting, punctuation
  tokens removed; see `qwenvl.metrics.ptb`), or by character for Chinese (`lang`);
* n-grams of order 1..4 are counted per sentence; the document frequency of an n-gram is the
  number of *samples* whose references contain it, taken over the whole evaluated set at
  `compute()`;
* an n-gram's weight is tf * (log(N) - log(max(1, df))), N = number of samples; so with one
  sample every weight is 0 and CIDEr is 0;
* per order, the clipped cosine sum(min(h, r) * r) / (|h| |r|) between candidate and each
  reference, times the Gaussian length penalty exp(-delta^2 / (2 sigma^2)), sigma = 6, where the
  "length" is pycocoevalcap's: the number of *bigrams* (len(words) - 1);
* averaged over the 4 orders and over the references, times 10; the corpus score is the mean.

The scorer works on integer n-gram ids with numpy (sorts, bincounts) instead of pycocoevalcap's
per-n-gram Python loops; `python -m qwenvl.metrics.bench_cider` measures the difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np
from torch import Tensor

from qwenvl.metrics.base import Ids, SampleMetric, as_tensor, mean
from qwenvl.metrics.ptb import ptb_tokenize
from qwenvl.metrics.text import as_text, as_text_list, char_tokenize, has_cjk


def _distinct(values: np.ndarray) -> np.ndarray:
    # np.unique without counts takes a hash-based path that is several times slower here
    values = np.sort(values)
    return values[np.concatenate(([True], values[1:] != values[:-1]))] if values.size else values


def _ngram_entries(sentences: list[list[str]], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every n-gram occurrence of every sentence as integer arrays (sentence, n-gram id), and the
    first id of each order (ids of order k+1 lie in [starts[k], starts[k+1])).

    n-gram ids are dense and distinct across orders: an id stands for one exact word sequence.
    """
    lengths = np.fromiter((len(t) for t in sentences), dtype=np.int64, count=len(sentences))
    words = list(chain.from_iterable(sentences))
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}  # word -> id, in C-speed passes
    flat = np.fromiter(map(vocab.__getitem__, words), dtype=np.int64, count=len(words))
    sent_of_tok = np.repeat(np.arange(len(sentences), dtype=np.int64), lengths)
    remaining = np.repeat(lengths, lengths) - (
        np.arange(flat.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    )
    sents, ids, starts = [], [], []
    code = flat  # id of the k-gram starting at each position, valid where remaining >= k
    offset = 0
    width = max(len(vocab), 1)
    for k in range(1, n + 1):
        at = np.nonzero(remaining >= k)[0]
        if k == 1:
            dense, size = code[at], width
        else:
            # (id of the (k-1)-gram at i, word at i+k-1) -> dense id of the k-gram at i
            uniq, dense = np.unique(code[at] * width + flat[at + k - 1], return_inverse=True)
            size = uniq.size
        code = np.full(flat.size, -1, dtype=np.int64)
        code[at] = dense
        sents.append(sent_of_tok[at])
        ids.append(dense + offset)
        starts.append(offset)
        offset += size
    starts.append(offset)
    return np.concatenate(sents), np.concatenate(ids), np.array(starts, dtype=np.int64)


def cider_d(
    candidates: Sequence[str], references: Sequence[Sequence[str]], n: int = 4, sigma: float = 6.0
) -> tuple[float, list[float]]:
    """CIDEr-D of tokenized texts: (corpus mean, per-sample scores). Same numbers as pycocoevalcap.

    `candidates[i]` is sample i's tokenized caption (space-separated tokens), `references[i]` its
    tokenized references. Vectorized with numpy: the sums run in another order than
    pycocoevalcap's loops, so results agree to rounding (~1e-15), not bit for bit.
    """
    num = len(candidates)
    if len(references) != num:
        raise ValueError(f"{num} candidates but {len(references)} reference lists")
    if num == 0:
        return float("nan"), []
    num_refs = np.array([len(r) for r in references], dtype=np.int64)
    tokens = [c.split() for c in candidates] + [r.split() for refs in references for r in refs]
    n_sent = len(tokens)
    # sentences: the candidates first, then every reference; `owner` is each one's sample
    owner = np.concatenate([np.arange(num), np.repeat(np.arange(num), num_refs)])

    sent, gram, starts = _ngram_entries(tokens, n)
    n_grams = max(int(starts[-1]), 1)
    # term frequencies per (sentence, n-gram); np.unique sorts by sentence, then n-gram
    key, tf = np.unique(sent * n_grams + gram, return_counts=True)
    sent, gram = key // n_grams, key % n_grams
    order = np.searchsorted(starts, gram, side="right") - 1
    tf = tf.astype(np.float64)

    # document frequency: number of samples whose references contain the n-gram
    is_ref = sent >= num
    sample_gram = _distinct(owner[sent[is_ref]] * n_grams + gram[is_ref])
    df = np.bincount(sample_gram % n_grams, minlength=n_grams).astype(np.float64)
    log_n = np.log(float(num))
    idf = log_n - np.log(np.maximum(1.0, df))  # n-grams in no reference get log(N), as in the original

    weight = tf * idf[gram]
    norm2 = np.bincount(sent * n + order, weights=weight * weight, minlength=n_sent * n)
    norm = np.sqrt(norm2).reshape(n_sent, n)
    # pycocoevalcap's "length" of a sentence is its number of bigrams
    lengths = np.array([max(len(t) - 1, 0) for t in tokens], dtype=np.float64) if n > 1 else np.zeros(n_sent)

    # clipped dot products: match each reference n-gram with the same n-gram of its candidate
    cand_key = (sent * n_grams + gram)[~is_ref]  # sorted, and sent == sample for candidates
    ref_idx = np.nonzero(is_ref)[0]
    ref_key = owner[sent[ref_idx]] * n_grams + gram[ref_idx]
    pos = np.minimum(np.searchsorted(cand_key, ref_key), max(cand_key.size - 1, 0))
    hit = cand_key[pos] == ref_key if cand_key.size else np.zeros(ref_key.size, dtype=bool)
    ref_idx, pos = ref_idx[hit], pos[hit]
    h = weight[~is_ref][pos]
    r = weight[ref_idx]
    dot = np.bincount(
        sent[ref_idx] * n + order[ref_idx], weights=np.minimum(h, r) * r, minlength=n_sent * n
    ).reshape(n_sent, n)[num:]

    ref_owner = owner[num:]
    norm_h, norm_r = norm[ref_owner], norm[num:]
    denom = norm_h * norm_r
    val = np.where(denom != 0, dot / np.where(denom != 0, denom, 1.0), dot)
    delta = lengths[ref_owner] - lengths[num:]
    val = val * np.exp(-(delta**2) / (2.0 * sigma * sigma))[:, None]
    per_ref = val.sum(axis=1) / n
    per_sample = np.bincount(ref_owner, weights=per_ref, minlength=num)
    scores = np.where(num_refs > 0, per_sample / np.maximum(num_refs, 1) * 10.0, 0.0)
    return mean(scores.tolist()), scores.tolist()


def tokenize(text: str, lang: str) -> str:
    """Tokenize one caption for CIDEr: `lang` is "en" (PTB) or "zh" (by character)."""
    return char_tokenize(text) if lang == "zh" else ptb_tokenize(text)


class CIDEr(SampleMetric):
    """Corpus CIDEr-D (pycocoevalcap's numbers) over (caption, references) pairs.

    Args:
        n: largest n-gram order (4).
        sigma: standard deviation of the length penalty (6.0).
        lang: "en" (PTB tokenization), "zh" (character tokenization) or "auto" (default): "zh"
            for a sample whose caption or references contain CJK characters, else "en".

    `update(preds, targets, ids=None)`: `preds` list of str (None counts as an empty caption),
    `targets` list of lists of str (each non-empty, else ValueError naming the sample id).
    """

    higher_is_better = True

    def __init__(self, n: int = 4, sigma: float = 6.0, lang: str = "auto", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if lang not in ("en", "zh", "auto"):
            raise ValueError(f"lang must be 'en', 'zh' or 'auto', got {lang!r}")
        self.n, self.sigma, self.lang = n, sigma, lang

    def update(self, preds: Sequence[str | None], targets: Sequence[Sequence[str]], ids: Ids = None) -> None:
        if len(preds) != len(targets):
            raise ValueError(f"{len(preds)} predictions but {len(targets)} reference lists")
        keys = self._keys(ids, len(preds))
        payloads = []
        for key, pred, refs in zip(keys, preds, targets, strict=True):
            text = as_text(pred, key)
            ref_texts = as_text_list(refs, key, "references")
            if not ref_texts:
                raise ValueError(f"sample {key!r}: CIDEr needs at least one reference caption")
            lang = self.lang
            if lang == "auto":
                lang = "zh" if any(has_cjk(t) for t in (text, *ref_texts)) else "en"
            payloads.append((tokenize(text, lang), tuple(tokenize(r, lang) for r in ref_texts)))
        self._extend(keys, payloads)

    def _compute_records(self, payloads: list[Any]) -> Tensor:
        if not payloads:
            return as_tensor(float("nan"))
        score, _ = cider_d([p[0] for p in payloads], [p[1] for p in payloads], self.n, self.sigma)
        return as_tensor(score)

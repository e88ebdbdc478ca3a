"""Text-answer metrics for document/chart/OCR questions: ANLS, relaxed accuracy, exact match,
plus torchmetrics' character and word error rates.

Inputs per sample: a predicted answer (str; None counts as "") and one or more reference
answers (a str or a list of str), plus an optional sample id. Each metric outputs the mean over
questions of the best score against any reference, as a float64 scalar in [0, 1]. A sample whose
reference list is missing or empty scores 0 and logs a warning naming its id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torchmetrics.text import CharErrorRate, WordErrorRate

from qwenvl.metrics.answers import AnswerMetric
from qwenvl.metrics.text import collapse_ws

__all__ = ["ANLS", "CharErrorRate", "ExactMatch", "RelaxedAccuracy", "WordErrorRate"]


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions all cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def anls_similarity(pred: str, answer: str, threshold: float = 0.5) -> float:
    """1 - normalized Levenshtein distance between DocVQA-normalized strings
    (`' '.join(s.strip().lower().split())`), set to 0 when below `threshold`.

    A similarity of exactly `threshold` is kept: "ab" vs "ac" scores 0.5. (DocVQA's reference
    code tests the distance with `< 0.5`, so it scores that case 0.)
    """
    p, a = collapse_ws(pred.lower()), collapse_ws(answer.lower())
    longest = max(len(p), len(a))
    if longest == 0:
        return 1.0  # both empty: identical
    sim = 1.0 - levenshtein(p, a) / longest
    return sim if sim >= threshold else 0.0


def _to_float(text: str) -> float | None:
    # ChartQA: "12%" is read as 0.12; the same rule for prediction and target keeps them comparable
    try:
        return float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        return None


def relaxed_match(pred: str, target: str, tolerance: float = 0.05) -> bool:
    """ChartQA's relaxed correctness: numbers within `tolerance` relative error of the target,
    other answers by case-insensitive exact match (both stripped). A target of 0 (no relative
    scale) needs a prediction that is exactly 0."""
    p, t = pred.strip(), target.strip()
    pf, tf = _to_float(p), _to_float(t)
    if pf is not None and tf is not None:
        if tf == 0:
            return pf == 0
        return abs(pf - tf) / abs(tf) <= tolerance
    return p.lower() == t.lower()


class _BestOverReferences(AnswerMetric):
    """Score = max over references of `self._score(pred, reference)`."""

    def _score(self, pred: str, reference: str) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def _score_sample(self, pred: str, references: list[str]) -> float:
        return max(self._score(pred, r) for r in references)


class ANLS(_BestOverReferences):
    """Average Normalized Levenshtein Similarity (DocVQA, InfographicVQA), threshold 0.5 kept."""

    def __init__(self, threshold: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.threshold = threshold

    def _score(self, pred: str, reference: str) -> float:
        return anls_similarity(pred, reference, self.threshold)


class RelaxedAccuracy(_BestOverReferences):
    """ChartQA relaxed accuracy (5% relative tolerance for numbers)."""

    def __init__(self, tolerance: float = 0.05, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tolerance = tolerance

    def _score(self, pred: str, reference: str) -> float:
        return float(relaxed_match(pred, reference, self.tolerance))


class ExactMatch(_BestOverReferences):
    """Exact match after stripping and collapsing white space; case-insensitive unless
    `case_sensitive=True`. `normalize` replaces that normalization entirely when given."""

    def __init__(
        self, case_sensitive: bool = False, normalize: Callable[[str], str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.case_sensitive = case_sensitive
        self.normalize = normalize

    def _norm(self, text: str) -> str:
        if self.normalize is not None:
            return self.normalize(text)
        text = collapse_ws(text)
        return text if self.case_sensitive else text.lower()

    def _score(self, pred: str, reference: str) -> float:
        return float(self._norm(pred) == self._norm(reference))

"""The shared shape of answer metrics: one predicted string against a list of reference answers.

A subclass says how one sample scores (`_score_sample(pred, references) -> float`); validation,
the miss for a sample without references, and the mean over questions live here once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from qwenvl.metrics.base import Ids, SampleMetric, as_tensor, mean
from qwenvl.metrics.text import as_text, as_text_list, log


class AnswerMetric(SampleMetric):
    """Mean over questions of `_score_sample`; a sample with no reference scores 0 (logged)."""

    higher_is_better = True

    def _score_sample(self, pred: str, references: list[str]) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def update(
        self,
        preds: Sequence[str | None],
        targets: Sequence[str | Sequence[str] | None],
        ids: Ids = None,
    ) -> None:
        if len(preds) != len(targets):
            raise ValueError(f"{len(preds)} predictions but {len(targets)} reference lists")
        keys = self._keys(ids, len(preds))
        # Validate the whole batch before any state changes, so finished work is never lost.
        checked = [
            (key, as_text(p, key), as_text_list(t, key))
            for key, p, t in zip(keys, preds, targets, strict=True)
        ]
        scores = []
        for key, pred, refs in checked:
            if not refs:
                log.warning(
                    "%s: sample %r has no reference answer; counted as a miss", type(self).__name__, key
                )
                scores.append(0.0)
            else:
                scores.append(self._score_sample(pred, refs))
        self._extend(keys, scores)

    def _compute_records(self, payloads: list[Any]) -> Tensor:
        return as_tensor(mean(payloads))

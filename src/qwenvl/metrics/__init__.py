"""Evaluation metrics as `torchmetrics.Metric`s that give the same result on 1 process and on N.

Every metric takes lists of per-sample inputs plus optional sample `ids`; records are gathered
across processes and de-duplicated by id at `compute()`, so samples a `DistributedSampler`
repeats to pad a shard count once (see `qwenvl.metrics.base`).

    >>> m = VQAAccuracy()
    >>> m.update(["2."], [["2"] * 10], ids=["q1"])
    >>> float(m.compute())
    1.0
"""

from qwenvl.metrics.base import SampleMetric
from qwenvl.metrics.cider import CIDEr, cider_d
from qwenvl.metrics.detection import GroundedCaptionMAP
from qwenvl.metrics.grounding import GroundingAccuracy
from qwenvl.metrics.ocr import ANLS, CharErrorRate, ExactMatch, RelaxedAccuracy, WordErrorRate
from qwenvl.metrics.ptb import ptb_tokenize
from qwenvl.metrics.vqa import VQAAccuracy

__all__ = [
    "ANLS",
    "CIDEr",
    "CharErrorRate",
    "ExactMatch",
    "GroundedCaptionMAP",
    "GroundingAccuracy",
    "RelaxedAccuracy",
    "SampleMetric",
    "VQAAccuracy",
    "WordErrorRate",
    "cider_d",
    "ptb_tokenize",
]

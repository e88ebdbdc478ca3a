"""The id-keyed state shared by every metric: de-duplication, ordering, torchmetrics plumbing."""

import copy
import pickle

import numpy as np
import pytest
import torch
from torchmetrics import MetricCollection

from qwenvl.metrics import ANLS, CIDEr, ExactMatch, VQAAccuracy
from qwenvl.metrics.bench_cider import synthetic_corpus


def test_without_ids_nothing_is_deduplicated():
    metric = ExactMatch()
    metric.update(["a"], ["a"])
    metric.update(["a"], ["b"])
    assert float(metric.compute()) == 0.5


def test_first_occurrence_wins_and_int_and_str_ids_differ():
    metric = ExactMatch()
    metric.update(["a", "a"], ["a", "a"], ids=[1, "1"])
    metric.update(["x"], ["a"], ids=[1])  # same id again: ignored
    assert float(metric.compute()) == 1.0


def test_id_types():
    metric = ExactMatch()
    metric.update(["a", "b"], ["a", "b"], ids=torch.tensor([3, 4]))
    metric.update(["c"], ["c"], ids=[np.int64(5)])
    assert [k for k, _ in metric.records] == [3, 4, 5]
    for bad in ([1.5], [True], [None]):
        with pytest.raises(ValueError, match="must be a str or an int"):
            metric.update(["a"], ["a"], ids=bad)
    with pytest.raises(ValueError, match="2 ids for 1 samples"):
        metric.update(["a"], ["a"], ids=[1, 2])


def test_result_does_not_depend_on_arrival_order():
    cands, refs = synthetic_corpus(40, 4, seed=5)
    ids = [f"img{i}" for i in range(40)]
    forward, backward = CIDEr(), CIDEr()
    forward.update(cands, refs, ids=ids)
    for i in reversed(range(40)):
        backward.update([cands[i]], [refs[i]], ids=[ids[i]])
    assert float(forward.compute()) == float(backward.compute())  # bit-identical


def test_forward_reset_clone_pickle_and_device_moves():
    metric = VQAAccuracy()
    batch = metric(["yes"], [["yes"] * 10], ids=["q1"])  # forward: this batch's value
    assert float(batch) == 1.0
    metric.update(["no"], [["yes"] * 10], ids=["q2"])
    assert float(metric.compute()) == 0.5
    metric = metric.to("cpu")
    assert float(copy.deepcopy(metric).compute()) == 0.5
    assert float(pickle.loads(pickle.dumps(metric)).compute()) == 0.5
    assert float(metric.clone().compute()) == 0.5
    metric.reset()
    assert metric.records == []


def test_outputs_are_float64_scalars():
    metric = ExactMatch()
    metric.update(["a"], ["a"])
    value = metric.compute()
    assert value.dtype == torch.float64 and value.ndim == 0


def test_metric_collection_keeps_metrics_apart():
    # compute groups would merge metrics with equal-looking states (ANLS and ExactMatch both
    # score 1.0 on the first batch) and compare tuple records as tensors
    collection = MetricCollection({"anls": ANLS(), "em": ExactMatch()})
    collection.update(["a"], ["a"], ids=[1])
    collection.update(["ab"], ["ac"], ids=[2])
    out = collection.compute()
    assert float(out["anls"]) == 0.75
    assert float(out["em"]) == 0.5

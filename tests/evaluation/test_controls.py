"""The controls: the same samples shown grey pictures or another sample's."""

import json

import pytest
from PIL import Image

from qwenvl.data.sample import Message, Sample
from qwenvl.evaluation import runner
from qwenvl.evaluation.benchmark import Benchmark, load_benchmark
from qwenvl.evaluation.controls import check_control, partner, sample_under, swapped_samples
from qwenvl.evaluation.image_gap import synthetic_samples
from qwenvl.paths import ROOT

BENCH_DIR = ROOT / "evaluation" / "benchmarks"


def _sample(i: int, pictures: int) -> Sample:
    colours = ["red", "green", "blue", "yellow", "white", "black"]
    images = [Image.new("RGB", (32, 32), colours[(i + k) % len(colours)]) for k in range(pictures)]
    return Sample(
        "vqa",
        [Message("user", "Colour? Answer:", pictures), Message("assistant", "red")],
        images,
        answers=["red"],
        id=f"s{i}",
    )


def test_partner_is_the_next_sample_with_as_many_pictures_and_a_lone_one_keeps_its_own():
    counts = [1, 2, 1, 1, 3]
    n = len(counts)
    assert [partner(i, n, counts.__getitem__) for i in range(n)] == [2, 1, 3, 0, 4]


def test_swapping_gives_each_sample_another_picture_of_the_same_count():
    vqa = synthetic_samples(["vqa"], 6, 224)["vqa"]
    swapped = swapped_samples(vqa)
    assert [s.messages for s in swapped] == [s.messages for s in vqa]  # text untouched
    assert [s.id for s in swapped] == [s.id for s in vqa]  # and the ids: runs pair sample by sample
    assert all(s.images[0] is not t.images[0] for s, t in zip(swapped, vqa, strict=True))
    assert swapped[0].images[0] is vqa[1].images[0] and swapped[-1].images[0] is vqa[0].images[0]
    assert swapped[0].meta["pictures_of"] == vqa[1].id and "pictures_of" not in vqa[0].meta


def test_sample_under_swapped_takes_a_partner_among_the_scored_samples_only():
    data = [_sample(i, 1) for i in range(5)]
    assert sample_under(data, 1, None) is data[1] and sample_under(data, 1, "grey") is data[1]
    assert sample_under(data, 1, "swapped").meta["pictures_of"] == "s2"
    assert sample_under(data, 2, "swapped", n=3).meta["pictures_of"] == "s0"  # wraps within the first 3


def test_an_unknown_control_names_the_valid_ones():
    assert check_control(None) is None and check_control("swapped") == "swapped"
    with pytest.raises(ValueError, match="'grey', 'swapped'"):
        check_control("shuffled")


def test_swapped_evaluation_shows_the_partners_pictures_and_keeps_each_samples_answers(
    model, proc, tmp_path, monkeypatch
):
    data = [_sample(i, 1) for i in range(3)] + [_sample(3, 2)]  # the two-picture one has no partner
    bench = Benchmark("colours", data, ["exact_match"], max_new_tokens=2)
    given = []  # the pictures the processor receives, per sample
    call = type(proc).__call__
    monkeypatch.setattr(
        type(proc),
        "__call__",
        lambda self, text, images=None, **kw: given.extend(images) or call(self, text, images, **kw),
    )
    runner.run_benchmark(model, proc, bench, tmp_path, batch_size=2, control="swapped")
    records = [json.loads(x) for x in (tmp_path / "predictions" / "colours.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["s0", "s1", "s2", "s3"]
    assert [r.get("pictures_of") for r in records] == ["s1", "s2", "s0", "s3"]
    assert [[im.getpixel((0, 0)) for im in ims] for ims in given] == [
        [(0, 128, 0)],  # s0 shown s1's green
        [(0, 0, 255)],
        [(255, 0, 0)],
        [(255, 255, 0), (255, 255, 255)],  # s3 keeps its own two
    ]
    with pytest.raises(ValueError, match="control='mixed'"):
        runner.run_benchmark(model, proc, bench, tmp_path / "x", control="mixed")


def test_grey_evaluation_replaces_the_pixels(model, proc, monkeypatch):
    bench = load_benchmark("synthetic_vqa", BENCH_DIR, image_size=224)
    samples = [bench.dataset[i] for i in range(2)]
    given = []  # the images the processor receives
    call = type(proc).__call__
    monkeypatch.setattr(
        type(proc),
        "__call__",
        lambda self, text, images=None, **kw: given.append(images) or call(self, text, images, **kw),
    )
    seen = runner._generate(model, proc, bench, samples)
    grey = runner._generate(model, proc, bench, samples, grey=True)
    assert [r["id"] for r in seen] == [r["id"] for r in grey]
    real, greyed = given
    assert any(len(set(im.getdata())) > 1 for imgs in real for im in imgs)  # the scenes have content
    for imgs, originals in zip(greyed, real, strict=True):
        for im, original in zip(imgs, originals, strict=True):
            assert im.size == original.size and set(im.getdata()) == {(128, 128, 128)}

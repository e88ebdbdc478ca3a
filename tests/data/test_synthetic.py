"""The synthetic world: determinism, splits, valid Samples per task, exact ground truth, balance,
exports."""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import pytest
from PIL import Image, ImageFont

from qwenvl.boxes import parse, to_pixels
from qwenvl.data.sample import TASKS, Sample
from qwenvl.data.synthetic import SyntheticWorld, export, render
from qwenvl.data.synthetic.scene import Scene, Text
from qwenvl.data.synthetic.vocab import COLORS, TEXT_CHARS
from qwenvl.data.templates import render_chatml, render_plain
from qwenvl.tokenizer import DEFAULT_FILE, split_markup


def _pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"))


def _same(a: Sample, b: Sample) -> bool:
    return (
        a.task == b.task
        and a.messages == b.messages
        and a.answers == b.answers
        and a.boxes == b.boxes
        and len(a.images) == len(b.images)
        and all(x.tobytes() == y.tobytes() for x, y in zip(a.images, b.images, strict=True))
    )


@pytest.fixture(scope="module")
def world() -> SyntheticWorld:
    return SyntheticWorld(seed=7, split="train", size=1000)


def test_same_seed_split_index_gives_identical_samples(world):
    again = SyntheticWorld(seed=7, split="train", size=1000)
    for i in range(0, 40, 3):
        assert _same(world[i], again[i])
        assert world[i].id == again[i].id
    other = SyntheticWorld(seed=8, split="train", size=1000)
    assert not all(_same(world[i], other[i]) for i in range(10))


def test_splits_draw_different_pictures():
    pictures = {}
    for split in ("train", "val", "test"):
        w = SyntheticWorld(seed=0, split=split, tasks=["caption"])
        pictures[split] = {w[i].images[0].tobytes() for i in range(30)}
    assert not pictures["train"] & pictures["test"]
    assert not pictures["train"] & pictures["val"]
    assert not pictures["val"] & pictures["test"]


def _tokenizer():
    if not DEFAULT_FILE.is_file():
        return None
    from qwenvl.tokenizer import QwenVLTokenizer

    return QwenVLTokenizer.default()


@pytest.mark.parametrize("task", TASKS)
def test_every_task_gives_valid_samples(world, task):
    tok = _tokenizer()
    for i in range(12):
        s = world.make(i, task=task, lang="zh" if i % 3 == 0 else "en")
        assert s.id == f"synthetic/train/{i}/{task}" and s.task == task
        assert s.meta["source"] == "synthetic"
        json.dumps(s.meta, ensure_ascii=False)  # the scene description is JSON-able
        roles = [m.role for m in s.messages]
        assert roles == ["user", "assistant"] * (len(roles) // 2)
        n_images = {"multi_image": 2, "text": 0}.get(task, 1)
        if task == "dialog":
            assert 2 <= len(roles) // 2 <= 3 and len(s.images) in (1, 2)
        else:
            assert len(roles) == 2 and s.messages[0].num_images == n_images == len(s.images)
        for img in s.images:
            assert img.size == (224, 224) and img.mode == "RGB"
        if s.images:
            assert s.meta["image_size"] == (224, 224) and s.meta["scene"]["objects"]
        assert all(0 <= v < 1000 for box in s.boxes for v in box)
        segments = render_chatml(s) if task == "dialog" else render_plain(s)
        markup = "".join(seg.markup for seg in segments)
        if tok is not None:
            assert tok.encode(markup)
        # Every box written in the answer is structure, and it is the reference box.
        target_boxes = [g.box for m in s.messages if m.role == "assistant" for g in parse(m.content)]
        if task == "grounding":
            target_boxes = [g.box for g in parse(s.prompt + s.target)]
        assert target_boxes == s.boxes
        if task in ("caption", "vqa", "ocr", "text", "multi_image"):
            literal = "".join(p for p, special in split_markup(s.target) if not special)
            assert literal == s.answers[0]


def test_grounding_box_covers_the_object_pixels(world):
    checked, tight = 0, 0
    for i in range(120):
        s = world.make(i, task="grounding", lang="en")
        objects = s.meta["scene"]["objects"]
        color = s.meta["expression"].split()[1]
        if sum(o["color"] == color for o in objects) != 1:
            continue  # another object of that colour would blur the pixel count
        mask = np.all(_pixels(s.images[0]) == COLORS[color], axis=-1)
        x1, y1, x2, y2 = to_pixels(s.boxes[0], 224, 224)
        inside = mask[int(y1) : int(np.ceil(y2)) + 1, int(x1) : int(np.ceil(x2)) + 1].sum()
        assert inside >= 0.97 * mask.sum() > 0
        ys, xs = np.nonzero(mask)
        drawn = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        iw = min(drawn[2], x2) - max(drawn[0], x1)
        ih = min(drawn[3], y2) - max(drawn[1], y1)
        union = (drawn[2] - drawn[0]) * (drawn[3] - drawn[1]) + (x2 - x1) * (y2 - y1) - iw * ih
        tight += iw * ih / union > 0.8  # occlusion by a later shape may cut a few
        checked += 1
    assert checked >= 50 and tight >= 0.9 * checked


def test_vqa_answers_are_balanced(world):
    samples = [world.make(i, task="vqa", lang="en") for i in range(600)]
    by_type = Counter(s.meta["question_type"] for s in samples)
    assert set(by_type) == {"colour", "shape", "count", "relation", "exists", "relation_yn"}
    yes_no = Counter(s.answers[0] for s in samples if s.meta["question_type"] in ("exists", "relation_yn"))
    assert set(yes_no) == {"yes", "no"}
    assert 0.4 <= yes_no["yes"] / sum(yes_no.values()) <= 0.6
    colours = Counter(s.answers[0] for s in samples if s.meta["question_type"] == "colour")
    assert set(colours) == set(COLORS) and max(colours.values()) <= 3 * min(colours.values())
    relations = Counter(s.answers[0] for s in samples if s.meta["question_type"] == "relation")
    assert set(relations) == {"left", "right", "above", "below"}
    pictures = Counter(world.make(i, task="multi_image").answers[0] for i in range(200))
    more = pictures["Picture 1"] + pictures["图片1"], pictures["Picture 2"] + pictures["图片2"]
    assert 0.35 <= more[0] / sum(more) <= 0.65


def test_chinese_share_follows_the_ratio():
    langs = Counter(SyntheticWorld(seed=1, tasks=["caption", "vqa", "grounding"])[i].lang for i in range(600))
    assert 0.25 <= langs["zh"] / 600 <= 0.35
    assert all(SyntheticWorld(seed=1, zh_ratio=0.0)[i].lang == "en" for i in range(50))
    zh = SyntheticWorld(seed=1, tasks=["caption"], zh_ratio=1.0)[0]
    assert zh.lang == "zh" and zh.answers[0].endswith("。") and "用中文" in zh.prompt


def test_task_mixture_follows_the_weights():
    w = SyntheticWorld(seed=3, tasks=["caption", "vqa", "ocr"], weights=[3, 1, 0])
    tasks = Counter(w.task_of(i) for i in range(2000))
    assert tasks["ocr"] == 0 and 0.7 <= tasks["caption"] / 2000 <= 0.8
    with pytest.raises(ValueError):
        SyntheticWorld(tasks=["painting"])
    with pytest.raises(ValueError):
        SyntheticWorld(tasks=["caption"], weights=[1, 2])
    with pytest.raises(ValueError):
        SyntheticWorld(split="dev")
    with pytest.raises(IndexError):
        SyntheticWorld(size=5)[5]


def test_max_objects_caps_the_shapes_except_where_a_question_needs_more():
    lone = SyntheticWorld(seed=2, tasks=["grounding", "caption"], max_objects=1)
    assert all(len(lone[i].meta["scene"]["objects"]) == 1 for i in range(40))
    capped = SyntheticWorld(seed=2, tasks=["vqa"], max_objects=1)
    samples = [capped[i] for i in range(200)]
    relations = [s for s in samples if s.meta["question_type"].startswith("relation")]
    assert relations and all(len(s.meta["scene"]["objects"]) == 2 for s in relations)  # needs two
    counts = [
        int(s.answers[0]) for s in samples if s.meta["question_type"] == "count" and s.answers[0].isdigit()
    ]
    assert max(counts) > 1  # a count answer is still drawn 0-4 and its scene built to fit
    default = SyntheticWorld(seed=2, tasks=["grounding"])  # 4, the default cap: up to 4 shapes
    capped_captions = SyntheticWorld(seed=2, tasks=["grounding"], max_objects={"caption": 1})
    assert all(_same(default[i], capped_captions[i]) for i in range(10))  # a cap on one task leaves the rest
    assert max(len(default[i].meta["scene"]["objects"]) for i in range(40)) == 4
    per_task = SyntheticWorld(seed=2, tasks=["grounding", "caption"], max_objects={"grounding": 1})
    shapes = {
        t: [len(s.meta["scene"]["objects"]) for s in (per_task[i] for i in range(80)) if s.task == t]
        for t in ("grounding", "caption")
    }
    assert set(shapes["grounding"]) == {1} and max(shapes["caption"]) == 4
    for bad in (0, {"grounding": 5}, {"painting": 1}):
        with pytest.raises(ValueError, match="max_objects"):
            SyntheticWorld(max_objects=bad)


def test_ocr_answer_is_the_rendered_string(world):
    for i in range(25):
        s = world.make(i, task="ocr", lang="en")
        string = s.answers[0]
        text = s.meta["scene"]["text"]
        assert string == text["string"] and 3 <= len(string) <= 6 and set(string) <= set(TEXT_CHARS)
        # Re-render the answer alone on the same background: the text region must match exactly,
        # since shapes keep clear of the text.
        scene = s.meta["scene"]
        alone = Scene(224, 224, tuple(scene["background"]), (), _text_of(s))
        x1, y1, x2, y2 = (int(v) for v in text["box"])
        crop = (x1, y1, x2 + 1, y2 + 1)
        assert s.images[0].crop(crop).tobytes() == render.render(alone).crop(crop).tobytes()


def _text_of(s: Sample) -> Text:
    t = s.meta["scene"]["text"]
    return Text(s.answers[0], *t["anchor"], t["size"], tuple(t["color"]), tuple(t["box"]))


def test_bitmap_font_fallback_draws_readable_text(monkeypatch):
    monkeypatch.setattr(render, "font", lambda size: ImageFont.load_default_imagefont())
    box = render.text_box("AB3", 30, 20, 40)
    img = render.render(Scene(224, 224, (230, 230, 230), (), Text("AB3", 20, 40, 30, (0, 0, 0), box)))
    dark = np.nonzero(_pixels(img).sum(-1) == 0)
    assert box[2] - box[0] > 30 and dark[0].size > 50
    assert dark[1].min() >= box[0] - 1 and dark[1].max() <= box[2] + 1


def test_dialog_and_multi_image_structure(world):
    kinds = Counter()
    for i in range(60):
        d = world.make(i, task="dialog")
        assert d.messages[0].num_images == len(d.images) and sum(m.num_images for m in d.messages[1:]) == 0
        assert len(d.answers) == len(d.messages) // 2 == len(d.meta["turns"])
        kinds.update(t["kind"] for t in d.meta["turns"])
        m = world.make(i, task="multi_image", lang="en")
        if m.meta["question_type"] == "change":
            assert m.images[0].tobytes() != m.images[1].tobytes()
            assert any(w in m.answers[0] for w in ("turned", "was removed", "was added"))
    assert {"caption", "count", "exists", "where"} <= set(kinds)


def test_caption_lists_objects_left_to_right(world):
    for i in range(40):
        s = world.make(i, task="grounded_caption", lang="en")
        lefts = [b[0] + b[2] for b in s.boxes[: len(s.meta["scene"]["objects"])]]
        assert (
            lefts == sorted(lefts) or max(abs(a - b) for a, b in zip(lefts, sorted(lefts), strict=True)) <= 2
        )


def test_text_task_has_no_picture(world):
    s = world.make(0, task="text")
    assert s.images == [] and s.meta["image_size"] is None and s.messages[0].num_images == 0


def test_exports_write_parsable_files(tmp_path):
    w = SyntheticWorld(seed=5, split="val", size=20)
    paths = export.export_all(w, tmp_path, 6)

    coco = json.loads(paths["coco_karpathy"].read_text())
    entry = coco["images"][0]
    assert {"filepath", "filename", "split", "sentences", "cocoid"} <= set(entry) and entry["split"] == "val"
    assert {"raw", "tokens"} <= set(entry["sentences"][0])
    Image.open(paths["coco_karpathy"].parent / entry["filepath"] / entry["filename"]).verify()

    q_path, a_path = paths["vqav2"]
    questions = json.loads(q_path.read_text())["questions"]
    annotations = json.loads(a_path.read_text())["annotations"]
    assert len(questions) == len(annotations) == 6
    assert {"image_id", "question", "question_id"} <= set(questions[0])
    ann = annotations[0]
    assert {"question_id", "image_id", "answers", "multiple_choice_answer", "answer_type"} <= set(ann)
    assert len(ann["answers"]) == 10 and {"answer", "answer_confidence", "answer_id"} <= set(
        ann["answers"][0]
    )
    assert (q_path.parent / f"images/COCO_val_{questions[0]['image_id']:012d}.jpg").is_file()

    rows = [json.loads(line) for line in paths["refcoco"].read_text().splitlines()]
    assert len(rows) == 6 and {"image", "sent", "bbox", "width", "height"} <= set(rows[0])
    x, y, bw, bh = rows[0]["bbox"]
    assert 0 <= x and 0 <= y and x + bw <= rows[0]["width"] and y + bh <= rows[0]["height"]

    rows = [json.loads(line) for line in paths["docvqa"].read_text().splitlines()]
    assert {"image", "question", "answers"} <= set(rows[0]) and rows[0]["answers"][0]
    assert (paths["docvqa"].parent / rows[0]["image"]).is_file()

    records = json.loads(paths["qwen_sft"].read_text(encoding="utf-8"))
    assert len(records) == 6
    for r in records:
        turns = r["conversations"]
        assert [t["from"] for t in turns] == ["user", "assistant"] * (len(turns) // 2)
        for rel in re.findall(r"<img>(.*?)</img>", turns[0]["value"]):
            assert (paths["qwen_sft"].parent / rel).is_file()

"""Format loaders: small real-layout fixtures in tmp dirs, every loader, every kind of bad input."""

from __future__ import annotations

import inspect
import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from qwenvl.data import templates
from qwenvl.data.formats import (
    AI2D,
    GQA,
    LOADERS,
    ChartQA,
    CocoCaptions,
    DataError,
    DocVQA,
    QwenSFT,
    RefCOCO,
    TextVQA,
    VizWiz,
    VQAv2,
    WebDatasetPairs,
    load_sample_images,
    read_json,
    read_jsonl,
    safe_path,
)
from qwenvl.paths import CONF_DIR
from qwenvl.tokenizer import split_markup

# -- fixture helpers --------------------------------------------------------------------------


def image_bytes(size=(16, 12), fmt="PNG", seed=0) -> bytes:
    pixels = np.random.RandomState(seed).randint(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt)
    return buf.getvalue()


def write_image(path: Path, size=(16, 12), fmt="PNG") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(size, fmt))
    return path.name


BAD_IMAGES = {
    # kind -> (reason counted, file content); "missing" writes nothing
    "missing": ("missing_image", None),
    "zero_byte": ("empty_image", b""),
    "corrupt": ("corrupt_image", b"this is not an image" * 8),
    "truncated": (
        "truncated_image",
        image_bytes((30, 30))[:400],
    ),  # header intact; 900 pixels, under the limit
    "too_large": ("image_too_large", image_bytes((64, 64))),  # loaders use max_pixels=1000
}


def write_bad_image(path: Path, kind: str) -> None:
    content = BAD_IMAGES[kind][1]
    if content is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def no_special_tags(markup: str) -> bool:
    return not any(special for _, special in split_markup(markup))


# -- COCO captions ----------------------------------------------------------------------------


def _karpathy(tmp_path: Path) -> Path:
    for name in ("a.png", "b.png", "c.png"):
        write_image(tmp_path / "val2014" / name)
    images = [
        {"filepath": "val2014", "filename": "a.png", "split": "test", "cocoid": 1,
         "sentences": [{"raw": " A dog <img> on a sofa. "}, {"raw": "A brown dog."}, {"raw": "Dog."}]},
        {"filepath": "val2014", "filename": "b.png", "split": "train", "cocoid": 2,
         "sentences": [{"raw": "x"}]},
        {"filepath": "val2014", "filename": "c.png", "split": "test", "cocoid": 3,
         "sentences": [{"raw": "y"}]},
    ]  # fmt: skip
    return write_json(tmp_path / "dataset_coco.json", {"images": images})


def test_coco_captions(tmp_path):
    _karpathy(tmp_path)
    ds = CocoCaptions(tmp_path, "dataset_coco.json", split="test")
    assert len(ds) == 2 and ds.stats["filtered"] == 1 and ds.stats["records"] == 3
    s = ds[0]
    assert s.task == "caption" and s.id == "coco_captions/1"
    assert s.prompt == templates.prompt("caption", "en")
    assert s.target == "A dog \\<img> on a sofa." and no_special_tags(s.target)
    assert s.answers == ["A dog <img> on a sofa.", "A brown dog.", "Dog."]
    assert s.images == [str((tmp_path / "val2014" / "a.png").resolve())]
    assert s.meta["source"].endswith("dataset_coco.json") and s.meta["record"] == 0

    both = CocoCaptions(tmp_path, "dataset_coco.json", split=["test", "train"], sentence="random", seed=3)
    again = CocoCaptions(tmp_path, "dataset_coco.json", split=["test", "train"], sentence="random", seed=3)
    assert len(both) == 3 and [s.target for s in both] == [s.target for s in again]
    assert both[0].target in {"A dog \\<img> on a sofa.", "A brown dog.", "Dog."}


def test_lang_zh_prompt(tmp_path):
    _karpathy(tmp_path)
    zh = CocoCaptions(tmp_path, "dataset_coco.json", lang="zh")
    assert zh[0].prompt == templates.prompt("caption", "zh") and zh[0].lang == "zh"
    with pytest.raises(KeyError, match="fr"):
        CocoCaptions(tmp_path, "dataset_coco.json", lang="fr")


# -- VQA family -------------------------------------------------------------------------------


def _vqav2(tmp_path: Path) -> None:
    for image_id in (42, 43):
        write_image(tmp_path / f"COCO_val2014_{image_id:012d}.jpg", fmt="JPEG")
    questions = [
        {"question_id": 420, "image_id": 42, "question": "What is <img> here?"},
        {"question_id": 430, "image_id": 43, "question": "How many?"},
    ]
    answers = ["two", "2", "2", "two", "2", "3", "2", "two", "2", "2"]
    annotations = [
        {"question_id": 420, "multiple_choice_answer": "cat", "answers": [{"answer": "cat"}] * 10},
        {"question_id": 430, "answers": [{"answer": a} for a in answers]},  # no multiple_choice_answer
    ]
    write_json(tmp_path / "q.json", {"data_subtype": "val2014", "questions": questions})
    write_json(tmp_path / "a.json", {"annotations": annotations})


def test_vqav2(tmp_path):
    _vqav2(tmp_path)
    ds = VQAv2(tmp_path, "q.json", answers_file="a.json")
    a, b = ds[0], ds[1]
    assert a.id == "vqav2/420" and a.task == "vqa"
    assert a.prompt == "What is \\<img> here? Answer:" and no_special_tags(a.prompt)
    assert a.target == "cat" and a.answers == ["cat"] * 10
    assert a.images[0].endswith("COCO_val2014_000000000042.jpg")
    assert b.target == "2" and len(b.answers) == 10 and b.answers[0] == "two"  # most frequent; order kept

    test_split = VQAv2(tmp_path, "q.json")  # no annotations: prompt-only samples
    assert [m.role for m in test_split[0].messages] == ["user"] and test_split[0].answers == []

    with pytest.raises(ValueError, match="unknown field 'name'"):
        VQAv2(tmp_path, "q.json", image_template="{name}.jpg")


def test_vizwiz_textvqa_gqa(tmp_path):
    write_image(tmp_path / "VizWiz_val_0.jpg", fmt="JPEG")
    write_image(tmp_path / "abc.jpg", fmt="JPEG")
    write_json(tmp_path / "vizwiz.json", [
        {"image": "VizWiz_val_0.jpg", "question": "What is this?",
         "answers": [{"answer": "soup", "answer_confidence": "yes"}] * 7
         + [{"answer": "unanswerable", "answer_confidence": "no"}] * 3},
        {"image": "VizWiz_val_0.jpg", "question": "And this?"},  # test-split record: no answers
    ])  # fmt: skip
    viz = VizWiz(tmp_path, "vizwiz.json")
    assert len(viz) == 1 and viz.stats["skipped/missing_field"] == 1
    assert viz[0].target == "soup" and viz[0].answers[-1] == "unanswerable" and viz[0].id == "vizwiz/0"
    assert len(VizWiz(tmp_path, "vizwiz.json", require_answers=False)) == 2

    write_json(tmp_path / "textvqa.json", {"data": [
        {"question_id": 7, "image_id": "abc", "question": "What brand?",
         "image_width": 16, "image_height": 12, "answers": ["nokia"] * 6 + ["nokía"] * 4},
    ]})  # fmt: skip
    tv = TextVQA(tmp_path, "textvqa.json")[0]
    assert tv.id == "textvqa/7" and tv.target == "nokia" and tv.meta["image_size"] == (16, 12)
    assert tv.images[0].endswith("abc.jpg")

    write_json(tmp_path / "gqa.json", {
        "201": {"imageId": "abc", "question": "Is it red?", "answer": "no", "fullAnswer": "No, it is blue."},
    })  # fmt: skip
    g = GQA(tmp_path, "gqa.json")[0]
    assert g.id == "gqa/201" and g.target == "no" and g.answers == ["no"]
    assert g.prompt == "Is it red? Answer:" and g.meta["full_answer"] == "No, it is blue."


# -- RefCOCO ----------------------------------------------------------------------------------


def _refcoco_rows(tmp_path: Path) -> list[dict]:
    write_image(tmp_path / "train2014" / "img.jpg", size=(200, 100), fmt="JPEG")
    good = {"image": "train2014/img.jpg", "sent": "the <box> man", "bbox": [10, 20, 100, 40], "width": 200,
            "height": 100}  # fmt: skip
    return [
        good,
        {**good, "sent": None, "expression": "left dog"},  # `expression` instead of `sent`
        {**good, "bbox": [150, 20, 100, 40]},  # x2 = 250 > 200: out of range
        {**good, "bbox": [10, 20, 0, 40]},  # zero width: degenerate
        {k: v for k, v in good.items() if k != "width"},  # missing field
    ]


def test_refcoco_targets_and_bad_boxes(tmp_path):
    rows = _refcoco_rows(tmp_path)
    rows[1].pop("sent")
    write_jsonl(tmp_path / "refcoco_val.jsonl", rows)
    ds = RefCOCO(tmp_path, "refcoco_val.jsonl")
    assert len(ds) == 2
    assert ds.stats == {
        "records": 5, "samples": 2, "filtered": 0, "skipped": 3,
        "skipped/box_out_of_range": 1, "skipped/box_degenerate": 1, "skipped/missing_field": 1,
    }  # fmt: skip
    s = ds[0]
    assert s.task == "grounding" and s.id == "refcoco/0"
    assert s.prompt == "<ref>the \\<box> man</ref><box>"
    assert s.target == "(50,200),(550,600)</box>"
    assert s.boxes == [(50, 200, 550, 600)]
    assert s.meta["image_size"] == (200, 100) and s.meta["bbox_pixels"] == (10, 20, 110, 60)
    assert ds[1].prompt == "<ref>left dog</ref><box>"

    with pytest.raises(DataError, match=r"refcoco_val\.jsonl: record 2: .*outside") as e:
        RefCOCO(tmp_path, "refcoco_val.jsonl", on_error="raise")
    assert e.value.reason == "box_out_of_range" and e.value.record == 2


def test_refcoco_pickle_needs_opt_in(tmp_path):
    write_image(tmp_path / "COCO_train2014_000000000005.jpg", size=(200, 100))
    refs = [
        {
            "ref_id": 9,
            "ann_id": 77,
            "image_id": 5,
            "split": "val",
            "sentences": [{"sent": "red car", "raw": "Red car"}, {"sent": "the car", "raw": "The car"}],
        }
    ]
    instances = {
        "images": [{"id": 5, "file_name": "COCO_train2014_000000000005.jpg", "width": 200, "height": 100}],
        "annotations": [{"id": 77, "image_id": 5, "bbox": [0, 0, 100, 50]}],
    }
    (tmp_path / "refs(unc).p").write_bytes(pickle.dumps(refs))
    write_json(tmp_path / "instances.json", instances)
    with pytest.raises(ValueError, match="refusing to unpickle.*runs arbitrary code.*allow_pickle=True"):
        RefCOCO(tmp_path, "refs(unc).p")
    ds = RefCOCO(tmp_path, "refs(unc).p", split="val", allow_pickle=True)
    assert [s.prompt for s in ds] == ["<ref>red car</ref><box>", "<ref>the car</ref><box>"]
    assert ds[0].boxes == [(0, 0, 500, 500)] and [s.id for s in ds] == ["refcoco/9/0", "refcoco/9/1"]
    assert len(RefCOCO(tmp_path, "refs(unc).p", split="testA", allow_pickle=True)) == 0


# -- document QA ------------------------------------------------------------------------------


def test_doc_vqa_chartqa_ai2d(tmp_path):
    write_image(tmp_path / "documents" / "d.png")
    write_jsonl(tmp_path / "docvqa.jsonl", [
        {"image": "documents/d.png", "question": "What is the date?", "answers": ["1 May", "May 1"],
         "question_id": 5},
    ])  # fmt: skip
    d = DocVQA(tmp_path, "docvqa.jsonl")[0]
    assert d.id == "docvqa/5" and d.target == "1 May" and d.answers == ["1 May", "May 1"]
    assert d.prompt == "What is the date? Answer:"

    write_jsonl(tmp_path / "chartqa.jsonl", [{"image": "documents/d.png", "question": "Peak?", "answer": 42}])
    c = ChartQA(tmp_path, "chartqa.jsonl")[0]
    assert c.id == "chartqa/0" and c.target == "42" and c.answers == ["42"]

    options = ["a cat", "a dog", "a bird"]
    write_jsonl(tmp_path / "ai2d.jsonl", [
        {"image": "documents/d.png", "question": "Which eats seeds?", "options": options, "answer": 2},
        {"image": "documents/d.png", "question": "Which barks?", "options": options, "answers": ["a dog"]},
        {"image": "documents/d.png", "question": "Which meows?", "options": options, "answer": "a"},
        {"image": "documents/d.png", "question": "Which?", "options": options, "answer": "a fish"},
    ])  # fmt: skip
    ai2d = AI2D(tmp_path, "ai2d.jsonl")
    assert ai2d[0].prompt == "Which eats seeds?\nA. a cat\nB. a dog\nC. a bird Answer:"
    assert [s.target for s in ai2d] == ["C", "B", "A"] and ai2d[0].answers == ["C"]
    assert ai2d.stats["skipped/bad_value"] == 1


# -- Qwen-VL fine-tuning JSON -----------------------------------------------------------------


def test_qwen_sft(tmp_path):
    write_image(tmp_path / "images" / "1.png")
    write_image(tmp_path / "images" / "2.png")
    hi = {"from": "user", "value": "hi"}
    records = [
        {"id": "identity_0", "conversations": [
            {"from": "user",
             "value": "Picture 1: <img>images/1.png</img>\nPicture 2: <img>images/2.png</img>\n"
                      "Compare them. What does <img> mean?"},
            {"from": "assistant",
             "value": "<ref>The dog</ref><box>(10,20),(300,400)</box> is a \\ <b>dog</b>."},
            {"from": "user", "value": "And <box>(1,1),(2,2)</box>?"},
            {"from": "assistant", "value": "<box>(5,6),(7,8)</box> and <ref>two</ref><box>(1,2),(3,4)</box>"
                                           "<box>(5,6),(7,9)</box>"}]},
        {"id": 1, "conversations": [  # the grounding prompt written as a dialog
            {"from": "human", "value": "Picture 1: <img>images/1.png</img>\n<ref>the cat</ref><box>"},
            {"from": "gpt", "value": "(1,2),(30,40)</box>"}]},
        {"id": 2, "conversations": [hi, {"from": "assistant", "value": "a </box>"}]},
        {"id": 3, "conversations": [hi, {"from": "assistant", "value": "<box>(5,5),(5,9)</box>"}]},
        {"id": 4, "conversations": [{"from": "assistant", "value": "hello"}]},
        {"id": 5, "conversations": [{"from": "user", "value": "<img>http://x.org/a.png</img> hi"},
                                    {"from": "assistant", "value": "ok"}]},
    ]  # fmt: skip
    write_json(tmp_path / "sft.json", records)
    ds = QwenSFT(tmp_path, "sft.json")
    assert len(ds) == 2
    assert ds.stats["skipped/bad_markup"] == 1 and ds.stats["skipped/box_degenerate"] == 1
    assert ds.stats["skipped/bad_conversation"] == 1 and ds.stats["skipped/remote_image"] == 1
    s = ds[0]
    assert s.task == "dialog" and s.id == "qwen_sft/identity_0"
    assert s.images == [str((tmp_path / "images" / n).resolve()) for n in ("1.png", "2.png")]
    user, answer, user2, answer2 = s.messages
    assert user.num_images == 2 and user.content == "Compare them. What does \\<img> mean?"
    assert no_special_tags(user.content) and no_special_tags(user2.content)
    assert answer.content == "<ref>The dog</ref><box>(10,20),(300,400)</box> is a \\\\ \\<b>dog\\</b>."
    assert (
        answer2.content
        == "<box>(5,6),(7,8)</box> and <ref>two</ref><box>(1,2),(3,4)</box><box>(5,6),(7,9)</box>"
    )
    assert s.boxes == [(5, 6, 7, 8), (1, 2, 3, 4), (5, 6, 7, 9)]
    # Rendered with the chat template, the record has exactly its two image slots.
    rendered = "".join(seg.markup for seg in templates.render(s, "chatml"))
    assert [p for p, special in split_markup(rendered) if special].count("<img>") == 2

    g = ds[1]
    assert g.messages[0].content == "<ref>the cat</ref><box>" and g.messages[0].num_images == 1
    assert g.messages[1].content == "(1,2),(30,40)</box>" and g.boxes == [(1, 2, 30, 40)]

    with pytest.raises(DataError, match=r"sft\.json: record 2: conversations\[1\] has a stray </box>"):
        QwenSFT(tmp_path, "sft.json", on_error="raise")


def test_qwen_sft_refuses_path_escape(tmp_path):
    root = tmp_path / "root"
    write_image(tmp_path / "outside.png")
    write_image(root / "ok.png")
    turn = {"from": "assistant", "value": "ok"}
    write_json(root / "sft.json", [
        {"id": 0, "conversations": [{"from": "user", "value": "<img>../outside.png</img>x"}, turn]},
        {"id": 1, "conversations": [{"from": "user", "value": f"<img>{tmp_path}/outside.png</img>x"}, turn]},
        {"id": 2, "conversations": [{"from": "user", "value": "<img>ok.png</img>x"}, turn]},
    ])  # fmt: skip
    ds = QwenSFT(root, "sft.json")
    assert len(ds) == 1 and ds.stats["skipped/unsafe_path"] == 2
    with pytest.raises(
        ValueError, match=r"sft\.json: record 0: image path '\.\./outside\.png' contains '\.\.'"
    ):
        QwenSFT(root, "sft.json", on_error="raise")


# -- paths, JSON, policy ----------------------------------------------------------------------


def test_safe_path(tmp_path):
    root = tmp_path / "root"
    write_image(root / "a.png")
    write_image(tmp_path / "secret.png")
    (root / "link_out.png").symlink_to(tmp_path / "secret.png")
    (root / "link_in.png").symlink_to(root / "a.png")
    assert safe_path(root, "a.png") == (root / "a.png").resolve()
    assert safe_path(root, "link_in.png") == (root / "a.png").resolve()
    for bad, why in [("../secret.png", "'..'"), (str(tmp_path / "secret.png"), "absolute"),
                     ("sub/../../secret.png", "'..'"), ("link_out.png", "outside the root")]:  # fmt: skip
        with pytest.raises(ValueError, match=why) as e:
            safe_path(root, bad, file="ann.json", record=3)
        assert "ann.json: record 3" in str(e.value) and repr(bad) in str(e.value)


def test_symlink_escape_is_skipped_by_loaders(tmp_path):
    root = tmp_path / "root"
    write_image(tmp_path / "secret.png")
    write_image(root / "ok.png")
    (root / "link.png").symlink_to(tmp_path / "secret.png")
    rows = [{"image": "link.png", "question": "q", "answers": ["a"]}, {"image": "ok.png", "question": "q",
            "answers": ["a"]}]  # fmt: skip
    write_jsonl(root / "doc.jsonl", rows)
    ds = DocVQA(root, "doc.jsonl")
    assert len(ds) == 1 and ds.stats["skipped/unsafe_path"] == 1


def test_invalid_json_fails_at_once_with_position(tmp_path):
    (tmp_path / "bad.json").write_text('{"images": [\n  {"filename": "a.png",}\n]}')
    with pytest.raises(DataError, match=r"bad\.json:2:\d+: invalid JSON"):
        read_json(tmp_path / "bad.json")
    with pytest.raises(DataError, match=r"bad\.json:2:\d+: invalid JSON"):  # even under on_error="skip"
        CocoCaptions(tmp_path, "bad.json", on_error="skip")
    (tmp_path / "bad.jsonl").write_text('{"image": "a.png"}\n\n{"image": "b.png" "question": 1}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:3:19: invalid JSON"):
        read_jsonl(tmp_path / "bad.jsonl")
    with pytest.raises(DataError, match=r"bad\.jsonl:3:19"):
        RefCOCO(tmp_path, "bad.jsonl")
    write_json(tmp_path / "list.json", [1, 2])
    with pytest.raises(DataError, match=r"list\.json: not a coco_captions annotation file; expected"):
        CocoCaptions(tmp_path, "list.json")
    with pytest.raises(FileNotFoundError, match="nothere.json does not exist"):
        CocoCaptions(tmp_path, "nothere.json")
    with pytest.raises(ValueError, match="on_error must be one of"):
        CocoCaptions(tmp_path, "list.json", on_error="ignore")


def test_missing_fields_skip_and_raise(tmp_path):
    write_image(tmp_path / "a.png")
    write_jsonl(tmp_path / "doc.jsonl", [
        {"image": "a.png", "question": "q", "answers": ["x"]},
        {"image": "a.png", "answers": ["x"]},
        {"image": "a.png", "question": "  ", "answers": ["x"]},
        ["not", "an", "object"],
    ])  # fmt: skip
    ds = DocVQA(tmp_path, "doc.jsonl")
    assert len(ds) == 1
    assert ds.stats["skipped/missing_field"] == 1 and ds.stats["skipped/bad_value"] == 1
    assert ds.stats["skipped/bad_record"] == 1 and ds.stats["skipped"] == 3
    with pytest.raises(DataError, match=r"doc\.jsonl: record 1: missing field 'question' \(fields present"):
        DocVQA(tmp_path, "doc.jsonl", on_error="raise")


def test_skips_are_logged_with_file_record_and_reason(tmp_path, caplog):
    write_jsonl(tmp_path / "doc.jsonl", [{"image": "gone.png", "question": "q", "answers": ["x"]}])
    with caplog.at_level("WARNING"):
        ds = DocVQA(tmp_path, "doc.jsonl")
    assert len(ds) == 0 and ds.stats["skipped/missing_image"] == 1
    assert (
        "missing_image" in caplog.text and "doc.jsonl: record 0" in caplog.text and "gone.png" in caplog.text
    )


# -- bad images -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(BAD_IMAGES))
def test_bad_images(tmp_path, kind):
    reason = BAD_IMAGES[kind][0]
    write_image(tmp_path / "good.png", size=(10, 10))
    write_bad_image(tmp_path / "bad.png", kind)
    rows = [{"image": "good.png", "question": "q", "answers": ["a"]}, {"image": "bad.png", "question": "q",
            "answers": ["a"]}]  # fmt: skip
    write_jsonl(tmp_path / "doc.jsonl", rows)

    # Found at construction with check_images="decode": skipped and counted, or raised.
    ds = DocVQA(tmp_path, "doc.jsonl", check_images="decode", max_pixels=1000)
    assert len(ds) == 1 and ds.stats[f"skipped/{reason}"] == 1 and ds.stats["skipped"] == 1
    assert ds[0].meta["image_size"] == (10, 10)
    with pytest.raises(DataError, match=r"doc\.jsonl: record 1: image .*bad\.png") as e:
        DocVQA(tmp_path, "doc.jsonl", check_images="decode", max_pixels=1000, on_error="raise")
    assert e.value.reason == reason and e.value.record == 1

    # Found when pixels are loaded in collation (no checks at construction).
    lazy = DocVQA(tmp_path, "doc.jsonl", check_images="none", max_pixels=1000)
    assert len(lazy) == 2
    loaded = load_sample_images(lazy[0], 1000)
    assert isinstance(loaded.images[0], Image.Image) and loaded.images[0].mode == "RGB"
    with pytest.raises(DataError, match=r"doc\.jsonl: record 1: image .*bad\.png") as e:
        load_sample_images(lazy[1], 1000)
    assert e.value.reason == reason
    assert lazy.load_images(lazy[1]) is None and lazy.stats[f"skipped/{reason}"] == 1


def test_cheap_image_checks(tmp_path):
    write_image(tmp_path / "good.png", size=(10, 10))
    for kind in BAD_IMAGES:
        write_bad_image(tmp_path / f"{kind}.png", kind)
    rows = [{"image": f"{k}.png", "question": "q", "answers": ["a"]} for k in ["good", *BAD_IMAGES]]
    write_jsonl(tmp_path / "doc.jsonl", rows)
    exists = DocVQA(tmp_path, "doc.jsonl")  # the default: one stat per image
    assert (
        len(exists) == 4
        and exists.stats["skipped/missing_image"] == 1
        and exists.stats["skipped/empty_image"] == 1
    )
    header = DocVQA(tmp_path, "doc.jsonl", check_images="header", max_pixels=1000)
    assert len(header) == 2  # the truncated file has a good header
    assert header.stats["skipped/corrupt_image"] == 1 and header.stats["skipped/image_too_large"] == 1


def test_processor_limit_is_used(tmp_path):
    from qwenvl.processor import QwenVLProcessor
    from qwenvl.tokenizer import QwenVLTokenizer

    write_image(tmp_path / "a.png", size=(40, 40))
    write_jsonl(tmp_path / "doc.jsonl", [{"image": "a.png", "question": "q", "answers": ["a"]}])
    sample = DocVQA(tmp_path, "doc.jsonl")[0]
    processor = QwenVLProcessor(QwenVLTokenizer.default(), max_pixels=1000)
    with pytest.raises(DataError, match="40x40, over the 1000-pixel limit"):
        load_sample_images(sample, processor)
    processor.max_pixels = 10_000
    assert load_sample_images(sample, processor).images[0].size == (40, 40)


# -- WebDataset shards ------------------------------------------------------------------------


def _write_shards(root: Path, n_shards=2, per_shard=3, bad=False) -> list[str]:
    import webdataset as wds

    keys = []
    for s in range(n_shards):
        with wds.TarWriter(str(root / f"pairs-{s:06d}.tar")) as sink:
            for i in range(per_shard):
                key = f"s{s}_{i:04d}"
                keys.append(key)
                member = {"__key__": key, "png": image_bytes((8, 8), seed=i)}
                if i % 2:
                    member["json"] = json.dumps({"caption": f"caption {key} <img>"}).encode()
                else:
                    member["txt"] = f"caption {key} <img>".encode()
                sink.write(member)
            if bad:
                sink.write({"__key__": f"s{s}_nocap", "png": image_bytes((8, 8))})
                sink.write({"__key__": f"s{s}_corrupt", "png": b"garbage" * 10, "txt": b"x"})
                sink.write({"__key__": f"s{s}_big", "png": image_bytes((64, 64)), "txt": b"x"})
    return keys


def test_webdataset_pairs_samples(tmp_path):
    keys = _write_shards(tmp_path, bad=True)
    ds = WebDatasetPairs(tmp_path, "pairs-{000000..000001}.tar", max_pixels=1000)
    samples = list(ds)
    assert sorted(s.id.split("/")[1] for s in samples) == sorted(keys)
    s = samples[0]
    assert s.task == "caption" and s.prompt == templates.prompt("caption", "en")
    assert s.target == "caption s0_0000 \\<img>" and s.answers == ["caption s0_0000 <img>"]
    assert isinstance(s.images[0], Image.Image) and s.meta["image_size"] == (8, 8)
    assert s.meta["source"].endswith("pairs-000000.tar") and s.meta["record"] == "s0_0000"
    assert ds.stats["skipped/missing_field"] == 2 and ds.stats["skipped/corrupt_image"] == 2
    assert ds.stats["skipped/image_too_large"] == 2 and ds.stats["samples"] == len(keys)
    with pytest.raises(DataError, match=r"pairs-000000\.tar: sample s0_nocap: no caption"):
        list(WebDatasetPairs(tmp_path, "pairs-{000000..000001}.tar", on_error="raise"))
    with pytest.raises(FileNotFoundError, match="1 of 3 shards do not exist, e.g. .*pairs-000002.tar"):
        WebDatasetPairs(tmp_path, "pairs-{000000..000002}.tar")


def test_webdataset_split_across_workers_and_nodes(tmp_path, monkeypatch):
    keys = _write_shards(tmp_path)
    ds = WebDatasetPairs(tmp_path, "pairs-{000000..000001}.tar")

    def ids(**env):
        for k, v in env.items():
            monkeypatch.setenv(k, str(v))
        return [s.id for s in ds]

    # Simulated DataLoader workers (webdataset reads WORKER/NUM_WORKERS when set).
    per_worker = [ids(WORKER=w, NUM_WORKERS=2) for w in (0, 1)]
    assert all(per_worker) and not set(per_worker[0]) & set(per_worker[1])
    assert sorted(per_worker[0] + per_worker[1]) == sorted(f"webdataset_pairs/{k}" for k in keys)
    monkeypatch.delenv("WORKER")
    monkeypatch.delenv("NUM_WORKERS")
    # Simulated nodes.
    per_node = [ids(RANK=r, WORLD_SIZE=2) for r in (0, 1)]
    assert sorted(per_node[0] + per_node[1]) == sorted(f"webdataset_pairs/{k}" for k in keys)
    assert not set(per_node[0]) & set(per_node[1])


def _first(batch):
    return batch


def test_webdataset_real_dataloader_workers(tmp_path):
    from torch.utils.data import DataLoader

    keys = _write_shards(tmp_path)
    ds = WebDatasetPairs(tmp_path, "pairs-{000000..000001}.tar")
    loader = DataLoader(ds, batch_size=None, num_workers=2, collate_fn=_first)
    got = [s.id for s in loader]
    assert len(got) == len(set(got)) == len(keys)


# -- configs and registry ---------------------------------------------------------------------

FORMAT_CONFIGS = sorted((CONF_DIR / "data" / "formats").glob("*.yaml"))


def test_registry_and_configs_agree():
    assert {p.stem for p in FORMAT_CONFIGS} == set(LOADERS)
    for name, cls in LOADERS.items():
        assert cls.name == name


@pytest.mark.parametrize("path", FORMAT_CONFIGS, ids=lambda p: p.stem)
def test_config_matches_constructor(path):
    cfg = OmegaConf.load(path)
    cls = LOADERS[path.stem]
    assert cfg._target_ == f"{cls.__module__}.{cls.__name__}"
    assert OmegaConf.is_missing(cfg, "root") and OmegaConf.is_missing(cfg, "annotation_file")
    params = set()
    for klass in cls.__mro__:  # keyword arguments travel up through **kw
        if "__init__" in vars(klass):
            params |= set(inspect.signature(klass.__init__).parameters)
    unknown = set(cfg) - {"_target_"} - params
    assert not unknown, f"{path.name} sets {unknown}, which {cls.__name__} does not take"


def test_config_instantiates(tmp_path):
    from hydra.utils import instantiate

    _karpathy(tmp_path)
    cfg = OmegaConf.load(CONF_DIR / "data" / "formats" / "coco_captions.yaml")
    cfg.root, cfg.annotation_file = str(tmp_path), "dataset_coco.json"
    ds = instantiate(cfg)
    assert isinstance(ds, CocoCaptions) and len(ds) == 2


# -- end to end with the synthetic world ------------------------------------------------------


def test_synthetic_export_round_trip(tmp_path):
    export = pytest.importorskip("qwenvl.data.synthetic.export")
    from qwenvl.data.synthetic.world import SyntheticWorld

    world = SyntheticWorld(seed=0, split="val", size=16, image_size=64)
    n = 6
    out = tmp_path / "export"

    coco = CocoCaptions(
        out / "coco", export.export_coco_karpathy(world, out / "coco", n), check_images="decode"
    )
    vq, va = export.export_vqav2(world, out / "vqa", n)
    vqa = VQAv2(out / "vqa", vq, answers_file=va, image_template="images/COCO_{split}_{image_id:012d}.jpg")
    ref = RefCOCO(out / "ref", export.export_refcoco(world, out / "ref", n), check_images="header")
    doc = DocVQA(out / "doc", export.export_docvqa(world, out / "doc", n))
    sft = QwenSFT(out / "sft", export.export_qwen_sft(world, out / "sft", n))
    for ds in (coco, vqa, ref, doc, sft):
        assert len(ds) == n and ds.stats.get("skipped", 0) == 0, (type(ds).__name__, ds.stats)
        assert all(load_sample_images(s).images for s in ds)

    for i in range(n):
        want = world.make(i, task="caption", lang="en")
        assert (coco[i].prompt, coco[i].target, coco[i].answers) == (want.prompt, want.target, want.answers)
        want = world.make(i, task="vqa", lang="en")
        assert (vqa[i].prompt, vqa[i].target) == (want.prompt, want.target)
        want = world.make(i, task="grounding", lang="en")
        assert ref[i].prompt == want.prompt
        assert all(abs(a - b) <= 1 for a, b in zip(ref[i].boxes[0], want.boxes[0], strict=True))
        want = world.make(i, task="ocr", lang="en")
        assert (doc[i].prompt, doc[i].target) == (want.prompt, want.target)
        want = world.make(i)
        got = sft[i]
        assert [(m.role, m.content, m.num_images) for m in got.messages] == [
            (m.role, m.content, m.num_images) for m in want.messages if m.role != "system"
        ]
        assert len(got.images) == len(want.images)

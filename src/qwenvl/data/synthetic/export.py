"""Write the synthetic world to disk in public dataset formats, so format loaders can be tested
end to end on data whose ground truth is known exactly.

Each `export_*(world, out_dir, n)` writes samples 0..n-1 of one task (English, except the Qwen-VL
fine-tuning file, which follows the world's own task and language mixture), saves the pictures
under `out_dir/images/`, and returns the path of the annotation file(s). Image paths inside the
files are relative to `out_dir`. Pixel boxes are `[x, y, w, h]` floats as in COCO/RefCOCO.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from PIL import Image

from qwenvl.data.sample import Sample
from qwenvl.data.synthetic.world import SyntheticWorld
from qwenvl.data.templates import PROMPTS
from qwenvl.tokenizer import IMG_END, IMG_START, split_markup

ANSWER_TYPES = {"exists": "yes/no", "relation_yn": "yes/no", "count": "number"}  # the rest: "other"


def _save(image: Image.Image, out_dir: Path, name: str, image_format: str) -> str:
    """Save under out_dir/images/ and return the path relative to out_dir."""
    if image_format not in ("jpg", "png"):
        raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    rel = f"images/{name}.{image_format}"
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    if image_format == "jpg":
        image.convert("RGB").save(out_dir / rel, quality=95)
    else:
        image.save(out_dir / rel)
    return rel


def _write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _stem(world: SyntheticWorld, index: int) -> str:
    return f"{world.split}_{index:06d}"


def export_coco_karpathy(world: SyntheticWorld, out_dir, n: int, image_format: str = "jpg") -> Path:
    """Karpathy-split COCO captions: `dataset_coco.json` with one caption per image."""
    out_dir = Path(out_dir)
    images = []
    for i in range(n):
        s = world.make(i, task="caption", lang="en")
        rel = _save(s.images[0], out_dir, _stem(world, i), image_format)
        raw = s.answers[0]
        sentence = {"tokens": re.findall(r"[a-z0-9]+", raw.lower()), "raw": raw, "imgid": i, "sentid": i}
        images.append(
            {
                "filepath": str(Path(rel).parent),
                "filename": Path(rel).name,
                "imgid": i,
                "split": world.split,
                "sentences": [sentence],
                "sentids": [i],
                "cocoid": i + 1,
            }
        )
    return _write_json(out_dir / "dataset_coco.json", {"images": images, "dataset": "coco"})


def export_vqav2(world: SyntheticWorld, out_dir, n: int, image_format: str = "jpg") -> tuple[Path, Path]:
    """VQAv2 questions + annotations, one question per image, the answer given by all 10 annotators.

    Files follow the official names, with the split as data subtype:
    `v2_OpenEnded_mscoco_{split}_questions.json`, `v2_mscoco_{split}_annotations.json`, and
    pictures `images/COCO_{split}_{image_id:012d}.jpg`.
    """
    out_dir = Path(out_dir)
    questions, annotations = [], []
    for i in range(n):
        s = world.make(i, task="vqa", lang="en")
        image_id, question_id = i + 1, (i + 1) * 10  # COCO ids are positive
        _save(s.images[0], out_dir, f"COCO_{world.split}_{image_id:012d}", image_format)
        answer = s.answers[0]
        questions.append({"image_id": image_id, "question": s.meta["question"], "question_id": question_id})
        annotations.append(
            {
                "question_id": question_id,
                "image_id": image_id,
                "question_type": s.meta["question_type"],
                "answer_type": ANSWER_TYPES.get(s.meta["question_type"], "other"),
                "multiple_choice_answer": answer,
                "answers": [
                    {"answer": answer, "answer_confidence": "yes", "answer_id": k} for k in range(1, 11)
                ],
            }
        )
    head = {"info": {"description": "qwenvl synthetic world"}, "license": {}, "data_subtype": world.split}
    q_path = _write_json(
        out_dir / f"v2_OpenEnded_mscoco_{world.split}_questions.json",
        {**head, "task_type": "Open-Ended", "data_type": "mscoco", "questions": questions},
    )
    a_path = _write_json(
        out_dir / f"v2_mscoco_{world.split}_annotations.json",
        {**head, "data_type": "mscoco", "annotations": annotations},
    )
    return q_path, a_path


def export_refcoco(world: SyntheticWorld, out_dir, n: int, image_format: str = "jpg") -> Path:
    """RefCOCO-style JSONL as Qwen-VL's grounding evaluation reads it: image, sent, bbox [x, y, w, h]
    in pixels, width, height."""
    out_dir = Path(out_dir)
    rows = []
    for i in range(n):
        s = world.make(i, task="grounding", lang="en")
        rel = _save(s.images[0], out_dir, _stem(world, i), image_format)
        width, height = s.meta["image_size"]
        x1, y1, x2, y2 = s.meta["pixel_box"]
        rows.append(
            {
                "image": rel,
                "sent": s.meta["expression"],
                "bbox": [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)],
                "width": width,
                "height": height,
                "id": i,
            }
        )
    return _write_jsonl(out_dir / f"refcoco_{world.split}.jsonl", rows)


def export_docvqa(world: SyntheticWorld, out_dir, n: int, image_format: str = "jpg") -> Path:
    """DocVQA-style JSONL: image, question, answers (the rendered string), question_id."""
    out_dir = Path(out_dir)
    question = PROMPTS[("ocr", "en")].removesuffix(" Answer:")
    rows = []
    for i in range(n):
        s = world.make(i, task="ocr", lang="en")
        rel = _save(s.images[0], out_dir, _stem(world, i), image_format)
        rows.append({"image": rel, "question": question, "answers": list(s.answers), "question_id": i + 1})
    return _write_jsonl(out_dir / f"docvqa_{world.split}.jsonl", rows)


def _plain_text(markup: str) -> str:
    # Qwen-VL's JSON holds raw strings in which tags are tags; escapes have no meaning there.
    return "".join(piece for piece, _ in split_markup(markup))


def to_qwen_conversation(sample: Sample, image_paths: list[str]) -> dict:
    """One Sample as a Qwen-VL fine-tuning record; pictures open the turn that shows them."""
    conversations, shown = [], 0
    for m in sample.messages:
        if m.role == "system":
            continue
        head = "".join(
            f"Picture {shown + k + 1}: {IMG_START}{image_paths[shown + k]}{IMG_END}\n"
            for k in range(m.num_images)
        )
        shown += m.num_images
        conversations.append({"from": m.role, "value": head + _plain_text(m.content)})
    return {"id": sample.id, "conversations": conversations}


def export_qwen_sft(world: SyntheticWorld, out_dir, n: int, image_format: str = "jpg") -> Path:
    """Qwen-VL fine-tuning JSON: `[{"id", "conversations": [{"from": "user", "value": "Picture 1:
    <img>images/..</img>\\nquestion"}, {"from": "assistant", "value": "answer"}]}]`, world's own mix."""
    out_dir = Path(out_dir)
    records = []
    for i in range(n):
        s = world.make(i)
        paths = [
            _save(img, out_dir, f"{_stem(world, i)}_{k + 1}", image_format) for k, img in enumerate(s.images)
        ]
        records.append(to_qwen_conversation(s, paths))
    return _write_json(out_dir / f"qwen_{world.split}.json", records)


EXPORTS = {
    "coco_karpathy": export_coco_karpathy,
    "vqav2": export_vqav2,
    "refcoco": export_refcoco,
    "docvqa": export_docvqa,
    "qwen_sft": export_qwen_sft,
}


def export_all(world: SyntheticWorld, out_dir, n: int, image_format: str = "jpg") -> dict:
    """Every format, each in its own sub-folder of `out_dir`; returns {format: written path(s)}."""
    return {name: fn(world, Path(out_dir) / name, n, image_format) for name, fn in EXPORTS.items()}

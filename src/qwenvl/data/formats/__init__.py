"""Loaders of public dataset formats, each yielding `Sample`s; `LOADERS` maps a format name to its class.

    >>> ds = LOADERS["vqav2"](
    ...     root="coco/val2014",  # image paths start here; relative annotation files too
    ...     annotation_file="../v2_OpenEnded_mscoco_val2014_questions.json",
    ...     answers_file="../v2_mscoco_val2014_annotations.json",
    ... )
    >>> ds[0].prompt, ds.stats

Hydra configs live in `conf/data/formats/<name>.yaml`.
"""

from qwenvl.data.formats.base import (
    DataError,
    ErrorPolicy,
    FormatLoader,
    load_sample_images,
    read_json,
    read_jsonl,
    safe_path,
)
from qwenvl.data.formats.coco_captions import CocoCaptions
from qwenvl.data.formats.doc_vqa import AI2D, OCRVQA, ChartQA, DocVQA
from qwenvl.data.formats.gqa import GQA
from qwenvl.data.formats.qwen_sft import QwenSFT
from qwenvl.data.formats.refcoco import RefCOCO
from qwenvl.data.formats.vqa import OKVQA, TextVQA, VizWiz, VQAv2
from qwenvl.data.formats.webdataset_pairs import WebDatasetPairs

LOADERS = {
    cls.name: cls
    for cls in (
        CocoCaptions, VQAv2, OKVQA, VizWiz, TextVQA, GQA, RefCOCO,
        DocVQA, ChartQA, OCRVQA, AI2D, QwenSFT, WebDatasetPairs,
    )
}  # fmt: skip

__all__ = [
    "AI2D", "GQA", "LOADERS", "OCRVQA", "OKVQA", "ChartQA", "CocoCaptions", "DataError", "DocVQA",
    "ErrorPolicy", "FormatLoader", "QwenSFT", "RefCOCO", "TextVQA", "VQAv2", "VizWiz", "WebDatasetPairs",
    "load_sample_images", "read_json", "read_jsonl", "safe_path",
]  # fmt: skip

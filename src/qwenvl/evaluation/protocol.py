"""Evaluation protocols: the platform's defaults, or Qwen-VL's released evaluation scripts.

`protocol=qwen_vl` reproduces the scripts the Qwen-VL authors released with the model:

| task      | prompt                                       | new tokens        | scoring            |
|-----------|----------------------------------------------|-------------------|--------------------|
| caption   | `<img>…</img>Describe the image in English:` | 8 to 30, greedy   | CIDEr              |
| VQA       | `<img>…</img>{question} Answer:`             | up to 10 (*)      | as the benchmark   |
| grounding | `<img>…</img><ref>{expression}</ref><box>`   | 10 to 28          | first box, /999    |
| choice    | ScienceQA by option likelihood               | -                 | accuracy           |

(*) up to 100 for DocVQA, ChartQA and OCR-VQA, whose answers are long.

Where the scripts differ from the platform's defaults, and why the defaults differ:
- Pictures: the scripts write `<img>path</img>` with no `Picture 1:` line; the platform's training
  data (and so its default prompts) always number pictures, which multi-image dialogs need.
- Boxes: the scripts divide by 999, the platform by 1000, matching how boxes are written
  (`round(x / w * 1000)` clipped to 999); the difference is at most 0.1 % of the image side.
- Positions under left padding: the released model's batched generation ignores padding when
  numbering positions, so a padded prompt is scored slightly differently from the same prompt
  alone. The platform numbers positions from the attention mask, so batch size never changes an
  answer. Expect differences in the last decimal of published numbers from this alone.
"""

from __future__ import annotations

from qwenvl.evaluation.benchmark import Benchmark

LONG_ANSWERS = ("docvqa", "chartqa", "ocrvqa")


def apply_protocol(bench: Benchmark, protocol: str) -> Benchmark:
    """Adjust a benchmark's prompt format, generation lengths and box scale to a protocol."""
    if protocol == "default":
        return bench
    if protocol != "qwen_vl":
        raise ValueError(f"unknown evaluation protocol {protocol!r}; expected 'default' or 'qwen_vl'")
    bench.fmt = "qwen_vl"
    metrics = set(bench.metrics)
    if "cider" in metrics:
        bench.min_new_tokens, bench.max_new_tokens = 8, 30
    elif "grounding" in metrics:
        bench.min_new_tokens, bench.max_new_tokens = 10, 28
        bench.extra = {**bench.extra, "box_scale": 999}
    elif bench.kind != "choice":
        long = any(bench.name.startswith(p) for p in LONG_ANSWERS)
        bench.min_new_tokens, bench.max_new_tokens = 0, 100 if long else 10
    if "vqa_acc" in metrics:
        bench.extra = {**bench.extra, "vqa_mode": "qwen_vl"}
    return bench

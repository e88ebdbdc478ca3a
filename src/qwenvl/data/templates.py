"""Prompt templates: the one place that says how a task is asked, for training and evaluation.

Plain format (stages 1-2, Qwen-VL's pretraining):  Picture 1: <img></img>\\n{prompt}{target}<|endoftext|>
ChatML (stage 3): <|im_start|>system\\n...<|im_end|>\\n<|im_start|>user\\nPicture 1: <img></img>\\n...
An empty `<img></img>` is an image slot; the processor fills it with the adapter's Q pad tokens.
"""

from __future__ import annotations

from typing import NamedTuple

from qwenvl.data.sample import Message, Sample
from qwenvl.tokenizer import ENDOFTEXT, IM_END, IM_START, IMG_END, IMG_START

SYSTEM_PROMPT = "You are a helpful assistant."

# Task prompts, English and Chinese. `{question}`/`{expression}` receive escaped text.
PROMPTS = {
    ("caption", "en"): "Generate the caption in English:",
    ("caption", "zh"): "用中文生成图片描述：",
    ("grounded_caption", "en"): "Generate the caption in English with grounding:",
    ("grounded_caption", "zh"): "用中文生成带定位的图片描述：",
    ("vqa", "en"): "{question} Answer:",
    ("vqa", "zh"): "{question} 答案：",
    ("grounding", "en"): "<ref>{expression}</ref><box>",
    ("grounding", "zh"): "<ref>{expression}</ref><box>",
    ("ocr", "en"): "What is the text in the image? Answer:",
    ("ocr", "zh"): "图中的文字是什么？答案：",
}


class Segment(NamedTuple):
    """A piece of markup and whether its tokens are trained on (carry labels)."""

    markup: str
    supervised: bool


def prompt(task: str, lang: str = "en", **fields: str) -> str:
    """The task prompt in markup, e.g. `prompt("vqa", question=escape(q))`."""
    try:
        template = PROMPTS[(task, lang)]
    except KeyError:
        known = sorted({f"{t}/{lang_}" for t, lang_ in PROMPTS})
        raise KeyError(f"no prompt for task {task!r} in language {lang!r}; known: {known}") from None
    return template.format(**fields)


def image_slots(first: int, count: int) -> str:
    """`Picture n: <img></img>\\n` for pictures first..first+count-1 (1-based)."""
    return "".join(f"Picture {first + i}: {IMG_START}{IMG_END}\n" for i in range(count))


def _with_images(message: Message, shown: int) -> str:
    return image_slots(shown + 1, message.num_images) + message.content


def render_plain(sample: Sample, with_target: bool = True) -> list[Segment]:
    """Plain format: every non-assistant turn unsupervised, every assistant turn supervised.

    With `with_target=False` (generation), the trailing assistant turn is left out.
    """
    segments: list[Segment] = []
    shown = 0
    messages = sample.messages if with_target else _drop_last_answer(sample.messages)
    for m in messages:
        if m.role == "system":
            continue  # the plain format has no system prompt
        text = _with_images(m, shown)
        shown += m.num_images
        segments.append(Segment(text, m.role == "assistant"))
    if with_target:
        segments.append(Segment(ENDOFTEXT, True))  # the model learns to stop
    return segments


def render_chatml(sample: Sample, with_target: bool = True, system: str = SYSTEM_PROMPT) -> list[Segment]:
    """ChatML: loss only on assistant replies and their `<|im_end|>`; a default system turn is added.

    With `with_target=False` the last assistant turn is dropped and `<|im_start|>assistant\\n` is
    left open for generation.
    """
    messages = sample.messages if with_target else _drop_last_answer(sample.messages)
    if messages[0].role != "system":
        messages = [Message("system", system)] + messages
    segments: list[Segment] = []
    shown = 0
    for m in messages:
        body = _with_images(m, shown)
        shown += m.num_images
        if m.role == "assistant":
            segments.append(Segment(f"{IM_START}assistant\n", False))
            segments.append(Segment(f"{body}{IM_END}", True))
            segments.append(Segment("\n", False))
        else:
            segments.append(Segment(f"{IM_START}{m.role}\n{body}{IM_END}\n", False))
    if not with_target:
        segments.append(Segment(f"{IM_START}assistant\n", False))
    return segments


# Qwen-VL's own evaluation scripts put images as bare `<img>..</img>` (no "Picture n:" line) and
# ask for captions with a different sentence than its pretraining data.
QWEN_VL_EVAL_PROMPTS = {"caption": "Describe the image in English:"}


def render_qwen_vl(sample: Sample, with_target: bool = False) -> list[Segment]:
    """The prompts of Qwen-VL's released evaluation scripts: `<img></img>{prompt}`, no picture lines."""
    segments: list[Segment] = []
    messages = sample.messages if with_target else _drop_last_answer(sample.messages)
    for m in messages:
        if m.role == "system":
            continue
        content = QWEN_VL_EVAL_PROMPTS.get(sample.task, m.content) if m.role == "user" else m.content
        segments.append(Segment(f"{IMG_START}{IMG_END}" * m.num_images + content, m.role == "assistant"))
    if with_target:
        segments.append(Segment(ENDOFTEXT, True))
    return segments


def render(sample: Sample, fmt: str = "plain", with_target: bool = True) -> list[Segment]:
    """Render by format name: `plain`, `chatml`, or `qwen_vl` (the released evaluation scripts)."""
    if fmt == "plain":
        return render_plain(sample, with_target)
    if fmt == "chatml":
        return render_chatml(sample, with_target)
    if fmt == "qwen_vl":
        return render_qwen_vl(sample, with_target)
    raise ValueError(f"unknown prompt format {fmt!r}; expected 'plain', 'chatml' or 'qwen_vl'")


def _drop_last_answer(messages: list[Message]) -> list[Message]:
    return messages[:-1] if messages and messages[-1].role == "assistant" else list(messages)

"""qwenvl-predict: one image and a prompt -> the model's answer, boxes drawn on the image.

qwenvl-predict image=photo.jpg prompt="What is in the picture?" task=vqa ckpt=runs/x/model
qwenvl-predict image=photo.jpg prompt="the red circle" task=grounding out=boxes.png
qwenvl-predict image=photo.jpg prompt="What colour?" task=vqa ckpt=runs/x/checkpoints/last.ckpt
qwenvl-predict 'image=[before.png,after.png]' prompt="What changed?" ckpt=runs/x/model
"""

from __future__ import annotations

from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from qwenvl import boxes
from qwenvl.cli.key_hints import with_key_hints
from qwenvl.evaluation.load import load_for_eval
from qwenvl.models.build import build_model, load_tokenizer
from qwenvl.models.qwen_vl import QwenVLModel
from qwenvl.paths import CONF_DIR
from qwenvl.processor import QwenVLProcessor
from qwenvl.visualize import draw_groundings, side_by_side


def load(cfg: DictConfig) -> tuple[QwenVLModel, QwenVLProcessor]:
    """The model and processor from `ckpt`, or freshly built from the config groups."""
    if cfg.ckpt:  # a model directory, a training .ckpt, or an error naming what is expected
        return load_for_eval(cfg.ckpt, tokenizer=cfg.tokenizer)
    tokenizer = load_tokenizer(cfg.tokenizer)
    model = build_model(cfg, tokenizer)
    return model, QwenVLProcessor.from_model(model, tokenizer)


def predict(model: QwenVLModel, processor: QwenVLProcessor, image, prompt: str, **kw) -> str:
    """Answer one prompt (markup) about one image, or a list of images in the prompt's order."""
    inputs = processor([prompt], images=[list(image) if isinstance(image, (list, tuple)) else [image]])
    new = model.generate(**inputs, max_new_tokens=kw.pop("max_new_tokens", 32), **kw)
    return processor.decode(new[0], skip_special_tokens=False)


@with_key_hints("predict")
@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="predict")
def main(cfg: DictConfig) -> None:
    torch.manual_seed(cfg.seed)
    paths = [cfg.image] if isinstance(cfg.image, str) else list(cfg.image)  # one picture, or several
    for path in paths:
        if not Path(path).is_file():
            raise SystemExit(f"qwenvl-predict: image not found: {path}")
    model, processor = load(cfg)
    model.eval()
    images = [processor.load_image(path) for path in paths]
    prompt = processor.build_prompt(cfg.prompt, len(images), task=cfg.task, fmt=cfg.format, lang=cfg.lang)
    answer = predict(
        model, processor, images, prompt, max_new_tokens=cfg.max_new_tokens, do_sample=cfg.do_sample
    )
    # A grounding prompt ends inside `<ref>..</ref><box>`: parse it together with the answer.
    found = boxes.parse(prompt.split("\n")[-1] + answer if cfg.task == "grounding" else answer)
    print(f"prompt: {prompt!r}\nanswer: {answer!r}")
    if found:
        # A box does not say which picture it is on: drawn on the first, as the galleries do.
        side_by_side([draw_groundings(images[0], found), *images[1:]]).save(cfg.out)
        on = " (on the first picture)" if len(images) > 1 else ""
        print(f"{len(found)} box(es) drawn on {cfg.out}{on}")


if __name__ == "__main__":
    main()

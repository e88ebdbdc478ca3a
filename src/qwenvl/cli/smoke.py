"""qwenvl-smoke: build a model from the config groups, ask it about a generated image, save and reload.

    qwenvl-smoke                                   # tiny model, CPU, a few seconds
    qwenvl-smoke adapter=mlp encoder.image_size=448

Checks the whole inference path end to end (processor, image spans, adapter, LLM, generation,
safetensors round trip). The model is randomly initialized, so its answers are noise until trained.
"""

from __future__ import annotations

import time
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig
from PIL import Image, ImageDraw

from qwenvl import boxes
from qwenvl.cli.key_hints import with_key_hints
from qwenvl.cli.predict import predict
from qwenvl.models.build import build_model, load_tokenizer
from qwenvl.models.qwen_vl import QwenVLModel
from qwenvl.paths import CONF_DIR
from qwenvl.processor import QwenVLProcessor
from qwenvl.visualize import draw_groundings


def scene() -> tuple[Image.Image, list[boxes.Grounding]]:
    """A 224-px picture of a red circle and a blue square, with their true boxes."""
    img = Image.new("RGB", (224, 224), (235, 235, 235))
    draw = ImageDraw.Draw(img)
    truth = {"the red circle": (20, 30, 100, 110), "the blue square": (120, 120, 200, 200)}
    draw.ellipse(truth["the red circle"], fill=(220, 30, 30))
    draw.rectangle(truth["the blue square"], fill=(30, 60, 220))
    return img, [boxes.Grounding(ref, boxes.to_norm(b, 224, 224)) for ref, b in truth.items()]


@with_key_hints("smoke")
@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="smoke")
def main(cfg: DictConfig) -> None:
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer(cfg.tokenizer)
    model = build_model(cfg, tokenizer).eval()
    processor = QwenVLProcessor.from_model(model, tokenizer)
    print(f"model: {model.num_parameters() / 1e6:.2f} M parameters, {model.image_tokens} tokens per image")
    image, truth = scene()
    draw_groundings(image, truth).save(out / "scene_truth.png")
    for task, text in [
        ("caption", ""),
        ("vqa", "What colour is the circle?"),
        ("grounding", "the red circle"),
    ]:
        prompt = processor.build_prompt(text, 1, task=task)
        t0 = time.perf_counter()
        answer = predict(model, processor, image, prompt, max_new_tokens=cfg.max_new_tokens)
        print(f"[{task}] {time.perf_counter() - t0:.2f}s  answer: {answer!r}")
    model.save_pretrained(out / "model")
    processor.save_pretrained(out / "model")
    reloaded = QwenVLModel.from_pretrained(out / "model").eval()
    inputs = processor([processor.build_prompt("", 1, task="caption")], images=[[image]])
    with torch.no_grad():
        same = torch.equal(model(**inputs).logits, reloaded(**inputs).logits)
    print(f"save -> load gives identical logits: {same}  ({out / 'model'})")
    if not same:
        raise SystemExit("qwenvl-smoke: reloaded model differs from the saved one")
    print(f"smoke check passed; the scene with its true boxes is {out / 'scene_truth.png'}")


if __name__ == "__main__":
    main()

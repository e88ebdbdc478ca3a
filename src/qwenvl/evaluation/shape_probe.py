"""Shape probe: can a vision encoder config learn the synthetic world's shapes, and through which readout?

Trains the encoder (random weights, from its config) with a linear head on one task: the shape
(5 kinds) and the colour (6) of the single object in a synthetic picture. The patch features
[B, P, width] are pooled before the head:

- `mean`: the average over patches, what attention does while its weights are still uniform
  (early in training every image token gets the same weight);
- `max`: the largest value per channel, what attention does once it picks the object's patches;
- `resampler-mean` / `resampler-max`: the same after a fresh position-aware resampler (the
  Qwen-VL adapter) trained along.

It answers whether a readout, not the encoder, keeps a pipeline from reading shapes: without the
`objects` stage, the tiny default's captions learned colour words from the pixels but not shape
words (the pipeline's `gap caption:colour` / `gap caption:shape`), and this probe shows the same
split per readout.

    python -m qwenvl.evaluation.shape_probe --pool max --steps 600
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Sequence

import torch
from torch import nn

from qwenvl.data.synthetic.render import render
from qwenvl.data.synthetic.scene import sample_scene
from qwenvl.data.synthetic.vocab import COLORS, SHAPES
from qwenvl.models import EncoderConfig, LLMConfig, ResamplerConfig
from qwenvl.models.qwen_vl import QwenVLModel
from qwenvl.processor import QwenVLProcessor

POOLS = ("mean", "max", "resampler-mean", "resampler-max")


def single_objects(
    processor: QwenVLProcessor, n: int, rng: random.Random
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(pixels [n, 3, S, S], shape index [n], colour index [n]) of pictures with one object each."""
    colours = list(COLORS)
    pixels, shapes, cols = [], [], []
    for _ in range(n):
        shape, colour = rng.randrange(len(SHAPES)), rng.randrange(len(colours))
        scene = sample_scene(rng, processor.image_size, [(colours[colour], SHAPES[shape])], False, None)
        pixels.append(processor.transform(render(scene)))
        shapes.append(shape)
        cols.append(colour)
    return torch.stack(pixels), torch.tensor(shapes), torch.tensor(cols)


class Probe(nn.Module):
    """Encoder (+ resampler) -> pooled features [B, W] -> shape logits [B, 5] and colour logits [B, 6]."""

    def __init__(self, model: QwenVLModel, pool: str):
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        self.encoder = model.encoder
        self.adapter = model.adapter if pool.startswith("resampler") else None
        self.reduce = pool.removeprefix("resampler-")
        width = model.adapter.config.width if self.adapter is not None else model.encoder.config.width
        self.shape_head, self.colour_head = nn.Linear(width, len(SHAPES)), nn.Linear(width, len(COLORS))

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.encoder(pixels)  # [B, P, encoder width]
        if self.adapter is not None:
            x = self.adapter(x)  # [B, Q, LLM width]
        x = x.mean(1) if self.reduce == "mean" else x.amax(1)
        return self.shape_head(x), self.colour_head(x)


def probe(
    encoder: EncoderConfig,
    pool: str = "max",
    steps: int = 600,
    batch_size: int = 8,
    lr: float = 1e-3,
    eval_every: int = 200,
    eval_samples: int = 200,
    seed: int = 0,
) -> list[dict[str, float]]:
    """Train and return one row per evaluation: {step, seconds, shape_acc, colour_acc} (fractions)."""
    torch.manual_seed(seed)
    model = QwenVLModel.from_config(encoder=encoder, adapter=ResamplerConfig(num_queries=64), llm=LLMConfig())
    processor = QwenVLProcessor.from_model(model)
    net = Probe(model, pool)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.05)
    val = single_objects(processor, eval_samples, random.Random(f"shape_probe/val/{seed}"))
    rng = random.Random(f"shape_probe/train/{seed}")
    rows, t0 = [], time.perf_counter()
    for step in range(1, steps + 1):
        pixels, shapes, colours = single_objects(processor, batch_size, rng)
        shape_logits, colour_logits = net(pixels)
        loss = nn.functional.cross_entropy(shape_logits, shapes) + nn.functional.cross_entropy(
            colour_logits, colours
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % eval_every == 0 or step == steps:
            net.eval()
            with torch.no_grad():
                shape_logits, colour_logits = net(val[0])
            net.train()
            rows.append(
                {
                    "step": step,
                    "seconds": round(time.perf_counter() - t0, 1),
                    "shape_acc": (shape_logits.argmax(-1) == val[1]).float().mean().item(),
                    "colour_acc": (colour_logits.argmax(-1) == val[2]).float().mean().item(),
                }
            )
            print(
                f"step {step:5d}  {rows[-1]['seconds']:6.1f} s  shape acc {rows[-1]['shape_acc']:.2f} "
                f"(chance {1 / len(SHAPES):.2f})  colour acc {rows[-1]['colour_acc']:.2f}",
                flush=True,
            )
    return rows


def main(argv: Sequence[str] | None = None) -> list[dict[str, float]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pool", default="max", choices=POOLS)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--image-size", type=int, default=224, help="pixels")
    ap.add_argument("--patch-size", type=int, default=28, help="pixels (the tiny default: 28)")
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    encoder = EncoderConfig(
        image_size=args.image_size, patch_size=args.patch_size, width=args.width, layers=args.layers
    )
    return probe(encoder, args.pool, args.steps, args.batch_size, args.lr, args.eval_every, seed=args.seed)


if __name__ == "__main__":
    main()

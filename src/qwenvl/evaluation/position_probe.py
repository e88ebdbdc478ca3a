"""Position probe: do a checkpoint's image features still say where in the picture they come from?

Grounding answers with coordinates, so somewhere between the pixels and the LLM the image tokens
must carry their place. An OpenCLIP ViT's patch features keep it; a small encoder trained only on
targets that look the same anywhere in a picture can lose it. This probe fits a ridge regression
(closed form, on 3/4 of the features; R^2 on the other 1/4) from

- each encoder patch feature [width] to that patch's (row, column) on the patch grid, and
- each adapter output token [hidden] to its query's (row, column) on the query grid (a resampler's
  values carry no position term, so this is what the LLM could read off the tokens themselves).

R^2 near 1: the place is linearly readable; near 0: it is gone.

For a resampler it also measures where the cross-attention looks: the mean distance, in picture
sides, from each query's place on its grid to the patches its attention falls on, beside the same
distance for attention spread evenly. Close to the even figure, a query gathers from the whole
picture and a token's place on the grid says nothing about where what it shows lies (measured on
the tiny default: about 0.49-0.50 against 0.52 after every stage that trains the adapter;
docs/pipeline.md).

    python -m qwenvl.evaluation.position_probe runs/.../1_objects/checkpoints/last.ckpt
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import torch

from qwenvl.data.synthetic import SyntheticWorld
from qwenvl.evaluation.load import load_for_eval
from qwenvl.models.adapter import Resampler, cell_centres, grid_places
from qwenvl.models.qwen_vl import QwenVLModel
from qwenvl.processor import QwenVLProcessor


def attention_distance(weights: torch.Tensor) -> tuple[float, float]:
    """Mean query-to-patch distance in picture sides under attention weights [B, heads, Q, P]; and if even.

    Both grids are square and cover the same picture, so a query and the patches under it are
    close whatever the two grids' sizes.
    """
    queries, patches = weights.shape[-2:]
    distance = torch.cdist(cell_centres(math.isqrt(queries)), cell_centres(math.isqrt(patches)))  # [Q, P]
    return (weights.float() * distance).sum(-1).mean().item(), distance.mean().item()


def ridge_r2(x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-2) -> list[float]:
    """R^2 per target column of a ridge fit x [N, D] -> y [N, K], fitted on the first 3/4 of rows."""
    n = len(x)
    if n < 8:
        raise ValueError(f"a position probe needs at least 8 rows, got {n}")
    x = torch.cat([x.double(), torch.ones(n, 1, dtype=torch.float64)], 1)  # with a bias column
    y = y.double()
    fit, test = slice(0, 3 * n // 4), slice(3 * n // 4, n)
    gram = x[fit].T @ x[fit] + ridge * torch.eye(x.shape[1], dtype=torch.float64)
    weights = torch.linalg.solve(gram, x[fit].T @ y[fit])
    error = x[test] @ weights - y[test]
    return (1 - error.pow(2).mean(0) / y[test].var(0, unbiased=False).clamp(min=1e-12)).tolist()


@torch.no_grad()
def probe(
    model: QwenVLModel, processor: QwenVLProcessor, pictures: int = 400, batch_size: int = 32, seed: int = 0
) -> dict[str, float]:
    """R^2 of row and column from encoder patches and from adapter tokens, on synthetic pictures;
    for a resampler also its attention's distance from each query's place (`attention_distance`)
    and that distance if it were spread evenly (`even_distance`), in picture sides."""
    world = SyntheticWorld(
        seed=seed, split="val", size=pictures, image_size=model.image_size, tasks=["caption"]
    )
    patches, tokens, attended = [], [], []
    model.eval()
    resampler = isinstance(model.adapter, Resampler)
    for start in range(0, pictures, batch_size):
        images = [world[i].images[0] for i in range(start, min(start + batch_size, pictures))]
        pixels = torch.stack([processor.transform(im) for im in images])
        features = model.encoder(pixels)  # [B, P, width]
        patches.append(features)
        tokens.append(model.adapter(features))  # [B, Q, hidden]
        if resampler:
            attended.append((attention_distance(model.adapter.attention(features)), len(images)))
    out = {}
    for name, feats in (("patch", torch.cat(patches)), ("token", torch.cat(tokens))):
        b, p, d = feats.shape
        r2 = ridge_r2(feats.reshape(b * p, d), grid_places(p).repeat(b, 1))
        out[f"{name}_row_r2"], out[f"{name}_col_r2"] = r2
    if attended:  # the batches' means, weighted by their pictures
        out["attention_distance"] = sum(d * n for (d, _), n in attended) / pictures
        out["even_distance"] = attended[0][0][1]
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ckpt", help="a training .ckpt or a save_pretrained directory")
    ap.add_argument("--pictures", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    model, processor = load_for_eval(args.ckpt)
    result = probe(model, processor, args.pictures, seed=args.seed)
    print(
        f"{args.ckpt}: R^2 of the place on the grid, row / column: encoder patches "
        f"{result['patch_row_r2']:.2f} / {result['patch_col_r2']:.2f}, adapter tokens "
        f"{result['token_row_r2']:.2f} / {result['token_col_r2']:.2f}"
    )
    if "attention_distance" in result:
        print(
            f"resampler attention: {result['attention_distance']:.3f} of the picture's side from each "
            f"query's place, {result['even_distance']:.3f} if spread evenly"
        )
    return result


if __name__ == "__main__":
    main()

"""Training-loss curves as a picture: one panel per stage, every step's loss and its running mean.

Stages have their own objectives and scales (the encoder's object maps, then answers in nats per
token), so each panel has its own y axis. `qwenvl-train` draws its run's curve, `qwenvl-pipeline`
one panel per stage (`losses.png` beside the summary).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from qwenvl.atomic import write_text

LOSSES = "losses.json"  # per-step training losses of a run, written by qwenvl-train


def running_mean(values: Sequence[float], window: int) -> list[float]:
    """Mean of the `window` values centred on each step (fewer at the ends), so that the trend
    lies over the steps it summarizes instead of trailing them."""
    prefix = [0.0]
    for v in values:
        prefix.append(prefix[-1] + v)
    half = window // 2
    out = []
    for i in range(len(values)):
        lo, hi = max(0, i - half), min(len(values), i + half + 1)
        out.append((prefix[hi] - prefix[lo]) / (hi - lo))
    return out


def write_losses(directory: str | Path, stage: str, losses: Sequence[float]) -> Path:
    """`<directory>/losses.json`: {"stage", "losses"}, the losses in step order."""
    return write_text(
        Path(directory) / LOSSES, json.dumps({"stage": stage, "losses": [float(v) for v in losses]})
    )


def read_losses(directory: str | Path) -> list[float]:
    """The losses a run wrote, or [] when it wrote none (an older run, or no step taken)."""
    path = Path(directory) / LOSSES
    if not path.is_file():
        return []
    return [float(v) for v in json.loads(path.read_text()).get("losses", [])]


def loss_png(curves: Sequence[tuple[str, Sequence[float]]], path: str | Path, title: str = "") -> Path:
    """Write the panels of (`name`, per-step losses) pairs to `path` (PNG) and return it.

    A stage without losses gets an empty panel saying so, so that the panels still line up with
    the stages.
    """
    # Figure + the Agg canvas directly rather than pyplot: no global backend state, no GUI.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not curves:
        raise ValueError("no loss curves to draw")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(2.2 + 2.6 * len(curves), 3.0), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(curves), squeeze=False)[0]
    for ax, (name, losses) in zip(axes, curves, strict=True):
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if not losses:
            ax.text(0.5, 0.5, "no losses recorded", ha="center", va="center", transform=ax.transAxes)
            continue
        steps = range(1, len(losses) + 1)
        ax.plot(steps, losses, color="#9ab8d8", linewidth=0.6, label="each step")
        window = max(1, len(losses) // 30) | 1  # about 30 a stage, odd so that it centres on a step
        trend = running_mean(losses, window)
        ax.plot(steps, trend, color="#1f4e79", linewidth=1.4, label=f"mean of {window}")
        ax.legend(fontsize=7, frameon=False)
    axes[0].set_ylabel("training loss", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    return path

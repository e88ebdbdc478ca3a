"""A forest plot of paired comparisons: one panel per metric, A − B with its 95 % interval.

Metrics live on different scales (CIDEr in the hundreds, accuracy in percent, CER in [0, 1]), so each
gets its own panel and x axis; the zero line in every panel is "no difference".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from qwenvl.evaluation.paired import Comparison, p_text

COLOURS = {"a": "#2a7d2e", "b": "#b03a2e", None: "#707070"}  # A better, B better, no difference shown


def forest_png(comparisons: Sequence[Comparison], path: str | Path, a: str = "A", b: str = "B") -> Path:
    """Write the chart to `path` (PNG) and return it."""
    # Figure + the Agg canvas directly rather than pyplot: no global backend state, no GUI.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not comparisons:
        raise ValueError("no comparisons to draw")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(7.5, 0.4 + 0.75 * len(comparisons)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(comparisons), 1, squeeze=False)[:, 0]
    for ax, c in zip(axes, comparisons, strict=True):
        colour = COLOURS[c.winner]
        # A percentile interval can, rarely, leave out the observed difference: bars never negative.
        below, above = max(0.0, c.difference - c.low), max(0.0, c.high - c.difference)
        ax.errorbar(
            [c.difference], [0], xerr=[[below], [above]],
            fmt="o", color=colour, capsize=4, markersize=5,
        )  # fmt: skip
        ax.axvline(0, color="#202020", linewidth=0.8, linestyle="--")
        # Zero always in view, and some room either side of the interval.
        lo, hi = min(0.0, c.low, c.difference), max(0.0, c.high, c.difference)
        pad = 0.15 * (hi - lo) or 1.0
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_yticks([])
        ax.set_ylabel(f"{c.benchmark}\n{c.metric}", rotation=0, ha="right", va="center", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        p = p_text(c)
        ax.text(
            1.01, 0.5, f"{c.a:.4g} vs {c.b:.4g}\np {p if p.startswith('<') else '= ' + p}",
            transform=ax.transAxes, fontsize=7, va="center", color=colour,
        )  # fmt: skip
    fig.suptitle(
        f"{a} − {b}, paired bootstrap 95 % intervals ({comparisons[0].resamples} resamples)\n"
        f"green: {a} better, red: {b} better, grey: no difference shown (lower is better for cer, unparsed)",
        fontsize=9,
    )
    fig.savefig(path, dpi=150, bbox_inches="tight", facecolor="white")
    return path

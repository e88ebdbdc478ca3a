"""Leaderboards: evaluation runs side by side, one row per run and one column per `benchmark/metric`.

Rows are named by the config overrides that differ between the runs (`adapter.num_queries=64`), so a
sweep reads as the ablation it is; overrides every run shares are listed once above the table. The best
run value per column is marked (higher is better, except metrics whose name says otherwise, see
`lower_is_better`). Published numbers (`qwenvl.evaluation.references`) are appended as reference rows:
they are drawn differently and never count as best, because they come from another setup.

    board = build_leaderboard([load_results(p) for p in find_results(["multirun/2026-11-26"])],
                              references=load_references("qwen_vl"))
    print(board.to_markdown())
    board.write_all("multirun/2026-11-26")  # leaderboard.md / .csv / .html / .png
"""

from __future__ import annotations

import csv
import html
import math
import os
import re
import textwrap
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qwenvl.evaluation.references import Reference
from qwenvl.evaluation.results import RunResult

# Metric-name tokens that mean "smaller is better": error rates, losses, the share of unparsable answers.
LOWER_IS_BETTER = frozenset({"cer", "wer", "loss", "unparsed", "error", "nll", "ppl", "perplexity"})

MISSING = "–"  # en dash: a run that did not report this column


def lower_is_better(column: str) -> bool:
    """Whether smaller values win for a `benchmark/metric` column (or a bare metric name).

    The metric is split into tokens so that `val_loss` or `unparsed_rate` match while `answer_acc`
    (which contains "wer") does not.
    """
    metric = column.rsplit("/", 1)[-1].lower()
    return any(token in LOWER_IS_BETTER for token in re.split(r"[^a-z0-9]+", metric))


@dataclass
class Row:
    """One line of the leaderboard: a run of ours, or published reference numbers."""

    name: str
    values: dict[str, float]  # column -> value; missing columns are absent
    reference: bool = False
    source: str = ""  # the run directory, or the citation of a reference


@dataclass
class Leaderboard:
    """Rows x columns of scores, with the best run value of every column worked out once."""

    rows: list[Row]
    columns: list[str]
    shared_overrides: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    title: str = "Leaderboard"
    best: dict[str, set[str]] = field(init=False)  # column -> names of the best run rows

    def __post_init__(self) -> None:
        self.best = {}
        for col in self.columns:
            # Reference rows are excluded on purpose: a published number is context, not a competitor.
            scored = [(r.values[col], r.name) for r in self.runs if col in r.values]
            if not scored:
                self.best[col] = set()
                continue
            values = {v for v, _ in scored}
            if len(values) < 2:
                # One run, or all runs equal: there is no winner, and bolding everything says nothing.
                self.best[col] = set()
                continue
            target = min(values) if lower_is_better(col) else max(values)
            self.best[col] = {name for v, name in scored if v == target}

    @property
    def runs(self) -> list[Row]:
        return [r for r in self.rows if not r.reference]

    @property
    def references(self) -> list[Row]:
        return [r for r in self.rows if r.reference]

    def is_best(self, row: Row, column: str) -> bool:
        return not row.reference and row.name in self.best.get(column, ())

    # ----- formatting -------------------------------------------------------------------------------

    def header(self, column: str) -> str:
        """Column label with its direction: ↑ higher is better, ↓ lower is better."""
        return f"{column} {'↓' if lower_is_better(column) else '↑'}"

    def _decimals(self, column: str) -> int:
        # One precision per column keeps the digits aligned: as many decimals as the values carry, at most
        # 2 for percent-like numbers and 4 for fractions such as a 0.012 loss.
        values = [r.values[column] for r in self.rows if column in r.values]
        if not values:
            return 0
        cap = 2 if max(abs(v) for v in values) >= 1 else 4

        def needed(v: float) -> int:
            return next((d for d in range(cap + 1) if math.isclose(round(v, d), v, abs_tol=1e-9)), cap)

        return max(needed(v) for v in values)

    def format(self, row: Row, column: str) -> str:
        if column not in row.values:
            return MISSING
        return f"{row.values[column]:.{self._decimals(column)}f}"

    def subtitle(self) -> str:
        n_runs, n_refs = len(self.runs), len(self.references)
        text = f"{n_runs} run{'s' * (n_runs != 1)}"
        if n_refs:
            text += f" + {n_refs} published reference{'s' * (n_refs != 1)}"
        return text

    # ----- writers ----------------------------------------------------------------------------------

    def to_markdown(self) -> str:
        """A GitHub-flavoured Markdown table; best values bold, reference rows italic with a dagger."""

        def cell(text: str) -> str:
            return text.replace("|", "\\|")

        lines = [f"## {self.title} ({self.subtitle()})", ""]
        if self.shared_overrides:
            lines += ["Shared by all runs: " + " ".join(f"`{o}`" for o in self.shared_overrides), ""]
        lines.append("| run | " + " | ".join(cell(self.header(c)) for c in self.columns) + " |")
        lines.append("|:--" + "|--:" * len(self.columns) + "|")
        for row in self.rows:
            name = f"*{cell(row.name)}* †" if row.reference else f"`{row.name.replace('`', '')}`"
            cells = []
            for col in self.columns:
                text = self.format(row, col)
                cells.append(f"**{text}**" if self.is_best(row, col) else text)
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        # Blank lines between the notes: Markdown would otherwise run them together into one paragraph.
        lines += ["", "**Bold**: best run per column (↑ higher is better, ↓ lower is better)."]
        for ref in self.references:
            lines += ["", f"† {ref.name} (published, not ranked): {ref.source}"]
        for note in self.notes:
            lines += ["", note]
        return "\n".join(lines) + "\n"

    def to_csv(self, path: str | Path) -> Path:
        """Plain values at full precision, one row per run/reference, for spreadsheets and scripts."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["run", "kind", "source", *self.columns])
            for row in self.rows:
                values = [repr(row.values[c]) if c in row.values else "" for c in self.columns]
                writer.writerow([row.name, "reference" if row.reference else "run", row.source, *values])
        return path

    def to_html(self, path: str | Path) -> Path:
        """A standalone HTML page (inline CSS, no scripts or external files)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        esc = html.escape
        head = "".join(
            f'<th class="{"down" if lower_is_better(c) else "up"}">{esc(self.header(c))}</th>'
            for c in self.columns
        )
        body = []
        for row in self.rows:
            cells = []
            for col in self.columns:
                text = esc(self.format(row, col))
                if self.is_best(row, col):
                    cells.append(f'<td class="best"><strong>{text}</strong></td>')
                else:
                    cells.append(f"<td>{text}</td>")
            klass = "reference" if row.reference else "run"
            label = f"{esc(row.name)} †" if row.reference else f"<code>{esc(row.name)}</code>"
            name_cell = f'<th scope="row" title="{esc(row.source)}">{label}</th>'
            body.append(f'<tr class="{klass}">{name_cell}{"".join(cells)}</tr>')
        shared = ""
        if self.shared_overrides:
            shared = (
                "<p>Shared by all runs: "
                + " ".join(f"<code>{esc(o)}</code>" for o in self.shared_overrides)
                + "</p>"
            )
        footnotes = "".join(
            f"<li>† {esc(r.name)} (published, not ranked): {esc(r.source)}</li>" for r in self.references
        ) + "".join(f"<li>{esc(n)}</li>" for n in self.notes)
        page = _HTML.format(
            title=esc(self.title),
            subtitle=esc(self.subtitle()),
            shared=shared,
            head=head,
            body="\n".join(body),
            footnotes=footnotes,
        )
        path.write_text(page, encoding="utf-8")
        return path

    def to_png(self, path: str | Path, dpi: int = 150) -> Path:
        """A grouped bar chart: one group per column, one bar per row, references hatched in grey.

        Many columns are wrapped onto several panels stacked vertically, so that the image stays
        readable instead of growing into a long strip.
        """
        # Figure + the Agg canvas directly rather than pyplot: no global backend state, no GUI, thread-safe.
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        group_in = max(1.4, 0.3 * len(self.rows))  # inches per group: room for the bars and their labels
        per_panel = max(2, int(14 / group_in))
        chunks = [self.columns[i : i + per_panel] for i in range(0, len(self.columns), per_panel)]
        width = max(7.0, 1.2 + min(len(self.columns), per_panel) * group_in)
        fig = Figure(figsize=(width, 0.8 + 4.2 * len(chunks)), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(chunks), 1, squeeze=False)[:, 0]

        styles = self._bar_styles()
        for ax, columns in zip(axes, chunks, strict=True):
            self._draw_panel(ax, columns, styles)
            ax.set_ylabel("score")

        title = f"{self.title}: {self.subtitle()}"
        if self.shared_overrides:
            title += "\n" + textwrap.shorten("shared: " + " ".join(self.shared_overrides), 120)
        fig.suptitle(title, fontsize=11)
        # Legend patches are made by hand: taken from the bars, they would copy a best bar's outline.
        handles = [
            Patch(
                facecolor=color,
                hatch=hatch,
                edgecolor="#404040",
                linewidth=0.5,
                label=textwrap.fill(r.name, 40),
            )
            for r, (color, hatch) in zip(self.rows, styles, strict=True)
        ]
        axes[0].legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            fontsize=8,
            frameon=False,
            title="bold outline/label = best run\nhatched grey = published, not ranked",
            title_fontsize=7,
            alignment="left",
        )
        fig.savefig(path, dpi=dpi, bbox_inches="tight", facecolor="white")
        return path

    def _bar_styles(self) -> list[tuple[object, str | None]]:
        """(colour, hatch) per row: distinct colours for runs, hatched greys for references."""
        from matplotlib import colormaps

        n_runs = len(self.runs)
        cmap = colormaps["tab10" if n_runs <= 10 else "tab20"]
        greys = ["#b0b0b0", "#808080", "#d0d0d0", "#606060"]
        styles, n_run, n_ref = [], 0, 0
        for row in self.rows:
            if row.reference:
                styles.append((greys[n_ref % len(greys)], "///"))
                n_ref += 1
            else:
                styles.append((cmap(n_run % cmap.N), None))
                n_run += 1
        return styles

    def _draw_panel(self, ax, columns: list[str], styles: list[tuple[object, str | None]]) -> None:
        """Draw the groups of `columns` on one axis."""
        n_rows = len(self.rows)
        bar = min(0.8 / max(n_rows, 1), 0.35)  # a lone bar would otherwise fill the whole group
        # Bars of one group are centred on their tick over the rows that report the column, so that a
        # column without reference numbers has no gap where the reference bar would be.
        x: dict[tuple[int, int], float] = {}
        for j, col in enumerate(columns):
            present = [i for i, row in enumerate(self.rows) if col in row.values]
            for k, i in enumerate(present):
                x[i, j] = j + bar * (k + 0.5 - len(present) / 2)

        for i, (row, (color, hatch)) in enumerate(zip(self.rows, styles, strict=True)):
            xs = [j for j, c in enumerate(columns) if c in row.values]
            if not xs:
                continue
            best = [self.is_best(row, columns[j]) for j in xs]
            bars = ax.bar(
                [x[i, j] for j in xs],
                [row.values[columns[j]] for j in xs],
                bar,
                color=color,
                hatch=hatch,
                edgecolor=["black" if b else "#404040" for b in best],
                linewidth=[1.8 if b else 0.5 for b in best],
                zorder=3,
            )
            # Value labels carry the exact numbers, which also keeps small-scale metrics (a loss next
            # to a CIDEr score) readable on the shared axis.
            texts = ax.bar_label(
                bars,
                labels=[self.format(row, columns[j]) for j in xs],
                padding=2,
                fontsize=7 if n_rows <= 6 else 6,
                rotation=90 if n_rows > 3 else 0,
            )
            for text, b in zip(texts, best, strict=True):
                if b:
                    text.set_fontweight("bold")

        ax.set_xticks(
            range(len(columns)), [self.header(c).replace("/", "\n", 1) for c in columns], fontsize=8
        )
        ax.set_xlim(-0.6, len(columns) - 0.4)
        ax.margins(y=0.2)  # headroom for the value labels
        ax.grid(axis="y", color="#e0e0e0", zorder=0)
        ax.spines[["top", "right"]].set_visible(False)

    def write_all(self, out_dir: str | Path, stem: str = "leaderboard") -> dict[str, Path]:
        """Write `<stem>.md`, `.csv`, `.html` and `.png` into out_dir; returns the paths by suffix."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        md = out / f"{stem}.md"
        md.write_text(self.to_markdown(), encoding="utf-8")
        return {
            "md": md,
            "csv": self.to_csv(out / f"{stem}.csv"),
            "html": self.to_html(out / f"{stem}.html"),
            "png": self.to_png(out / f"{stem}.png"),
        }


def _run_names(runs: Sequence[RunResult]) -> tuple[list[str], list[str]]:
    """Row names from the overrides that differ between runs, and the overrides shared by all of them."""
    if not runs:
        return [], []
    everywhere = set(runs[0].overrides).intersection(*(r.overrides for r in runs[1:]))
    shared = [o for o in runs[0].overrides if o in everywhere]
    names = [" ".join(o for o in r.overrides if o not in everywhere) for r in runs]

    # Directory-relative labels break ties: runs without differing overrides, or repeated settings.
    dirs = [r.run_dir.resolve() for r in runs]
    root = Path(os.path.commonpath(dirs)) if len(dirs) > 1 else dirs[0].parent
    rel = [d.relative_to(root).as_posix() if d != root else d.name for d in dirs]
    names = [n or d.name for n, d in zip(names, dirs, strict=True)]
    counts = Counter(names)
    for i, name in enumerate(names):
        if counts[name] > 1:
            names[i] = rel[i] if name == dirs[i].name else f"{name} [{rel[i]}]"
    return names, shared


def _select(column: str, benchmarks: Iterable[str] | None) -> bool:
    if benchmarks is None:
        return True
    bench = column.rsplit("/", 1)[0]
    return any(b in (bench, column) for b in benchmarks)


def build_leaderboard(
    runs: Sequence[RunResult],
    references: Sequence[Reference] | None = None,
    *,
    benchmarks: Iterable[str] | None = None,
    title: str = "Leaderboard",
) -> Leaderboard:
    """Lay the runs out as a leaderboard, with reference rows appended.

    `benchmarks` keeps only those benchmarks (or exact `benchmark/metric` columns). References only fill
    the columns the runs report: a reference with nothing in common is left out, with a note saying so.
    """
    if not runs:
        raise ValueError("no runs to put on a leaderboard")
    benchmarks = list(benchmarks) if benchmarks is not None else None
    names, shared = _run_names(runs)

    columns: list[str] = []
    for run in runs:
        columns += [c for c in run.metrics() if c not in columns and _select(c, benchmarks)]
    if not columns:
        wanted = ", ".join(benchmarks or [])
        raise ValueError(f"the runs report no metrics{f' for {wanted}' if wanted else ''}")

    rows = [
        Row(name, {c: v for c, v in run.metrics().items() if c in columns}, source=str(run.run_dir))
        for name, run in zip(names, runs, strict=True)
    ]
    notes = _unlike_for_like(runs, {c.rsplit("/", 1)[0] for c in columns})
    for ref in references or []:
        values = {c: v for c, v in ref.values.items() if c in columns}
        if values:
            rows.append(Row(ref.name, values, reference=True, source=ref.source))
        else:
            notes.append(f"{ref.name}: no benchmark in common with the runs, not shown.")
    return Leaderboard(rows=rows, columns=columns, shared_overrides=shared, notes=notes, title=title)


def _unlike_for_like(runs: Sequence[RunResult], benchmarks: set[str]) -> list[str]:
    """Notes for scores that sit side by side without being comparable: a benchmark scored on
    different numbers of samples (a `limit`, or an interrupted run), or runs of different protocols."""
    notes = []
    for bench in sorted(benchmarks):
        counts = {r.benchmarks[bench].samples for r in runs if bench in r.benchmarks} - {None}
        if len(counts) > 1:
            listed = ", ".join(str(c) for c in sorted(counts))
            notes.append(
                f"{bench}: the runs scored different numbers of samples ({listed}), not like for like."
            )
    protocols = sorted({r.protocol for r in runs})
    if len(protocols) > 1:
        notes.append(
            f"The runs used different evaluation protocols ({', '.join(protocols)}), not like for like."
        )
    return notes


_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
  body {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem; color: #222; }}
  h1 {{ font-size: 1.4rem; margin-bottom: 0.2rem; }}
  .subtitle {{ color: #666; margin-top: 0; }}
  table {{ border-collapse: collapse; font-variant-numeric: tabular-nums; }}
  th, td {{ padding: 0.35rem 0.7rem; border-bottom: 1px solid #ddd; }}
  thead th {{ background: #f3f3f3; text-align: right; white-space: nowrap; }}
  thead th:first-child, tbody th {{ text-align: left; font-weight: normal; }}
  td {{ text-align: right; }}
  td.best {{ background: #e3f4e1; }}
  tr.reference {{ color: #666; font-style: italic;
    background: repeating-linear-gradient(135deg, #fafafa, #fafafa 6px, #f0f0f0 6px, #f0f0f0 12px); }}
  tr.run + tr.reference > * {{ border-top: 2px solid #999; }}
  code {{ font-size: 0.9em; }}
  .legend, ul {{ color: #555; font-size: 0.9rem; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="subtitle">{subtitle}</p>
{shared}
<table>
<thead><tr><th>run</th>{head}</tr></thead>
<tbody>
{body}
</tbody>
</table>
<p class="legend"><strong>Bold</strong>: best run per column
(&uarr; higher is better, &darr; lower is better).
Grey italic rows are published reference numbers, shown for context and never ranked.</p>
<ul>{footnotes}</ul>
</body>
</html>
"""

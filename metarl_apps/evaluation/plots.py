"""Adaptation-curve plots (headless matplotlib): metric vs adaptation budget, one line per agent, 95% CI band."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

from metarl_apps.core.io import atomic_write_bytes

#: one curve: ``(label, [(budget, mean, ci95), ...], linestyle)``
Series = tuple[str, Sequence[tuple[float, float, float]], str]


def plot_series(series: Sequence[Series], path: str | Path, *, xlabel: str, ylabel: str, title: str) -> Path:
    """Write a PNG with one line (and its CI band) per series to ``path`` atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for label, points, style in series:
        pts = sorted(points)
        xs = [p[0] for p in pts]
        (line,) = ax.plot(xs, [p[1] for p in pts], marker="o", linestyle=style, label=label)
        ax.fill_between(xs, [p[1] - p[2] for p in pts], [p[1] + p[2] for p in pts], color=line.get_color(),
                        alpha=0.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def plot_adaptation_curves(results: dict, path: str | Path, rows_key: str = "rows", ylabel: str | None = None) -> Path:
    """Write a PNG of ``results[rows_key]`` (results.json rows) to ``path`` atomically."""
    rows = results[rows_key]
    agents = list(dict.fromkeys(r["agent"] for r in rows))
    series = [(a, [(r["budget"], r["mean"], r["ci95"]) for r in rows if r["agent"] == a], "-") for a in agents]
    n = results.get("tasks", {}).get("test", "?")
    return plot_series(series, path, xlabel=f"adaptation budget K ({results.get('budget_unit', 'budget')})",
                       ylabel=ylabel or results.get("metric", "value").replace("_", " "),
                       title=f"{results['scenario']} — {n} held-out tasks, mean ± 95% CI")

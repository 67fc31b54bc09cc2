"""Adaptation-curve plots (headless matplotlib): metric vs adaptation budget, one line per agent, 95% CI band."""

from __future__ import annotations

import io
from pathlib import Path

from metarl_apps.core.io import atomic_write_bytes


def plot_adaptation_curves(results: dict, path: str | Path, rows_key: str = "rows", ylabel: str | None = None) -> Path:
    """Write a PNG of ``results[rows_key]`` (results.json rows) to ``path`` atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results[rows_key]
    agents = list(dict.fromkeys(r["agent"] for r in rows))
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for agent in agents:
        pts = sorted((r["budget"], r["mean"], r["ci95"]) for r in rows if r["agent"] == agent)
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        lo = [p[1] - p[2] for p in pts]
        hi = [p[1] + p[2] for p in pts]
        (line,) = ax.plot(xs, ys, marker="o", label=agent)
        ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2)
    unit = results.get("budget_unit", "budget")
    ax.set_xlabel(f"adaptation budget K ({unit})")
    ax.set_ylabel(ylabel or results.get("metric", "value").replace("_", " "))
    n = results.get("tasks", {}).get("test", "?")
    ax.set_title(f"{results['scenario']} — {n} held-out tasks, mean ± 95% CI", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())

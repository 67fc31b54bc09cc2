"""Adaptation-curve plots (headless matplotlib): metric vs adaptation budget, one line per agent, 95% CI band."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

from metarl_apps.core.io import atomic_write_bytes

#: one curve: ``(label, [(budget, mean, ci95), ...], linestyle)``
Series = tuple[str, Sequence[tuple[float, float, float]], str]
#: one panel: ``(series, ylabel)``
Panel = tuple[Sequence[Series], str]


def plot_panels(panels: Sequence[Panel], path: str | Path, *, xlabel: str, title: str) -> Path:
    """Write a PNG with one panel per entry of ``panels`` side by side (one line and CI band per series, the same
    colour for the same label in every panel) to ``path`` atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(7 if n == 1 else 5.2 * n, 4.5), dpi=110, squeeze=False)
    colours: dict[str, str] = {}
    for ax, (series, ylabel) in zip(axes[0], panels, strict=True):
        for label, points, style in series:
            pts = sorted(points)
            xs = [p[0] for p in pts]
            (line,) = ax.plot(xs, [p[1] for p in pts], marker="o", linestyle=style, label=label,
                              color=colours.get(label))
            colours.setdefault(label, line.get_color())
            ax.fill_between(xs, [p[1] - p[2] for p in pts], [p[1] + p[2] for p in pts], color=line.get_color(),
                            alpha=0.2)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="best")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def plot_series(series: Sequence[Series], path: str | Path, *, xlabel: str, ylabel: str, title: str) -> Path:
    """Write a PNG with one line (and its CI band) per series to ``path`` atomically."""
    return plot_panels([(series, ylabel)], path, xlabel=xlabel, title=title)


def plot_adaptation_curves(results: dict, path: str | Path, rows_key: str = "rows", ylabel: str | None = None) -> Path:
    """Write a PNG of ``results[rows_key]`` (results.json rows) to ``path`` atomically.

    A cumulative-reward plot gets a second panel, the reward per unit of budget (cumulative / K): cumulative
    curves of good and bad agents all rise, and their differences are easier to read as rates. When the run
    reports per-episode returns, that panel is the return of episode K alone instead.
    """
    rows = results[rows_key]
    agents = list(dict.fromkeys(r["agent"] for r in rows))
    unit = results.get("budget_unit", "budget")
    series = [(a, [(r["budget"], r["mean"], r["ci95"]) for r in rows if r["agent"] == a], "-") for a in agents]
    panels: list[Panel] = [(series, ylabel or results.get("metric", "value").replace("_", " "))]
    if rows_key == "rows" and results.get("metric") == "cumulative_reward":
        if results.get("episode_rows"):
            ep = results["episode_rows"]
            panels.append(([(a, [(r["budget"], r["mean"], r["ci95"]) for r in ep if r["agent"] == a], "-")
                            for a in agents], "return of episode K alone"))
        else:
            panels.append(([(label, [(k, m / k, c / k) for k, m, c in pts], style) for label, pts, style in series],
                           f"reward per {unit.rstrip('s')} (cumulative / K)"))
    n = results.get("tasks", {}).get("test", "?")
    return plot_panels(panels, path, xlabel=f"adaptation budget K ({unit})",
                       title=f"{results['scenario']} — {n} held-out tasks, mean ± 95% CI")

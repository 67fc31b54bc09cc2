"""``metarl report DIR...``: merge several runs (each a directory with ``results.json``) into one comparison.

One markdown table (a row per run and agent, a column per budget, mean ± 95% CI), the expectations of every
run, and one PNG of all adaptation curves with CI bands. Runs that differ in task family, metric, budgets or
held-out tasks are still merged; each difference is listed (in the report and as a warning), since comparing
such runs is usually a mistake.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Sequence

from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.io import atomic_write_text
from metarl_apps.evaluation.plots import plot_series

_STYLES = ("-", "--", ":", "-.")


@dataclasses.dataclass
class MergedReport:
    markdown: str
    warnings: list[str]
    report_path: Path
    plot_path: Path


def read_results(run_dir: str | os.PathLike) -> dict:
    """``run_dir/results.json``, checked to have the documented keys; one-line errors otherwise."""
    path = Path(run_dir) / "results.json"
    if not Path(run_dir).is_dir():
        raise MetaRLInputError(f"{run_dir}: no such directory; pass run directories written by `metarl run -o DIR`")
    if not path.is_file():
        raise MetaRLInputError(f"{run_dir}: no results.json; pass a directory written by `metarl run -o DIR` or "
                               f"`metarl evaluate -o DIR`")
    try:
        results = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise MetaRLInputError(f"{path}: not valid JSON ({str(err).splitlines()[0]}); rerun `metarl run`") from None
    missing = [k for k in ("scenario", "metric", "rows") if not isinstance(results, dict) or k not in results]
    if missing:
        raise MetaRLInputError(f"{path}: missing {', '.join(missing)}; not a metarl results.json, rerun `metarl run`")
    return results


def _describe(results: dict, key: str):
    if key == "budgets":
        return sorted({r["budget"] for r in results["rows"]})
    if key == "held-out tasks":
        t = results.get("tasks") or {}
        return {k: t.get(k) for k in ("test", "seed", "env_seed")}
    if key == "family":
        return results.get("family")
    return results.get(key)


def _labels(dirs: Sequence[str | os.PathLike], labels: Sequence[str] | None) -> list[str]:
    if labels is not None:
        if len(labels) != len(dirs):
            raise MetaRLInputError(f"--label: {len(labels)} labels for {len(dirs)} directories; give one per DIR "
                                   f"or none")
        return list(labels)
    names = [Path(d).resolve().name or str(d) for d in dirs]
    if len(set(names)) < len(names):
        names = [f"{i + 1}:{n}" for i, n in enumerate(names)]
    return names


def merge_runs(dirs: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
               labels: Sequence[str] | None = None) -> MergedReport:
    """Merge the runs in ``dirs`` into ``out_dir/report.md`` and ``out_dir/adaptation.png``."""
    if not dirs:
        raise MetaRLInputError("report: give at least one run directory")
    runs = [read_results(d) for d in dirs]
    names = _labels(dirs, labels)
    warnings = []
    for key in ("family", "metric", "budgets", "held-out tasks", "budget_unit"):
        values = [_describe(r, key) for r in runs]
        if any(v != values[0] for v in values[1:]):
            what = "; ".join(f"{n}: {json.dumps(v, sort_keys=True)}" for n, v in zip(names, values, strict=True))
            warnings.append(f"runs differ in {key} ({what}); their numbers are not directly comparable")

    budgets = sorted({r["budget"] for res in runs for r in res["rows"]})
    metrics = list(dict.fromkeys(res["metric"] for res in runs))
    lines = ["# Comparison of runs", "", "![adaptation curves](adaptation.png)", "",
             "| run | scenario | metric | held-out tasks |", "|---|---|---|---|"]
    for name, d, res in zip(names, dirs, runs, strict=True):
        lines.append(f"| {name} (`{d}`) | {res['scenario']} | {res['metric']} | "
                     f"{(res.get('tasks') or {}).get('test', '?')} |")
    lines += ["", f"{' / '.join(metrics)} after K units (mean ± 95% CI over held-out tasks):", "",
              "| run | agent | " + " | ".join(f"K={b}" for b in budgets) + " |", "|---|---|" + "---|" * len(budgets)]
    series = []
    for i, (name, res) in enumerate(zip(names, runs, strict=True)):
        agents = list(dict.fromkeys(r["agent"] for r in res["rows"]))
        for agent in agents:
            rows = {r["budget"]: r for r in res["rows"] if r["agent"] == agent}
            cells = [f"{rows[b]['mean']:.3f} ± {rows[b]['ci95']:.3f}" if b in rows else "" for b in budgets]
            lines.append(f"| {name} | {agent} | " + " | ".join(cells) + " |")
            series.append((f"{name}: {agent}", [(b, r["mean"], r["ci95"]) for b, r in rows.items()],
                           _STYLES[i % len(_STYLES)]))
    checks = [(name, e) for name, res in zip(names, runs, strict=True) for e in res.get("expectations", [])]
    if checks:
        lines += ["", "| run | expectation | result | lhs | rhs | lhs - rhs (paired 95% CI) |",
                  "|---|---|---|---|---|---|"]
        for name, e in checks:
            p = e.get("paired")
            paired = f"{p['diff']:+.4g} ± {p['ci95']:.3g}" if p else "n/a"
            lines.append(f"| {name} | `{e['check']}` | {'pass' if e['passed'] else 'FAIL'} | {e['lhs']:.4g} | "
                         f"{e['rhs']:.4g} | {paired} |")
    if warnings:
        lines += ["", "**Differences between the runs:**", ""] + [f"- {w}" for w in warnings]
    markdown = "\n".join(lines) + "\n"
    out = Path(out_dir)
    report_path = atomic_write_text(out / "report.md", markdown)
    units = list(dict.fromkeys(str(res.get("budget_unit", "units")) for res in runs))
    plot_path = plot_series(series, out / "adaptation.png", xlabel=f"adaptation budget K ({' / '.join(units)})",
                            ylabel=" / ".join(m.replace("_", " ") for m in metrics),
                            title=f"{len(runs)} runs — held-out tasks, mean ± 95% CI")
    return MergedReport(markdown, warnings, report_path, plot_path)

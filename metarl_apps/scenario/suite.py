"""The scenario suite's index report: one line per scenario run, linking its own report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from metarl_apps.core.io import atomic_write_text


def render_index(records: Sequence[dict], index_dir: str | os.PathLike) -> str:
    """Markdown index of scenario runs. ``records``: ``{"scenario", "file", "dir", "tier", "results"}`` each
    (``results`` as in results.json); links are relative to ``index_dir``."""
    lines = ["# Scenario suite", "", "| scenario | tier | result | expectations | wall time | report |",
             "|---|---|---|---|---|---|"]
    failures = []
    for r in records:
        checks = r["results"]["expectations"]
        failed = [c for c in checks if not c["passed"]]
        unconfirmed = [c for c in checks if c["passed"] and c.get("paired") and not c["paired"]["confident"]]
        verdict = "FAIL" if failed else "pass"
        detail = f"{len(checks) - len(failed)}/{len(checks)} pass" + (
            f", {len(unconfirmed)} not confirmed at 95%" if unconfirmed else "")
        wall = r["results"].get("wall_time_s", {}).get("total")
        link = os.path.relpath(Path(r["dir"]) / "report.md", index_dir)
        lines.append(f"| {r['scenario']} (`{r['file']}`) | {r['tier']} | {verdict} | {detail} | "
                     f"{'' if wall is None else f'{wall:.0f}s'} | [report]({link}) |")
        failures += [(r["scenario"], c) for c in failed]
    if failures:
        from metarl_apps.scenario.runner import describe_check

        lines += ["", "## Failed expectations", ""] + [f"- {name}: `{describe_check(c)}`" for name, c in failures]
    return "\n".join(lines) + "\n"


def write_index(records: Sequence[dict], path: str | os.PathLike) -> Path:
    """Write :func:`render_index` to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, render_index(records, path.parent))

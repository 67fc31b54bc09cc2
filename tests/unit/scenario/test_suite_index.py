"""The scenario suite's index report."""

from metarl_apps.scenario.suite import render_index, write_index


def _record(name, passed, confident=True):
    check = {"check": "a@10 >= b@10", "passed": passed, "lhs": 6.5 if passed else 5.0, "rhs": 5.5,
             "paired": {"diff": 1.0 if passed else -0.5, "ci95": 0.2, "low": 0.8, "high": 1.2, "n_tasks": 100,
                        "confident": confident}}
    return {"scenario": name, "file": f"scenarios/{name}.yaml", "dir": f"out/scenarios/{name}", "tier": "smoke",
            "results": {"expectations": [check], "wall_time_s": {"total": 12.4}}}


def test_index_lists_every_run_and_spells_out_failures(tmp_path):
    records = [_record("good", True), _record("shaky", True, confident=False), _record("bad", False)]
    for r in records:
        r["dir"] = str(tmp_path / "runs" / r["scenario"])
    path = write_index(records, tmp_path / "out" / "index.md")
    text = path.read_text()
    assert "| good (`scenarios/good.yaml`) | smoke | pass | 1/1 pass | 12s | [report](../runs/good/report.md) |" in text
    assert "| shaky" in text and "1 not confirmed at 95%" in text
    assert "| bad" in text and "| FAIL | 0/1 pass" in text
    assert "## Failed expectations" in text and "- bad: `[FAIL] a@10 >= b@10   (5 vs 5.5" in text


def test_links_are_relative_to_the_index():
    text = render_index([_record("good", True)], "out/scenarios")
    assert "[report](good/report.md)" in text and "Failed expectations" not in text

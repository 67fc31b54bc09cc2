"""bench/maml_step.py runs end to end in its quick mode and writes well-formed JSON (no timing assertions)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_maml_step_quick_mode_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-m", "bench.maml_step", "--quick", "--json", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert {r["variant"] for r in data["results"]} == {"batched", "loop"}
    assert all(r["seconds_per_meta_iteration"] > 0 for r in data["results"])
    assert data["ratio_loop_over_batched"] > 0 and "faster than the Python loop" in proc.stdout

"""The benchmarks run end to end in their quick mode and write well-formed JSON (no timing assertions)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("module, key", [("bench.recsys_env", "rows"), ("bench.rl2_throughput", "results")])
def test_benchmark_quick_mode_writes_json(module, key, tmp_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-m", module, "--quick", "--json", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    rows = data[key]
    assert rows and all(isinstance(r, dict) for r in rows)
    rates = [v for r in rows for k, v in r.items() if k.endswith("steps_per_s")]
    assert rates and all(v > 0 for v in rates)

"""bench/games_env.py runs end to end in its quick mode and reports both ratios (no timing assertions)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_games_env_quick_mode_reports_both_ratios(tmp_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-m", "bench.games_env", "--quick", "--json", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    grid, c4 = data["gridlevels"], data["connect_four"]
    ratios = [grid["speedup_core_over_pettingzoo"], grid["speedup_tf_env_over_pettingzoo"],
              c4["time_ratio_tf_env_over_raw"], c4["time_ratio_numpy_over_raw"]]
    assert all(math.isfinite(r) and r > 0 for r in ratios)
    assert math.isfinite(c4["overhead_tf_env"]) and math.isfinite(c4["overhead_numpy"])
    # Same work on both sides: identical trajectories / games (deterministic, not a timing check).
    assert grid["identical_trajectories"] and c4["identical_games_raw_vs_numpy"]
    assert all(n > 0 for n in c4["learner_moves_per_call"]["adapter tf env"])
    assert "batched core / PettingZoo" in proc.stdout and "overhead per learner move" in proc.stdout

"""The benchmarks run end to end in their quick mode and write well-formed JSON (no timing assertions)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_quick(module: str, tmp_path, *extra: str) -> tuple[dict, str]:
    """``python -m module --quick --json PATH [extra...]`` from the project root: ``(its JSON, its stdout)``; a
    non-zero exit fails the test with the end of its stderr."""
    out = tmp_path / "bench.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-m", module, "--quick", "--json", str(out), *extra], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


@pytest.mark.parametrize("module, key", [("bench.recsys_env", "rows"), ("bench.rl2_throughput", "results")])
def test_benchmark_quick_mode_writes_json(module, key, tmp_path):
    data, _ = run_quick(module, tmp_path)
    rows = data[key]
    assert rows and all(isinstance(r, dict) for r in rows)
    rates = [v for r in rows for k, v in r.items() if k.endswith("steps_per_s")]
    assert rates and all(v > 0 for v in rates)


def test_rl2_throughput_measures_the_set_memory_against_tf_agents_lstm(tmp_path):
    data, stdout = run_quick("bench.rl2_throughput", tmp_path, "--cell", "set", "--set-keys", "4", "--envs", "mdp",
                             "--compute-dtype", "bfloat16")
    (row,) = data["results"]
    assert row["env"] == "mdp" and row["our_memory"] == "set(keys=4) bf16"
    assert data["network"]["ours_cell"] == "set" and data["network"]["ours_set_keys"] == 4
    assert data["network"]["ours_compute_dtype"] == "bfloat16"
    assert row["ours_steps_per_s"] > 0 and row["tf_agents_steps_per_s"] > 0
    assert "our memory set(keys=4) bf16" in stdout


@pytest.mark.parametrize("argv", [["--set-keys", "4"], ["--cell", "set", "--set-keys", "-1"], ["--cell", "xyz"],
                                  ["--compute-dtype", "bfloat16"], ["--cell", "set", "--compute-dtype", "float16"]])
def test_rl2_throughput_refuses_bad_memory_flags(argv):
    from bench.rl2_throughput import parse_args

    with pytest.raises(SystemExit) as err:
        parse_args(argv)
    assert err.value.code == 2


def test_maml_step_quick_mode_writes_json(tmp_path):
    data, stdout = run_quick("bench.maml_step", tmp_path)
    assert {r["variant"] for r in data["results"]} == {"batched", "loop"}
    assert all(r["seconds_per_meta_iteration"] > 0 for r in data["results"])
    assert data["ratio_loop_over_batched"] > 0 and "faster than the Python loop" in stdout


def test_games_env_quick_mode_reports_both_ratios(tmp_path):
    data, stdout = run_quick("bench.games_env", tmp_path)
    grid, c4 = data["gridlevels"], data["connect_four"]
    ratios = [grid["speedup_core_over_pettingzoo"], grid["speedup_tf_env_over_pettingzoo"],
              c4["time_ratio_tf_env_over_raw"], c4["time_ratio_numpy_over_raw"]]
    assert all(math.isfinite(r) and r > 0 for r in ratios)
    assert math.isfinite(c4["overhead_tf_env"]) and math.isfinite(c4["overhead_numpy"])
    # Same work on both sides: identical trajectories / games (deterministic, not a timing check).
    assert grid["identical_trajectories"] and c4["identical_games_raw_vs_numpy"]
    assert all(n > 0 for n in c4["learner_moves_per_call"]["adapter tf env"])
    assert "batched core / PettingZoo" in stdout and "overhead per learner move" in stdout

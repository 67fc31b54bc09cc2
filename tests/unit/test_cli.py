"""The `metarl` command: exit codes 0 / 1 (expectation failed) / 2 (bad input, one line, no traceback)."""

import json
import subprocess
import sys

import pytest
import yaml

from metarl_apps.cli import main


def _scenario(tmp_path, expectations=("thompson@3 >= random@1",), **overrides):
    doc = {
        "name": "tiny",
        "family": {"name": "bandits.bernoulli", "params": {"arms": 2, "pulls": 3}},
        "tasks": {"train": 0, "test": 300, "seed": 0},
        "budgets": [1, 3],
        "agents": [{"name": "random", "baseline": "random"}, {"name": "thompson", "baseline": "thompson"}],
        "expectations": list(expectations),
    }
    doc.update(overrides)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_list_shows_registries(capsys):
    assert main(["list", "--scenarios", "scenarios"]) == 0
    out = capsys.readouterr().out
    assert "bandits.bernoulli" in out and "thompson" in out and "mdp.tabular" in out


def test_run_writes_results_in_the_documented_schema(tmp_path, capsys):
    out_dir = tmp_path / "out"
    assert main(["run", str(_scenario(tmp_path)), "-o", str(out_dir), "--no-progress"]) == 0
    results = json.loads((out_dir / "results.json").read_text())
    assert {"scenario", "metric", "rows", "expectations", "versions"} <= set(results)
    assert results["scenario"] == "tiny" and results["metric"] == "cumulative_reward"
    row = results["rows"][0]
    assert set(row) == {"agent", "budget", "mean", "ci95", "n_tasks", "seeds"}
    assert {(r["agent"], r["budget"]) for r in results["rows"]} == {
        ("random", 1), ("random", 3), ("thompson", 1), ("thompson", 3)}
    assert all(r["n_tasks"] == 300 and r["seeds"] == 1 for r in results["rows"])
    (check,) = results["expectations"]
    assert {k: check[k] for k in ("check", "passed", "lhs", "rhs")} == {
        "check": "thompson@3 >= random@1", "passed": True, "lhs": pytest.approx(results["rows"][3]["mean"]),
        "rhs": pytest.approx(results["rows"][0]["mean"])}
    paired = check["paired"]  # the paired CI of lhs - rhs over the same 300 tasks
    assert paired["diff"] == pytest.approx(check["lhs"] - check["rhs"]) and paired["n_tasks"] == 300
    assert paired["low"] == pytest.approx(paired["diff"] - paired["ci95"]) and paired["confident"] is True
    # common random numbers make the paired interval narrower than the unpaired one
    assert paired["ci95"] < (results["rows"][3]["ci95"] ** 2 + results["rows"][0]["ci95"] ** 2) ** 0.5
    assert "paired 95% CI" in (out_dir / "report.md").read_text()
    assert results["versions"]["tensorflow"] == "2.15.1"
    assert "| thompson |" in (out_dir / "report.md").read_text()


def test_failed_expectation_exits_1(tmp_path):
    path = _scenario(tmp_path, expectations=["random@3 >= 100"])
    assert main(["run", str(path), "-o", str(tmp_path / "o"), "--no-progress"]) == 1
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert results["expectations"][0]["passed"] is False


@pytest.mark.parametrize(
    "argv, match",
    [
        (["run", "nope.yaml", "-o", "x"], "nope.yaml"),
        (["validate", "nope.yaml"], "nope.yaml"),
        (["run", "{scenario}", "-o", "{out}", "--agent", "ghost"], "--agent ghost: not in scenario"),
        (["train", "{scenario}", "-o", "{out}"], "no learner"),
        (["adapt", "{scenario}", "-o", "{out}", "--agent", "random", "--budget", "2"], "is a baseline"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, match, tmp_path, capsys):
    path = _scenario(tmp_path)
    argv = [a.format(scenario=path, out=tmp_path / "o") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("metarl: error:")
    assert match in err


def test_validate_reports_each_bad_file(tmp_path, capsys):
    good = _scenario(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    assert main(["validate", str(good), str(bad)]) == 2
    captured = capsys.readouterr()
    assert f"ok {good}" in captured.out
    assert len(captured.err.strip().splitlines()) == 1 and "bad.yaml" in captured.err


def test_console_script_bad_input_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nfamily: {name: bandits.nope}\n")
    proc = subprocess.run([sys.executable, "-m", "metarl_apps.cli", "validate", str(bad)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("metarl: error:")


def test_regret_rows_are_paired_to_the_oracle(tmp_path):
    path = _scenario(tmp_path, expectations=[], agents=[
        {"name": "random", "baseline": "random"}, {"name": "oracle", "baseline": "oracle"}])
    assert main(["run", str(path), "-o", str(tmp_path / "o"), "--no-progress"]) == 0
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    reward = {(r["agent"], r["budget"]): r["mean"] for r in results["rows"]}
    regret = {(r["agent"], r["budget"]): r["mean"] for r in results["regret_rows"]}
    assert set(regret) == {("random", 1), ("random", 3)}
    assert regret[("random", 3)] == pytest.approx(reward[("oracle", 3)] - reward[("random", 3)])
    assert "Regret to the oracle" in (tmp_path / "o" / "report.md").read_text()


def test_train_evaluate_adapt_a_learner_with_checkpoints(tmp_path, capsys):
    path = _scenario(tmp_path, expectations=["rl2@3 >= 0"], tasks={"train": 32, "test": 20, "seed": 0}, agents=[
        {"name": "rl2", "algorithm": "rl2", "train": {"iterations": 2},
         "config": {"hidden_size": 8, "embed_sizes": [8], "tasks_per_iteration": 16, "minibatches": 2,
                    "epochs": 1}},
        {"name": "random", "baseline": "random"}])
    out = tmp_path / "o"
    models = str(tmp_path / "models")
    assert main(["train", str(path), "-o", str(out), "--no-progress", "--models", models]) == 0
    ckpt = out / "checkpoints" / "rl2" / "seed_0"
    assert (ckpt / "checkpoint").exists()
    model = tmp_path / "models" / "tiny-rl2"
    assert f"saved model {model}" in capsys.readouterr().out and (model / "card.json").exists()
    # training again into the same directory would overwrite the checkpoint: refused, one line, exit 2
    assert main(["train", str(path), "-o", str(out), "--no-progress", "--models", models]) == 2
    assert "already holds a checkpoint; pass --resume" in capsys.readouterr().err
    assert main(["evaluate", str(path), "-o", str(out), "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert {r["agent"] for r in results["rows"]} == {"rl2", "random"}
    capsys.readouterr()
    assert main(["adapt", str(path), "-o", str(out), "--agent", "rl2", "--budget", "3", "--tasks", "5"]) == 0
    assert "rl2 after 3 pulls:" in capsys.readouterr().out
    assert main(["explore", str(path), "-o", str(out), "--tasks", "10"]) == 0  # the learner from its checkpoint
    record = json.loads((out / "exploration.json").read_text())
    assert set(record["agents"]) == {"rl2", "random"} and len(record["agents"]["rl2"]["first_try"]) == 1
    assert main(["adapt", str(path), "-o", str(tmp_path / "empty"), "--agent", "rl2", "--budget", "3"]) == 2
    assert "no checkpoint directory" in capsys.readouterr().err


@pytest.mark.parametrize("with_oracle_agent", [True, False])
def test_regret_metric_rows_are_paired_to_the_oracle(tmp_path, with_oracle_agent):
    agents = [{"name": "random", "baseline": "random"}]
    if with_oracle_agent:
        agents.append({"name": "oracle", "baseline": "oracle"})
    path = _scenario(tmp_path, expectations=["random@3 > 0"], metric="regret", agents=agents)
    assert main(["run", str(path), "-o", str(tmp_path / "o"), "--no-progress"]) == 0
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    regret = {(r["agent"], r["budget"]): r["mean"] for r in results["rows"]}
    assert results["metric"] == "regret" and results["regret_rows"] == []
    # random pulls of 2 arms lose, on average, half the gap between the arms (1/3 for U[0,1] means) per pull
    assert regret[("random", 3)] == pytest.approx(3 * (2 / 3 - 1 / 2), abs=0.1)
    if with_oracle_agent:
        assert regret[("oracle", 1)] == 0.0 and regret[("oracle", 3)] == 0.0


def test_models_saved_listed_and_used_without_the_training_config(tmp_path, capsys):
    path = _scenario(tmp_path, expectations=["rl2@3 >= random@3 - 3"], tasks={"train": 32, "test": 40, "seed": 0},
                     agents=[{"name": "rl2", "algorithm": "rl2", "train": {"iterations": 2},
                              "config": {"hidden_size": 8, "embed_sizes": [8], "tasks_per_iteration": 16,
                                         "minibatches": 2, "epochs": 1}},
                             {"name": "random", "baseline": "random"}])
    models = tmp_path / "models"
    argv = ["run", str(path), "-o", str(tmp_path / "o"), "--no-progress", "--save-model", "--models", str(models),
            "--model-name", "m1"]
    assert main(argv) == 0
    card = json.loads((models / "m1" / "card.json").read_text())
    assert [r["budget"] for r in card["evaluation"]["rows"]] == [1, 3] and card["evaluation"]["n_tasks"] == 40
    capsys.readouterr()
    assert main(["list", "--models", str(models)]) == 0
    assert "m1" in (out := capsys.readouterr().out) and "bandits.bernoulli" in out and "cumulative_reward@3 =" in out
    path.unlink()  # the scenario file (and its config) is gone: the model alone suffices
    assert main(["adapt", "--model", str(models / "m1"), "--budget", "3", "--tasks", "5"]) == 0
    assert "rl2 after 3 pulls:" in capsys.readouterr().out
    assert main(["evaluate", "--model", str(models / "m1"), "-o", str(tmp_path / "e"), "--no-progress",
                 "--tasks", "40"]) == 0
    results = json.loads((tmp_path / "e" / "results.json").read_text())
    assert {r["agent"] for r in results["rows"]} == {"rl2"} and results["models"] == {"rl2": str(models / "m1")}
    # the same 40 held-out tasks and env seed as the run that saved it: the same numbers
    assert [r["mean"] for r in results["rows"]] == pytest.approx([r["mean"] for r in card["evaluation"]["rows"]])
    # a model standing in for the learner of a scenario of another family is refused in one line
    other = _scenario(tmp_path, family={"name": "bandits.bernoulli", "params": {"arms": 3, "pulls": 3}},
                      agents=[{"name": "rl2", "algorithm": "rl2"}], expectations=[], tasks={"train": 4, "test": 4})
    capsys.readouterr()
    assert main(["evaluate", str(other), "--model", str(models / "m1"), "-o", str(tmp_path / "e2")]) == 2
    assert "was trained on bandits.bernoulli" in capsys.readouterr().err
    (models / "m1" / "card.json").unlink()
    assert main(["adapt", "--model", str(models / "m1"), "--budget", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no card.json" in err


def test_report_merges_runs(tmp_path, capsys):
    a = _scenario(tmp_path, expectations=["thompson@3 >= random@3"])
    assert main(["run", str(a), "-o", str(tmp_path / "before"), "--no-progress"]) == 0
    b = _scenario(tmp_path, expectations=[], budgets=[1, 2, 3], tasks={"train": 0, "test": 100, "seed": 1})
    assert main(["run", str(b), "-o", str(tmp_path / "after"), "--no-progress"]) == 0
    capsys.readouterr()
    out = tmp_path / "cmp"
    assert main(["report", str(tmp_path / "before"), str(tmp_path / "after"), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    report = (out / "report.md").read_text()
    assert report in captured.out and (out / "adaptation.png").stat().st_size > 10_000
    assert "| before | thompson |" in report and "| after | random |" in report and "K=2" in report
    assert "runs differ in budgets" in captured.err and "runs differ in held-out tasks" in captured.err
    assert "runs differ in budgets" in report and "`thompson@3 >= random@3`" in report
    assert main(["report", str(tmp_path / "before"), str(tmp_path)]) == 2
    assert f"{tmp_path}: no results.json" in capsys.readouterr().err

"""The model registry: trained meta-policies under ``models/<name>/``, each loadable without its training config.

A saved model is a directory::

    models/<name>/
      policy/        tf-agents PolicySaver SavedModel of the adapted policy (batch size free, recurrent state
                     included: ``get_initial_state(B)``, ``action(time_step, state)``)
      checkpoint/    the learner's tf checkpoint (the last one of meta-training), restorable with the algorithm
                     and config named in the card
      card.md        the model card, rendered for humans
      card.json      the model card (written last): scenario, task family and params, algorithm and config,
                     training budget and wall time, held-out metrics with 95% CIs (if evaluated), package
                     versions, seeds, date, and ``files``: the sha256 and size of every other file

Saving is atomic: everything is written into a hidden temporary directory beside the target
(``models/.tmp-<name>-*``), fsynced, and renamed into place; a crash mid-save leaves at most a hidden
temporary directory, never a ``models/<name>`` that loads. Loading checks the card's format and every file of
its manifest; any problem (no card, a missing or truncated file, a hash mismatch, another task family) is a
one-line :class:`~metarl_apps.core.errors.CheckpointError` naming the problem and the fix. No pickle: the card
is JSON, the weights are tf checkpoints and a SavedModel.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import tensorflow as tf
from absl import logging as absl_logging
from tf_agents.policies import tf_policy
from tf_agents.trajectories import policy_step

from metarl_apps.core.errors import CheckpointError, MetaRLInputError

FORMAT = "metarl_apps.model/1"
CARD_JSON, CARD_MD, POLICY_DIR, CHECKPOINT_DIR = "card.json", "card.md", "policy", "checkpoint"
DEFAULT_REGISTRY = "models"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")


# ---------------------------------------------------------------------------------------------- helpers
def check_model_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise MetaRLInputError(f"model name {name!r}: use letters, digits, '_', '-', '.', '+' (not starting with '.' "
                               f"or '-'), e.g. rl2-bandits-k5-n10")
    return name


def default_model_name(scenario_name: str, agent: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "-", f"{scenario_name}-{agent}").lstrip(".-") or agent


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _manifest(root: Path) -> dict[str, dict[str, Any]]:
    files = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != CARD_JSON:
            rel = p.relative_to(root).as_posix()
            files[rel] = {"sha256": _sha256(p), "bytes": p.stat().st_size}
    return files


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as f:
                os.fsync(f.fileno())
        fd = os.open(dirpath, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value


def _copy_latest_checkpoint(src_dir: str, dst: Path) -> str:
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(src_dir)
    if latest is None:
        raise CheckpointError(f"{src_dir}: no checkpoint to save into the model registry; meta-train with a "
                              f"checkpoint_dir first (`metarl train` does)")
    dst.mkdir(parents=True)
    prefix = Path(latest)
    for f in prefix.parent.glob(prefix.name + ".*"):
        shutil.copy2(f, dst / f.name)
    (dst / "checkpoint").write_text(f'model_checkpoint_path: "{prefix.name}"\n'
                                    f'all_model_checkpoint_paths: "{prefix.name}"\n')
    return prefix.name


# ------------------------------------------------------------------------------------------------- save
def save_model(
    learner: Any,
    dist: Any,
    registry_dir: str | os.PathLike,
    name: str,
    *,
    checkpoint_dir: str,
    agent: str,
    algorithm: str,
    scenario: Any = None,
    training: dict | None = None,
    evaluation: dict | None = None,
) -> Path:
    """Save a meta-trained ``learner`` as ``registry_dir/name`` (atomically; replaces an older model of that name).

    Args:
      learner: a trained ``MetaLearner`` (restored or just meta-trained) for the family of ``dist``.
      dist: the ``TaskDistribution`` it was meta-trained on.
      checkpoint_dir: the directory its meta-training checkpoints went to; the latest one is copied.
      agent, algorithm: the scenario agent name and the registered algorithm name (``ALGORITHMS``).
      scenario: the loaded ``Scenario`` (name, file, tasks, budgets go into the card), or None.
      training: what the card says about training (iterations, seed, wall time, ...).
      evaluation: held-out metrics (results.json rows of this agent, with metric, budget unit, task count).
    """
    from tf_agents.policies import policy_saver

    from metarl_apps.scenario.runner import package_versions

    check_model_name(name)
    registry = Path(registry_dir)
    registry.mkdir(parents=True, exist_ok=True)
    target = registry / name
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=registry))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the model is an ordinary directory once in place
    try:
        ckpt_name = _copy_latest_checkpoint(checkpoint_dir, tmp / CHECKPOINT_DIR)
        policy = learner.adapt(dist.sample(1, split="test", seed=0), dist.episodes_per_trial)
        verbosity = absl_logging.get_verbosity()
        absl_logging.set_verbosity(absl_logging.ERROR)  # "could not serialize policy.distribution()": expected
        try:
            policy_saver.PolicySaver(policy, batch_size=None).save(str(tmp / POLICY_DIR))
        finally:
            absl_logging.set_verbosity(verbosity)
        card = {
            "format": FORMAT,
            "name": name,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "agent": agent,
            "algorithm": algorithm,
            "config": _jsonable(learner.config),
            "family": {"name": dist.family, "params": _jsonable(dict(getattr(dist, "params", {}) or {}))},
            "budget_unit": getattr(dist, "budget_unit", None),
            "episodes_per_trial": int(dist.episodes_per_trial),
            "scenario": None if scenario is None else {
                "name": scenario.name, "file": str(scenario.path), "tier": scenario.tier,
                "tasks": _jsonable(scenario.tasks), "budgets": list(scenario.budgets),
                "env_seed": scenario.env_seed, "metric": scenario.metric},
            "training": _jsonable(dict(training or {})),
            "evaluation": _jsonable(evaluation) if evaluation else None,
            "versions": package_versions(),
            "policy": {"dir": POLICY_DIR, "format": "tf-agents PolicySaver SavedModel", "batch_size": None,
                       "policy_state_spec": str(policy.policy_state_spec)},
            "checkpoint": {"dir": CHECKPOINT_DIR, "prefix": ckpt_name},
        }
        (tmp / CARD_MD).write_text(render_card(card))
        card["files"] = _manifest(tmp)
        (tmp / CARD_JSON).write_text(json.dumps(card, indent=2) + "\n")  # last: a model without it is refused
        _fsync_tree(tmp)
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".old-{name}-", dir=registry))
            os.replace(target, old / name)
        os.replace(tmp, target)
        fd = os.open(registry, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def render_card(card: dict) -> str:
    """The model card as markdown."""
    fam = card["family"]
    lines = [f"# Model card: {card['name']}", "",
             f"- **algorithm**: `{card['algorithm']}` (scenario agent `{card['agent']}`)",
             f"- **task family**: `{fam['name']}` with params `{json.dumps(fam['params'], sort_keys=True)}`",
             f"- **date**: {card['date']}"]
    sc = card.get("scenario")
    if sc:
        lines.append(f"- **scenario**: `{sc['name']}` ({sc['file']}, tier {sc['tier']}); tasks {sc['tasks']}")
    tr = card.get("training") or {}
    if tr:
        lines.append("- **training**: " + ", ".join(f"{k} = {v}" for k, v in tr.items()))
    lines += ["", "## Algorithm config", "", "```json", json.dumps(card["config"], indent=2, sort_keys=True), "```"]
    ev = card.get("evaluation")
    lines += ["", "## Held-out metrics", ""]
    if ev:
        lines += [f"{ev.get('metric', 'metric')} after K {card.get('budget_unit') or 'units'} on "
                  f"{ev.get('n_tasks', '?')} held-out tasks (mean ± 95% CI):", "", "| K | mean ± 95% CI |", "|---|---|"]
        lines += [f"| {r['budget']} | {r['mean']:.3f} ± {r['ci95']:.3f} |" for r in ev.get("rows", [])]
    else:
        lines.append("Not evaluated at save time: `metarl evaluate --model models/" + card["name"] + "`.")
    lines += ["", "## Use", "", "```bash", f"metarl adapt --model models/{card['name']} --budget "
              f"{card.get('episodes_per_trial', 1)}", f"metarl evaluate --model models/{card['name']} -o out/eval",
              "```", "", "Python: `metarl_apps.modelstore.restore_learner(path)` (the learner) or "
              "`load_saved_policy(path)` (the SavedModel as a TFPolicy).", "",
              "## Versions", "", ", ".join(f"{k} {v}" for k, v in card["versions"].items())]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------- load
def load_card(model_dir: str | os.PathLike) -> dict:
    """The verified card of the model in ``model_dir``: format known, every manifest file present and intact.

    Raises:
      CheckpointError: one line naming the problem (no such model, interrupted save, missing or corrupted
        file, unknown format) and the fix.
    """
    root = Path(model_dir)
    retrain = "retrain it with `metarl train SCENARIO -o DIR` or copy the whole model directory again"
    if not root.is_dir():
        raise CheckpointError(f"{root}: no such model directory; `metarl list` shows the models in ./models, "
                              f"`metarl train` saves new ones")
    card_path = root / CARD_JSON
    if not card_path.is_file():
        raise CheckpointError(f"{root}: no {CARD_JSON} (an incomplete or interrupted save, or not a model "
                              f"directory); {retrain}")
    try:
        card = json.loads(card_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{card_path}: corrupted ({type(err).__name__}: {str(err).splitlines()[0]}); "
                              f"{retrain}") from None
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        got = card.get("format") if isinstance(card, dict) else type(card).__name__
        raise CheckpointError(f"{card_path}: incompatible model format {got!r} (this metarl_apps reads {FORMAT!r}); "
                              f"retrain it with this version (`metarl train`)")
    files = card.get("files")
    missing_keys = [k for k in ("algorithm", "config", "family", "agent") if k not in card]
    if not isinstance(files, dict) or not files or missing_keys:
        raise CheckpointError(f"{card_path}: incomplete card (no file manifest or {missing_keys or 'files'}); "
                              f"{retrain}")
    for rel, meta in files.items():
        path = root / rel
        if not path.is_file():
            raise CheckpointError(f"{root}: missing file {rel} listed in its manifest (truncated copy?); {retrain}")
        if path.stat().st_size != meta.get("bytes") or _sha256(path) != meta.get("sha256"):
            raise CheckpointError(f"{root}: {rel} does not match its sha256 in {CARD_JSON} (corrupted or "
                                  f"modified); {retrain}")
    return card


def check_family(card: dict, dist: Any, where: str) -> None:
    """Refuse a model trained on another family (or other family params) than ``dist``."""
    fam = card["family"]
    params = _jsonable(dict(getattr(dist, "params", {}) or {}))
    if fam["name"] != dist.family or fam["params"] != params:
        raise CheckpointError(f"model {card['name']!r} was trained on {fam['name']} {fam['params']}, but {where} "
                              f"uses {dist.family} {params}; use a model trained on that family (`metarl list`)")


def make_distribution(card: dict) -> Any:
    from metarl_apps.core.registry import make_task_distribution

    return make_task_distribution(card["family"]["name"], **card["family"]["params"])


def restore_learner(model_dir: str | os.PathLike, dist: Any = None,
                    algorithm: str | None = None) -> tuple[Any, Any, dict]:
    """Rebuild the learner from the card (``ALGORITHMS[card.algorithm](card.config)``) and restore its checkpoint.

    Returns ``(learner, dist, card)``; ``dist`` is built from the card unless given (then it must match).
    ``algorithm`` restores the weights into another registered algorithm with the same config and checkpoint
    layout (e.g. a variant of the card's algorithm that acts differently).
    """
    from metarl_apps.core.registry import ALGORITHMS

    card = load_card(model_dir)
    if dist is None:
        dist = make_distribution(card)
    else:
        check_family(card, dist, "the requested task family")
    learner = ALGORITHMS.get(algorithm or card["algorithm"])(card["config"])
    learner.restore(str(Path(model_dir) / CHECKPOINT_DIR), dist)
    return learner, dist, card


def load_saved_policy(model_dir: str | os.PathLike, dist: Any = None):
    """The model's SavedModel (``policy/``) as a tf-agents ``TFPolicy`` acting in ``dist.make_env(tasks)``."""
    card = load_card(model_dir)
    if dist is None:
        dist = make_distribution(card)
    else:
        check_family(card, dist, "the requested task family")
    return SavedPolicy(Path(model_dir) / POLICY_DIR, dist.time_step_spec(), dist.action_spec())


def list_models(registry_dir: str | os.PathLike = DEFAULT_REGISTRY) -> list[dict]:
    """One entry per model directory: ``{"name", "family", "algorithm", "metric", "error"}`` (hidden dirs skipped).

    ``metric`` is the held-out mean ± CI at the largest evaluated budget (None if not evaluated); a model that
    does not load has ``error`` set (the one-line reason) instead.
    """
    out = []
    root = Path(registry_dir)
    if not root.is_dir():
        return out
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            card = load_card(d)
        except CheckpointError as err:
            out.append({"name": d.name, "family": None, "algorithm": None, "metric": None, "error": str(err)})
            continue
        metric = None
        ev = card.get("evaluation")
        if ev and ev.get("rows"):
            top = max(ev["rows"], key=lambda r: r["budget"])
            metric = f"{ev.get('metric', 'metric')}@{top['budget']} = {top['mean']:.3f} ± {top['ci95']:.3f}"
        out.append({"name": d.name, "family": card["family"]["name"], "algorithm": card["algorithm"],
                    "metric": metric, "error": None})
    return out


# ---------------------------------------------------------------------------------------- saved policy
class SavedPolicy(tf_policy.TFPolicy):
    """A PolicySaver SavedModel as a ``TFPolicy`` (for the evaluator); its state spec comes from the model."""

    def __init__(self, path: str | os.PathLike, time_step_spec, action_spec):
        try:
            loaded = tf.saved_model.load(str(path))
        except (OSError, ValueError, tf.errors.OpError) as err:
            raise CheckpointError(f"{path}: the SavedModel does not load ({type(err).__name__}); retrain the model "
                                  f"with `metarl train`") from None
        init = loaded.get_initial_state(1)
        state_spec = tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape[1:], t.dtype), init)
        super().__init__(time_step_spec, action_spec, policy_state_spec=state_spec, name="saved_policy")
        self._loaded = loaded

    def _get_initial_state(self, batch_size):
        return self._loaded.get_initial_state(batch_size)

    def _action(self, time_step, policy_state, seed):
        step = self._loaded.action(time_step, policy_state)
        return policy_step.PolicyStep(step.action, step.state, ())

    def _distribution(self, time_step, policy_state):
        raise NotImplementedError("SavedPolicy acts through action() only")

"""The shared meta-training pieces: model selection on validation tasks."""

import json

import numpy as np
import pytest
import tensorflow as tf

from metarl_apps.core.errors import TrainingError
from metarl_apps.core.training import Selection, restore_best


class _Model(tf.Module):
    def __init__(self):
        super().__init__()
        self.w = tf.Variable([0.0, 0.0])


def _run(selection, model, iterations, start=0):
    for it in range(start, iterations):
        model.w.assign([float(it + 1), -float(it + 1)])  # the "training step" of iteration it
        selection.after(it, it + 1 == iterations)


def test_selection_keeps_the_best_scoring_weights_on_disk_and_in_memory(tmp_path):
    scores = iter([1.0, 3.0, 2.0, 0.5, 2.5])
    model = _Model()
    sel = Selection(model, lambda: next(scores), every=2, checkpoint_dir=str(tmp_path))
    _run(sel, model, 9)  # scored after iterations 2, 4, 6, 8 and the last (9)
    record = json.loads((tmp_path / "best" / "selection.json").read_text())
    assert [h["iteration"] for h in record["history"]] == [2, 4, 6, 8, 9]
    assert (record["best_iteration"], record["best_score"]) == (4, 3.0)
    assert sel.finish() == {"best_iteration": 4.0, "selection_score": 3.0}
    np.testing.assert_array_equal(model.w.numpy(), [4.0, -4.0])
    # a fresh model (another process) gets the kept weights from disk
    other = _Model()
    assert restore_best(other, str(tmp_path)) is True
    np.testing.assert_array_equal(other.w.numpy(), [4.0, -4.0])
    assert restore_best(_Model(), str(tmp_path / "nowhere")) is False


def test_selection_resumes_against_the_best_seen_before_the_interruption(tmp_path):
    model = _Model()
    first = Selection(model, iter([1.0, 3.0]).__next__, every=1, checkpoint_dir=str(tmp_path))
    _run(first, model, 2)
    saved = {k: v.numpy() for k, v in first.trackables().items()}  # what the training checkpoint holds
    # resumed in a new process: the training checkpoint restores best_score / best_iteration
    model = _Model()
    second = Selection(model, iter([2.0, 2.5]).__next__, every=1, checkpoint_dir=str(tmp_path))
    for k, v in second.trackables().items():
        v.assign(saved[k])
    _run(second, model, 4, start=2)  # neither later score beats 3.0 (iteration 2)
    assert second.finish()["best_iteration"] == 2.0
    np.testing.assert_array_equal(model.w.numpy(), [2.0, -2.0])  # loaded from disk: not in this process' memory
    history = json.loads((tmp_path / "best" / "selection.json").read_text())["history"]
    assert [h["score"] for h in history] == [1.0, 3.0, 2.0, 2.5]


def test_selection_without_a_directory_keeps_weights_in_memory_and_stops_on_nan():
    model = _Model()
    sel = Selection(model, iter([5.0, 1.0]).__next__, every=1, checkpoint_dir=None)
    _run(sel, model, 2)
    sel.finish()
    np.testing.assert_array_equal(model.w.numpy(), [1.0, -1.0])
    bad = Selection(model, lambda: float("nan"), every=1, checkpoint_dir=None)
    with pytest.raises(TrainingError, match="selection score is not finite at iteration 1"):
        _run(bad, model, 1)

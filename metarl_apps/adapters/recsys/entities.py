"""The RecSim NG pieces the recsys families share: a seeded static corpus, the served slate, the choice model.

* :func:`make_corpus` samples RecSim NG's ``CorpusWithTopicAndQuality`` (``recsys_partially_observable_rl``)
  once per population, with its random variables keyed by ``corpus_seed`` (:mod:`.sampling`).
* :class:`ServedSlateRecommender` is the recommender entity of RecSim NG's ``simplified_recs_story``: its slate
  is the action the tf-agents policy chose (``[B, slate_size]`` document indices), served while
  :meth:`ServedSlateRecommender.serving` is active.
* :class:`SlateMaskedChoiceModel` is RecSim NG's ``MultinomialLogitChoiceModel`` with the duplicate slots of
  the served slate removed: a position holding a document already shown at an earlier position of the same
  slate is an empty slot (logit ``-inf``), so a slate with repeats is a smaller slate and a user never sees a
  document twice. Deterministic, and slot positions keep their meaning for ``choice``.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import tensorflow as tf
from recsim_ng.applications.recsys_partially_observable_rl import corpus as ie_corpus
from recsim_ng.core import value as value_lib
from recsim_ng.entities.choice_models import selectors
from recsim_ng.entities.recommendation import recommender
from recsim_ng.lib.tensorflow import field_spec

from metarl_apps.adapters.recsys import sampling
from metarl_apps.core import rng

Value = value_lib.Value
ValueSpec = value_lib.ValueSpec

#: the corpus fields a slate carries (RecSim NG names) plus ``features``, the name
#: ``latent_variable_model_learning``'s user reads the document embedding from.
SLATE_FIELDS = ("doc_id", "doc_topic", "doc_quality", "doc_features", "doc_length", "features")


def make_corpus(num_topics: int, num_docs: int, corpus_seed: int, doc_length: float = 2.0) -> dict[str, np.ndarray]:
    """RecSim NG's topic-and-quality corpus, drawn once with randomness keyed by ``corpus_seed``.

    Returns numpy arrays: ``doc_id`` ``[D]`` int32 (1-based, RecSim's convention), ``doc_topic`` ``[D]`` int32,
    ``doc_quality`` ``[D]``, ``doc_features`` ``[D, T]`` (a noisy topic one-hot, ``N(onehot, 0.7²)``),
    ``doc_length`` ``[D]`` float32.
    """
    config = {"num_users": 1, "num_topics": num_topics, "num_docs": num_docs, "slate_size": 1}
    key = rng.task_key("recsys.corpus", corpus_seed)
    with tf.init_scope():  # eager even if first needed while tracing
        with sampling.keyed_values(sampling.global_uniforms(key)):
            docs = ie_corpus.CorpusWithTopicAndQuality(config, video_length=doc_length).initial_state()
        out = sampling.numpy_value(docs)
    return {
        "doc_id": out["doc_id"].astype(np.int32),
        "doc_topic": out["doc_topic"].astype(np.int32),
        "doc_quality": out["doc_quality"].astype(np.float32),
        "doc_features": out["doc_features"].astype(np.float32),
        "doc_length": out["doc_length"].astype(np.float32),
    }


def valid_slots(slate: tf.Tensor) -> tf.Tensor:
    """``[B, K]`` bool: slot ``j`` is valid unless its document appears at an earlier slot ``i < j``."""
    k = slate.shape[-1]
    same = tf.equal(slate[..., :, None], slate[..., None, :])  # [B, K(j), K(i)]
    earlier = tf.constant(np.tril(np.ones((k, k), bool), -1))  # i < j
    return tf.logical_not(tf.reduce_any(tf.logical_and(same, earlier), axis=-1))


class ServedSlateRecommender(recommender.BaseRecommender):
    """A RecSim NG recommender whose slate is given from outside (the tf-agents action).

    ``slate_docs()`` gathers the corpus fields of the served document indices: every field ``[B, K, ...]``.
    """

    def __init__(self, config, docs: dict[str, np.ndarray], name: str = "ServedSlateRecommender"):
        super().__init__(config, name=name)
        docs = dict(docs)
        docs["features"] = docs["doc_features"]
        self._docs = {k: tf.constant(docs[k]) for k in SLATE_FIELDS}
        self._slate: tf.Tensor | None = None

    @contextlib.contextmanager
    def serving(self, slate: tf.Tensor) -> Iterator[None]:
        """Serve ``slate`` ``[B, K]`` int32 to the users while the context is active."""
        self._slate = tf.convert_to_tensor(slate, tf.int32)
        try:
            yield
        finally:
            self._slate = None

    @property
    def slot_mask(self) -> tf.Tensor:
        """``[B, K]`` bool of the served slate: False at repeated documents (see :func:`valid_slots`)."""
        return valid_slots(self._current())

    def _current(self) -> tf.Tensor:
        if self._slate is None:
            raise RuntimeError("ServedSlateRecommender: no slate is being served (use `with rec.serving(slate)`)")
        return self._slate

    def initial_state(self):
        return Value()

    def next_state(self, previous_state, user_response, slate_docs):
        del user_response, slate_docs
        return previous_state

    def slate_docs(self, *unused):
        slate = self._current()
        return Value(**{k: tf.gather(v, slate) for k, v in self._docs.items()})

    def specs(self):
        spec = ValueSpec(**{k: field_spec.FieldSpec() for k in SLATE_FIELDS})
        return ValueSpec(state=field_spec.FieldSpec()).prefixed_with("unused").union(spec.prefixed_with("slate"))


class SlateMaskedChoiceModel(selectors.MultinomialLogitChoiceModel):
    """RecSim NG's multinomial-logit choice with a no-click option, never choosing a repeated slot."""

    def __init__(self, batch_shape, nochoice_logits, recommender_entity: ServedSlateRecommender,
                 name: str = "SlateMaskedChoiceModel"):
        super().__init__(batch_shape, nochoice_logits, name=name)
        self._recommender = recommender_entity

    def choice(self, slate_document_logits):
        mask = self._recommender.slot_mask
        logits = tf.where(mask, slate_document_logits, tf.constant(-np.inf, slate_document_logits.dtype))
        return super().choice(logits)

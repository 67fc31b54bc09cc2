"""The shared RecSim NG pieces: seeded corpus, duplicate-slot masking, served slates."""

import numpy as np
import tensorflow as tf

from metarl_apps.adapters.recsys import InterestEvolutionUsers, entities
from metarl_apps.adapters.recsys.interest_evolution import FAMILY

from .helpers import step, users


def test_corpus_is_recsims_and_seeded():
    a = entities.make_corpus(num_topics=5, num_docs=40, corpus_seed=0)
    b = entities.make_corpus(num_topics=5, num_docs=40, corpus_seed=0)
    c = entities.make_corpus(num_topics=5, num_docs=40, corpus_seed=1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["doc_features"], c["doc_features"])
    assert a["doc_features"].shape == (40, 5) and a["doc_quality"].shape == (40,)
    np.testing.assert_array_equal(a["doc_id"], np.arange(1, 41))
    np.testing.assert_array_equal(a["doc_length"], np.full(40, 2.0))
    # RecSim: 70% of topics (here 0, 1, 2) are "trashy" with quality means linspace(-1, 0, 3), the rest
    # nutritious with linspace(0, 1, 2); quality = N(mean of the topic, 0.1).
    means = np.array([-1.0, -0.5, 0.0, 0.0, 1.0])
    assert np.all(np.abs(a["doc_quality"] - means[a["doc_topic"]]) < 0.5)


def test_valid_slots_by_hand():
    slates = tf.constant([[1, 2, 1], [3, 3, 3], [0, 1, 2], [4, 0, 0]])
    expected = [[True, True, False], [True, False, False], [True, True, True], [True, True, False]]
    assert entities.valid_slots(slates).numpy().tolist() == expected


def test_a_repeated_document_is_never_chosen_twice_over():
    dist = InterestEvolutionUsers(num_topics=3, num_docs=6, slate_size=3, interactions=2)
    env = dist.make_env(users(FAMILY, "interests", dist.corpus["doc_features"][2], 400))
    env.reset()
    choice = step(env, [2, 2, 2]).observation["obs"]["choice"].numpy()
    assert set(choice.tolist()) <= {0, 3}  # only the first slot or no click
    assert (choice == 0).mean() > 0.5

"""Keras networks shared by the learners."""

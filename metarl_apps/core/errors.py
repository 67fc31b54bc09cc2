"""Errors raised at public boundaries.

Every error a user can cause by bad input derives from :class:`MetaRLInputError` (a ``ValueError``), whose
message is one line naming what is wrong and how to fix it. The CLI prints that line and exits with code 2.
"""

from __future__ import annotations


class MetaRLError(Exception):
    """Base class of every error raised by metarl_apps on purpose."""


class MetaRLInputError(MetaRLError, ValueError):
    """Bad input from a user: a config, a scenario file, a name, a path. One line, says how to fix it."""


class UnknownNameError(MetaRLInputError, KeyError):
    """A name not present in a registry. The message lists the valid names."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class ScenarioError(MetaRLInputError):
    """A scenario file that cannot be used: ``FILE: FIELD: what was expected``."""

    def __init__(self, path: str, field: str, message: str):
        self.path = path
        self.field = field
        self.message = " ".join(str(message).split())  # one line, whatever the caller passed
        where = f"{path}: {field}: " if field else f"{path}: "
        super().__init__(where + self.message)


class SpecMismatchError(MetaRLInputError):
    """An environment, policy or checkpoint whose specs do not match what was expected."""


class CheckpointError(MetaRLInputError):
    """A missing, corrupted or incompatible checkpoint or saved model."""


class ConformanceError(MetaRLError, AssertionError):
    """A TaskDistribution that breaks the adapter contract (see ``adapters.checks``)."""


class TrainingError(MetaRLError, RuntimeError):
    """Training cannot continue (e.g. a NaN loss). Checkpoints already written are left intact."""

"""Field checks shared by the learners' config dataclasses: one table of rules instead of one block per field.

A rule is ``(fields, kind)`` or ``(fields, kind, rule_text)``. ``kind`` is one of :data:`KINDS`; a trailing
``"?"`` (``"pos_num?"``) also accepts ``None``. The error is the config's usual one line,
``Config.field=value: rule_text`` (a :class:`~metarl_apps.core.errors.MetaRLInputError`); ``rule_text``
defaults to the kind's own wording. ``"int_list"`` fields are stored back as tuples (configs are frozen and
hashable); so are ``"nonempty_int_list"`` ones.
"""

from __future__ import annotations

from collections.abc import Iterable

from metarl_apps.core.errors import MetaRLInputError


def is_int(v) -> bool:
    """An int that is not a bool (YAML ``true`` must not pass as 1)."""
    return not isinstance(v, bool) and isinstance(v, int)


def _is_num(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float))


def _pos_ints(v) -> bool:
    return isinstance(v, (list, tuple)) and all(is_int(n) and n >= 1 for n in v)


KINDS = {  # kind -> (test, default rule text)
    "pos_int": (lambda v: is_int(v) and v >= 1, "must be a positive integer"),
    "nonneg_int": (lambda v: is_int(v) and v >= 0, "must be a non-negative integer"),
    "pos_num": (lambda v: _is_num(v) and v > 0, "must be a positive number"),
    "nonneg_num": (lambda v: _is_num(v) and v >= 0, "must be a non-negative number"),
    "unit": (lambda v: _is_num(v) and 0.0 <= v <= 1.0, "must be in [0, 1]"),
    "bool": (lambda v: isinstance(v, bool), "must be true or false"),
    "int_list": (_pos_ints, "must be a list of positive integers"),
    "nonempty_int_list": (lambda v: _pos_ints(v) and len(v) > 0, "must be a non-empty list of positive integers"),
}


def config_error(config, field: str, rule: str) -> MetaRLInputError:
    """``Config.field=value: rule`` as the error to raise."""
    return MetaRLInputError(f"{type(config).__name__}.{field}={getattr(config, field)!r}: {rule}")


def check_fields(config, rules: Iterable[tuple]) -> None:
    """Raise the first rule ``config`` breaks (see the module docstring); normalise ``int_list`` to tuples."""
    for fields, kind, *text in rules:
        base, nullable = kind.rstrip("?"), kind.endswith("?")
        test, default = KINDS[base]
        for field in (fields,) if isinstance(fields, str) else fields:
            value = getattr(config, field)
            if nullable and value is None:
                continue
            if not test(value):
                raise config_error(config, field, text[0] if text else default)
            if base.endswith("int_list"):
                object.__setattr__(config, field, tuple(value))

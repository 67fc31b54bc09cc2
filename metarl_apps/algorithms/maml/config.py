"""MAML configuration: one dataclass, documented fields, validated in ``__post_init__``."""

from __future__ import annotations

import dataclasses

from metarl_apps.core.errors import MetaRLInputError


@dataclasses.dataclass(frozen=True)
class MAMLConfig:
    """Hyper-parameters of MAML (Finn et al. 2017), first or second order, optionally with Meta-SGD rates.

    Inner loop (adaptation):
      inner_lr: step size of the inner gradient steps (the initial value of the learned rates with
        ``learn_inner_lr``).
      inner_steps: inner gradient steps per task during meta-training. ``0`` (allowed only with the plain
        second-order objective) makes the meta-objective the loss at the initial parameters, i.e. multi-task
        pretraining — the non-adaptive baseline.
      first_order: first-order MAML: the inner gradients are treated as constants (``tf.stop_gradient``), so
        the outer gradient drops the Hessian term. Same code path as second order.
      learn_inner_lr: Meta-SGD (Li et al. 2017): one learned inner rate per parameter entry, initialised to
        ``inner_lr`` and meta-trained with the initial parameters.
    Outer loop:
      outer_lr: Adam step size of the meta-update.
      meta_batch_size: tasks per meta-update (adapted together, as one batched computation).
    Network:
      hidden_sizes: hidden layers of the functional MLP.
    Bookkeeping:
      seed: seeds parameter initialisation and the training task stream.
    """

    inner_lr: float = 0.01
    inner_steps: int = 1
    first_order: bool = False
    learn_inner_lr: bool = False
    outer_lr: float = 1e-3
    meta_batch_size: int = 25
    hidden_sizes: tuple[int, ...] = (40, 40)
    seed: int = 0

    def __post_init__(self):
        def fail(field: str, rule: str):
            raise MetaRLInputError(f"MAMLConfig.{field}={getattr(self, field)!r}: {rule}")

        for f in ("inner_lr", "outer_lr"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                fail(f, "must be a positive number")
        for f in ("first_order", "learn_inner_lr"):
            if not isinstance(getattr(self, f), bool):
                fail(f, "must be true or false")
        v = self.inner_steps
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            fail("inner_steps", "must be a non-negative integer")
        if v == 0 and self.first_order:
            fail("inner_steps", "must be >= 1 with first_order=True (zero inner steps leaves no inner gradient)")
        if v == 0 and self.learn_inner_lr:
            fail("inner_steps", "must be >= 1 with learn_inner_lr=True (zero inner steps leaves no rate to learn)")
        v = self.meta_batch_size
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            fail("meta_batch_size", "must be a positive integer")
        try:
            object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        except TypeError:
            fail("hidden_sizes", "must be a list of positive integers")
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in self.hidden_sizes):
            fail("hidden_sizes", "must be a list of positive integers")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            fail("seed", "must be a non-negative integer")

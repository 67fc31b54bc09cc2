"""MAML: initial parameters meta-trained so that a few gradient steps adapt them to a new task.

So far: the functional core (second/first order, Meta-SGD rates, batched over tasks) and the supervised
sinusoid sanity check. The RL learner (policy-gradient inner loop, adapt() -> TFPolicy) is still to come.
"""

from metarl_apps.algorithms.maml.config import MAMLConfig
from metarl_apps.algorithms.maml.losses import MetaGradient, inner_update, maml_meta_gradient, mse

__all__ = ["MAMLConfig", "MetaGradient", "inner_update", "maml_meta_gradient", "mse"]

"""A functional MLP for MAML: parameters are an explicit list, the forward pass is a pure function of them.

MAML differentiates the loss *after* an inner gradient step with respect to the parameters *before* it, so
the forward pass must accept any tensors as weights (the adapted ones are tensors computed from the initial
Variables), not only a Keras layer's own Variables. Shapes and initialisers are those of ``tf.keras.layers.Dense``
(Glorot-uniform kernels, zero biases), so a ``FunctionalMLP`` starts where the equivalent Keras model would.

Parameter layout: ``[W_0, b_0, W_1, b_1, ..., W_L, b_L]`` with ``W_i`` ``[in_i, out_i]`` and ``b_i`` ``[out_i]``.
Stacked (per-task) parameters carry a leading task dimension: ``W_i`` ``[N, in_i, out_i]``, ``b_i``
``[N, out_i]``; :meth:`FunctionalMLP.apply_batched` evaluates all N tasks' networks in one batched matmul.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from metarl_apps.core.errors import MetaRLInputError

Params = Sequence[tf.Tensor]  # tensors or tf.Variables, in the layout above


class FunctionalMLP:
    """``x -> act(x W_0 + b_0) -> ... -> x W_L + b_L`` (linear output), with parameters passed in.

    Args:
      input_size: features of ``x``.
      hidden_sizes: units of the hidden layers (``()`` gives a linear model).
      output_size: outputs.
      activation: a Keras activation name (``"relu"``, ``"tanh"``, ...) or a callable, for hidden layers.
      dtype: parameter dtype (``tf.float64`` for finite-difference tests).
    """

    def __init__(self, input_size: int, hidden_sizes: Sequence[int], output_size: int,
                 activation: str | object = "relu", dtype: tf.DType = tf.float32):
        sizes = [input_size, *hidden_sizes, output_size]
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes):
            raise MetaRLInputError(
                f"FunctionalMLP sizes input_size={input_size!r}, hidden_sizes={tuple(hidden_sizes)!r}, "
                f"output_size={output_size!r}: must all be positive integers")
        try:
            self.activation = tf.keras.activations.get(activation)
        except ValueError as e:
            raise MetaRLInputError(f"FunctionalMLP activation={activation!r}: not a Keras activation ({e})") from None
        self.input_size = int(input_size)
        self.hidden_sizes = tuple(int(n) for n in hidden_sizes)
        self.output_size = int(output_size)
        self.dtype = tf.as_dtype(dtype)
        self.layer_sizes = list(zip(sizes[:-1], sizes[1:], strict=True))

    @property
    def param_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of ``[W_0, b_0, ..., W_L, b_L]``."""
        shapes = []
        for n_in, n_out in self.layer_sizes:
            shapes += [(n_in, n_out), (n_out,)]
        return shapes

    def init_params(self, seed: int) -> list[tf.Variable]:
        """Fresh trainable Variables initialised as ``tf.keras.layers.Dense`` would (same seed → same values)."""
        params = []
        for i, (n_in, n_out) in enumerate(self.layer_sizes):
            kernel_init = tf.keras.initializers.GlorotUniform(seed=seed * 1000 + i)
            params.append(tf.Variable(kernel_init((n_in, n_out), dtype=self.dtype), name=f"kernel_{i}"))
            params.append(tf.Variable(tf.keras.initializers.Zeros()((n_out,), dtype=self.dtype), name=f"bias_{i}"))
        return params

    def apply(self, params: Params, x: tf.Tensor) -> tf.Tensor:
        """One network on a batch: ``x`` ``[B, in]`` -> ``[B, out]``."""
        h = x
        n = len(self.layer_sizes)
        for i in range(n):
            h = tf.linalg.matmul(h, params[2 * i]) + params[2 * i + 1]
            if i < n - 1:
                h = self.activation(h)
        return h

    def apply_batched(self, stacked_params: Params, x: tf.Tensor) -> tf.Tensor:
        """N networks (one per task), each on its own batch: ``x`` ``[N, K, in]`` -> ``[N, K, out]``.

        ``stacked_params`` hold a leading task dimension (``W_i`` ``[N, in, out]``, ``b_i`` ``[N, out]``); one
        batched matmul per layer, no loop over tasks.
        """
        h = x
        n = len(self.layer_sizes)
        for i in range(n):
            h = tf.linalg.matmul(h, stacked_params[2 * i]) + stacked_params[2 * i + 1][:, None, :]
            if i < n - 1:
                h = self.activation(h)
        return h


def stack_params(params: Params, num_tasks: int) -> list[tf.Tensor]:
    """The same parameters for ``num_tasks`` tasks: each ``[...]`` -> ``[N, ...]`` (differentiable; the gradient
    w.r.t. ``params`` sums the per-task gradients)."""
    return [tf.broadcast_to(p[None], [num_tasks, *p.shape]) for p in params]

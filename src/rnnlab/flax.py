"""Flax Linen bridge (extra ``rnnlab[flax]``): a drop-in `CTRNNCell` for ctrnn-jax scripts, and
`to_flax` / `rnnlab.CTRNN.from_flax` to move networks between Flax and rnnlab.

A ctrnn-jax script runs unchanged after one import line changes::

    from ctrnn_jax.model import CTRNNCell    ->    from rnnlab.flax import CTRNNCell

`CTRNNCell` takes ctrnn-jax's constructor arguments (``hidden_features``, ``output_features``,
``alpha``, ``noise_const``, ``activation_fn``, ``kernel_init``, ``bias_init``, ``dtype``,
``param_dtype``, ``carry_init``), keeps its parameter names, and is called the same way:
``cell(carry, inputs) -> (new_carry, (z, rates))``, usually inside
``nn.RNN(cell, split_rngs={"params": False, "noise_stream": True})`` applied with
``rngs={"noise_stream": key}``.

Noise conventions (see docs/interop.md): ctrnn-jax adds ``alpha * noise_const * xi`` to the
state at each step; rnnlab's `CTRNN` adds ``sqrt(2 alpha) * noise_std * xi`` (PsychRNN, Yang
2019), whose stationary variance does not depend on ``dt``. For the same draw xi they are equal
when ``noise_std = noise_const * sqrt(alpha / 2)``; `to_flax` and `CTRNN.from_flax` convert so.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

try:
    import flax.linen as nn
    from flax.linen import initializers
except ImportError as e:  # pragma: no cover - exercised only without flax
    raise ImportError(
        "rnnlab.flax needs Flax; install it with `pip install 'rnnlab[flax]'` (or `pip install "
        "flax`)"
    ) from e

from .models import CTRNN
from .models._flax_params import (
    INPUT,
    OUTPUT,
    RECURRENT,
    flax_from_weights,
    noise_const_from_std,
    noise_std_from_const,
)

__all__ = ["CTRNNCell", "FlaxCTRNN", "noise_const_from_std", "noise_std_from_const", "to_flax"]


class CTRNNCell(nn.RNNCellBase):
    """A continuous-time RNN cell (potential form, one Euler step), ctrnn-jax's ``CTRNNCell``
    interface::

        x'    = (1 - alpha) x + alpha (f(x) @ K_rec + b_rec + u @ K_in + noise_const * xi)
        z     = f(x') @ K_out + b_out          rates = f(x')            xi ~ N(0, I)

    Args:
        hidden_features: number of hidden units N.
        output_features: number of outputs.
        alpha: ``dt / tau``, a scalar or an [N] vector (per-unit time constants).
        noise_const: scale of the noise (the state gets ``alpha * noise_const * xi``); a
            scalar or [N].
        activation_fn: f (default ``tanh``).
        kernel_init, bias_init: initialisers of the three Dense layers (default Glorot normal
            and zeros; the input layer has no bias).
        dtype, param_dtype: computation and parameter dtypes, as for ``nn.Dense``.
        carry_init: initialiser of the first carry (default ones, as ctrnn-jax).

    Call: ``cell(carry [..., N], inputs [..., n_in]) -> (carry', (z [..., n_out], rates [...,
    N]))``. The noise key comes from the ``"noise_stream"`` RNG collection (needed even when
    ``noise_const`` is 0, as in ctrnn-jax). ``n_in`` is inferred at ``init``.
    """

    hidden_features: int
    output_features: int
    alpha: Any
    noise_const: Any
    activation_fn: Callable[..., Any] = nn.tanh
    kernel_init: Callable[..., Any] = initializers.glorot_normal()
    bias_init: Callable[..., Any] = initializers.zeros_init()
    dtype: Any = None
    param_dtype: Any = jnp.float32
    carry_init: Callable[..., Any] = initializers.ones_init()

    def _dense(self, features: int, name: str, bias: bool) -> nn.Dense:
        return nn.Dense(features, use_bias=bias, kernel_init=self.kernel_init,
                        bias_init=self.bias_init, dtype=self.dtype,
                        param_dtype=self.param_dtype, name=name)

    @nn.compact
    def __call__(self, carry: jax.Array, inputs: jax.Array) -> tuple[jax.Array, Any]:
        xi = jax.random.normal(self.make_rng("noise_stream"), carry.shape)
        drive = (
            self._dense(self.hidden_features, RECURRENT, True)(self.activation_fn(carry))
            + self._dense(self.hidden_features, INPUT, False)(inputs)
            + self.noise_const * xi
        )
        new = (1.0 - self.alpha) * carry + self.alpha * drive
        rates = self.activation_fn(new)
        z = self._dense(self.output_features, OUTPUT, True)(rates)
        return new, (z, rates)

    @nn.nowrap
    def initialize_carry(self, rng: jax.Array, input_shape: tuple[int, ...]) -> jax.Array:
        """The first carry, [*batch, hidden_features], from ``carry_init``."""
        shape = tuple(input_shape[:-1]) + (self.hidden_features,)
        return self.carry_init(rng, shape, self.param_dtype)

    @property
    def num_feature_axes(self) -> int:
        return 1


class FlaxCTRNN(NamedTuple):
    """What `to_flax` returns: ``rnn = nn.RNN(cell, split_rngs=...)`` and its ``variables``
    (``{"params": {"cell": ...}}``), ready for ``rnn.apply(variables, x, rngs={"noise_stream":
    key})``; ``cell`` is ``rnn.cell``."""

    rnn: nn.RNN
    variables: dict
    cell: CTRNNCell


def _constant_carry(h0: np.ndarray) -> Callable[..., jax.Array]:
    """A ``carry_init`` that starts every trial at ``h0`` (the model's initial state)."""
    h0 = np.asarray(h0, np.float32)

    def init(key: Any, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
        return jnp.broadcast_to(jnp.asarray(h0, dtype), shape)

    return init


def to_flax(model: CTRNN) -> FlaxCTRNN:
    """The Flax Linen twin of a potential-form `rnnlab.CTRNN`: identical outputs and rates.

    The cell gets the model's effective weights (constraints applied; kernels transposed to
    [in, out]), ``alpha = dt / tau`` (a vector when ``tau`` is per unit), ``noise_const =
    noise_std * sqrt(2 / alpha)``, its activation and a ``carry_init`` that starts at the
    model's initial state. ``rnnlab.CTRNN.from_flax(result.variables, alpha=cell.alpha,
    noise_const=cell.noise_const, dt=model.dt)`` gives the model back.

    Raises ``ValueError`` for what the cell cannot express: the rate form, input noise, and
    (with a per-unit ``tau``) nothing; a ``TypeError`` for a model that is not a `CTRNN`.
    """
    if not isinstance(model, CTRNN):
        raise TypeError(
            f"to_flax takes an rnnlab.CTRNN (potential form), got {type(model).__name__}"
        )
    if model.form != "potential":
        raise ValueError(
            "to_flax: the Flax CTRNNCell is the potential form (tau dx/dt = -x + W f(x) + ...); "
            "this model is the rate form, which it cannot express"
        )
    if float(np.asarray(model.input_noise_std)) != 0.0:
        raise ValueError(
            "to_flax: the model has input noise (input_noise_std > 0), which the Flax "
            "CTRNNCell does not have; set it to 0 first (eqx.tree_at) if that is acceptable"
        )
    weights = {k: np.asarray(v) for k, v in model.effective_weights().items()}
    alpha = np.asarray(model.alpha, np.float32)
    alpha_arg: Any = float(alpha[0]) if np.all(alpha == alpha[0]) else alpha
    noise = noise_const_from_std(float(np.asarray(model.noise_std)), alpha)
    noise_arg: Any = float(noise[0]) if np.all(noise == noise[0]) else noise.astype(np.float32)
    cell = CTRNNCell(
        hidden_features=model.n_hidden,
        output_features=model.n_out,
        alpha=jnp.float32(alpha_arg) if isinstance(alpha_arg, float) else jnp.asarray(alpha_arg),
        noise_const=(jnp.float32(noise_arg) if isinstance(noise_arg, float)
                     else jnp.asarray(noise_arg)),
        activation_fn=model.activation,
        carry_init=_constant_carry(np.asarray(model.initial_state())),
    )
    params = jax.tree.map(jnp.asarray, flax_from_weights(weights))
    rnn = nn.RNN(cell, split_rngs={"params": False, "noise_stream": True})
    return FlaxCTRNN(rnn=rnn, variables={"params": {"cell": params}}, cell=cell)

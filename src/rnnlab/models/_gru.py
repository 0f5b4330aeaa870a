"""The gated recurrent unit (GRU), as a discrete-time map of its hidden state."""

from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from . import _discrete as d
from . import _gated as g
from ._activations import activation_name, resolve_activation
from ._base import AbstractRNN, has_noise, level_value, noise_level, register_model


@register_model
class GRU(AbstractRNN):
    r"""Gated recurrent unit (Cho et al. 2014; the PyTorch / computation-thru-dynamics form)::

        r = sigmoid(W_in[r] u + b_in[r] + W_rec[r] h + b_rec[r])          reset gate
        z = sigmoid(W_in[z] u + b_in[z] + W_rec[z] h + b_rec[z])          update gate
        n = f(W_in[n] u + b_in[n] + r * (W_rec[n] h + b_rec[n]))          candidate, f = tanh
        h[t+1] = (1 - z) * n + z * h[t]  (+ noise_std * xi)
        y = W_out h + b_out

    Weight layout is PyTorch's (``torch.nn.GRU``): ``w_in`` [3H, n_in], ``w_rec`` [3H, H],
    ``b_in``, ``b_rec`` [3H], gate blocks in the order (r, z, n); ``from_weights`` accepts
    ``weight_ih_l0, weight_hh_l0, ...`` as they are. The state is h (``rates(h) = h``);
    ``vector_field(h, u) = step(h, u) - h``, ``is_continuous = False``. Input noise (std
    ``input_noise_std``) is added to u and state noise (``noise_std``) to the new h, only when a
    ``key`` is given.

    Constraints: ``w_rec_mask`` [H, H] and ``w_in_mask`` [H, n_in] apply to every gate block
    (a masked connection is absent from all gates), ``w_out_mask`` [n_out, H];
    ``autapses=False`` zeroes the diagonal of every recurrent gate block; ``use_bias=False``;
    ``trainable``: names among ``w_rec, w_in, b_rec, b_in, w_out, b_out, h0`` (default all but
    ``h0``).

    Args:
        n_in, n_hidden, n_out: sizes.
        key: PRNG key for the initialisation (PyTorch's U(-1/sqrt(H), 1/sqrt(H))).
        activation: the candidate nonlinearity f (default ``tanh``); gates are sigmoids.
        dt: duration of one step in the task's time unit (labels only). Default 1.
        initial_state: ``"zeros"`` or an array [n_hidden].
    """

    is_continuous: ClassVar[bool] = False
    config_fields: ClassVar[tuple[str, ...]] = ("noise_std", "input_noise_std")
    n_gates: ClassVar[int] = 3

    w_in: Float[Array, "3*n_hidden n_in"]
    w_rec: Float[Array, "3*n_hidden n_hidden"]
    b_in: Float[Array, " 3*n_hidden"]
    b_rec: Float[Array, " 3*n_hidden"]
    w_out: Float[Array, "n_out n_hidden"]
    b_out: Float[Array, " n_out"]
    h0: Float[Array, " n_hidden"]
    noise_std: Float[Array, ""]
    input_noise_std: Float[Array, ""]
    w_rec_mask: Array
    w_in_mask: Array
    w_out_mask: Array

    n_in: int = eqx.field(static=True)
    n_hidden: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    activation: Callable = eqx.field(static=True)
    activation_name: str | None = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    autapses: bool = eqx.field(static=True)
    use_bias: bool = eqx.field(static=True)
    trainable: tuple[str, ...] = eqx.field(static=True)

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        n_out: int,
        *,
        key: PRNGKeyArray,
        activation: str | Callable = "tanh",
        dt: float = 1.0,
        noise_std: float = 0.0,
        input_noise_std: float = 0.0,
        autapses: bool = True,
        w_rec_mask: ArrayLike | None = None,
        w_in_mask: ArrayLike | None = None,
        w_out_mask: ArrayLike | None = None,
        use_bias: bool = True,
        initial_state: Literal["zeros"] | ArrayLike = "zeros",
        trainable: Iterable[str] = g.WEIGHTS,
    ):
        n_in, n_hidden, n_out = g.check_common(
            n_in, n_hidden, n_out, activation, dt, noise_std, input_noise_std
        )
        fn = resolve_activation(activation)
        trainable = d.check_trainable(trainable, g.TRAINABLE)
        masks = d.build_masks(n_in, n_hidden, n_out, w_rec_mask, w_in_mask, w_out_mask, autapses)
        fields = g.init_fields(n_in, n_hidden, n_out, self.n_gates, key, masks)
        for name, value in fields.items():
            setattr(self, name, value)
        if not use_bias:
            self.b_in, self.b_rec = jnp.zeros_like(self.b_in), jnp.zeros_like(self.b_rec)
        self.h0 = d.initial_h0(initial_state, n_hidden)
        self.w_rec_mask, self.w_in_mask, self.w_out_mask = masks
        self.n_in, self.n_hidden, self.n_out = n_in, n_hidden, n_out
        self.activation = fn
        self.activation_name = activation_name(activation)
        self.dt = float(dt)
        self.noise_std = noise_level(noise_std)
        self.input_noise_std = noise_level(input_noise_std)
        self.autapses = bool(autapses)
        self.use_bias = bool(use_bias)
        self.trainable = trainable

    @classmethod
    def from_weights(
        cls,
        w_in: ArrayLike,
        w_rec: ArrayLike,
        w_out: ArrayLike,
        b_in: ArrayLike | None = None,
        b_rec: ArrayLike | None = None,
        b_out: ArrayLike | None = None,
        *,
        activation: str | Callable = "tanh",
        **kwargs,
    ) -> "GRU":
        """A GRU with the given weights (PyTorch layout, gates (r, z, n)): ``w_in`` [3H, n_in],
        ``w_rec`` [3H, H], ``w_out`` [n_out, H], ``b_in``, ``b_rec`` [3H], ``b_out`` [n_out]
        (biases default to 0). Other keyword arguments are the constructor's."""
        return g.from_weights(cls, cls.n_gates, w_in, w_rec, w_out, b_in, b_rec, b_out,
                              activation, kwargs)

    def config(self) -> dict[str, Any]:
        return g.config(self)

    def effective_weights(self) -> dict[str, Array]:
        """The weights actually used: ``w_in, w_rec, b_in, b_rec, w_out, b_out``."""
        return g.effective(self)

    def trainable_filter(self) -> Any:
        return g.trainable_filter(self)

    # ------------------------------------------------------------------ the model contract

    def initial_state(self) -> Float[Array, " n_hidden"]:
        return d.frozen(self.trainable, "h0", self.h0)

    def rates(self, state: Float[Array, " n_hidden"]) -> Float[Array, " n_hidden"]:
        return state

    def readout(self, state: Float[Array, " n_hidden"]) -> Float[Array, " n_out"]:
        w = self.effective_weights()
        return w["w_out"] @ state + w["b_out"]

    def _update(self, w, h, proj_in):
        """One noise-free GRU update given the input projection W_in u + b_in [3H]."""
        n = self.n_hidden
        rec = w["w_rec"] @ h + w["b_rec"]
        r = jax.nn.sigmoid(proj_in[:n] + rec[:n])
        z = jax.nn.sigmoid(proj_in[n:2 * n] + rec[n:2 * n])
        cand = self.activation(proj_in[2 * n:] + r * rec[2 * n:])
        return (1.0 - z) * cand + z * h

    def step(
        self,
        state: Float[Array, " n_hidden"],
        input: Float[Array, " n_in"],
        *,
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, " n_hidden"]:
        w = self.effective_weights()
        if key is not None:
            k_in, k_rec = jax.random.split(key)
            input = d.add_noise(input, self.input_noise_std, k_in)
        new = self._update(w, state, w["w_in"] @ input + w["b_in"])
        if key is not None:
            new = d.add_noise(new, self.noise_std, k_rec)
        return new

    def vector_field(
        self, state: Float[Array, " n_hidden"], input: Float[Array, " n_in"]
    ) -> Float[Array, " n_hidden"]:
        """step(h, u) - h (noise-free)."""
        return self.step(state, input) - state

    def unroll(
        self,
        inputs: Float[Array, "time n_in"],
        initial_state: Float[Array, " n_hidden"],
        *,
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, "time n_hidden"]:
        # Input projections for all gates and steps in one product; noise drawn at once.
        w = self.effective_weights()
        n_steps = inputs.shape[0]
        add = jnp.zeros((n_steps, self.n_hidden), inputs.dtype)
        if key is not None:
            k_in, k_rec = jax.random.split(key)
            inputs = d.add_noise(inputs, self.input_noise_std, k_in)
            add = d.add_noise(add, self.noise_std, k_rec)
        proj = inputs @ w["w_in"].T + w["b_in"]

        def body(h, xs):
            p, a = xs
            new = self._update(w, h, p) + a
            return new, new

        _, states = jax.lax.scan(body, initial_state, (proj, add))
        return states

    def readout_all(self, states: Float[Array, "... n_hidden"]) -> Float[Array, "... n_out"]:
        w = self.effective_weights()
        return states @ w["w_out"].T + w["b_out"]

    def rates_all(self, states: Float[Array, "... n_hidden"]) -> Float[Array, "... n_hidden"]:
        return states

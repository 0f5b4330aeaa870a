"""The discrete-time vanilla ("Elman") RNN: h[t+1] = f(W h[t] + W_in u[t] + b)."""

import math
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from . import _discrete as d
from ._activations import DEFAULT_GAIN, activation_name, resolve_activation
from ._base import AbstractRNN, has_noise, level_value, noise_level, register_model
from ._ctrnn import _spectral_radius

_WEIGHTS = ("w_rec", "w_in", "w_out", "b_rec", "b_out")
_TRAINABLE = frozenset(_WEIGHTS + ("h0",))
_FIELD_TO_PARAM = {n: n for n in _TRAINABLE}


@register_model
class VanillaRNN(AbstractRNN):
    r"""Discrete-time RNN (pyrnn's vanilla RNN), a map of the state at each step::

        u'     = u + input_noise_std * xi_in                      xi_in  ~ N(0, I)
        h[t+1] = f(W_rec h[t] + W_in u'[t] + b_rec) + noise_std * xi_rec   xi_rec ~ N(0, I)
        y      = W_out h + b_out

    The state is h itself (``rates(h) = h``). ``vector_field(h, u) = step(h, u) - h`` and
    ``is_continuous = False``: fixed points are the fixed points of the map, stable when every
    eigenvalue of the map's Jacobian has modulus < 1. Noise is added only when a ``key`` is given.

    Constraints (a parametrisation; they hold after every optimiser step):
    ``w_rec_mask``, ``w_in_mask``, ``w_out_mask`` (0/1, masked entries exactly 0),
    ``autapses=False`` (zero diagonal of W_rec), ``use_bias=False`` (b_rec = b_out = 0), and
    ``trainable``: names among ``w_rec, w_in, w_out, b_rec, b_out, h0`` (default the weights and
    biases; add ``"h0"`` for a trainable initial state).

    Args:
        n_in, n_hidden, n_out: sizes.
        key: PRNG key for the initialisation.
        activation: a name (``tanh``, ``relu``, ...) or a callable (then it cannot be saved).
        dt: the duration of one step, in the task's time unit (only used to label time; the map
            itself does not depend on it). Default 1.
        noise_std, input_noise_std: noise standard deviations, default 0.
        gain: W_rec ~ N(0, gain^2 / (N p)), p the density of ``w_rec_mask``. Default 1 for
            saturating activations, 0.9 for unbounded ones.
        spectral_radius: if given, W_rec is rescaled to it after drawing.
        initial_state: ``"zeros"`` or an array [n_hidden].
    """

    is_continuous: ClassVar[bool] = False
    config_fields: ClassVar[tuple[str, ...]] = ("noise_std", "input_noise_std")

    w_rec: Float[Array, "n_hidden n_hidden"]
    w_in: Float[Array, "n_hidden n_in"]
    w_out: Float[Array, "n_out n_hidden"]
    b_rec: Float[Array, " n_hidden"]
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
        gain: float | None = None,
        spectral_radius: float | None = None,
        use_bias: bool = True,
        initial_state: Literal["zeros"] | ArrayLike = "zeros",
        trainable: Iterable[str] = _WEIGHTS,
    ):
        n_in = d._check_size("n_in", n_in)
        n_hidden = d._check_size("n_hidden", n_hidden)
        n_out = d._check_size("n_out", n_out)
        fn = resolve_activation(activation)
        d._check_positive("dt", dt)
        d._check_nonneg("noise_std", noise_std)
        d._check_nonneg("input_noise_std", input_noise_std)
        if gain is not None:
            d._check_positive("gain", gain)
        if spectral_radius is not None:
            d._check_positive("spectral_radius", spectral_radius)
        trainable = d.check_trainable(trainable, _TRAINABLE)
        rec_mask, in_mask, out_mask = d.build_masks(
            n_in, n_hidden, n_out, w_rec_mask, w_in_mask, w_out_mask, autapses
        )
        name = activation_name(activation)
        if gain is None:
            gain = min(DEFAULT_GAIN.get(name, 1.0), 1.0) if name is not None else 1.0

        k_rec, k_in, k_out = jax.random.split(key, 3)
        density = max(float(jnp.mean(rec_mask)), 1e-12)
        w_rec = jax.random.normal(k_rec, (n_hidden, n_hidden)) * (
            gain / math.sqrt(n_hidden * density)
        )
        w_rec = w_rec * rec_mask
        if spectral_radius is not None:
            rho = _spectral_radius(w_rec)
            w_rec = w_rec * jnp.where(rho > 0, spectral_radius / rho, 1.0)
        self.w_rec = w_rec
        self.w_in = jax.random.normal(k_in, (n_hidden, n_in)) / math.sqrt(n_in) * in_mask
        self.w_out = jax.random.normal(k_out, (n_out, n_hidden)) / math.sqrt(n_hidden) * out_mask
        self.b_rec = jnp.zeros((n_hidden,))
        self.b_out = jnp.zeros((n_out,))
        self.h0 = d.initial_h0(initial_state, n_hidden)
        self.w_rec_mask, self.w_in_mask, self.w_out_mask = rec_mask, in_mask, out_mask

        self.n_in, self.n_hidden, self.n_out = n_in, n_hidden, n_out
        self.activation = fn
        self.activation_name = name
        self.dt = float(dt)
        self.noise_std = noise_level(noise_std)
        self.input_noise_std = noise_level(input_noise_std)
        self.autapses = bool(autapses)
        self.use_bias = bool(use_bias)
        self.trainable = trainable

    @classmethod
    def from_weights(
        cls,
        w_rec: ArrayLike,
        w_in: ArrayLike,
        w_out: ArrayLike,
        b_rec: ArrayLike | None = None,
        b_out: ArrayLike | None = None,
        *,
        activation: str | Callable = "tanh",
        **kwargs,
    ) -> "VanillaRNN":
        """A network with the given weights: ``w_rec`` [H, H], ``w_in`` [H, n_in], ``w_out``
        [n_out, H], ``b_rec`` [H], ``b_out`` [n_out] (biases default to 0).

        Other keyword arguments are the constructor's; the weights must satisfy the masks asked
        for, else a ValueError names the matrix.
        """
        w_rec_np = d.weight_array("w_rec", w_rec)
        if w_rec_np.ndim != 2 or w_rec_np.shape[0] != w_rec_np.shape[1]:
            raise ValueError(f"w_rec must be a square 2-D array, got shape {w_rec_np.shape}")
        n_hidden = w_rec_np.shape[0]
        w_in_np = d.weight_array("w_in", w_in)
        if w_in_np.ndim != 2 or w_in_np.shape[0] != n_hidden:
            raise ValueError(f"w_in must have shape ({n_hidden}, n_in), got {w_in_np.shape}")
        w_out_np = d.weight_array("w_out", w_out)
        if w_out_np.ndim != 2 or w_out_np.shape[1] != n_hidden:
            raise ValueError(f"w_out must have shape (n_out, {n_hidden}), got {w_out_np.shape}")
        n_in, n_out = w_in_np.shape[1], w_out_np.shape[0]
        b_rec_np = np.zeros(n_hidden) if b_rec is None else d.weight_array("b_rec", b_rec, (n_hidden,))
        b_out_np = np.zeros(n_out) if b_out is None else d.weight_array("b_out", b_out, (n_out,))
        if not kwargs.get("use_bias", True) and (np.any(b_rec_np) or np.any(b_out_np)):
            raise ValueError("use_bias=False but b_rec or b_out is non-zero")
        model = cls(n_in, n_hidden, n_out, key=jax.random.PRNGKey(0), activation=activation,
                    **kwargs)
        d.check_masked("w_rec", w_rec_np, model.w_rec_mask)
        d.check_masked("w_in", w_in_np, model.w_in_mask)
        d.check_masked("w_out", w_out_np, model.w_out_mask)
        f32 = lambda a: jnp.asarray(a, dtype=jnp.float32)  # noqa: E731
        return eqx.tree_at(
            lambda m: (m.w_rec, m.w_in, m.w_out, m.b_rec, m.b_out),
            model,
            tuple(f32(a) for a in (w_rec_np, w_in_np, w_out_np, b_rec_np, b_out_np)),
        )

    def config(self) -> dict[str, Any]:
        if self.activation_name is None:
            raise ValueError(
                "this VanillaRNN uses a custom activation callable, which cannot be saved; "
                "use a named activation to save it"
            )
        return {
            "n_in": self.n_in, "n_hidden": self.n_hidden, "n_out": self.n_out,
            "activation": self.activation_name, "dt": self.dt, "noise_std": level_value(self.noise_std),
            "input_noise_std": level_value(self.input_noise_std), "autapses": self.autapses,
            "use_bias": self.use_bias, "trainable": list(self.trainable),
        }

    # ------------------------------------------------------------------ derived quantities

    def effective_weights(self) -> dict[str, Array]:
        """The weights actually used: ``w_rec``, ``w_in``, ``w_out``, ``b_rec``, ``b_out``."""
        t = self.trainable
        out = {
            "w_rec": jnp.where(self.w_rec_mask, d.frozen(t, "w_rec", self.w_rec), 0.0),
            "w_in": jnp.where(self.w_in_mask, d.frozen(t, "w_in", self.w_in), 0.0),
            "w_out": jnp.where(self.w_out_mask, d.frozen(t, "w_out", self.w_out), 0.0),
        }
        if self.use_bias:
            out["b_rec"] = d.frozen(t, "b_rec", self.b_rec)
            out["b_out"] = d.frozen(t, "b_out", self.b_out)
        else:
            out["b_rec"] = jnp.zeros_like(self.b_rec)
            out["b_out"] = jnp.zeros_like(self.b_out)
        return out

    def trainable_filter(self) -> Any:
        names = set(self.trainable)
        if not self.use_bias:
            names -= {"b_rec", "b_out"}
        return d.trainable_spec(self, _FIELD_TO_PARAM, names)

    # ------------------------------------------------------------------ the model contract

    def initial_state(self) -> Float[Array, " n_hidden"]:
        return d.frozen(self.trainable, "h0", self.h0)

    def rates(self, state: Float[Array, " n_hidden"]) -> Float[Array, " n_hidden"]:
        return state

    def readout(self, state: Float[Array, " n_hidden"]) -> Float[Array, " n_out"]:
        w = self.effective_weights()
        return w["w_out"] @ state + w["b_out"]

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
        new = self.activation(w["w_rec"] @ state + w["w_in"] @ input + w["b_rec"])
        if key is not None:
            new = d.add_noise(new, self.noise_std, k_rec)
        return new

    def vector_field(
        self, state: Float[Array, " n_hidden"], input: Float[Array, " n_in"]
    ) -> Float[Array, " n_hidden"]:
        """step(h, u) - h (noise-free): zero exactly at the fixed points of the map."""
        return self.step(state, input) - state

    def _pre_and_slope(self, w, state, input):
        pre = w["w_rec"] @ state + w["w_in"] @ input + w["b_rec"]
        slope = jax.vmap(jax.grad(self.activation))(pre)
        return pre, slope

    def jacobian(
        self, state: Float[Array, " n_hidden"], input: Float[Array, " n_in"]
    ) -> Float[Array, "n_hidden n_hidden"]:
        """dF/dh = diag(f'(W h + W_in u + b)) W_rec - I (analytic)."""
        w = self.effective_weights()
        _, slope = self._pre_and_slope(w, state, input)
        return slope[:, None] * w["w_rec"] - jnp.eye(self.n_hidden, dtype=state.dtype)

    def input_jacobian(
        self, state: Float[Array, " n_hidden"], input: Float[Array, " n_in"]
    ) -> Float[Array, "n_hidden n_in"]:
        """dF/du = diag(f'(W h + W_in u + b)) W_in (analytic)."""
        w = self.effective_weights()
        _, slope = self._pre_and_slope(w, state, input)
        return slope[:, None] * w["w_in"]

    def unroll(
        self,
        inputs: Float[Array, "time n_in"],
        initial_state: Float[Array, " n_hidden"],
        *,
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, "time n_hidden"]:
        # The same map as `step`, with the input projection done once for the whole trial and
        # the noise drawn at once (so the noise stream differs from stepping with split keys).
        w = self.effective_weights()
        n_steps = inputs.shape[0]
        add = jnp.zeros((n_steps, self.n_hidden), inputs.dtype)
        if key is not None:
            k_in, k_rec = jax.random.split(key)
            inputs = d.add_noise(inputs, self.input_noise_std, k_in)
            add = d.add_noise(add, self.noise_std, k_rec)
        proj = inputs @ w["w_in"].T + w["b_rec"]
        w_rec, f = w["w_rec"], self.activation

        def body(h, xs):
            p, a = xs
            new = f(w_rec @ h + p) + a
            return new, new

        _, states = jax.lax.scan(body, initial_state, (proj, add))
        return states

    def readout_all(self, states: Float[Array, "... n_hidden"]) -> Float[Array, "... n_out"]:
        w = self.effective_weights()
        return states @ w["w_out"].T + w["b_out"]

    def rates_all(self, states: Float[Array, "... n_hidden"]) -> Float[Array, "... n_hidden"]:
        return states

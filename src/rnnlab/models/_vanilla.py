"""The discrete-time vanilla ("Elman") RNN: h[t+1] = f(W h[t] + W_in u[t] + b)."""

import math
from collections.abc import Callable, Iterable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .. import _validate
from .._validate import ArrayInput
from . import _network as nw
from ._activations import DEFAULT_GAIN
from ._base import register_model
from ._network import AbstractMaskedNetwork

_WEIGHTS = ("w_rec", "w_in", "w_out", "b_rec", "b_out")
_TRAINABLE = frozenset(_WEIGHTS + ("h0",))


@register_model
class VanillaRNN(AbstractMaskedNetwork):
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

    w_rec: Float[Array, "n_hidden n_hidden"]
    w_in: Float[Array, "n_hidden n_in"]
    w_out: Float[Array, "n_out n_hidden"]
    b_rec: Float[Array, " n_hidden"]
    b_out: Float[Array, " n_out"]

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
        w_rec_mask: ArrayInput | None = None,
        w_in_mask: ArrayInput | None = None,
        w_out_mask: ArrayInput | None = None,
        gain: float | None = None,
        spectral_radius: float | None = None,
        use_bias: bool = True,
        initial_state: str | ArrayInput = "zeros",
        trainable: Iterable[str] = _WEIGHTS,
    ):
        n_in, n_hidden, n_out = self._init_network(
            n_in, n_hidden, n_out, activation=activation, dt=dt, noise_std=noise_std,
            input_noise_std=input_noise_std,
        )
        gain = _validate.positive_number("gain", gain, allow_none=True)
        spectral_radius = _validate.positive_number("spectral_radius", spectral_radius, allow_none=True)
        self.trainable = nw.check_trainable(trainable, _TRAINABLE)
        rec_mask, in_mask, out_mask = nw.build_masks(
            n_in, n_hidden, n_out, w_rec_mask, w_in_mask, w_out_mask, autapses
        )
        name = self.activation_name
        if gain is None:
            gain = min(DEFAULT_GAIN.get(name, 1.0), 1.0) if name is not None else 1.0

        k_rec, k_in, k_out = jax.random.split(key, 3)
        # the density from the numpy mask, so the constructor stays traceable (rl.load only
        # traces it: no initialiser runs)
        density = max(float(np.mean(nw.recurrent_mask_np(w_rec_mask, n_hidden, autapses))),
                      1e-12)
        w_rec = jax.random.normal(k_rec, (n_hidden, n_hidden)) * (
            gain / math.sqrt(n_hidden * density)
        )
        w_rec = w_rec * rec_mask
        if spectral_radius is not None:
            rho = nw.spectral_radius(w_rec)
            w_rec = w_rec * jnp.where(rho > 0, spectral_radius / rho, 1.0)
        self.w_rec = w_rec
        self.w_in = jax.random.normal(k_in, (n_hidden, n_in)) / math.sqrt(n_in) * in_mask
        self.w_out = jax.random.normal(k_out, (n_out, n_hidden)) / math.sqrt(n_hidden) * out_mask
        self.b_rec = jnp.zeros((n_hidden,))
        self.b_out = jnp.zeros((n_out,))
        self.h0 = nw.initial_h0(initial_state, n_hidden)
        self.w_rec_mask, self.w_in_mask, self.w_out_mask = rec_mask, in_mask, out_mask
        self.autapses = bool(autapses)
        self.use_bias = bool(use_bias)

    @classmethod
    def from_weights(
        cls,
        w_rec: ArrayInput,
        w_in: ArrayInput,
        w_out: ArrayInput,
        b_rec: ArrayInput | None = None,
        b_out: ArrayInput | None = None,
        *,
        activation: str | Callable = "tanh",
        **kwargs,
    ) -> "VanillaRNN":
        """A network with the given weights: ``w_rec`` [H, H], ``w_in`` [H, n_in], ``w_out``
        [n_out, H], ``b_rec`` [H], ``b_out`` [n_out] (biases default to 0).

        Other keyword arguments are the constructor's; the weights must satisfy the masks asked
        for, else a ValueError names the matrix.
        """
        w_rec_np = nw.weight_array("w_rec", w_rec)
        if w_rec_np.ndim != 2 or w_rec_np.shape[0] != w_rec_np.shape[1]:
            raise ValueError(f"w_rec must be a square 2-D array, got shape {w_rec_np.shape}")
        n_hidden = w_rec_np.shape[0]
        w_in_np = nw.weight_array("w_in", w_in)
        if w_in_np.ndim != 2 or w_in_np.shape[0] != n_hidden:
            raise ValueError(f"w_in must have shape ({n_hidden}, n_in), got {w_in_np.shape}")
        w_out_np = nw.weight_array("w_out", w_out)
        if w_out_np.ndim != 2 or w_out_np.shape[1] != n_hidden:
            raise ValueError(f"w_out must have shape (n_out, {n_hidden}), got {w_out_np.shape}")
        n_in, n_out = w_in_np.shape[1], w_out_np.shape[0]
        b_rec_np = np.zeros(n_hidden) if b_rec is None else nw.weight_array("b_rec", b_rec, (n_hidden,))
        b_out_np = np.zeros(n_out) if b_out is None else nw.weight_array("b_out", b_out, (n_out,))
        if not kwargs.get("use_bias", True) and (np.any(b_rec_np) or np.any(b_out_np)):
            raise ValueError("use_bias=False but b_rec or b_out is non-zero")
        model = cls(n_in, n_hidden, n_out, key=jax.random.PRNGKey(0), activation=activation,
                    **kwargs)
        nw.check_masked("w_rec", w_rec_np, model.w_rec_mask)
        nw.check_masked("w_in", w_in_np, model.w_in_mask)
        nw.check_masked("w_out", w_out_np, model.w_out_mask)
        f32 = lambda a: jnp.asarray(a, dtype=jnp.float32)  # noqa: E731
        return eqx.tree_at(
            lambda m: (m.w_rec, m.w_in, m.w_out, m.b_rec, m.b_out),
            model,
            tuple(f32(a) for a in (w_rec_np, w_in_np, w_out_np, b_rec_np, b_out_np)),
        )

    # ------------------------------------------------------------------ derived quantities

    def effective_weights(self) -> dict[str, Array]:
        """The weights actually used: ``w_rec``, ``w_in``, ``w_out``, ``b_rec``, ``b_out``."""
        return {
            "w_rec": self._masked("w_rec", self.w_rec, self.w_rec_mask),
            "w_in": self._masked("w_in", self.w_in, self.w_in_mask),
            "w_out": self._masked("w_out", self.w_out, self.w_out_mask),
            "b_rec": self._bias("b_rec"),
            "b_out": self._bias("b_out"),
        }

    # ------------------------------------------------------------------ the model contract

    def rates(self, state: Float[ArrayLike, "... n_hidden"]) -> Float[Array, "... n_hidden"]:
        return state

    def _update(self, w, state, proj):
        """f(W_rec h + W_in u + b_rec), given proj = W_in u + b_rec."""
        return self.activation(w["w_rec"] @ state + proj)

    def _pre_and_slope(self, w, state, input):
        pre = w["w_rec"] @ state + w["w_in"] @ input + w["b_rec"]
        slope = jax.vmap(jax.grad(self.activation))(pre)
        return pre, slope

    def jacobian(
        self, state: Float[ArrayLike, " n_hidden"], input: Float[ArrayLike, " n_in"]
    ) -> Float[Array, "n_hidden n_hidden"]:
        """dF/dh = diag(f'(W h + W_in u + b)) W_rec - I (analytic)."""
        w = self.effective_weights()
        _, slope = self._pre_and_slope(w, state, input)
        return slope[:, None] * w["w_rec"] - jnp.eye(self.n_hidden, dtype=state.dtype)

    def input_jacobian(
        self, state: Float[ArrayLike, " n_hidden"], input: Float[ArrayLike, " n_in"]
    ) -> Float[Array, "n_hidden n_in"]:
        """dF/du = diag(f'(W h + W_in u + b)) W_in (analytic)."""
        w = self.effective_weights()
        _, slope = self._pre_and_slope(w, state, input)
        return slope[:, None] * w["w_in"]

"""The continuous-time echo-state network with output feedback (Sussillo & Abbott 2009)."""

import math
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._validate import ArrayInput, nonnegative_number, positive_number
from . import _network as nw
from ._base import register_model
from ._network import AbstractNetwork

_FIELDS = ("w_rec", "w_in", "w_fb", "w_out", "b_rec", "h0")
_TRAINABLE = frozenset(_FIELDS)


@register_model
class EchoStateNetwork(AbstractNetwork):
    r"""Echo-state network: a fixed random reservoir with a trained linear readout that may be
    fed back into the reservoir (the network FORCE learning trains; `rnnlab.train_force`)::

        tau da/dt = -a + W_rec r + W_in u + W_fb z + b_rec,    r = f(a),  z = W_out r
        y = z

    integrated with the Euler method, ``alpha = dt / tau``::

        a[t+1] = a[t] + alpha * (-a[t] + W_rec r[t] + W_in u'[t] + W_fb z[t] + b_rec)
                 + sqrt(2 alpha) * noise_std * xi,     u' = u + input_noise_std * xi_in

    (noise only when a ``key`` is given, scaled as in `CTRNN`). The feedback z is computed from
    the state with the current readout, so the network with its feedback loop closed is an
    ordinary autonomous model: ``vector_field(a, u) = (-a + (W_rec + W_fb W_out) f(a) + W_in u
    + b_rec) / tau`` (``is_continuous = True``), whose fixed points and Jacobians the analysis
    tools find like any other's; ``closed_loop_weights()`` is ``W_rec + W_fb W_out``.

    Initialisation (the computation-thru-dynamics FORCE notebook / Sussillo & Abbott 2009):
    ``W_rec`` has each entry present with probability ``density`` (sparsity ``1 - density``)
    and present entries ~ N(0, gain^2 / (density N)); ``W_in`` ~ N(0, input_scale^2 / n_in);
    ``W_fb`` ~ N(0, feedback_scale^2); ``W_out`` ~ N(0, readout_scale^2 / N); ``b_rec = 0``.

    Args:
        n_in, n_hidden, n_out: sizes (n_hidden = reservoir size N).
        key: PRNG key for the initialisation.
        gain: g, the reservoir gain; > 1 is chaotic for tanh. Default 1.5.
        density: connection probability p of the reservoir, in (0, 1]. Default 1.
        feedback: whether z is fed back through ``W_fb``. Default True.
        feedback_scale, input_scale, readout_scale: see above. Defaults 1, 1, 1.
        dt, tau: Euler step and time constant (same unit; dt <= tau). Defaults 0.1 and 1.
        activation: f, default ``tanh``.
        noise_std, input_noise_std: noise standard deviations, default 0.
        initial_state: ``"zeros"``, ``"random"`` (N(0, 0.25^2) per unit from ``key``, as in the
            notebook) or an array [n_hidden].
        trainable: which leaves gradient training (`rnnlab.train`) may change, names among
            ``w_rec, w_in, w_fb, w_out, b_rec, h0``; default only ``w_out`` (a reservoir is
            fixed). `train_force` changes ``w_out`` regardless.
    """

    is_continuous: ClassVar[bool] = True

    w_rec: Float[Array, "n_hidden n_hidden"]
    w_in: Float[Array, "n_hidden n_in"]
    w_fb: Float[Array, "n_hidden n_out"]
    w_out: Float[Array, "n_out n_hidden"]
    b_rec: Float[Array, " n_hidden"]

    tau: float = eqx.field(static=True)
    feedback: bool = eqx.field(static=True)

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        n_out: int,
        *,
        key: PRNGKeyArray,
        gain: float = 1.5,
        density: float = 1.0,
        feedback: bool = True,
        feedback_scale: float = 1.0,
        input_scale: float = 1.0,
        readout_scale: float = 1.0,
        dt: float = 0.1,
        tau: float = 1.0,
        activation: str | Callable = "tanh",
        noise_std: float = 0.0,
        input_noise_std: float = 0.0,
        initial_state: str | ArrayInput = "zeros",
        trainable: Iterable[str] = ("w_out",),
    ):
        n_in, n_hidden, n_out = self._init_network(
            n_in, n_hidden, n_out, activation=activation, dt=dt, noise_std=noise_std,
            input_noise_std=input_noise_std,
        )
        gain = nonnegative_number("gain", gain)
        if not (isinstance(density, (int, float)) and 0.0 < density <= 1.0):
            raise ValueError(f"density must be in (0, 1], got {density!r}")
        feedback_scale = nonnegative_number("feedback_scale", feedback_scale)
        input_scale = nonnegative_number("input_scale", input_scale)
        readout_scale = nonnegative_number("readout_scale", readout_scale)
        tau = positive_number("tau", tau)
        if self.dt > tau:
            raise ValueError(
                f"dt={dt} is larger than tau={tau}: alpha = dt/tau must be <= 1 for a stable "
                "Euler step; lower dt or raise tau"
            )
        self.trainable = nw.check_trainable(trainable, _TRAINABLE)

        k_rec, k_mask, k_in, k_fb, k_out, k_h0 = jax.random.split(key, 6)
        w_rec = jax.random.normal(k_rec, (n_hidden, n_hidden)) * (
            gain / math.sqrt(density * n_hidden)
        )
        if density < 1.0:
            w_rec = jnp.where(jax.random.uniform(k_mask, (n_hidden, n_hidden)) < density,
                              w_rec, 0.0)
        self.w_rec = w_rec
        self.w_in = jax.random.normal(k_in, (n_hidden, n_in)) * (input_scale / math.sqrt(n_in))
        self.w_fb = jax.random.normal(k_fb, (n_hidden, n_out)) * feedback_scale
        self.w_out = jax.random.normal(k_out, (n_out, n_hidden)) * (
            readout_scale / math.sqrt(n_hidden)
        )
        self.b_rec = jnp.zeros((n_hidden,))
        if isinstance(initial_state, str) and initial_state == "random":
            self.h0 = 0.25 * jax.random.normal(k_h0, (n_hidden,))
        else:
            if isinstance(initial_state, str) and initial_state != "zeros":
                raise ValueError(
                    f"initial_state={initial_state!r}: use 'zeros', 'random' or an array of "
                    f"shape ({n_hidden},)"
                )
            self.h0 = nw.initial_h0(initial_state, n_hidden)
        self.tau = tau
        self.feedback = bool(feedback)

    @classmethod
    def from_weights(
        cls,
        w_rec: ArrayInput,
        w_in: ArrayInput,
        w_out: ArrayInput,
        w_fb: ArrayInput | None = None,
        b_rec: ArrayInput | None = None,
        *,
        initial_state: str | ArrayInput = "zeros",
        **kwargs,
    ) -> "EchoStateNetwork":
        """A network with the given weights: ``w_rec`` [N, N], ``w_in`` [N, n_in], ``w_out``
        [n_out, N], ``w_fb`` [N, n_out] (None: no feedback), ``b_rec`` [N] (default 0).

        Other keyword arguments are the constructor's (``dt``, ``tau``, ``activation``, ...).
        """
        w_rec_np = nw.weight_array("w_rec", w_rec)
        if w_rec_np.ndim != 2 or w_rec_np.shape[0] != w_rec_np.shape[1]:
            raise ValueError(f"w_rec must be a square 2-D array, got shape {w_rec_np.shape}")
        n = w_rec_np.shape[0]
        w_in_np = nw.weight_array("w_in", w_in)
        if w_in_np.ndim != 2 or w_in_np.shape[0] != n:
            raise ValueError(f"w_in must have shape ({n}, n_in), got {w_in_np.shape}")
        w_out_np = nw.weight_array("w_out", w_out)
        if w_out_np.ndim != 2 or w_out_np.shape[1] != n:
            raise ValueError(f"w_out must have shape (n_out, {n}), got {w_out_np.shape}")
        n_in, n_out = w_in_np.shape[1], w_out_np.shape[0]
        if "feedback" in kwargs:
            raise TypeError("from_weights sets feedback from w_fb (None: no feedback); "
                            "do not pass feedback=")
        feedback = w_fb is not None
        w_fb_np = np.zeros((n, n_out)) if w_fb is None else nw.weight_array(
            "w_fb", w_fb, (n, n_out))
        b_rec_np = np.zeros(n) if b_rec is None else nw.weight_array("b_rec", b_rec, (n,))
        model = cls(n_in, n, n_out, key=jax.random.PRNGKey(0), feedback=feedback,
                    initial_state=initial_state, **kwargs)
        f32 = lambda a: jnp.asarray(a, dtype=jnp.float32)  # noqa: E731
        return eqx.tree_at(
            lambda m: (m.w_rec, m.w_in, m.w_fb, m.w_out, m.b_rec),
            model,
            tuple(f32(a) for a in (w_rec_np, w_in_np, w_fb_np, w_out_np, b_rec_np)),
        )

    def _config_extra(self) -> dict[str, Any]:
        return {"feedback": self.feedback, "tau": self.tau}

    # ------------------------------------------------------------------ derived quantities

    @property
    def alpha(self) -> float:
        """dt / tau."""
        return self.dt / self.tau

    def effective_weights(self) -> dict[str, Array]:
        """The weights actually used: ``w_rec, w_in, w_fb, w_out, b_rec`` (``w_fb`` is zero
        when ``feedback=False``)."""
        w_fb = self._frozen("w_fb", self.w_fb)
        return {
            "w_rec": self._frozen("w_rec", self.w_rec),
            "w_in": self._frozen("w_in", self.w_in),
            "w_fb": w_fb if self.feedback else jnp.zeros_like(w_fb),
            "w_out": self._frozen("w_out", self.w_out),
            "b_rec": self._frozen("b_rec", self.b_rec),
        }

    def closed_loop_weights(self) -> Float[Array, "n_hidden n_hidden"]:
        """``W_rec + W_fb W_out``: the recurrent matrix of the network with its feedback loop
        closed (``W_rec`` alone when ``feedback=False``)."""
        w = self.effective_weights()
        return w["w_rec"] + w["w_fb"] @ w["w_out"]

    def _trained(self) -> set[str]:
        names = set(self.trainable)
        if not self.feedback:
            names.discard("w_fb")
        return names

    # ------------------------------------------------------------------ the model contract

    def rates(self, state: Float[ArrayLike, "... n_hidden"]) -> Float[Array, "... n_hidden"]:
        return self.activation(state)

    def euler(
        self,
        w: dict[str, Array],
        w_out: Float[ArrayLike, "n_out n_hidden"],
        state: Float[ArrayLike, " n_hidden"],
        proj_input: Float[ArrayLike, " n_hidden"],
    ) -> Float[Array, " n_hidden"]:
        """One noise-free Euler step with readout ``w_out`` and input projection
        ``W_in u + b_rec`` (the step `train_force` uses while it changes ``w_out``; with the
        model's own readout it is `_update`, with the loop product split in two)."""
        r = self.activation(state)
        drive = w["w_rec"] @ r + proj_input
        if self.feedback:
            drive = drive + w["w_fb"] @ (w_out @ r)
        return state + self.alpha * (drive - state)

    def _stepping_weights(self, dtype: Any = None) -> dict[str, Array]:
        # with the loop closed, W_rec r + W_fb W_out r is one matrix product
        w = self.effective_weights()
        return dict(w, w_rec=w["w_rec"] + w["w_fb"] @ w["w_out"]) if self.feedback else w

    def _noise_scale(self) -> Array:
        return math.sqrt(2.0 * self.alpha) * self.noise_std

    def _update(self, w, state, proj):
        """The Euler step a + alpha (-a + W f(a) + W_in u + b), W the closed-loop matrix."""
        return state + self.alpha * (w["w_rec"] @ self.activation(state) + proj - state)

    def vector_field(
        self, state: Float[ArrayLike, " n_hidden"], input: Float[ArrayLike, " n_in"]
    ) -> Float[Array, " n_hidden"]:
        """da/dt of the closed-loop network, per unit of time (the unit of dt and tau)."""
        w = self.effective_weights()
        r = self.activation(state)
        drive = w["w_rec"] @ r + w["w_in"] @ input + w["b_rec"]
        if self.feedback:
            drive = drive + w["w_fb"] @ (w["w_out"] @ r)
        return (drive - state) / self.tau

    def jacobian(
        self, state: Float[ArrayLike, " n_hidden"], input: Float[ArrayLike, " n_in"]
    ) -> Float[Array, "n_hidden n_hidden"]:
        """dF/da = (-I + (W_rec + W_fb W_out) diag(f'(a))) / tau (analytic, loop closed)."""
        slope = jax.vmap(jax.grad(self.activation))(state)
        loop = self.closed_loop_weights()
        return (loop * slope[None, :] - jnp.eye(self.n_hidden, dtype=state.dtype)) / self.tau

    def input_jacobian(
        self, state: Float[ArrayLike, " n_hidden"], input: Float[ArrayLike, " n_in"]
    ) -> Float[Array, "n_hidden n_in"]:
        """dF/du = W_in / tau."""
        return self.effective_weights()["w_in"] / self.tau

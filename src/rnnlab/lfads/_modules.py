"""The building blocks of LFADS: lfads-torch's clipped GRU cell, a bidirectional GRU over a
sequence, and the variance-scaled linear maps (unbatched; the model vmaps over trials)."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._loops import gru_group, gru_step


def variance_scaled(key: PRNGKeyArray, shape: tuple[int, int], scale_dim: int) -> Array:
    """Normal weights with standard deviation 1/sqrt(scale_dim) (lfads-torch's initialiser)."""
    return jax.random.normal(key, shape) / math.sqrt(scale_dim)


class Linear(eqx.Module):
    """``y = weight @ x (+ bias)``; ``weight`` [out, in] ~ N(0, 1/in), ``bias`` zeros.

    With ``normalized=True`` each row of ``weight`` is scaled to unit norm when applied
    (lfads-torch's ``KernelNormalizedLinear``, the factor readout of the original LFADS)."""

    weight: Array
    bias: Array | None
    normalized: bool = eqx.field(static=True)

    def __init__(self, n_in: int, n_out: int, *, key: PRNGKeyArray, bias: bool = True,
                 normalized: bool = False):
        self.weight = variance_scaled(key, (n_out, n_in), n_in)
        self.bias = jnp.zeros(n_out) if bias else None
        self.normalized = normalized

    def effective_weight(self) -> Array:
        if not self.normalized:
            return self.weight
        return self.weight / jnp.linalg.norm(self.weight, axis=1, keepdims=True)

    def __call__(self, x: Float[Array, "... n_in"]) -> Float[Array, "... n_out"]:
        y = x @ self.effective_weight().T
        return y if self.bias is None else y + self.bias


class ClippedGRUCell(eqx.Module):
    """lfads-torch's GRU cell (the TF LFADS form: the reset gate multiplies the state before
    the recurrent candidate weights; no recurrent bias), its state clipped to
    ``[-clip, clip]``::

        z, r = sigmoid(W_ih[z,r] x + b[z,r] + W_hh[z,r] h)
        n = tanh(W_ih[n] x + b[n] + W_hh[n] (r * h))
        h' = clip(z * h + (1 - z) * n)

    ``weight_ih`` [3H, in], ``weight_hh`` [3H, H], gate blocks (z, r, n); ``bias_ih`` [3H]
    starts at 1 for the gates and 0 for the candidate (the state is kept at first).
    Weights ~ N(0, 1/fan) with fan = in (input) and H (recurrent), or in + H for encoders.
    """

    weight_ih: Array
    weight_hh: Array
    bias_ih: Array
    hidden_size: int = eqx.field(static=True)
    clip_value: float = eqx.field(static=True)

    def __init__(self, input_size: int, hidden_size: int, *, key: PRNGKeyArray,
                 clip_value: float = math.inf, is_encoder: bool = False):
        k1, k2 = jax.random.split(key)
        ih = input_size + hidden_size if is_encoder else input_size
        hh = input_size + hidden_size if is_encoder else hidden_size
        self.weight_ih = variance_scaled(k1, (3 * hidden_size, input_size), max(ih, 1))
        self.weight_hh = variance_scaled(k2, (3 * hidden_size, hidden_size), hh)
        self.bias_ih = jnp.concatenate([jnp.ones(2 * hidden_size), jnp.zeros(hidden_size)])
        self.hidden_size = hidden_size
        self.clip_value = float(clip_value)

    def input_part(self, x: Float[Array, "*T n_in"]) -> Float[Array, "*T G"]:
        """``W_ih x + b`` [..., 3H]: the part of a step that does not depend on the state
        (computed for every step at once, outside the recurrence)."""
        return x @ self.weight_ih.T + self.bias_ih

    def split_hh(self) -> tuple[Array, Array]:
        """The recurrent weights of the gates [2H, H] and of the candidate [H, H] (split once
        outside a loop, so that gradients accumulate without per-step padding)."""
        H = self.hidden_size
        return self.weight_hh[: 2 * H], self.weight_hh[2 * H :]

    def step_pre(self, xa: Float[Array, " G"], h: Float[Array, " H"],
                 hh: tuple[Array, Array] | None = None) -> Float[Array, " H"]:
        """One step from the precomputed input part ``xa`` [3H] (see `input_part`) and the
        split recurrent weights ``hh`` (see `split_hh`; default: split here)."""
        w_zr, w_n = self.split_hh() if hh is None else hh
        return gru_step(xa, h, w_zr, w_n, self.clip_value)[0]

    def __call__(self, x: Float[Array, " n_in"], h: Float[Array, " H"]) -> Float[Array, " H"]:
        return self.step_pre(self.input_part(x), h)


def run_gru(cell: ClippedGRUCell, inputs: Float[Array, "T n_in"],
            h0: Float[Array, " H"]) -> tuple[Float[Array, "T H"], Float[Array, " H"]]:
    """Unroll ``cell`` over ``inputs`` from ``h0``: (all states [T, H], last state [H])."""

    def body(h, x):
        h = cell(x, h)
        return h, h

    last, states = jax.lax.scan(body, h0, inputs)
    return states, last


def run_gru_group(cells: list, x: Float[Array, "T n_in"], h0s: list,
                  reverse: tuple | None = None) -> list:
    """Unroll several cells over the same inputs ``x`` in one loop (one loop instead of one
    per cell: shorter compilation, larger fused steps), each forward in time or, where
    ``reverse`` says so, backward (default: all forward), their input parts computed for all
    steps before the loop; returns each cell's (states [T, H] in its own order, last state
    [H]).

    Differentiable through a hand-written backward pass (`rnnlab.lfads._loops`)."""
    reverse = (False,) * len(cells) if reverse is None else tuple(reverse)
    states = gru_group(tuple(c.clip_value for c in cells), reverse,
                       [(c.weight_ih, c.bias_ih, c.split_hh()) for c in cells], x, list(h0s))
    return [(s, s[-1]) for s in states]


class BidirectionalGRU(eqx.Module):
    """A forward and a backward `ClippedGRUCell` over the same sequence, each from its own
    learned initial state (``h0`` [2, H])."""

    fwd: ClippedGRUCell
    bwd: ClippedGRUCell
    h0: Array

    def __init__(self, input_size: int, hidden_size: int, *, key: PRNGKeyArray,
                 clip_value: float = math.inf):
        k1, k2 = jax.random.split(key)
        self.fwd = ClippedGRUCell(input_size, hidden_size, key=k1, clip_value=clip_value,
                                  is_encoder=True)
        self.bwd = ClippedGRUCell(input_size, hidden_size, key=k2, clip_value=clip_value,
                                  is_encoder=True)
        self.h0 = jnp.zeros((2, hidden_size))

    def __call__(self, inputs: Float[Array, "T n_in"]
                 ) -> tuple[Float[Array, "T D"], Float[Array, " D"]]:
        """(outputs [T, 2H]: forward states then the backward ones aligned to the same
        steps, final states [2H]: the forward's last and the backward's last)."""
        out_f, last_f = run_gru(self.fwd, inputs, self.h0[0])
        out_b, last_b = run_gru(self.bwd, inputs[::-1], self.h0[1])
        outputs = jnp.concatenate([out_f, out_b[::-1]], axis=-1)
        return outputs, jnp.concatenate([last_f, last_b])

"""What the gated models (GRU, LSTM) share: `AbstractGatedNetwork`.

Weights follow the PyTorch layout so that trained PyTorch weights load unchanged:
``w_in`` [G * H, n_in] and ``w_rec`` [G * H, H] stack the G gate blocks row-wise, with separate
input and recurrent biases ``b_in``, ``b_rec`` [G * H].
"""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from . import _network as nw
from ._network import AbstractMaskedNetwork

WEIGHTS = ("w_rec", "w_in", "b_rec", "b_in", "w_out", "b_out")
TRAINABLE = frozenset(WEIGHTS + ("h0",))


def gate_mask(mask: Array, n_gates: int) -> Array:
    """Tile a per-block mask [n_hidden, k] over the gate blocks: [n_gates * n_hidden, k]."""
    return jnp.tile(mask, (n_gates, 1))


def uniform_init(key, shape, scale: float) -> Array:
    """U(-scale, scale), the PyTorch default for RNN/GRU/LSTM weights (scale = 1/sqrt(H))."""
    return jax.random.uniform(key, shape, minval=-scale, maxval=scale)


class AbstractGatedNetwork(AbstractMaskedNetwork):
    """A gated network with ``n_gates`` blocks per weight matrix (PyTorch layout); the masks
    [H, H], [H, n_in] apply to every gate block. Subclasses set `n_gates` and implement
    `_update` and `rates`."""

    w_in: Float[Array, "gates_hidden n_in"]
    w_rec: Float[Array, "gates_hidden n_hidden"]
    b_in: Float[Array, " gates_hidden"]
    b_rec: Float[Array, " gates_hidden"]
    w_out: Float[Array, "n_out n_hidden"]
    b_out: Float[Array, " n_out"]

    n_gates: ClassVar[int]
    _biases: ClassVar[tuple[str, ...]] = ("b_rec", "b_in", "b_out")
    _input_bias: ClassVar[str] = "b_in"

    def _init_gated(self, key, masks, *, autapses: bool, use_bias: bool) -> None:
        """PyTorch's default initialisation U(-1/sqrt(H), 1/sqrt(H)) for gate weights and
        biases; readout N(0, 1/H); the masks (tiled over gates) applied."""
        n_in, n_hidden, n_out, g = self.n_in, self.n_hidden, self.n_out, self.n_gates
        rec_mask, in_mask, out_mask = masks
        k = nw.inv_sqrt(n_hidden)
        k1, k2, k3, k4, k5 = jax.random.split(key, 5)
        self.w_in = uniform_init(k1, (g * n_hidden, n_in), k) * gate_mask(in_mask, g)
        self.w_rec = uniform_init(k2, (g * n_hidden, n_hidden), k) * gate_mask(rec_mask, g)
        self.b_in = uniform_init(k3, (g * n_hidden,), k)
        self.b_rec = uniform_init(k4, (g * n_hidden,), k)
        self.w_out = jax.random.normal(k5, (n_out, n_hidden)) * k * out_mask
        self.b_out = jnp.zeros((n_out,))
        if not use_bias:
            self.b_in, self.b_rec = jnp.zeros_like(self.b_in), jnp.zeros_like(self.b_rec)
        self.w_rec_mask, self.w_in_mask, self.w_out_mask = masks
        self.autapses = bool(autapses)
        self.use_bias = bool(use_bias)

    def effective_weights(self) -> dict[str, Array]:
        """The weights actually used: ``w_in, w_rec, b_in, b_rec, w_out, b_out`` (masks
        applied, frozen leaves without gradient)."""
        g = self.n_gates
        out = {
            "w_in": self._masked("w_in", self.w_in, gate_mask(self.w_in_mask, g)),
            "w_rec": self._masked("w_rec", self.w_rec, gate_mask(self.w_rec_mask, g)),
            "w_out": self._masked("w_out", self.w_out, self.w_out_mask),
        }
        for b in self._biases:
            out[b] = self._bias(b)
        return out

    @classmethod
    def from_weights(
        cls, w_in, w_rec, w_out, b_in=None, b_rec=None, b_out=None, *, activation="tanh",
        **kwargs,
    ):
        """A network with the given weights (PyTorch layout): ``w_in`` [G H, n_in], ``w_rec``
        [G H, H], ``w_out`` [n_out, H], ``b_in``, ``b_rec`` [G H], ``b_out`` [n_out] (biases
        default to 0, used exactly as given). Other keyword arguments are the constructor's."""
        n_gates = cls.n_gates
        w_rec_np = nw.weight_array("w_rec", w_rec)
        if w_rec_np.ndim != 2 or w_rec_np.shape[0] != n_gates * w_rec_np.shape[1]:
            raise ValueError(
                f"w_rec must have shape ({n_gates} * n_hidden, n_hidden) (gate blocks stacked "
                f"by rows), got {w_rec_np.shape}"
            )
        n_hidden = w_rec_np.shape[1]
        g = n_gates * n_hidden
        w_in_np = nw.weight_array("w_in", w_in)
        if w_in_np.ndim != 2 or w_in_np.shape[0] != g:
            raise ValueError(f"w_in must have shape ({g}, n_in), got {w_in_np.shape}")
        w_out_np = nw.weight_array("w_out", w_out)
        if w_out_np.ndim != 2 or w_out_np.shape[1] != n_hidden:
            raise ValueError(
                f"w_out must have shape (n_out, {n_hidden}), got {w_out_np.shape}"
            )
        n_in, n_out = w_in_np.shape[1], w_out_np.shape[0]
        biases = {}
        for name, value, size in (("b_in", b_in, g), ("b_rec", b_rec, g),
                                  ("b_out", b_out, n_out)):
            biases[name] = (np.zeros(size) if value is None
                            else nw.weight_array(name, value, (size,)))
        if not kwargs.get("use_bias", True) and any(np.any(b) for b in biases.values()):
            raise ValueError("use_bias=False but a bias (b_in, b_rec or b_out) is non-zero")
        model = cls(n_in, n_hidden, n_out, key=jax.random.PRNGKey(0), activation=activation,
                    **kwargs)
        nw.check_masked("w_rec", w_rec_np, gate_mask(model.w_rec_mask, n_gates))
        nw.check_masked("w_in", w_in_np, gate_mask(model.w_in_mask, n_gates))
        nw.check_masked("w_out", w_out_np, model.w_out_mask)
        f32 = lambda a: jnp.asarray(a, dtype=jnp.float32)  # noqa: E731
        return eqx.tree_at(
            lambda m: (m.w_in, m.w_rec, m.w_out, m.b_in, m.b_rec, m.b_out),
            model,
            tuple(f32(a) for a in (w_in_np, w_rec_np, w_out_np, biases["b_in"],
                                   biases["b_rec"], biases["b_out"])),
        )

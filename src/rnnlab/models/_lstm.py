"""The long short-term memory network (LSTM); its state is the joint vector (h, c)."""

import math
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._validate import ArrayInput, as_number
from . import _gated as g
from . import _network as nw
from ._base import register_model


@register_model
class LSTM(g.AbstractGatedNetwork):
    r"""Long short-term memory (Hochreiter & Schmidhuber 1997; PyTorch / PsychRNN form)::

        i = sigmoid(W_in[i] u + b_in[i] + W_rec[i] h + b_rec[i])      input gate
        f = sigmoid(W_in[f] u + b_in[f] + W_rec[f] h + b_rec[f])      forget gate
        g = act(W_in[g] u + b_in[g] + W_rec[g] h + b_rec[g])          cell candidate, act = tanh
        o = sigmoid(W_in[o] u + b_in[o] + W_rec[o] h + b_rec[o])      output gate
        c[t+1] = f * c[t] + i * g
        h[t+1] = o * act(c[t+1])
        y = W_out h + b_out

    **State.** The state is the flat vector ``concat(h, c)`` of size ``state_size = 2 *
    n_hidden``: fixed-point analysis works over the joint state, ``vector_field(s, u) = step(s, u)
    - s`` (``is_continuous = False``), ``rates(s) = h`` (the first ``n_hidden`` entries).

    Weight layout is PyTorch's (``torch.nn.LSTM``): ``w_in`` [4H, n_in], ``w_rec`` [4H, H],
    ``b_in``, ``b_rec`` [4H], gate blocks in the order (i, f, g, o). At initialisation
    ``forget_bias`` (default 1, Jozefowicz et al. 2015) is added to the forget-gate block of
    ``b_in``; ``from_weights`` uses the biases it is given unchanged.

    Noise (only with a ``key``): ``input_noise_std`` on u; ``noise_std`` on both h and c of the
    new state. Constraints as for `GRU`: ``w_rec_mask`` [H, H] and ``w_in_mask`` [H, n_in] apply
    to every gate block, ``w_out_mask``, ``autapses``, ``use_bias``, ``trainable`` (names among
    ``w_rec, w_in, b_rec, b_in, w_out, b_out, h0``; ``h0`` is the initial joint state [2H]).

    Args:
        n_in, n_hidden, n_out: sizes (n_hidden units, each with an h and a c component).
        key: PRNG key for the initialisation.
        activation: the cell nonlinearity act (default ``tanh``).
        dt: duration of one step in the task's time unit (labels only). Default 1.
        initial_state: ``"zeros"`` or an array [2 * n_hidden] (h then c).
    """

    is_continuous: ClassVar[bool] = False
    n_gates: ClassVar[int] = 4

    forget_bias: float = eqx.field(static=True)

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
        use_bias: bool = True,
        forget_bias: float = 1.0,
        initial_state: str | ArrayInput = "zeros",
        trainable: Iterable[str] = g.WEIGHTS,
    ):
        n_in, n_hidden, n_out = self._init_network(
            n_in, n_hidden, n_out, activation=activation, dt=dt, noise_std=noise_std,
            input_noise_std=input_noise_std,
        )
        fb = as_number(forget_bias)
        if fb is None or not math.isfinite(fb):
            raise ValueError(f"forget_bias must be a finite number, got {forget_bias!r}")
        self.trainable = nw.check_trainable(trainable, g.TRAINABLE)
        masks = nw.build_masks(n_in, n_hidden, n_out, w_rec_mask, w_in_mask, w_out_mask, autapses)
        self._init_gated(key, masks, autapses=autapses, use_bias=use_bias)
        if use_bias:
            self.b_in = self.b_in.at[n_hidden:2 * n_hidden].add(fb)
        self.h0 = nw.initial_h0(initial_state, 2 * n_hidden)
        self.forget_bias = fb

    @property
    def state_size(self) -> int:
        """2 * n_hidden: the state is concat(h, c)."""
        return 2 * self.n_hidden

    @classmethod
    def from_weights(
        cls,
        w_in: ArrayInput,
        w_rec: ArrayInput,
        w_out: ArrayInput,
        b_in: ArrayInput | None = None,
        b_rec: ArrayInput | None = None,
        b_out: ArrayInput | None = None,
        *,
        activation: str | Callable = "tanh",
        **kwargs,
    ) -> "LSTM":
        """An LSTM with the given weights (PyTorch layout, gates (i, f, g, o)): ``w_in``
        [4H, n_in], ``w_rec`` [4H, H], ``w_out`` [n_out, H], ``b_in``, ``b_rec`` [4H], ``b_out``
        [n_out] (biases default to 0, used exactly as given). Other keyword arguments are the
        constructor's."""
        return super().from_weights(w_in, w_rec, w_out, b_in, b_rec, b_out,
                                    activation=activation, **kwargs)

    def _config_extra(self) -> dict[str, Any]:
        return {**super()._config_extra(), "forget_bias": self.forget_bias}

    # ------------------------------------------------------------------ the model contract

    def rates(self, state: Float[ArrayLike, "... state"]) -> Float[Array, "... n_hidden"]:
        return state[..., : self.n_hidden]

    def _update(self, w, state, proj_in):
        """One noise-free LSTM update given the input projection W_in u + b_in [4H]."""
        n = self.n_hidden
        h, c = state[:n], state[n:]
        pre = proj_in + w["w_rec"] @ h + w["b_rec"]
        i = jax.nn.sigmoid(pre[:n])
        f = jax.nn.sigmoid(pre[n:2 * n])
        gg = self.activation(pre[2 * n:3 * n])
        o = jax.nn.sigmoid(pre[3 * n:])
        c_new = f * c + i * gg
        h_new = o * self.activation(c_new)
        return jnp.concatenate([h_new, c_new])

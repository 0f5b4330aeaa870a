"""The gated recurrent unit (GRU), as a discrete-time map of its hidden state."""

from collections.abc import Callable, Iterable
from typing import ClassVar

import jax
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._validate import ArrayInput
from . import _gated as g
from . import _network as nw
from ._base import register_model


@register_model
class GRU(g.AbstractGatedNetwork):
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
    n_gates: ClassVar[int] = 3

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
        initial_state: str | ArrayInput = "zeros",
        trainable: Iterable[str] = g.WEIGHTS,
    ):
        n_in, n_hidden, n_out = self._init_network(
            n_in, n_hidden, n_out, activation=activation, dt=dt, noise_std=noise_std,
            input_noise_std=input_noise_std,
        )
        self.trainable = nw.check_trainable(trainable, g.TRAINABLE)
        masks = nw.build_masks(n_in, n_hidden, n_out, w_rec_mask, w_in_mask, w_out_mask, autapses)
        self._init_gated(key, masks, autapses=autapses, use_bias=use_bias)
        self.h0 = nw.initial_h0(initial_state, n_hidden)

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
    ) -> "GRU":
        """A GRU with the given weights (PyTorch layout, gates (r, z, n)): ``w_in`` [3H, n_in],
        ``w_rec`` [3H, H], ``w_out`` [n_out, H], ``b_in``, ``b_rec`` [3H], ``b_out`` [n_out]
        (biases default to 0). Other keyword arguments are the constructor's."""
        return super().from_weights(w_in, w_rec, w_out, b_in, b_rec, b_out,
                                    activation=activation, **kwargs)

    # ------------------------------------------------------------------ the model contract

    def rates(self, state: Float[ArrayLike, "... n_hidden"]) -> Float[Array, "... n_hidden"]:
        return state

    def _update(self, w, h, proj_in):
        """One noise-free GRU update given the input projection W_in u + b_in [3H]."""
        n = self.n_hidden
        rec = w["w_rec"] @ h + w["b_rec"]
        r = jax.nn.sigmoid(proj_in[:n] + rec[:n])
        z = jax.nn.sigmoid(proj_in[n:2 * n] + rec[n:2 * n])
        cand = self.activation(proj_in[2 * n:] + r * rec[2 * n:])
        return (1.0 - z) * cand + z * h

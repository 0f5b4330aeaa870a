"""The long short-term memory network (LSTM); its state is the joint vector (h, c)."""

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
class LSTM(AbstractRNN):
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
    config_fields: ClassVar[tuple[str, ...]] = ("noise_std", "input_noise_std")
    n_gates: ClassVar[int] = 4

    w_in: Float[Array, "4*n_hidden n_in"]
    w_rec: Float[Array, "4*n_hidden n_hidden"]
    b_in: Float[Array, " 4*n_hidden"]
    b_rec: Float[Array, " 4*n_hidden"]
    w_out: Float[Array, "n_out n_hidden"]
    b_out: Float[Array, " n_out"]
    h0: Float[Array, " 2*n_hidden"]
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
    forget_bias: float = eqx.field(static=True)
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
        forget_bias: float = 1.0,
        initial_state: Literal["zeros"] | ArrayLike = "zeros",
        trainable: Iterable[str] = g.WEIGHTS,
    ):
        n_in, n_hidden, n_out = g.check_common(
            n_in, n_hidden, n_out, activation, dt, noise_std, input_noise_std
        )
        fn = resolve_activation(activation)
        if not isinstance(forget_bias, (int, float)) or not jnp.isfinite(forget_bias):
            raise ValueError(f"forget_bias must be a finite number, got {forget_bias!r}")
        trainable = d.check_trainable(trainable, g.TRAINABLE)
        masks = d.build_masks(n_in, n_hidden, n_out, w_rec_mask, w_in_mask, w_out_mask, autapses)
        fields = g.init_fields(n_in, n_hidden, n_out, self.n_gates, key, masks)
        for name, value in fields.items():
            setattr(self, name, value)
        if use_bias:
            self.b_in = self.b_in.at[n_hidden:2 * n_hidden].add(float(forget_bias))
        else:
            self.b_in, self.b_rec = jnp.zeros_like(self.b_in), jnp.zeros_like(self.b_rec)
        self.h0 = d.initial_h0(initial_state, 2 * n_hidden)
        self.w_rec_mask, self.w_in_mask, self.w_out_mask = masks
        self.n_in, self.n_hidden, self.n_out = n_in, n_hidden, n_out
        self.activation = fn
        self.activation_name = activation_name(activation)
        self.dt = float(dt)
        self.noise_std = noise_level(noise_std)
        self.input_noise_std = noise_level(input_noise_std)
        self.autapses = bool(autapses)
        self.use_bias = bool(use_bias)
        self.forget_bias = float(forget_bias)
        self.trainable = trainable

    @property
    def state_size(self) -> int:
        """2 * n_hidden: the state is concat(h, c)."""
        return 2 * self.n_hidden

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
    ) -> "LSTM":
        """An LSTM with the given weights (PyTorch layout, gates (i, f, g, o)): ``w_in``
        [4H, n_in], ``w_rec`` [4H, H], ``w_out`` [n_out, H], ``b_in``, ``b_rec`` [4H], ``b_out``
        [n_out] (biases default to 0, used exactly as given). Other keyword arguments are the
        constructor's."""
        return g.from_weights(cls, cls.n_gates, w_in, w_rec, w_out, b_in, b_rec, b_out,
                              activation, kwargs)

    def config(self) -> dict[str, Any]:
        return g.config(self, {"forget_bias": self.forget_bias})

    def effective_weights(self) -> dict[str, Array]:
        """The weights actually used: ``w_in, w_rec, b_in, b_rec, w_out, b_out``."""
        return g.effective(self)

    def trainable_filter(self) -> Any:
        return g.trainable_filter(self)

    # ------------------------------------------------------------------ the model contract

    def initial_state(self) -> Float[Array, " 2*n_hidden"]:
        return d.frozen(self.trainable, "h0", self.h0)

    def rates(self, state: Float[Array, " 2*n_hidden"]) -> Float[Array, " n_hidden"]:
        return state[: self.n_hidden]

    def readout(self, state: Float[Array, " 2*n_hidden"]) -> Float[Array, " n_out"]:
        w = self.effective_weights()
        return w["w_out"] @ state[: self.n_hidden] + w["b_out"]

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

    def step(
        self,
        state: Float[Array, " 2*n_hidden"],
        input: Float[Array, " n_in"],
        *,
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, " 2*n_hidden"]:
        w = self.effective_weights()
        if key is not None:
            k_in, k_rec = jax.random.split(key)
            input = d.add_noise(input, self.input_noise_std, k_in)
        new = self._update(w, state, w["w_in"] @ input + w["b_in"])
        if key is not None:
            new = d.add_noise(new, self.noise_std, k_rec)
        return new

    def vector_field(
        self, state: Float[Array, " 2*n_hidden"], input: Float[Array, " n_in"]
    ) -> Float[Array, " 2*n_hidden"]:
        """step(s, u) - s over the joint state s = (h, c) (noise-free)."""
        return self.step(state, input) - state

    def unroll(
        self,
        inputs: Float[Array, "time n_in"],
        initial_state: Float[Array, " 2*n_hidden"],
        *,
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, "time 2*n_hidden"]:
        w = self.effective_weights()
        n_steps = inputs.shape[0]
        add = jnp.zeros((n_steps, 2 * self.n_hidden), inputs.dtype)
        if key is not None:
            k_in, k_rec = jax.random.split(key)
            inputs = d.add_noise(inputs, self.input_noise_std, k_in)
            add = d.add_noise(add, self.noise_std, k_rec)
        proj = inputs @ w["w_in"].T + w["b_in"]

        def body(s, xs):
            p, a = xs
            new = self._update(w, s, p) + a
            return new, new

        _, states = jax.lax.scan(body, initial_state, (proj, add))
        return states

    def readout_all(self, states: Float[Array, "... 2*n_hidden"]) -> Float[Array, "... n_out"]:
        w = self.effective_weights()
        return states[..., : self.n_hidden] @ w["w_out"].T + w["b_out"]

    def rates_all(self, states: Float[Array, "... 2*n_hidden"]) -> Float[Array, "... n_hidden"]:
        return states[..., : self.n_hidden]

"""What every rnnlab network shares: `AbstractNetwork` (and `AbstractMaskedNetwork` for the
networks with connection masks), with the construction helpers they use.

A network is ``n_hidden`` units with an activation, a time step ``dt``, two noise levels, a
learnable initial state ``h0``, a set of trainable leaves and a linear readout of its rates.
Its time step is written once per model, in two pieces that every path uses:

- `_input_terms(w, inputs, noise)`: the part of a step that does not depend on the state (the
  input projection of the noisy input, the scaled recurrent noise), for any leading axes, so
  that a trial's or a batch's terms are one matrix product;
- `_advance(w, state, terms)`: the state update given those terms.

`step` is `_advance` after `_input_terms` of one step, `unroll` scans `_advance` over a trial,
and the CT-RNN's training path (`ctrnn_unroll_batch`) loops over the same update with its
hand-written reverse pass. The noise is drawn by `_draw_noise`, in the layout the training
forward pass (`unroll_batch`) draws it, so that `step`, `unroll`, `rnnlab.simulate` and
training see the same noise for the same key (see `AbstractRNN.unroll_batch`).
"""

import abc
import math
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._validate import ArrayInput, nonnegative_number, positive_int, positive_number
from ._activations import activation_name, resolve_activation
from ._base import AbstractRNN, has_noise, level_value, noise_level

Noise = tuple[Array | None, Array | None]


class AbstractNetwork(AbstractRNN):
    """A network of ``n_hidden`` units: the fields, readout, configuration, trainable filter
    and time step that every rnnlab model shares.

    Subclasses set the arrays of their own parametrisation and implement:

    - `effective_weights() -> dict`: the weights actually used (``w_out`` and, when the model
      has one, ``b_out`` among them; constraints applied, frozen leaves without gradient).
    - `rates(state)`: the rates of the units, for a state with any leading axes.
    - `_update(w, state, proj) -> state`: the noise-free update given the input projection
      (discrete maps; continuous-time models override `_input_terms` / `_advance` instead).
    - `_config_extra() -> dict`: their own entries of `config()`.

    and may override `_stepping_weights` (weights arranged for stepping), `_noise_scale`
    (what multiplies a standard normal to give the recurrent noise), `_draw_noise` and
    `_trained` (the trainable names that are in effect).
    """

    h0: Float[Array, " state"]
    noise_std: Float[Array, ""]
    input_noise_std: Float[Array, ""]

    n_in: int = eqx.field(static=True)
    n_hidden: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    activation: Callable = eqx.field(static=True)
    activation_name: str | None = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    trainable: tuple[str, ...] = eqx.field(static=True)

    config_fields: ClassVar[tuple[str, ...]] = ("noise_std", "input_noise_std")
    # names in `trainable` -> field names, where they differ (CTRNN: "tau" -> "tau_param")
    _param_fields: ClassVar[dict[str, str]] = {}
    # the bias added to the input projection W_in u (a key of `effective_weights()`)
    _input_bias: ClassVar[str] = "b_rec"

    def _init_network(
        self,
        n_in: Any,
        n_hidden: Any,
        n_out: Any,
        *,
        activation: str | Callable,
        dt: Any,
        noise_std: Any,
        input_noise_std: Any,
    ) -> tuple[int, int, int]:
        """Check and set the shared fields (sizes, activation, dt, noise levels); returns the
        sizes. Called first by the subclasses' constructors."""
        n_in = positive_int("n_in", n_in)
        n_hidden = positive_int("n_hidden", n_hidden)
        n_out = positive_int("n_out", n_out)
        self.activation = resolve_activation(activation)
        self.activation_name = activation_name(activation)
        self.dt = positive_number("dt", dt)
        self.noise_std = noise_level(nonnegative_number("noise_std", noise_std))
        self.input_noise_std = noise_level(nonnegative_number("input_noise_std", input_noise_std))
        self.n_in, self.n_hidden, self.n_out = n_in, n_hidden, n_out
        return n_in, n_hidden, n_out

    # ------------------------------------------------------------------ parametrisation

    def _frozen(self, name: str, value: Array) -> Array:
        """``value`` if ``name`` is trainable, else ``value`` without gradient."""
        return value if name in self.trainable else jax.lax.stop_gradient(value)

    def _trained(self) -> set[str]:
        """The names in `trainable` that training changes (some may be inert, e.g. biases
        with ``use_bias=False``)."""
        return set(self.trainable)

    def trainable_filter(self) -> Any:
        spec = jax.tree.map(lambda _: False, self)
        fields = [self._param_fields.get(n, n) for n in sorted(self._trained())]
        if not fields:
            return spec
        return eqx.tree_at(
            lambda m: tuple(getattr(m, f) for f in fields), spec, tuple(True for _ in fields)
        )

    @abc.abstractmethod
    def effective_weights(self) -> dict[str, Array]:
        """The weights actually used (see `AbstractRNN.effective_weights`)."""

    def config(self) -> dict[str, Any]:
        if self.activation_name is None:
            raise ValueError(
                f"this {type(self).__name__} uses a custom activation callable, which cannot "
                "be saved; use a named activation to save it"
            )
        return {
            "n_in": self.n_in,
            "n_hidden": self.n_hidden,
            "n_out": self.n_out,
            "activation": self.activation_name,
            "dt": self.dt,
            "noise_std": level_value(self.noise_std),
            "input_noise_std": level_value(self.input_noise_std),
            **self._config_extra(),
            "trainable": list(self.trainable),
        }

    @abc.abstractmethod
    def _config_extra(self) -> dict[str, Any]:
        """The model's own entries of `config()`."""

    # ------------------------------------------------------------------ state and readout

    def initial_state(self) -> Float[Array, " state"]:
        return self._frozen("h0", self.h0)

    def rates_all(self, states: Float[ArrayLike, "... state"]) -> Float[Array, "... n_hidden"]:
        return self.rates(states)

    def readout(self, state: Float[ArrayLike, " state"]) -> Float[Array, " n_out"]:
        w = self.effective_weights()
        out = w["w_out"] @ self.rates(state)
        return out + w["b_out"] if "b_out" in w else out

    def readout_all(self, states: Float[ArrayLike, "... state"]) -> Float[Array, "... n_out"]:
        w = self.effective_weights()
        out = self.rates_all(states) @ w["w_out"].T
        return out + w["b_out"] if "b_out" in w else out

    # ------------------------------------------------------------------ the time step

    def _stepping_weights(self, dtype: Any = None) -> dict[str, Array]:
        """The weights as the step uses them (computed once per `step` / `unroll`), for
        inputs of ``dtype`` (None: the model's)."""
        return self.effective_weights()

    def _noise_scale(self) -> Array:
        """What multiplies a standard normal to give the recurrent noise (default
        ``noise_std``; continuous-time models scale it by ``sqrt(2 dt / tau)``)."""
        return self.noise_std

    def _draw_noise(
        self, key: PRNGKeyArray | None, shape: tuple[int, ...], dtype: Any
    ) -> Noise:
        """Standard normals ``(xi_in [*shape, n_in], xi_rec [*shape, state_size])`` for the
        steps of ``shape`` (``()`` one step, ``(T,)`` a trial), or None where there is no key
        or the level is 0.

        Default: ``k_in, k_rec = split(key)`` and ``jax.random.normal`` of each shape, so one
        step draws what the first step of a trial draws; `unroll_batch` (training) gives each
        trial of a batch its own key, ``split(key, batch)``.
        """
        if key is None:
            return None, None
        k_in, k_rec = jax.random.split(key)
        xi_in = xi_rec = None
        if has_noise(self.input_noise_std):
            xi_in = jax.random.normal(k_in, shape + (self.n_in,), dtype)
        if has_noise(self.noise_std):
            xi_rec = jax.random.normal(k_rec, shape + (self.state_size,), dtype)
        return xi_in, xi_rec

    def _input_terms(self, w: dict[str, Array], inputs: Array, noise: Noise) -> Any:
        """The state-independent terms of the steps of ``inputs`` [..., n_in]: the projection
        ``u' W_in^T + b`` of the noisy input ``u' = u + input_noise_std * xi_in`` and the
        recurrent noise ``_noise_scale() * xi_rec`` (zeros without noise)."""
        xi_in, xi_rec = noise
        u = inputs if xi_in is None else inputs + self.input_noise_std * xi_in
        proj = u @ w["w_in"].T + w[self._input_bias]
        if xi_rec is None:
            add = jnp.zeros(inputs.shape[:-1] + (self.state_size,), inputs.dtype)
        else:
            add = self._noise_scale() * xi_rec
        return proj, add

    def _advance(self, w: dict[str, Array], state: Array, terms: Any) -> Array:
        """One step from ``state`` given its `_input_terms`: the model's update plus noise."""
        proj, add = terms
        return self._update(w, state, proj) + add

    def _update(self, w: dict[str, Array], state: Array, proj: Array) -> Array:
        """The noise-free update of ``state`` given the input projection ``proj``."""
        raise NotImplementedError

    def step(
        self,
        state: Float[ArrayLike, " state"],
        input: Float[ArrayLike, " n_in"],
        *,
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, " state"]:
        """One time step; noise only with a ``key``, drawn as the first step of a trial
        (``step(x, u, key=k) == unroll(u[None], x, key=k)[0]``)."""
        w = self._stepping_weights()
        noise = self._draw_noise(key, (), input.dtype)
        return self._advance(w, state, self._input_terms(w, input, noise))

    def unroll(
        self,
        inputs: Float[ArrayLike, "time n_in"],
        initial_state: Float[ArrayLike, " state"],
        *,
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, "time state"]:
        """One trial: `step`'s update scanned over time, with the state-independent terms of
        all steps computed at once and the noise drawn for the whole trial from ``key``."""
        w = self._stepping_weights()
        noise = self._draw_noise(key, inputs.shape[:-1], inputs.dtype)
        terms = self._input_terms(w, inputs, noise)

        def body(state, xs):
            new = self._advance(w, state, xs)
            return new, new

        return jax.lax.scan(body, initial_state, terms)[1]

    def vector_field(
        self, state: Float[ArrayLike, " state"], input: Float[ArrayLike, " n_in"]
    ) -> Float[Array, " state"]:
        """``step(x, u) - x`` (noise-free): zero exactly at the fixed points of the map.
        Continuous-time models override it with dx/dt."""
        return self.step(state, input) - state


class AbstractMaskedNetwork(AbstractNetwork):
    """A network with 0/1 connection masks (``w_rec_mask``, ``w_in_mask``, ``w_out_mask``),
    optional autapses and biases; masked entries are exactly 0 in every computation."""

    w_rec_mask: Array
    w_in_mask: Array
    w_out_mask: Array

    autapses: bool = eqx.field(static=True)
    use_bias: bool = eqx.field(static=True)

    # the bias leaves, inert (zero, untrained) with ``use_bias=False``
    _biases: ClassVar[tuple[str, ...]] = ("b_rec", "b_out")

    def _trained(self) -> set[str]:
        names = set(self.trainable)
        return names if self.use_bias else names - set(self._biases)

    def _masked(self, name: str, value: Array, mask: Array) -> Array:
        return jnp.where(mask, self._frozen(name, value), 0.0)

    def _bias(self, name: str) -> Array:
        value = getattr(self, name)
        return self._frozen(name, value) if self.use_bias else jnp.zeros_like(value)

    def _config_extra(self) -> dict[str, Any]:
        return {"autapses": self.autapses, "use_bias": self.use_bias}


# ---------------------------------------------------------------------------- construction


def check_trainable(trainable: Iterable[str], allowed: Iterable[str]) -> tuple[str, ...]:
    """Sorted tuple of trainable names; a ValueError names unknown ones."""
    if isinstance(trainable, str):  # set("w_rec") would be its letters
        raise TypeError(
            f"trainable must be a collection of names, e.g. ({trainable!r},), got the string "
            f"{trainable!r}"
        )
    out = tuple(sorted(set(trainable)))
    allowed = set(allowed)
    unknown = set(out) - allowed
    if unknown:
        raise ValueError(
            f"trainable has unknown names {sorted(unknown)}; use names among {sorted(allowed)}"
        )
    return out


def initial_h0(initial_state: Any, size: int) -> Array:
    """The stored initial state: ``"zeros"`` or an array of shape [size]."""
    if isinstance(initial_state, str):
        if initial_state != "zeros":
            raise ValueError(
                f"initial_state={initial_state!r}: use 'zeros' or an array of shape ({size},)"
            )
        return jnp.zeros((size,))
    h0 = jnp.asarray(initial_state, dtype=jnp.float32)
    if h0.shape != (size,):
        raise ValueError(f"initial_state must have shape ({size},), got {h0.shape}")
    if not bool(jnp.all(jnp.isfinite(h0))):
        raise ValueError("initial_state contains NaN or inf")
    return h0


def as_mask(name: str, mask: ArrayInput | None, shape: tuple[int, ...]) -> np.ndarray:
    """A boolean numpy mask (numpy, so that a constructor can read it while its model is only
    traced for its shapes, as `rnnlab.load` builds it)."""
    if mask is None:
        return np.ones(shape, dtype=bool)
    arr = np.asarray(mask)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    if not np.all(np.isin(arr, (0, 1))):
        raise ValueError(f"{name} must contain only 0/1 (or booleans)")
    return arr.astype(bool)


def recurrent_mask_np(w_rec_mask: ArrayInput | None, n_hidden: int, autapses: bool) -> np.ndarray:
    """The recurrent mask [n_hidden, n_hidden] as numpy booleans (the diagonal off without
    autapses)."""
    rec = np.asarray(as_mask("w_rec_mask", w_rec_mask, (n_hidden, n_hidden)))
    if not autapses:
        rec = rec.copy()
        np.fill_diagonal(rec, False)
    return rec


def build_masks(
    n_in: int,
    n_hidden: int,
    n_out: int,
    w_rec_mask: ArrayInput | None,
    w_in_mask: ArrayInput | None,
    w_out_mask: ArrayInput | None,
    autapses: bool,
) -> tuple[Array, Array, Array]:
    """Boolean masks [n_hidden, n_hidden], [n_hidden, n_in], [n_out, n_hidden]."""
    rec = recurrent_mask_np(w_rec_mask, n_hidden, autapses)
    inp = as_mask("w_in_mask", w_in_mask, (n_hidden, n_in))
    out = as_mask("w_out_mask", w_out_mask, (n_out, n_hidden))
    return jnp.asarray(rec), jnp.asarray(inp), jnp.asarray(out)


def weight_array(name: str, value: ArrayInput, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A finite float64 numpy copy of ``value``, checked against ``shape`` if given."""
    arr = np.asarray(value, dtype=np.float64)
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def check_masked(name: str, arr: np.ndarray, mask: Array) -> None:
    off = np.asarray(~mask) & (arr != 0)
    if off.any():
        raise ValueError(
            f"{name} has {int(off.sum())} non-zero entries where its mask (or autapses=False) "
            "requires 0"
        )


def spectral_radius(w: Array) -> Array:
    return jnp.max(jnp.abs(jnp.linalg.eigvals(w)))


def inv_sqrt(n: int) -> float:
    return 1.0 / math.sqrt(n)

"""The model contract every recurrent network in rnnlab implements."""

import abc
import dataclasses
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

_MODEL_REGISTRY: dict[str, type["AbstractRNN"]] = {}


def register_model(cls):
    """Class decorator: make a model class loadable by `rnnlab.load` under its class name."""
    _MODEL_REGISTRY[cls.__name__] = cls
    return cls


def model_class(name: str) -> type["AbstractRNN"]:
    try:
        return _MODEL_REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown model class {name!r}; known: {sorted(_MODEL_REGISTRY)}"
        ) from None


def noise_level(value: float | ArrayLike) -> Float[Array, ""]:
    """A noise standard deviation as model data: a float32 scalar array leaf.

    Noise levels are array leaves, not static fields, so that networks differing only in their
    noise stack into one ensemble; the trainable filters leave them out of training.
    """
    return jnp.asarray(value, dtype=jnp.float32)


def has_noise(level: float | ArrayLike) -> bool:
    """Whether a noise level may be non-zero: False only for a level known to be 0.

    A traced level (inside a transform that traces the model, such as a vmapped ensemble) counts
    as present, so its noise is drawn (and scaled by the level, 0 giving exactly no noise).
    """
    if isinstance(level, jax.core.Tracer):
        return True
    return bool(np.any(np.asarray(level) != 0))


def level_value(level: float | ArrayLike) -> float:
    """A scalar noise level as the shortest Python float that gives back the same float32 (for
    ``config()``: 0.1 stays 0.1, not 0.10000000149011612)."""
    return float(str(np.float32(np.asarray(level))))


class AbstractRNN(eqx.Module):
    """A recurrent network: one unbatched time step, a readout, and a vector field.

    The state is always a flat vector of length `state_size` (for an LSTM it is the
    concatenation (h, c)); a batch of trials is obtained with `jax.vmap`, an ensemble of
    networks by stacking models along a leading axis and `vmap`-ing again.

    Subclasses implement:
    - `step(state, input, *, key=None) -> state`: one time step; noise only when `key` is given.
    - `readout(state) -> output`.
    - `vector_field(state, input) -> F`: for continuous-time models dx/dt (per unit time, in the
      units of `dt`); for discrete-time maps `step(state, input) - state`. `is_continuous` says which.
    - `rates(state)`: the observable firing rates of the units.
    - `initial_state() -> state`.
    - `config() -> dict`: the JSON-able static configuration from which `from_config` rebuilds a
      model of the same structure (used by `rnnlab.save` / `rnnlab.load`).

    and may override `effective_weights()` (the weights the model computes with), `jacobian`,
    `input_jacobian`, `unroll` and `unroll_batch` with faster equivalents. The rnnlab models
    derive from `AbstractNetwork`, which implements all of this once.
    """

    is_continuous: ClassVar[bool] = False
    # Array fields whose values `config()` records (the noise levels): `rnnlab.save` keeps them
    # in the file's metadata, not as tensors, and `trainable_filter` never trains them.
    config_fields: ClassVar[tuple[str, ...]] = ()

    n_in: eqx.AbstractVar[int]
    n_hidden: eqx.AbstractVar[int]
    n_out: eqx.AbstractVar[int]

    @property
    def state_size(self) -> int:
        return self.n_hidden

    @abc.abstractmethod
    def step(
        self,
        state: Float[ArrayLike, " state"],
        input: Float[ArrayLike, " n_in"],
        *,
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, " state"]:
        """Advance the state by one time step."""

    @abc.abstractmethod
    def readout(self, state: Float[ArrayLike, " state"]) -> Float[Array, " n_out"]:
        """The network output for a state."""

    @abc.abstractmethod
    def vector_field(
        self, state: Float[ArrayLike, " state"], input: Float[ArrayLike, " n_in"]
    ) -> Float[Array, " state"]:
        """dx/dt for continuous-time models, step(x, u) - x for discrete maps."""

    @abc.abstractmethod
    def rates(self, state: Float[ArrayLike, " state"]) -> Float[Array, " n_hidden"]:
        """The firing rates of the hidden units at a state."""

    @abc.abstractmethod
    def initial_state(self) -> Float[Array, " state"]:
        """The state a trial starts from."""

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-able static configuration (no arrays)."""

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "AbstractRNN":
        """A model with the structure given by `config` (array values arbitrary).

        The default calls the constructor with the sizes, a fixed key and the other entries
        of `config` as keyword arguments; `rnnlab.load` then replaces the arrays.
        """
        config = dict(config)
        n_in, n_hidden, n_out = config.pop("n_in"), config.pop("n_hidden"), config.pop("n_out")
        return cls(n_in, n_hidden, n_out, key=jax.random.PRNGKey(0), **config)

    def jacobian(
        self, state: Float[ArrayLike, " state"], input: Float[ArrayLike, " n_in"]
    ) -> Float[Array, "state state"]:
        """dF/dx of `vector_field` at ``(state, input)``, [state, state].

        The default differentiates `vector_field` with ``jax.jacfwd``; models override it with
        an analytic formula (the fixed-point finder's Newton stage calls it every iteration).
        """
        return jax.jacfwd(self.vector_field, argnums=0)(state, input)

    def input_jacobian(
        self, state: Float[ArrayLike, " state"], input: Float[ArrayLike, " n_in"]
    ) -> Float[Array, "state n_in"]:
        """dF/du of `vector_field` at ``(state, input)``, [state, n_in] (default: ``jacfwd``)."""
        return jax.jacfwd(self.vector_field, argnums=1)(state, input)

    def effective_weights(self) -> dict[str, Array]:
        """The weights the model actually computes with, by name: constraints (masks, signs,
        non-negativity) applied, frozen leaves without gradient.

        Returns a dict of arrays. The rnnlab models use the keys ``w_rec`` [n_hidden, n_hidden]
        (gated models: [G * n_hidden, n_hidden], the G gate blocks stacked by rows), ``w_in``
        [n_hidden, n_in] (gated: [G * n_hidden, n_in]), ``w_out`` [n_out, n_hidden], biases
        ``b_rec``, ``b_out`` (gated: also ``b_in``), and ``w_fb`` [n_hidden, n_out] for the
        echo-state network. The default returns the model's floating-point array fields by
        field name, except the `config_fields` (noise levels).
        """
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name, None)
            if field.name not in self.config_fields and eqx.is_inexact_array(value):
                out[field.name] = value
        return out

    def trainable_filter(self) -> Any:
        """A pytree of bools, the structure of `self`: True for leaves the optimiser updates.

        The default trains every inexact array but the `config_fields` (noise levels); models
        with frozen parts override it.
        """
        spec = jax.tree.map(eqx.is_inexact_array, self)
        fields = [f for f in self.config_fields if getattr(self, f, None) is not None]
        if not fields:
            return spec
        return eqx.tree_at(
            lambda m: tuple(getattr(m, f) for f in fields), spec, tuple(False for _ in fields)
        )

    def unroll(
        self,
        inputs: Float[ArrayLike, "time n_in"],
        initial_state: Float[ArrayLike, " state"],
        *,
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, "time state"]:
        """Run the network over one trial; `states[t]` is the state after consuming `inputs[t]`.

        The default scans `step`; models override it with a faster equivalent.
        """
        n_steps = inputs.shape[0]
        if key is None:
            def body(state, u):
                new = self.step(state, u)
                return new, new

            _, states = jax.lax.scan(body, initial_state, inputs)
        else:
            keys = jax.random.split(key, n_steps)

            def body(state, xs):
                u, k = xs
                new = self.step(state, u, key=k)
                return new, new

            _, states = jax.lax.scan(body, initial_state, (inputs, keys))
        return states

    def unroll_batch(
        self,
        inputs: Float[ArrayLike, "batch time n_in"],
        initial_state: Float[ArrayLike, "... state"],
        *,
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, "batch time state"]:
        """Run a batch of trials: the training forward pass (`rnnlab.training.batch_loss`),
        and what `rnnlab.simulate` runs, so that both draw the same noise for the same key.

        ``initial_state`` is [state] (shared) or [batch, state]. The default vmaps `unroll`
        with ``jax.random.split(key, batch)`` (trial b draws its noise as `unroll` does from
        key b); models override it with a faster batched path (`CTRNN`: hand-written reverse
        pass, the noise of the whole batch drawn from ``key`` at once, trial 0's equal to
        `unroll`'s with the same key).
        """
        batch = inputs.shape[0]
        state_axis = 0 if initial_state.ndim == 2 else None
        if key is None:
            return jax.vmap(lambda u, h: self.unroll(u, h), in_axes=(0, state_axis))(
                inputs, initial_state
            )
        keys = jax.random.split(key, batch)
        return jax.vmap(
            lambda u, h, k: self.unroll(u, h, key=k), in_axes=(0, state_axis, 0)
        )(inputs, initial_state, keys)

    def readout_all(self, states: Float[ArrayLike, "... state"]) -> Float[Array, "... n_out"]:
        """Readout of any number of states (leading axes are batched)."""
        flat = states.reshape(-1, states.shape[-1])
        out = jax.vmap(self.readout)(flat)
        return out.reshape(*states.shape[:-1], out.shape[-1])

    def rates_all(self, states: Float[ArrayLike, "... state"]) -> Float[Array, "... n_hidden"]:
        flat = states.reshape(-1, states.shape[-1])
        out = jax.vmap(self.rates)(flat)
        return out.reshape(*states.shape[:-1], out.shape[-1])


def zeros_state(n: int) -> Array:
    return jnp.zeros((n,))

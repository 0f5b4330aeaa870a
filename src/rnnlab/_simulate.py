"""Running a network over inputs."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ._validate import ArrayInput
from .models._base import AbstractRNN


class Trajectory(eqx.Module):
    """What a simulation produced.

    Fields (leading ``batch`` axis present when the inputs had one):
        states: [..., T, state_size]; ``states[..., t, :]`` is the state after the step that
            consumed ``inputs[..., t, :]``.
        rates: [..., T, n_hidden], the firing rates ``model.rates(states)`` (f(x) for the
            potential form of the CT-RNN, the state itself for the rate form).
        outputs: [..., T, n_out], the readout of ``states``.
    """

    states: Float[Array, "... time state"]
    rates: Float[Array, "... time hidden"]
    outputs: Float[Array, "... time out"]


def _check_inputs(model: AbstractRNN, inputs) -> Array:
    if not isinstance(model, AbstractRNN):
        raise TypeError(f"model must be an rnnlab model (AbstractRNN), got {type(model).__name__}")
    inputs = jnp.asarray(inputs)
    if inputs.ndim not in (2, 3):
        raise ValueError(
            f"inputs must have shape [T, n_in] or [B, T, n_in], got shape {inputs.shape}"
        )
    if inputs.shape[-1] != model.n_in:
        raise ValueError(
            f"inputs has {inputs.shape[-1]} channels in its last axis but the model has "
            f"n_in={model.n_in}"
        )
    if inputs.shape[-2] < 1:
        raise ValueError("inputs must have at least one time step")
    if not jnp.issubdtype(inputs.dtype, jnp.floating):
        inputs = inputs.astype(jnp.float32)
    _check_finite("inputs", inputs)
    return inputs


def _check_finite(name: str, value: Array) -> None:
    """A ValueError naming ``name`` when a concrete ``value`` holds NaN or inf (as
    `find_fixed_points` refuses them); traced values (simulate inside a user's jit) pass."""
    if isinstance(value, jax.core.Tracer):
        return
    arr = np.asarray(value)
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains NaN or inf ({bad} of {arr.size} values); give "
                         "finite values")


@eqx.filter_jit
def _simulate_jit(model, inputs, initial_state, key):
    # the training forward pass (`unroll_batch`): the same step and the same noise for the
    # same key; one trial is a batch of one
    batched = inputs if inputs.ndim == 3 else inputs[None]
    states = model.unroll_batch(batched, initial_state, key=key)
    traj = Trajectory(states, model.rates_all(states), model.readout_all(states))
    return traj if inputs.ndim == 3 else jax.tree.map(lambda x: x[0], traj)


def simulate(
    model: AbstractRNN,
    inputs: ArrayInput,
    *,
    key: PRNGKeyArray | None = None,
    initial_state: ArrayInput | None = None,
) -> Trajectory:
    """Simulate ``model`` on ``inputs`` ([T, n_in] or [B, T, n_in]), jitted.

    Runs the training forward pass, ``model.unroll_batch`` (a [T, n_in] input is a batch of
    one): the same step and, for the same ``key``, exactly the noise that training's forward
    pass (`rnnlab.training.batch_loss`) draws on these inputs.

    Args:
        model: any rnnlab model.
        inputs: the input time series, [T, n_in] or [B, T, n_in] (any array-like; integers
            are cast to float32); a leading batch axis is optional.
        key: PRNG key for recurrent and input noise (drawn as the model's `unroll_batch` draws
            it); without it the run is noise-free.
        initial_state: [state_size] (shared) or [B, state_size]; defaults to
            ``model.initial_state()``.

    Returns: a `Trajectory` with ``states``, ``rates``, ``outputs``.
    """
    inputs = _check_inputs(model, inputs)
    if initial_state is None:
        initial_state = model.initial_state()
    else:
        initial_state = jnp.asarray(initial_state, dtype=inputs.dtype)
        ok = initial_state.shape == (model.state_size,) or (
            inputs.ndim == 3 and initial_state.shape == (inputs.shape[0], model.state_size)
        )
        if not ok:
            raise ValueError(
                f"initial_state must have shape ({model.state_size},)"
                + (f" or ({inputs.shape[0]}, {model.state_size})" if inputs.ndim == 3 else "")
                + f", got {initial_state.shape}"
            )
        _check_finite("initial_state", initial_state)
    return _simulate_jit(model, inputs, initial_state, key)

"""Activation functions by name."""

from collections.abc import Callable

import jax
import jax.numpy as jnp


def _retanh(x):
    return jnp.maximum(jnp.tanh(x), 0.0)


def _leaky_relu(x):
    return jax.nn.leaky_relu(x, negative_slope=0.01)


def _linear(x):
    return x


ACTIVATIONS: dict[str, Callable] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "softplus": jax.nn.softplus,
    "sigmoid": jax.nn.sigmoid,
    "retanh": _retanh,
    "leaky_relu": _leaky_relu,
    "linear": _linear,
}

# Default recurrent gain g per activation: edge of chaos for bounded, saturating units; below 1
# for unbounded ones, whose activity would otherwise explode before training starts.
DEFAULT_GAIN: dict[str, float] = {
    "tanh": 1.5,
    "retanh": 1.5,
    "sigmoid": 1.5,
    "relu": 0.9,
    "softplus": 0.9,
    "leaky_relu": 0.9,
    "linear": 0.9,
}


def resolve_activation(activation: str | Callable) -> Callable:
    """Return the activation function for a name or a callable."""
    if callable(activation):
        return activation
    if isinstance(activation, str) and activation in ACTIVATIONS:
        return ACTIVATIONS[activation]
    raise ValueError(
        f"activation={activation!r} is not known; use one of {sorted(ACTIVATIONS)} or a callable"
    )


def activation_name(activation: str | Callable) -> str | None:
    """The registry name of an activation, or None for a user callable."""
    if isinstance(activation, str):
        return activation
    for name, fn in ACTIVATIONS.items():
        if fn is activation:
            return name
    return None


# The range of each named activation over the reals. Under Dale's law a unit acts on its
# targets through its rate with the sign of its type; a rate below zero would flip that sign
# (an "excitatory" unit inhibiting), so Dale networks need activations that are never negative.
ACTIVATION_RANGE: dict[str, tuple[float, float]] = {
    "tanh": (-1.0, 1.0),
    "relu": (0.0, float("inf")),
    "softplus": (0.0, float("inf")),
    "sigmoid": (0.0, 1.0),
    "retanh": (0.0, 1.0),
    "leaky_relu": (float("-inf"), float("inf")),
    "linear": (float("-inf"), float("inf")),
}
NONNEGATIVE_ACTIVATIONS: tuple[str, ...] = tuple(
    name for name, (low, _) in ACTIVATION_RANGE.items() if low >= 0.0
)
# The activation a Dale network gets when none is asked for: rectified linear, as PsychRNN
# (Song et al. 2016) and trainRNNbrain use.
DALE_DEFAULT_ACTIVATION = "relu"


def can_be_negative(activation: str | Callable) -> bool:
    """Whether ``activation`` takes a negative value anywhere.

    Named activations are looked up in `ACTIVATION_RANGE`; a callable is probed on a grid of
    inputs from -1e6 to 1e6 (dense in [-50, 50]), so an activation negative only in a sliver
    the grid misses passes.
    """
    name = activation_name(activation)
    if name in ACTIVATION_RANGE:
        return ACTIVATION_RANGE[name][0] < 0.0
    fn = resolve_activation(activation)
    probe = jnp.concatenate([
        jnp.linspace(-50.0, 50.0, 20001),
        -jnp.logspace(-8, 6, 200), jnp.logspace(-8, 6, 200),
    ])
    values = jnp.asarray(fn(probe))
    return bool(jnp.any(values < 0))

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

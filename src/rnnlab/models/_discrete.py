"""Helpers shared by the discrete-time models (VanillaRNN, GRU, LSTM) and the echo-state network.

Constraints are a parametrisation, as for the CT-RNN: the stored leaves are free, the effective
weights are derived from them (masks applied with ``where``, frozen leaves behind
``stop_gradient``) in every computation.
"""

import math
from collections.abc import Iterable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from ._base import has_noise
from ._ctrnn import _as_mask, _check_nonneg, _check_positive, _check_size  # noqa: F401


def check_trainable(trainable: Iterable[str], allowed: Iterable[str]) -> tuple[str, ...]:
    """Sorted tuple of trainable names; a ValueError names unknown ones."""
    if isinstance(trainable, str):
        raise TypeError(f"trainable must be a collection of names, got the string {trainable!r}")
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


def build_masks(
    n_in: int,
    n_hidden: int,
    n_out: int,
    w_rec_mask: ArrayLike | None,
    w_in_mask: ArrayLike | None,
    w_out_mask: ArrayLike | None,
    autapses: bool,
) -> tuple[Array, Array, Array]:
    """Boolean masks [n_hidden, n_hidden], [n_hidden, n_in], [n_out, n_hidden]."""
    rec = np.asarray(_as_mask("w_rec_mask", w_rec_mask, (n_hidden, n_hidden)))
    if not autapses:
        rec = rec.copy()
        np.fill_diagonal(rec, False)
    inp = _as_mask("w_in_mask", w_in_mask, (n_hidden, n_in))
    out = _as_mask("w_out_mask", w_out_mask, (n_out, n_hidden))
    return jnp.asarray(rec), inp, out


def frozen(trainable: tuple[str, ...], name: str, value: Array) -> Array:
    return value if name in trainable else jax.lax.stop_gradient(value)


def gate_mask(mask: Array, n_gates: int) -> Array:
    """Tile a per-block mask [n_hidden, k] over the gate blocks: [n_gates * n_hidden, k]."""
    return jnp.tile(mask, (n_gates, 1))


def trainable_spec(model: eqx.Module, field_to_param: dict[str, str], trainable) -> Any:
    """The bool pytree for `trainable_filter`: True on the fields whose name is trainable."""
    spec = jax.tree.map(lambda _: False, model)
    names = [f for f, p in field_to_param.items() if p in trainable]
    if not names:
        return spec
    return eqx.tree_at(
        lambda m: tuple(getattr(m, n) for n in names), spec, tuple(True for _ in names)
    )


def weight_array(name: str, value: ArrayLike, shape: tuple[int, ...] | None = None) -> np.ndarray:
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


def uniform_init(key, shape, scale: float) -> Array:
    """U(-scale, scale), the PyTorch default for RNN/GRU/LSTM weights (scale = 1/sqrt(H))."""
    return jax.random.uniform(key, shape, minval=-scale, maxval=scale)


def inv_sqrt(n: int) -> float:
    return 1.0 / math.sqrt(n)


def add_noise(
    x: Array, std: float, key, shape_like: Array | None = None
) -> Array:
    if has_noise(std):
        ref = x if shape_like is None else shape_like
        return x + std * jax.random.normal(key, ref.shape, ref.dtype)
    return x

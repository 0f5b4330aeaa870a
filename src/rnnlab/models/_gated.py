"""Construction, checking and parametrisation shared by the gated models (GRU, LSTM).

Weights follow the PyTorch layout so that trained PyTorch weights load unchanged:
``w_in`` [G * H, n_in] and ``w_rec`` [G * H, H] stack the G gate blocks row-wise, with separate
input and recurrent biases ``b_in``, ``b_rec`` [G * H].
"""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from . import _discrete as d
from ._base import level_value

WEIGHTS = ("w_rec", "w_in", "b_rec", "b_in", "w_out", "b_out")
TRAINABLE = frozenset(WEIGHTS + ("h0",))
FIELD_TO_PARAM = {n: n for n in TRAINABLE}
BIASES = ("b_rec", "b_in", "b_out")


def init_fields(
    n_in: int, n_hidden: int, n_out: int, n_gates: int, key, masks
) -> dict[str, Array]:
    """PyTorch's default initialisation U(-1/sqrt(H), 1/sqrt(H)) for gate weights and biases;
    readout N(0, 1/H); the masks (tiled over gates) applied."""
    rec_mask, in_mask, out_mask = masks
    k = d.inv_sqrt(n_hidden)
    k1, k2, k3, k4, k5 = jax.random.split(key, 5)
    g = n_gates * n_hidden
    return {
        "w_in": d.uniform_init(k1, (g, n_in), k) * d.gate_mask(in_mask, n_gates),
        "w_rec": d.uniform_init(k2, (g, n_hidden), k) * d.gate_mask(rec_mask, n_gates),
        "b_in": d.uniform_init(k3, (g,), k),
        "b_rec": d.uniform_init(k4, (g,), k),
        "w_out": jax.random.normal(k5, (n_out, n_hidden)) * k * out_mask,
        "b_out": jnp.zeros((n_out,)),
    }


def effective(model) -> dict[str, Array]:
    """Effective weights of a gated model: masks applied, frozen leaves without gradient."""
    t, g = model.trainable, model.n_gates
    out = {
        "w_in": jnp.where(d.gate_mask(model.w_in_mask, g), d.frozen(t, "w_in", model.w_in), 0.0),
        "w_rec": jnp.where(
            d.gate_mask(model.w_rec_mask, g), d.frozen(t, "w_rec", model.w_rec), 0.0
        ),
        "w_out": jnp.where(model.w_out_mask, d.frozen(t, "w_out", model.w_out), 0.0),
    }
    for b in BIASES:
        value = getattr(model, b)
        out[b] = d.frozen(t, b, value) if model.use_bias else jnp.zeros_like(value)
    return out


def trainable_filter(model) -> Any:
    names = set(model.trainable)
    if not model.use_bias:
        names -= set(BIASES)
    return d.trainable_spec(model, FIELD_TO_PARAM, names)


def from_weights(
    cls, n_gates: int, w_in, w_rec, w_out, b_in, b_rec, b_out, activation, kwargs
):
    w_rec_np = d.weight_array("w_rec", w_rec)
    if w_rec_np.ndim != 2 or w_rec_np.shape[0] != n_gates * w_rec_np.shape[1]:
        raise ValueError(
            f"w_rec must have shape ({n_gates} * n_hidden, n_hidden) (gate blocks stacked by "
            f"rows), got {w_rec_np.shape}"
        )
    n_hidden = w_rec_np.shape[1]
    g = n_gates * n_hidden
    w_in_np = d.weight_array("w_in", w_in)
    if w_in_np.ndim != 2 or w_in_np.shape[0] != g:
        raise ValueError(f"w_in must have shape ({g}, n_in), got {w_in_np.shape}")
    w_out_np = d.weight_array("w_out", w_out)
    if w_out_np.ndim != 2 or w_out_np.shape[1] != n_hidden:
        raise ValueError(f"w_out must have shape (n_out, {n_hidden}), got {w_out_np.shape}")
    n_in, n_out = w_in_np.shape[1], w_out_np.shape[0]
    biases = {}
    for name, value, size in (("b_in", b_in, g), ("b_rec", b_rec, g), ("b_out", b_out, n_out)):
        biases[name] = np.zeros(size) if value is None else d.weight_array(name, value, (size,))
    if not kwargs.get("use_bias", True) and any(np.any(b) for b in biases.values()):
        raise ValueError("use_bias=False but a bias (b_in, b_rec or b_out) is non-zero")
    model = cls(n_in, n_hidden, n_out, key=jax.random.PRNGKey(0), activation=activation, **kwargs)
    d.check_masked("w_rec", w_rec_np, d.gate_mask(model.w_rec_mask, n_gates))
    d.check_masked("w_in", w_in_np, d.gate_mask(model.w_in_mask, n_gates))
    d.check_masked("w_out", w_out_np, model.w_out_mask)
    f32 = lambda a: jnp.asarray(a, dtype=jnp.float32)  # noqa: E731
    return eqx.tree_at(
        lambda m: (m.w_in, m.w_rec, m.w_out, m.b_in, m.b_rec, m.b_out),
        model,
        tuple(f32(a) for a in (w_in_np, w_rec_np, w_out_np, biases["b_in"], biases["b_rec"],
                               biases["b_out"])),
    )


def config(model, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    if model.activation_name is None:
        raise ValueError(
            f"this {type(model).__name__} uses a custom activation callable, which cannot be "
            "saved; use a named activation to save it"
        )
    out = {
        "n_in": model.n_in, "n_hidden": model.n_hidden, "n_out": model.n_out,
        "activation": model.activation_name, "dt": model.dt, "noise_std": level_value(model.noise_std),
        "input_noise_std": level_value(model.input_noise_std), "autapses": model.autapses,
        "use_bias": model.use_bias, "trainable": list(model.trainable),
    }
    out.update(extra or {})
    return out


def check_common(n_in, n_hidden, n_out, activation: str | Callable, dt, noise_std,
                 input_noise_std):
    n_in = d._check_size("n_in", n_in)
    n_hidden = d._check_size("n_hidden", n_hidden)
    n_out = d._check_size("n_out", n_out)
    d._check_positive("dt", dt)
    d._check_nonneg("noise_std", noise_std)
    d._check_nonneg("input_noise_std", input_noise_std)
    return n_in, n_hidden, n_out

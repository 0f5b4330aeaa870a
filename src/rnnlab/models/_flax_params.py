"""Flax Linen CT-RNN parameters (ctrnn-jax's ``CTRNNCell`` layout) <-> `CTRNN` weights.

Pure parameter conversion, with no Flax import: `rnnlab.flax` (which needs Flax) and
`CTRNN.from_flax` both use it.

ctrnn-jax's cell (Murray, ``ctrnn_jax.model.CTRNNCell``) is the potential form of the CT-RNN with
three ``Dense`` submodules, kernels stored [in, out] (``y = x @ kernel + bias``)::

    x'  = (1 - alpha) x + alpha (f(x) @ K_rec + b_rec + u @ K_in + noise_const * xi)
    z   = f(x') @ K_out + b_out,     rates = f(x')                 xi ~ N(0, I)

so ``W_rec = K_rec.T``, ``W_in = K_in.T``, ``W_out = K_out.T``, ``b_rec``, ``b_out`` as they
are. Its noise enters the state as ``alpha * noise_const * xi``; rnnlab's as
``sqrt(2 alpha) * noise_std * xi``. The two agree for the same draw xi when

    noise_std = noise_const * sqrt(alpha / 2)        noise_const = noise_std * sqrt(2 / alpha)
"""

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

#: the names of the cell's ``Dense`` submodules (ctrnn-jax's, kept so its parameters load)
RECURRENT, INPUT, OUTPUT = "recurrent_kernel", "input_kernel", "output_kernel"


def noise_std_from_const(noise_const: Any, alpha: Any) -> np.ndarray:
    """rnnlab's ``noise_std`` for ctrnn-jax's ``noise_const`` at ``alpha`` (per unit or scalar):
    ``noise_const * sqrt(alpha / 2)``."""
    return np.asarray(
        np.asarray(noise_const, np.float64) * np.sqrt(np.asarray(alpha, np.float64) / 2.0))


def noise_const_from_std(noise_std: Any, alpha: Any) -> np.ndarray:
    """ctrnn-jax's ``noise_const`` for rnnlab's ``noise_std`` at ``alpha``:
    ``noise_std * sqrt(2 / alpha)``."""
    return np.asarray(
        np.asarray(noise_std, np.float64) * np.sqrt(2.0 / np.asarray(alpha, np.float64)))


def cell_params(params: Mapping) -> Mapping:
    """The cell's own parameter dict inside ``params``: the variables of ``nn.RNN(cell)``
    (``{"params": {"cell": {...}}}``), their ``"params"`` entry, or the cell's dict itself.

    A ``ValueError`` says what was found when no dict holds the three submodules."""
    node = params
    seen = []
    for _ in range(8):
        if not isinstance(node, Mapping):
            break
        keys = set(node)
        if {RECURRENT, INPUT, OUTPUT} <= keys:
            return node
        seen.append(sorted(map(str, keys)))
        if len(node) == 1:
            node = next(iter(node.values()))
        elif "params" in node:
            node = node["params"]
        else:
            break
    raise ValueError(
        f"params must hold ctrnn-jax's CTRNNCell parameters ({RECURRENT!r}, {INPUT!r}, "
        f"{OUTPUT!r}, each with a 'kernel'), as `nn.RNN(CTRNNCell(...)).init(...)` returns them "
        f"or their 'params' entry; found the keys {seen}"
    )


def _array(node: Mapping, module: str, name: str, ndim: int) -> np.ndarray:
    try:
        value = node[module][name]
    except (KeyError, TypeError):
        raise ValueError(f"params[{module!r}] has no {name!r} entry") from None
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != ndim:
        raise ValueError(
            f"params[{module!r}][{name!r}] must be {ndim}-D, got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"params[{module!r}][{name!r}] contains NaN or inf")
    return arr


def weights_from_flax(params: Mapping) -> dict[str, np.ndarray]:
    """rnnlab's weights (``w_rec`` [N, N], ``w_in`` [N, n_in], ``w_out`` [n_out, N], ``b_rec``,
    ``b_out``; float64) from a CTRNNCell's parameters."""
    node = cell_params(params)
    k_rec = _array(node, RECURRENT, "kernel", 2)
    k_in = _array(node, INPUT, "kernel", 2)
    k_out = _array(node, OUTPUT, "kernel", 2)
    n = k_rec.shape[1]
    if k_rec.shape != (n, n):
        raise ValueError(f"params[{RECURRENT!r}]['kernel'] must be square, got {k_rec.shape}")
    if k_in.shape[1] != n:
        raise ValueError(
            f"params[{INPUT!r}]['kernel'] must have shape (n_in, {n}), got {k_in.shape}"
        )
    if k_out.shape[0] != n:
        raise ValueError(
            f"params[{OUTPUT!r}]['kernel'] must have shape ({n}, n_out), got {k_out.shape}"
        )
    if "bias" in node.get(INPUT, {}) and np.any(np.asarray(node[INPUT]["bias"]) != 0):
        raise ValueError(
            f"params[{INPUT!r}] has a non-zero 'bias'; ctrnn-jax's input layer has none "
            f"(fold it into params[{RECURRENT!r}]['bias'])"
        )
    b_rec = (_array(node, RECURRENT, "bias", 1) if "bias" in node[RECURRENT]
             else np.zeros(n))
    b_out = (_array(node, OUTPUT, "bias", 1) if "bias" in node[OUTPUT]
             else np.zeros(k_out.shape[1]))
    if b_rec.shape != (n,) or b_out.shape != (k_out.shape[1],):
        raise ValueError(
            f"the biases must have shapes ({n},) and ({k_out.shape[1]},), got {b_rec.shape} "
            f"and {b_out.shape}"
        )
    return {"w_rec": k_rec.T, "w_in": k_in.T, "w_out": k_out.T, "b_rec": b_rec, "b_out": b_out}


def flax_from_weights(weights: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    """A CTRNNCell's parameter dict (float32 numpy) from rnnlab's effective weights."""
    f32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    return {
        RECURRENT: {"kernel": f32(weights["w_rec"]).T.copy(), "bias": f32(weights["b_rec"])},
        INPUT: {"kernel": f32(weights["w_in"]).T.copy()},
        OUTPUT: {"kernel": f32(weights["w_out"]).T.copy(), "bias": f32(weights["b_out"])},
    }


def tau_for_alpha(alpha: Any, dt: float, n_hidden: int) -> np.ndarray:
    """Per-unit float32 time constants whose float32 ``dt / tau`` is ``float32(alpha)`` exactly
    (rnnlab computes ``alpha = dt / tau`` in float32; ``dt / alpha`` rounded can miss by one ulp,
    so the nearest float32 neighbours are tried)."""
    a = np.broadcast_to(np.asarray(alpha, np.float64), (n_hidden,))
    if not np.all(np.isfinite(a)) or np.any(a <= 0) or np.any(a > 1):
        raise ValueError(f"alpha must be in (0, 1] (alpha = dt / tau), got {alpha!r}")
    target = a.astype(np.float32)
    dt32 = np.float32(dt)
    tau = (np.float64(dt) / target.astype(np.float64)).astype(np.float32)
    for i in range(n_hidden):
        best = tau[i]
        for cand in (tau[i], np.nextafter(tau[i], np.float32(np.inf)),
                     np.nextafter(tau[i], np.float32(0)),
                     np.nextafter(np.nextafter(tau[i], np.float32(np.inf)), np.float32(np.inf)),
                     np.nextafter(np.nextafter(tau[i], np.float32(0)), np.float32(0))):
            if cand >= dt32 and dt32 / cand == target[i]:
                best = cand
                break
        tau[i] = best
    return tau


def check_scalar_noise(noise_std: np.ndarray) -> float:
    """A single noise level from per-unit values (they differ only with per-unit alpha)."""
    flat = np.ravel(noise_std)
    if flat.size and not np.allclose(flat, flat[0], rtol=1e-6, atol=0.0):
        raise ValueError(
            "noise_const with a per-unit alpha gives a per-unit rnnlab noise level "
            "(noise_const * sqrt(alpha / 2)), which CTRNN does not have; use one alpha for "
            "every unit or noise_const=0"
        )
    return float(flat[0]) if flat.size else 0.0


def scalar_or_vector(values: np.ndarray) -> float | np.ndarray:
    """A Python float when every entry is the same, else the vector (for tau, alpha)."""
    flat = np.ravel(values)
    return float(flat[0]) if np.all(flat == flat[0]) else flat


def _finite(name: str, value: Any) -> None:
    arr = np.asarray(value, np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")


def ctrnn_kwargs_from_flax(
    params: Mapping,
    *,
    alpha: Any,
    noise_const: Any = 0.0,
    dt: float = 1.0,
    initial_state: Any = None,
) -> dict[str, Any]:
    """The arguments of `CTRNN.from_weights` for a CTRNNCell's parameters and settings:
    weights, ``tau`` (``dt / alpha``, exact in float32), ``noise_std`` (``noise_const * sqrt(alpha
    / 2)``) and ``initial_state`` (ctrnn-jax's carry starts at ones)."""
    weights = weights_from_flax(params)
    n = weights["w_rec"].shape[0]
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive finite number, got {dt!r}")
    _finite("noise_const", noise_const)
    tau = tau_for_alpha(alpha, float(dt), n)
    a = np.broadcast_to(np.asarray(alpha, np.float64), (n,))
    noise_std = check_scalar_noise(noise_std_from_const(noise_const, a))
    h0 = np.ones(n) if initial_state is None else initial_state
    return dict(
        weights, tau=scalar_or_vector(tau.astype(np.float64)), dt=float(dt),
        noise_std=noise_std, initial_state=h0,
    )

"""Connectivity as figures show it: a model's effective weights, the gate blocks of a stacked
recurrent matrix, the excitatory units, and a colour limit centred on 0."""

import math

import numpy as np


def model_weights(model) -> dict[str, np.ndarray]:
    """The effective weights of ``model`` as numpy arrays: ``w_rec`` [N, N] (or [k N, N] for
    gated models), ``w_in`` [N, n_in] ([k N, n_in]), ``w_out`` [n_out, N]."""
    from ..models import AbstractRNN

    if isinstance(model, AbstractRNN):  # part of the model contract
        w = model.effective_weights()
    elif all(hasattr(model, n) for n in ("w_rec", "w_in", "w_out")):
        w = {n: getattr(model, n) for n in ("w_rec", "w_in", "w_out")}
    else:
        raise TypeError(
            f"connectivity needs a model with effective_weights() or w_rec/w_in/w_out "
            f"(e.g. rnnlab.CTRNN), got {type(model).__name__}"
        )
    missing = [k for k in ("w_rec", "w_in", "w_out") if k not in w]
    if missing:  # e.g. a FunctionModel: its dynamics are a user function, not weights
        raise TypeError(
            f"{type(model).__name__} has no {', '.join(missing)} weights to draw "
            f"(its effective_weights() gives {sorted(w) or 'none'}): connectivity needs a "
            "weight-based model such as rnnlab.CTRNN")
    return {k: np.asarray(v) for k, v in w.items() if k in ("w_rec", "w_in", "w_out")}


def recurrent_blocks(w_rec: np.ndarray) -> list[np.ndarray]:
    """The square [N, N] blocks of ``w_rec``: itself for a plain RNN, one block per gate for
    gated models whose ``w_rec`` stacks the gates' matrices ([k N, N], e.g. a GRU's r, z, n)."""
    rows, n = w_rec.shape
    if rows % n:
        raise ValueError(f"w_rec has shape {w_rec.shape}: neither square nor stacked blocks")
    return [w_rec[i * n:(i + 1) * n] for i in range(rows // n)]


def excitatory_count(model) -> int | None:
    """Number of excitatory units (the first ones) when the model obeys Dale's law, else None."""
    if getattr(model, "dale", False):
        return int(model.n_excitatory)
    return None


def symmetric_limit(*arrays, quantile: float = 1.0) -> float:
    """max |a| over arrays (or its ``quantile``): a colour limit centred on 0; 1.0 when there
    is no positive finite value."""
    vals = [np.abs(np.asarray(a)).ravel() for a in arrays if np.size(a)]
    if not vals:
        return 1.0
    v = np.concatenate(vals)
    lim = float(np.quantile(v, quantile)) if quantile < 1 else float(v.max())
    return lim if lim > 0 and math.isfinite(lim) else 1.0

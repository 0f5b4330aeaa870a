"""Trial conditions as figures show them: which condition to colour by, a colour per value,
short text for values and trials, and a few trials spread over a condition's values."""

from typing import Any

import jax
import numpy as np

from ._backends import require_matplotlib


def condition_colors(values: Any) -> tuple[list[str], np.ndarray, list[str]]:
    """Group per-trial condition values and assign each group a colour.

    Args:
        values: [B] scalars or [B, k] vectors (a vector condition, e.g. flip-flop bits, is one
            label per distinct row).

    Returns: (labels of the groups, sorted; [B] group index per trial; colours per group as hex).
    Numeric scalar conditions with 3 or more values get a colormap whose order follows the
    values (diverging when they have both signs, e.g. signed coherence; else sequential);
    vectors and two-valued conditions a categorical palette (sequential beyond 10 groups).
    The colours are matplotlib's colour maps (``coolwarm``, ``viridis``, ``tab10``), read as
    data: the report's plotly figures use the same hex values.
    """
    require_matplotlib()
    import matplotlib as mpl

    arr = np.asarray(values)
    if arr.ndim == 0:
        arr = arr[None]
    if arr.ndim == 1:
        keys = [_scalar(v) for v in arr]
    else:
        keys = [tuple(_scalar(v) for v in row.ravel()) for row in arr]
    labels = sorted(set(keys), key=_sort_key)
    index = np.array([labels.index(k) for k in keys], dtype=int)
    n = len(labels)
    numeric = all(isinstance(k, (int, float)) for k in labels)
    if numeric and n >= 3:
        # ordered values (coherence, frequency): colour order follows value order; a diverging
        # map when the values have both signs (signed coherence), sequential otherwise
        diverging = labels[0] < 0 < labels[-1]
        cmap = mpl.colormaps["coolwarm" if diverging else "viridis"]
        colors = [mpl.colors.to_hex(cmap(0.05 + 0.9 * i / max(n - 1, 1))) for i in range(n)]
        if diverging and 0 in labels:  # the map's pale centre would vanish on white
            colors[labels.index(0)] = "#555555"
    elif n <= 10:
        cmap = mpl.colormaps["tab10"]
        colors = [mpl.colors.to_hex(cmap(i)) for i in range(n)]
    else:
        cmap = mpl.colormaps["viridis"]
        colors = [mpl.colors.to_hex(cmap(i / max(n - 1, 1))) for i in range(n)]
    return [format_condition(k) for k in labels], index, colors


def _scalar(v):
    v = np.asarray(v).item()
    if isinstance(v, float) and v.is_integer():
        return int(v) if abs(v) < 2**53 else v
    if isinstance(v, float):
        return round(v, 6)
    return v


def _sort_key(k):
    if isinstance(k, tuple):
        return tuple(_sort_key(x) for x in k)
    return (0, k) if isinstance(k, (int, float)) else (1, str(k))


def format_condition(value: Any) -> str:
    """Short text for a condition value: 12.8, 'choice 1', '+-+' for a ±1 vector ('0' for 0)."""
    if isinstance(value, tuple):
        if value and all(v in (1, -1, 0) for v in value):  # flip-flop bits; 0: never set
            return "".join("+" if v > 0 else "-" if v < 0 else "0" for v in value)
        return "(" + ", ".join(format_condition(v) for v in value) + ")"
    if isinstance(value, float):
        return f"{value + 0.0:g}"  # + 0.0: no "-0"
    return str(value)


def primary_condition(conditions: dict[str, Any]) -> str | None:
    """The condition most worth colouring trajectories by.

    Preference: ``signed_coherence``, ``final_bits``, ``frequency``, ``context``, ``choice``,
    then the first condition with between 2 and 40 distinct values.
    """
    for name in ("signed_coherence", "final_bits", "frequency", "context", "choice"):
        if name in conditions:
            return name
    for name, v in conditions.items():
        arr = np.asarray(v)
        if arr.ndim >= 1 and 2 <= len({tuple(np.ravel(r)) for r in arr}) <= 40:
            return name
    return None


def describe_trial(conditions: dict[str, np.ndarray], i: int, limit: int = 2) -> str:
    """Trial ``i``'s conditions as short text (at most ``limit`` of them), the task's main
    condition first, e.g. ``"signed_coherence -12.8, choice 1"``."""
    parts = []
    first = primary_condition(conditions)
    names = ([first] if first else []) + [k for k in conditions if k != first]
    for name in names:
        v = conditions[name]
        val = np.asarray(v)[i]
        if val.ndim == 0:
            parts.append(f"{name} {format_condition(val.item())}")
        elif val.size <= 8:
            parts.append(f"{name} {format_condition(tuple(np.round(val, 6).tolist()))}")
        if len(parts) == limit:
            break
    return ", ".join(parts)


def sample_trials(task, *, key, n_trials: int, condition: str | None = None):
    """``n_trials`` trials of ``task``, spread over the values of ``condition`` when possible.

    Samples ``max(8 * n_trials, 64)`` trials from ``key`` and keeps the first trial of each
    distinct condition value (in sorted order of value, evenly spaced), padding with others.
    ``condition`` defaults to the task's main condition (`primary_condition`).
    Returns a batched `Trial`.
    """
    pool = task.sample_batch(key, max(8 * n_trials, 64))
    conds = {k: np.asarray(v) for k, v in pool.conditions.items()}
    name = condition if condition is not None else primary_condition(conds)
    if name is None or name not in conds:
        if condition is not None:
            raise ValueError(
                f"condition={condition!r} is not a condition of this task; it has "
                f"{sorted(conds)}"
            )
        picked = list(range(n_trials))
    else:
        values = conds[name].reshape(conds[name].shape[0], -1)
        first: dict[tuple, int] = {}
        for i, row in enumerate(values):
            first.setdefault(tuple(np.round(row, 6)), i)
        distinct = [first[k] for k in sorted(first)]
        if len(distinct) >= n_trials:
            sel = np.linspace(0, len(distinct) - 1, n_trials).round().astype(int)
            picked = [distinct[i] for i in sel]
        else:
            rest = [i for i in range(len(values)) if i not in distinct]
            picked = distinct + rest[: n_trials - len(distinct)]
    idx = np.asarray(picked)
    return jax.tree.map(lambda a: a[idx], pool)

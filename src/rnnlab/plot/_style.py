"""Shared look of rnnlab figures: lazy matplotlib import, a paper style, colours, helpers."""

import contextlib
import math
from typing import Any

import numpy as np

VIZ_HINT = "install the plotting extra: pip install 'rnnlab[viz]'"

# Point class -> colour: fixed points (roots) by the stability of the system that runs, and
# slow points (not roots) as their own class. One palette for every figure and the HTML report.
STABILITY_COLORS: dict[str, str] = {
    "stable": "#1f3b73",  # dark blue, filled marker
    "saddle": "#d62728",  # red, hollow marker with its unstable directions
    "unstable": "#ff7f0e",  # orange, a cross
    "marginal": "#7f7f7f",  # grey, hollow diamond
    "slow": "#a6a6a6",  # light grey, small dot: a slow point is no fixed point
}
STABILITY_ORDER = ("stable", "saddle", "unstable", "marginal", "slow")
FIXED_POINT_KINDS = STABILITY_ORDER[:4]

# matplotlib marker per label (saddles and marginal points are drawn hollow).
STABILITY_MARKERS: dict[str, str] = {
    "stable": "o",
    "saddle": "o",
    "unstable": "X",
    "marginal": "D",
    "slow": ".",
}
HOLLOW = frozenset({"saddle", "marginal"})
# scatter sizes (points^2) in the state space; slow points small, drawn beneath
STABILITY_SIZES: dict[str, float] = {
    "stable": 70, "saddle": 70, "unstable": 80, "marginal": 70, "slow": 14,
}
SLOW_POINT_LABEL = "slow point (|F| < tol)"


def point_label(kind: str, count: int | None = None) -> str:
    """Legend text of a class of points: ``"fixed point: stable (8)"``,
    ``"slow point (|F| < tol) (1126)"``; other labels (``"unsettled"``) as they are."""
    if kind == "slow":
        text = SLOW_POINT_LABEL
    elif kind in FIXED_POINT_KINDS:
        text = f"fixed point: {kind}"
    else:
        text = str(kind)
    return text if count is None else f"{text} ({count})"


def stability_view_text(fp) -> str:
    """Which system the stability labels of ``fp`` describe, with its criterion, e.g.
    ``"Euler map, dt=10 ms: stable iff |1 + dt λ| < 1"``, ``"ODE: stable iff Re λ < 0"`` or
    ``"map: stable iff |λ| < 1"``."""
    continuous = bool(getattr(fp, "is_continuous", False))
    dt = getattr(fp, "dt", None) if continuous else None
    if not continuous:
        return "map: stable iff |λ| < 1"
    if dt is None:
        return "ODE: stable iff Re λ < 0"
    return f"Euler map, dt={float(dt):g} ms: stable iff |1 + dt λ| < 1"


_RC = {
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "lines.linewidth": 1.4,
    "svg.fonttype": "none",
}


def require_matplotlib():
    """Import matplotlib (Agg-safe) or raise ImportError naming the `rnnlab[viz]` extra."""
    try:
        import matplotlib
        import matplotlib.pyplot  # noqa: F401
    except ImportError as e:  # pragma: no cover - exercised only without matplotlib
        raise ImportError(f"rnnlab.plot needs matplotlib, which is not installed; {VIZ_HINT}") from e
    return matplotlib


def require_plotly():
    """Import plotly or raise ImportError naming the `rnnlab[viz]` extra."""
    try:
        import plotly
        import plotly.graph_objects  # noqa: F401
    except ImportError as e:  # pragma: no cover - exercised only without plotly
        raise ImportError(f"the HTML report needs plotly, which is not installed; {VIZ_HINT}") from e
    return plotly


@contextlib.contextmanager
def paper_style():
    """rcParams for figures that look right in a paper without user styling."""
    mpl = require_matplotlib()
    with mpl.rc_context(_RC):
        yield


def new_figure(nrows=1, ncols=1, *, figsize=None, **kwargs):
    """A pyplot Figure (so ``plt.show()`` shows it) and a 2-D array of its axes."""
    require_matplotlib()
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, axes


def condition_colors(values: Any) -> tuple[list[str], np.ndarray, list[Any]]:
    """Group per-trial condition values and assign each group a colour.

    Args:
        values: [B] scalars or [B, k] vectors (a vector condition, e.g. flip-flop bits, is one
            label per distinct row).

    Returns: (labels of the groups, sorted; [B] group index per trial; colours per group as hex).
    Numeric scalar conditions with 3 or more values get a colormap whose order follows the
    values (diverging when they have both signs, e.g. signed coherence; else sequential);
    vectors and two-valued conditions a categorical palette (sequential beyond 10 groups).
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

    Preference: ``signed_coherence``, ``final_bits``, ``frequency``, then the first condition
    with between 2 and 40 distinct values.
    """
    for name in ("signed_coherence", "final_bits", "frequency", "context", "choice"):
        if name in conditions:
            return name
    for name, v in conditions.items():
        arr = np.asarray(v)
        if arr.ndim >= 1 and 2 <= len({tuple(np.ravel(r)) for r in arr}) <= 40:
            return name
    return None


def symmetric_limit(*arrays, quantile: float = 1.0) -> float:
    """max |a| over arrays (a colour limit centred on 0), at least a tiny positive number."""
    vals = [np.abs(np.asarray(a)).ravel() for a in arrays if np.size(a)]
    if not vals:
        return 1.0
    v = np.concatenate(vals)
    lim = float(np.quantile(v, quantile)) if quantile < 1 else float(v.max())
    return lim if lim > 0 and math.isfinite(lim) else 1.0


def as_numpy(x) -> np.ndarray:
    return np.asarray(x)

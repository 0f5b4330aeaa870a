"""How each class of point looks, in every figure and in the report: colour, marker (matplotlib
and plotly), fill, size and legend text, one table per stability class."""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class StabilityStyle:
    """The look of one class of points.

    Attributes: ``color`` (hex); ``marker`` (matplotlib marker); ``symbol_3d`` and
    ``symbol_2d`` (plotly marker symbols in 3-D and 2-D scenes); ``hollow`` (drawn with a
    white face, in both backends: plotly's ``-open`` symbols); ``size`` (matplotlib scatter
    area in points^2 in the state space); ``small`` (drawn small and beneath the others: slow
    points); ``label`` (legend text without a count).
    """

    color: str
    marker: str
    symbol_3d: str
    symbol_2d: str
    hollow: bool
    size: float
    small: bool
    label: str


# Point class -> look: fixed points (roots) by the stability of the system that runs, and
# slow points (not roots) as their own class. One table for every figure and the HTML report.
STABILITY_STYLES: dict[str, StabilityStyle] = {
    # dark blue, filled circle
    "stable": StabilityStyle("#1f3b73", "o", "circle", "circle", False, 70, False,
                             "fixed point: stable"),
    # red, hollow circle (drawn with its unstable directions)
    "saddle": StabilityStyle("#d62728", "o", "circle-open", "circle-open", True, 70, False,
                             "fixed point: saddle"),
    # orange, a cross
    "unstable": StabilityStyle("#ff7f0e", "X", "x", "x-thin-open", False, 80, False,
                               "fixed point: unstable"),
    # grey, hollow diamond
    "marginal": StabilityStyle("#7f7f7f", "D", "diamond-open", "diamond-open", True, 70, False,
                               "fixed point: marginal"),
    # light grey, small dot: a slow point is no fixed point
    "slow": StabilityStyle("#a6a6a6", ".", "circle", "circle", False, 14, True,
                           "slow point (|F| < tol)"),
}
# The look of a label outside the table (a topology graph's "unsettled" node, ...).
OTHER_STYLE = StabilityStyle("#000000", "s", "square", "square", False, 70, False, "")

STABILITY_ORDER: tuple[str, ...] = ("stable", "saddle", "unstable", "marginal", "slow")
FIXED_POINT_KINDS: tuple[str, ...] = STABILITY_ORDER[:4]
STABILITY_COLORS: dict[str, str] = {k: s.color for k, s in STABILITY_STYLES.items()}
SLOW_POINT_LABEL = STABILITY_STYLES["slow"].label


def stability_style(kind: str) -> StabilityStyle:
    """The look of points labelled ``kind`` (`OTHER_STYLE`, black squares, for a label outside
    `STABILITY_ORDER`)."""
    return STABILITY_STYLES.get(kind, OTHER_STYLE)


def stability_kinds(labels) -> list[str]:
    """The distinct labels of ``labels`` in drawing order: `STABILITY_ORDER` first, then any
    others sorted."""
    present = set(labels)
    return [k for k in STABILITY_ORDER if k in present] + sorted(present - set(STABILITY_ORDER))


def point_label(kind: str, count: int | None = None) -> str:
    """Legend text of a class of points: ``"fixed point: stable (8)"``,
    ``"slow point (|F| < tol) (1126)"``; other labels (``"unsettled"``) as they are."""
    text = STABILITY_STYLES[kind].label if kind in STABILITY_STYLES else str(kind)
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


def stability_legend_title(fp) -> str:
    """Legend title naming the stability view, e.g. ``"stability (Euler map, dt=10 ms)"``."""
    return f"stability ({stability_view_text(fp).split(':')[0]})"


def euler_boundary(dt: float, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """The curve |1 + dt λ| = 1 in the λ plane (x [n], y [n]): the circle of radius 1/dt
    around -1/dt, the stability boundary of a CT-RNN's Euler map in ODE eigenvalues."""
    theta = np.linspace(0, 2 * np.pi, n)
    return -1.0 / dt + np.cos(theta) / dt, np.sin(theta) / dt

"""Eigenvalue spectra at fixed points, with the stability boundary of the model's kind."""

from collections.abc import Sequence

import numpy as np

from ._project import n_points, stability_labels
from ._style import (
    HOLLOW,
    STABILITY_COLORS,
    STABILITY_MARKERS,
    STABILITY_ORDER,
    new_figure,
    paper_style,
)


def eigenspectra(fixed_points, *, which: Sequence[int] | None = None, ax=None):
    """Eigenvalues of the Jacobian at each fixed point in the complex plane.

    Each fixed point's eigenvalues are coloured and shaped by its stability (as in
    `state_space`). The stability boundary is drawn for the model's kind: the line Re = 0 for
    continuous-time models (eigenvalues of d(dx/dt)/dx, per unit time), the unit circle for
    discrete-time maps (eigenvalues of the map's Jacobian ``d step / dx``).

    Args:
        fixed_points: an `rnnlab.FixedPoints`.
        which: indices of the fixed points to show (default: all).
        ax: draw on this Axes instead of a new figure.

    Returns: the matplotlib Figure.
    """
    n = n_points(fixed_points)
    if n == 0:
        raise ValueError("fixed_points holds no points: nothing to plot")
    idx = list(range(n)) if which is None else [int(i) for i in which]
    if any(i < 0 or i >= n for i in idx):
        raise ValueError(f"which must hold indices in [0, {n}), got {list(which)}")
    lam = np.asarray(fixed_points.eigenvalues)
    continuous = bool(fixed_points.is_continuous)
    labels = stability_labels(fixed_points)
    with paper_style():
        if ax is None:
            fig, axes = new_figure(1, 1, figsize=(3.8, 3.4))
            ax = axes[0, 0]
        else:
            fig = ax.figure
        if continuous:
            ax.axvline(0.0, color="0.3", lw=1.0, ls="--", label="Re λ = 0", gid="boundary")
        else:
            theta = np.linspace(0, 2 * np.pi, 400)
            ax.plot(np.cos(theta), np.sin(theta), color="0.3", lw=1.0, ls="--",
                    label="|λ| = 1", gid="boundary")
        ax.axhline(0.0, color="0.88", lw=0.6, zorder=0)
        for kind in STABILITY_ORDER + tuple(sorted(set(labels) - set(STABILITY_ORDER))):
            sel = [i for i in idx if labels[i] == kind]
            if not sel:
                continue
            vals = lam[sel].ravel()
            color = STABILITY_COLORS.get(kind, "k")
            ax.scatter(vals.real, vals.imag, s=16, marker=STABILITY_MARKERS.get(kind, "s"),
                       facecolors="white" if kind in HOLLOW else color, edgecolors=color,
                       linewidths=0.9, alpha=0.85, zorder=4 if kind == "stable" else 3,
                       gid=f"eigenvalues_{kind}",
                       label=f"{kind} ({len(sel)})")
        if not continuous:
            ax.set_aspect("equal", adjustable="datalim")
        from matplotlib.ticker import MaxNLocator

        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(MaxNLocator(5))
        ax.ticklabel_format(style="sci", scilimits=(-2, 3), useMathText=True)
        ax.set_xlabel(r"Re $\lambda$")
        ax.set_ylabel(r"Im $\lambda$")
        ax.set_title("eigenvalues at fixed points" + (" (continuous time)" if continuous
                                                      else " (map)"))
        ax.legend(loc="best", fontsize=7)
    return fig

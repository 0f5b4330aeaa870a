"""Eigenvalue spectra at fixed points, with the stability boundary of the system that runs."""

from collections.abc import Sequence

import numpy as np

from ..figdata import (
    euler_boundary,
    n_points,
    point_label,
    stability_kinds,
    stability_labels,
    stability_style,
    stability_view_text,
)
from ._style import new_figure, paper_style


def eigenspectra(fixed_points, *, which: Sequence[int] | None = None, ax=None):
    """Eigenvalues of the Jacobian at each fixed point in the complex plane.

    Each point's eigenvalues are coloured and shaped by its stability (as in `state_space`;
    slow points small grey dots). The stability boundary of the system that runs is drawn
    (gid ``"boundary"``): for a continuous-time model with ``dt`` (a CT-RNN simulated as its
    Euler map) the circle ``|1 + dt λ| = 1`` (radius ``1/dt`` around ``-1/dt``) in the plane of
    the ODE eigenvalues λ (per unit time), with the ODE's boundary Re λ = 0 beside it, dotted
    (gid ``"ode_boundary"``); Re λ = 0 for a continuous-time model without ``dt``; the unit
    circle for discrete-time maps (eigenvalues of ``d step / dx``). The axis limits follow the
    eigenvalues (the Euler circle is usually far larger than the spectrum).

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
    dt = getattr(fixed_points, "dt", None) if continuous else None
    labels = stability_labels(fixed_points)
    with paper_style():
        if ax is None:
            fig, axes = new_figure(1, 1, figsize=(3.8, 3.4))
            ax = axes[0, 0]
        else:
            fig = ax.figure
        ax.axhline(0.0, color="0.88", lw=0.6, zorder=0)
        shown = lam[idx].ravel()
        for kind in stability_kinds(labels[i] for i in idx):
            sel = [i for i in idx if labels[i] == kind]
            vals = lam[sel].ravel()
            style = stability_style(kind)
            ax.scatter(vals.real, vals.imag, s=5 if style.small else 16, marker=style.marker,
                       facecolors="white" if style.hollow else style.color,
                       edgecolors=style.color, linewidths=0.4 if style.small else 0.9,
                       alpha=0.6 if style.small else 0.85,
                       zorder=2 if style.small else (4 if kind == "stable" else 3),
                       gid=f"eigenvalues_{kind}", label=point_label(kind, len(sel)))
        if continuous and dt is not None:
            # limits from the eigenvalues (and the origin), not from the circle
            xs = np.concatenate([shown.real, [0.0]])
            ys = np.concatenate([shown.imag, [0.0]])
            span = max(np.ptp(xs), np.ptp(ys), float(np.max(np.abs(shown))), 1e-12)
            pad_x = 0.08 * max(np.ptp(xs), 0.1 * span)
            pad_y = 0.08 * max(np.ptp(ys), 0.1 * span)
            xlim = (xs.min() - pad_x, xs.max() + pad_x)
            ylim = (ys.min() - pad_y, ys.max() + pad_y)
            bx, by = euler_boundary(float(dt))
            ax.plot(bx, by, color="0.3", lw=1.0, ls="--", gid="boundary",
                    label=f"|1 + dt λ| = 1 (Euler map, dt={float(dt):g} ms)")
            ax.axvline(0.0, color="0.55", lw=0.8, ls=":", gid="ode_boundary",
                       label="Re λ = 0 (ODE)")
            ax.set_xlim(*xlim)
            ax.set_ylim(*ylim)
        elif continuous:
            ax.axvline(0.0, color="0.3", lw=1.0, ls="--", label="Re λ = 0 (ODE)", gid="boundary")
        else:
            theta = np.linspace(0, 2 * np.pi, 400)
            ax.plot(np.cos(theta), np.sin(theta), color="0.3", lw=1.0, ls="--",
                    label="|λ| = 1 (map)", gid="boundary")
            ax.set_aspect("equal", adjustable="datalim")
        from matplotlib.ticker import MaxNLocator

        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(MaxNLocator(5))
        ax.ticklabel_format(style="sci", scilimits=(-2, 3), useMathText=True)
        ax.set_xlabel(r"Re $\lambda$")
        ax.set_ylabel(r"Im $\lambda$")
        view = stability_view_text(fixed_points).split(":")[0]
        ax.set_title(f"eigenvalues at fixed points\nstability: {view}", fontsize=9)
        ax.legend(loc="best", fontsize=7)
    return fig

"""State space: trajectories in principal components, fixed points by stability, manifolds."""

from typing import Any

import numpy as np

from ..figdata import (
    SEGMENT_FRACTION,
    condition_colors,
    fit_projection,
    manifold_kind,
    manifold_states,
    n_points,
    point_label,
    primary_condition,
    projected_extent,
    stability_kinds,
    stability_labels,
    stability_legend_title,
    stability_style,
    trajectory_states,
    unstable_segments,
)
from ._style import new_figure, paper_style


def _resolve_conditions(conditions, n_trials):
    """(name, [B] or [B, k] values) from None, an array, or a dict of conditions."""
    if conditions is None:
        return None, None
    if isinstance(conditions, dict):
        name = primary_condition({k: np.asarray(v) for k, v in conditions.items()})
        if name is None:
            return None, None
        return name, np.asarray(conditions[name])
    return None, np.asarray(conditions)


def state_space(
    states: Any,
    *,
    conditions: Any = None,
    fixed_points: Any = None,
    manifolds: Any = None,
    n_components: int = 2,
    pca: Any = None,
    condition_name: str | None = None,
    ax=None,
):
    """Trajectories in the first 2 or 3 principal components, with fixed points and manifolds.

    Trajectories are coloured by condition (one colour per distinct value; a legend names
    them). Fixed points (roots) are marked by the stability of the system that runs (the
    Euler map for a CT-RNN with ``dt``; the legend's title names the view), in the colours of
    ``rnnlab.plot.STABILITY_COLORS``: stable points filled circles, saddles hollow circles with
    each unstable direction drawn as a short segment through the point (half-length 8% of the
    trajectories' extent along a unit eigenvector, so a direction mostly outside the plotted
    plane looks short), unstable points crosses, marginal points hollow diamonds. Slow points
    (not roots) are small grey dots beneath them, legend "slow point (|F| < tol)". Attractor
    manifolds are drawn as grey curves (closed for rings).

    Args:
        states: a `Trajectory` or states [T, N] / [B, T, N].
        conditions: per-trial values [B] or [B, k], or a Trial's ``conditions`` dict (the main
            condition is chosen: ``signed_coherence``, ``final_bits``, ``frequency``, ...).
        fixed_points: an `rnnlab.FixedPoints` (projected into the same PCs).
        manifolds: a list of attractor manifolds (``kind``, ``states`` [M, N]).
        n_components: 2 or 3 (3 makes a 3-D axes).
        pca: a projection to reuse (default: PCA of the pooled trajectory states).
        condition_name: legend title (default: the chosen condition's name).
        ax: draw on this Axes (a 3-D one for ``n_components=3``) instead of a new figure.

    Returns: the matplotlib Figure.
    """
    if n_components not in (2, 3):
        raise ValueError(f"n_components must be 2 or 3, got {n_components!r}")
    traj = trajectory_states(states)
    n_trials = traj.shape[0]
    name, values = _resolve_conditions(conditions, n_trials)
    if values is not None and values.shape[0] != n_trials:
        raise ValueError(
            f"conditions has {values.shape[0]} entries but there are {n_trials} trajectories"
        )
    proj = fit_projection(traj, n_components, pca=pca)
    if fixed_points is not None and np.shape(fixed_points.states)[-1] != traj.shape[-1]:
        raise ValueError(
            f"fixed_points live in {np.shape(fixed_points.states)[-1]} dimensions but the "
            f"trajectories in {traj.shape[-1]}"
        )
    z = proj(traj)  # [B, T, k]
    extent = projected_extent(z)
    with paper_style():
        own = ax is None
        if ax is None:
            subplot_kw = {"projection": "3d"} if n_components == 3 else {}
            fig, axes = new_figure(1, 1, figsize=(4.6, 4.0) if n_components == 2 else (5, 4.6),
                                   subplot_kw=subplot_kw)
            ax = axes[0, 0]
        else:
            fig = ax.figure
            if (n_components == 3) != (getattr(ax, "name", "") == "3d"):
                raise ValueError("ax must be a 3-D Axes exactly when n_components=3")
        cond_handles = _draw_trajectories(ax, z, values)
        if manifolds:
            for m in manifolds:
                pts = proj(manifold_states(m))
                if manifold_kind(m) == "ring" and len(pts) > 2:
                    pts = np.vstack([pts, pts[:1]])
                ax.plot(*pts.T, color="0.35", lw=3.0, alpha=0.55, solid_capstyle="round",
                        zorder=3, gid="manifold", label=None)
        fp_handles = []
        if fixed_points is not None and n_points(fixed_points) > 0:
            fp_handles = _draw_fixed_points(ax, fixed_points, proj, SEGMENT_FRACTION * extent)
        title = name if condition_name is None else condition_name
        if own:
            if cond_handles:
                fig.legend(handles=cond_handles, title=title, loc="outside right upper",
                           fontsize=7, title_fontsize=8)
            if fp_handles:
                fig.legend(handles=fp_handles, title=stability_legend_title(fixed_points),
                           loc="outside right lower", fontsize=7, title_fontsize=8)
        elif cond_handles or fp_handles:
            ax.legend(handles=cond_handles + fp_handles, loc="best", fontsize=7)
        labels = proj.axis_labels()
        ax.set_xlabel(labels[0])
        ax.set_ylabel(labels[1])
        if n_components == 3:
            ax.set_zlabel(labels[2])
        else:
            ax.set_aspect("equal", adjustable="datalim")
        ax.set_title("state space")
    return fig


def _draw_trajectories(ax, z, values) -> list:
    """Draw one line per trial; returns legend handles (one per condition group)."""
    from matplotlib.lines import Line2D

    if values is None:
        for zi in z:
            ax.plot(*zi.T, color="0.45", lw=0.8, alpha=0.8, gid="trajectory")
        return []
    labels, index, colors = condition_colors(values)
    alpha = 0.8 if len(z) <= 16 else max(0.35, 0.8 * np.sqrt(16 / len(z)))
    for zi, g in zip(z, index):
        ax.plot(*zi.T, color=colors[g], lw=0.8, alpha=alpha, gid="trajectory")
        ax.plot(*zi[:1].T, marker=".", ms=3, color=colors[g], ls="none", gid="trajectory_start")
    if len(labels) > 16:
        return []
    return [Line2D([], [], color=c, lw=1.5, label=lab) for lab, c in zip(labels, colors)]


def _draw_fixed_points(ax, fp, proj, half_length) -> list:
    """Draw the fixed points by stability and the slow points; returns legend handles."""
    from matplotlib.lines import Line2D

    labels = stability_labels(fp)
    pts = proj(np.asarray(fp.states))
    present = stability_kinds(labels)
    for kind in present:
        sel = [i for i, lab in enumerate(labels) if lab == kind]
        style = stability_style(kind)
        face = "white" if style.hollow else style.color
        extra = {"depthshade": False} if proj.components.shape[0] == 3 else {}
        ax.scatter(*pts[sel].T, s=style.size, marker=style.marker,
                   facecolors=face, edgecolors=style.color,
                   linewidths=0.4 if style.small else 1.6, zorder=4 if style.small else 6,
                   alpha=0.7 if style.small else 1.0,
                   gid=f"fixed_points_{kind}", label=point_label(kind), **extra)
        if kind == "saddle":
            for i in sel:
                for seg in unstable_segments(fp, i, proj, half_length):
                    ax.plot(*seg.T, color=style.color, lw=1.8, zorder=5,
                            gid="unstable_direction")
    return [
        Line2D([], [], ls="none", marker=stability_style(k).marker,
               ms=4 if stability_style(k).small else 7, mew=1.6,
               mfc="white" if stability_style(k).hollow else stability_style(k).color,
               mec=stability_style(k).color, label=point_label(k, labels.count(k)))
        for k in present
    ]

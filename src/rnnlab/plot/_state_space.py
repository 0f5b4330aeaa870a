"""State space: trajectories in principal components, fixed points by stability, manifolds."""

from typing import Any

import numpy as np

from ..figdata import (
    SEGMENT_FRACTION,
    condition_colors,
    fit_projection,
    format_condition,
    input_groups,
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
    inputs: Any = None,
    value_names: Any = None,
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
    manifolds are drawn as thick grey curves (closed for rings), named in the legend.

    Fixed points of different constant inputs are points of different systems: they are never
    pooled in one panel. With points of several inputs the figure has one panel per input
    (the same trajectories in the same principal components), each titled with its input's
    name and showing only that input's points and manifolds.

    Args:
        states: a `Trajectory` or states [T, N] / [B, T, N].
        conditions: per-trial values [B] or [B, k], or a Trial's ``conditions`` dict (the main
            condition is chosen: ``signed_coherence``, ``final_bits``, ``frequency``, ...).
        fixed_points: an `rnnlab.FixedPoints` (projected into the same PCs).
        manifolds: attractor manifolds (``kind``, ``states`` [M, N], ``indices`` into
            ``fixed_points``), or ``[(input name, manifold), ...]`` as
            `rnnlab.runs.RunAnalysis.manifolds`; each is drawn in its input's panel.
        n_components: 2 or 3 (3 makes a 3-D axes).
        pca: a projection to reuse (default: PCA of the pooled trajectory states).
        condition_name: legend title (default: the chosen condition's name).
        inputs: names of the constant inputs, ``{name: vector}`` or ``[(name, vector), ...]``
            (as `rnnlab.runs.RunAnalysis.inputs`); an input not named is titled by its vector.
        value_names: names of the condition's values in the legend, ``{value: name}`` (e.g.
            ``{0: "motion context", 1: "colour context"}``).
        ax: draw on this Axes (a 3-D one for ``n_components=3``) instead of a new figure;
            then ``fixed_points`` must hold the points of one input.

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
    have_points = fixed_points is not None and n_points(fixed_points) > 0
    groups = input_groups(fixed_points, inputs) if have_points else [("", None)]
    if ax is not None and len(groups) > 1:
        raise ValueError(
            f"fixed_points hold the points of {len(groups)} different inputs "
            f"({', '.join(g for g, _ in groups)}), which belong to different systems: pass "
            "one input's points (e.g. fixed_points[indices]) with ax, or leave ax=None for "
            "one panel per input")
    panels = _manifold_panels(manifolds, groups, fixed_points)
    z = proj(traj)  # [B, T, k]
    extent = projected_extent(z)
    with paper_style():
        own = ax is None
        if ax is None:
            subplot_kw = {"projection": "3d"} if n_components == 3 else {}
            n = len(groups)
            ncols = min(n, 3)
            nrows = -(-n // ncols)
            w, h = (4.6, 4.0) if n_components == 2 else (5, 4.6)
            if n > 1:
                w, h = 3.6 * ncols + 1.6, 3.4 * nrows
            fig, axes = new_figure(nrows, ncols, figsize=(w, h), subplot_kw=subplot_kw)
            axes_list = list(axes.ravel())
            for extra in axes_list[n:]:
                extra.set_visible(False)
        else:
            fig = ax.figure
            if (n_components == 3) != (getattr(ax, "name", "") == "3d"):
                raise ValueError("ax must be a 3-D Axes exactly when n_components=3")
            axes_list = [ax]
        labels = proj.axis_labels()
        cond_handles, fp_handles, man_handles = [], [], {}
        counts: dict[str, int] = {}
        for a, (gname, members), mans in zip(axes_list, groups, panels):
            cond_handles = _draw_trajectories(a, z, values, value_names)
            for m in mans:
                pts = proj(manifold_states(m))
                kind = manifold_kind(m)
                if kind == "ring" and len(pts) > 2:
                    pts = np.vstack([pts, pts[:1]])
                a.plot(*pts.T, color="0.35", lw=3.0, alpha=0.55, solid_capstyle="round",
                       zorder=3, gid="manifold", label=None)
                man_handles[kind] = man_handles.get(kind, 0) + 1
            if members is not None:
                part = fixed_points if len(groups) == 1 else fixed_points[members]
                for k, c in _draw_fixed_points(a, part, proj, SEGMENT_FRACTION * extent):
                    counts[k] = counts.get(k, 0) + c
            a.set_xlabel(labels[0])
            a.set_ylabel(labels[1])
            if n_components == 3:
                a.set_zlabel(labels[2])
            else:
                a.set_aspect("equal", adjustable="datalim")
            a.set_title(f"state space: {gname}" if gname else "state space",
                        fontsize=9 if len(groups) > 1 else None)
        if counts:
            fp_handles = _point_handles(counts)
        fp_handles += _manifold_handles(man_handles)
        title = name if condition_name is None else condition_name
        if own:
            if cond_handles:
                fig.legend(handles=cond_handles, title=title, loc="outside right upper",
                           fontsize=7, title_fontsize=8)
            if fp_handles:
                fig.legend(handles=fp_handles,
                           title=stability_legend_title(fixed_points) if counts else None,
                           loc="outside right lower", fontsize=7, title_fontsize=8)
        elif cond_handles or fp_handles:
            ax.legend(handles=cond_handles + fp_handles, loc="best", fontsize=7)
    return fig


def _manifold_panels(manifolds, groups, fixed_points) -> list[list]:
    """The manifolds to draw in each input's panel: a ``(name, manifold)`` pair goes to the
    panel of that name; a manifold with ``indices`` into ``fixed_points`` to the panel of its
    members' input; any other to every panel."""
    out: list[list] = [[] for _ in groups]
    if not manifolds:
        return out
    names = [g for g, _ in groups]
    owner = {}
    for gi, (_, members) in enumerate(groups):
        if members is not None:
            for i in np.asarray(members).reshape(-1):
                owner[int(i)] = gi
    for item in manifolds:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            nm, m = item
            targets = [names.index(nm)] if nm in names else list(range(len(groups)))
        else:
            m = item
            idx = getattr(m, "indices", None)
            first = int(np.asarray(idx).reshape(-1)[0]) if idx is not None and np.size(idx) \
                else None
            targets = [owner[first]] if first in owner else list(range(len(groups)))
        for t in targets:
            out[t].append(m)
    return out


def _manifold_handles(kinds: dict[str, int]) -> list:
    from matplotlib.lines import Line2D

    return [Line2D([], [], color="0.35", lw=3.0, alpha=0.55,
                   label=f"attractor {kind} ({count})") for kind, count in kinds.items()]


def _draw_trajectories(ax, z, values, value_names=None) -> list:
    """Draw one line per trial; returns legend handles (one per condition group), named by
    ``value_names`` (``{value: name}``) where it names a value."""
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
    if value_names:
        named = {format_condition(k): str(v) for k, v in dict(value_names).items()}
        labels = [named.get(lab, lab) for lab in labels]
    return [Line2D([], [], color=c, lw=1.5, label=lab) for lab, c in zip(labels, colors)]


def _draw_fixed_points(ax, fp, proj, half_length) -> list:
    """Draw the fixed points by stability and the slow points; returns ``[(class, count)]``."""
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
    return [(k, labels.count(k)) for k in present]


def _point_handles(counts: dict[str, int]) -> list:
    """Legend handles of the point classes drawn, with their counts over all panels."""
    from matplotlib.lines import Line2D

    return [
        Line2D([], [], ls="none", marker=stability_style(k).marker,
               ms=4 if stability_style(k).small else 7, mew=1.6,
               mfc="white" if stability_style(k).hollow else stability_style(k).color,
               mec=stability_style(k).color, label=point_label(k, c))
        for k in stability_kinds(list(counts)) for c in [counts[k]]
    ]

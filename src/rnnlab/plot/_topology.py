"""The fixed-point topology graph: which fixed point the flow leads to from near each one."""

from typing import Any

import numpy as np

from ..figdata import (
    edge_weight,
    graph_layout,
    node_stability,
    point_label,
    stability_kinds,
    stability_legend_title,
    stability_style,
)
from ._style import new_figure, paper_style

MAX_LABELLED_EDGES = 20


def topology(graph, *, fixed_points: Any = None, ax=None, min_probability: float = 0.0):
    """The fixed-point topology graph (`rnnlab.analysis.topology`).

    Nodes are fixed points, coloured and shaped by the stability of the system that runs (as
    in `state_space`; the legend's title names the view, slow points have their own grey
    marker) and numbered; a directed edge i -> j (i != j) means that trajectories started near i end near
    j; its width (and, with at most 20 edges, a label) is the transition probability.
    Self-transitions are not drawn (the probability of staying is one minus the outgoing ones).
    Nodes sit at the fixed points' first two principal components when ``fixed_points`` is
    given, else on a spring layout.

    Args:
        graph: a ``networkx.DiGraph`` whose nodes are fixed-point indices; node attribute
            ``stability`` and edge attribute ``probability`` (or ``weight``) are used.
        fixed_points: the `FixedPoints` the graph was built from (for positions, labels).
        min_probability: edges below it are not drawn.

    Returns: the matplotlib Figure.
    """
    import networkx as nx

    if not isinstance(graph, nx.DiGraph):
        raise TypeError(f"graph must be a networkx.DiGraph, got {type(graph).__name__}")
    pos, in_pcs = graph_layout(graph, fixed_points)
    with paper_style():
        if ax is None:
            fig, axes = new_figure(1, 1, figsize=(4.2, 3.8))
            ax = axes[0, 0]
        else:
            fig = ax.figure
        edges = [(u, v, edge_weight(d)) for u, v, d in graph.edges(data=True)
                 if u != v and edge_weight(d) > min_probability]
        span = max(np.ptp(np.array(list(pos.values())), axis=0).max(), 1e-12) if pos else 1.0
        for u, v, w in edges:
            ax.annotate(
                "", xy=pos[v], xytext=pos[u], gid="edge",
                arrowprops={"arrowstyle": "-|>", "color": "0.35", "lw": 0.6 + 3.0 * w,
                            "shrinkA": 9, "shrinkB": 9, "mutation_scale": 10,
                            "connectionstyle": "arc3,rad=0.12", "alpha": 0.8},
            )
            if len(edges) > MAX_LABELLED_EDGES:  # widths alone; numbers would overlap
                continue
            mid = (np.asarray(pos[u]) + np.asarray(pos[v])) / 2
            normal = np.array([-(pos[v][1] - pos[u][1]), pos[v][0] - pos[u][0]])
            nrm = np.linalg.norm(normal)
            off = 0.06 * span * normal / nrm if nrm > 0 else 0
            ax.text(*(mid - off), f"{w:.2f}", fontsize=6, color="0.3", ha="center",
                    va="center")
        kinds: dict[str, list] = {}
        for node in graph.nodes:
            kinds.setdefault(node_stability(graph, node, fixed_points), []).append(node)
        for kind in stability_kinds(kinds):
            nodes = kinds[kind]
            style = stability_style(kind)
            xy = np.array([pos[n] for n in nodes])
            ax.scatter(*xy.T, s=60 if style.small else 140,
                       marker="o" if style.small else style.marker,
                       facecolors="white" if style.hollow else style.color,
                       edgecolors=style.color, linewidths=1.6, zorder=4, gid=f"nodes_{kind}",
                       label=point_label(kind, len(nodes)))
            for n, (x, y) in zip(nodes, xy):
                ax.annotate(str(n), (x, y), xytext=(7, 7), textcoords="offset points",
                            fontsize=7, zorder=5)
        ax.margins(0.12)
        if in_pcs:
            ax.set_xlabel("PC1 of fixed points")
            ax.set_ylabel("PC2 of fixed points")
        else:
            ax.set_xticks([])
            ax.set_yticks([])
        ax.set_title("fixed-point topology")
        title = None
        if fixed_points is not None and hasattr(fixed_points, "is_continuous"):
            title = stability_legend_title(fixed_points)
        ax.legend(loc="best", fontsize=7, title=title, title_fontsize=7)
    return fig

"""Where the nodes of the fixed-point topology graph sit, and what its edges and nodes say."""

from typing import Any

import numpy as np

from ._projection import fit_projection, stability_labels


def edge_weight(data: dict) -> float:
    """The transition probability stored on an edge (``probability``, ``weight`` or ``p``;
    1.0 without one)."""
    for k in ("probability", "weight", "p"):
        if k in data:
            return float(data[k])
    return 1.0


def node_stability(graph, node, fixed_points) -> str:
    """The stability label of a graph node: its ``stability`` attribute, else the label of the
    fixed point it indexes, else ``"unknown"``."""
    data = graph.nodes[node]
    if "stability" in data:
        return str(data["stability"])
    if fixed_points is not None and isinstance(node, (int, np.integer)):
        return stability_labels(fixed_points)[int(node)]
    return "unknown"


def graph_layout(graph, fixed_points=None, *, pca: Any = None) -> tuple[dict, bool]:
    """(node -> (x, y), whether the positions are principal components).

    With ``fixed_points``, nodes that are its indices sit at the points' first two principal
    components (so the graph looks like the state space) and other nodes (``"unsettled"``) in
    a column to the right; else a spring layout (networkx, seed 0).
    """
    import networkx as nx

    nodes = list(graph.nodes)
    idx = [n for n in nodes if isinstance(n, (int, np.integer))]
    if fixed_points is not None and idx:
        x = np.asarray(fixed_points.states, float)
        if max(idx) < len(x) and len(x) >= 2:
            z = fit_projection(x, 2, pca=pca)(x)
            if np.ptp(z[:, 1]) < 1e-9 * max(np.ptp(z[:, 0]), 1e-12):
                z[:, 1] = 0.0
            pts = z[idx]
            span = np.ptp(pts, axis=0)
            if span.max() > 0:
                pos = {n: tuple(z[int(n)]) for n in idx}
                others = [n for n in nodes if n not in pos]
                for k, n in enumerate(others):
                    pos[n] = (pts[:, 0].max() + 0.25 * span.max(),
                              pts[:, 1].max() - 0.2 * k * span.max())
                return pos, True
    return nx.spring_layout(graph, seed=0), False

"""Beyond single points: the topology graph (continuous attractor manifolds: `_manifolds`)."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
from jaxtyping import ArrayLike, PRNGKeyArray
from scipy.spatial.distance import cdist

from ..models._base import AbstractRNN
from .._validate import positive_int, positive_number
from ._linear import check_model as _check_model
from ._points import FixedPoints
from ._manifolds import AttractorManifold as AttractorManifold
from ._manifolds import attractor_manifolds as attractor_manifolds

UNSETTLED = "unsettled"


@eqx.filter_jit
def _run_to_end(model, x0, u, n_steps):
    def one(x, uu):
        return jax.lax.fori_loop(0, n_steps, lambda _, s: model.step(s, uu), x)

    return jax.vmap(one)(x0, u)


def topology(
    model: AbstractRNN,
    fixed_points: FixedPoints,
    inputs: ArrayLike | None = None,
    *,
    key: PRNGKeyArray,
    n_starts: int = 64,
    noise_std: Any = 0.1,  # a positive number; positive_number() checks it (its ValueError)
    n_steps: int = 500,
    radius: float | None = None,
) -> nx.DiGraph:
    """Which fixed point the dynamics flow to from the neighbourhood of each fixed point.

    From ``n_starts`` noisy copies (Gaussian, std ``noise_std``) of every point, the noise-free
    model runs ``n_steps`` steps at constant input, and each end state is assigned to the
    nearest fixed point (among those found at the same input) within ``radius`` (default
    ``noise_std``), or to the node ``"unsettled"``. Returns to the start point count (a
    self-loop), so a stable point has a self-loop of probability ~1 and a saddle's edges show
    where its unstable manifold leads (pyrnn's scaffold graph, done right).

    Args:
        model: the network the points belong to.
        fixed_points: a `FixedPoints`.
        inputs: constant input [n_in] for every run; default: each point's own input.
        key: PRNG key for the perturbations.

    Returns: a ``networkx.DiGraph``; node ``i`` (the point's index) has attributes
    ``stability``, ``n_unstable``, ``speed``, ``state``, ``output``, ``input``; edge ``i -> j``
    has ``count`` and ``probability`` (count / n_starts).
    """
    _check_model(model)
    if not isinstance(fixed_points, FixedPoints):
        raise TypeError(f"fixed_points must be a FixedPoints, got {type(fixed_points).__name__}")
    n_starts = positive_int("n_starts", n_starts)
    n_steps = positive_int("n_steps", n_steps)
    noise_std = positive_number("noise_std", noise_std)
    radius = positive_number("radius", noise_std if radius is None else radius)
    k = len(fixed_points)
    states = np.asarray(fixed_points.states)
    point_inputs = np.asarray(fixed_points.inputs)
    # Points of another network would fail deep inside XLA: say so here.
    if states.shape[1] != model.state_size or point_inputs.shape[1] != model.n_in:
        raise ValueError(
            f"fixed_points do not belong to this model: they have states of size "
            f"{states.shape[1]} and inputs of size {point_inputs.shape[1]}, the model "
            f"state_size={model.state_size} and n_in={model.n_in}"
        )
    if inputs is not None:
        u = np.asarray(inputs, np.float64)
        if u.shape != (model.n_in,):
            raise ValueError(f"inputs must have shape ({model.n_in},), got {u.shape}")
        if not np.all(np.isfinite(u)):
            raise ValueError("inputs contains NaN or inf")
        point_inputs = np.broadcast_to(u, (k, model.n_in))
        same_input = np.ones((k, k), bool)
    else:
        same_input = np.all(point_inputs[:, None, :] == point_inputs[None, :, :], axis=-1)

    graph = nx.DiGraph()
    for i in range(k):
        graph.add_node(
            i,
            stability=fixed_points.stability[i],
            n_unstable=int(np.asarray(fixed_points.n_unstable)[i]),
            speed=float(np.asarray(fixed_points.speeds)[i]),
            state=states[i].tolist(),
            output=np.asarray(fixed_points.outputs)[i].tolist(),
            input=point_inputs[i].tolist(),
        )
    if k == 0:
        return graph
    x0 = np.repeat(states, n_starts, axis=0)
    noise = np.asarray(jax.random.normal(key, x0.shape)) * noise_std
    u_all = np.repeat(point_inputs, n_starts, axis=0)
    ends = np.asarray(
        _run_to_end(model, jax.device_put(np.asarray(x0 + noise, np.float32)),
                    jax.device_put(np.asarray(u_all, np.float32)),
                    int(n_steps)),
        np.float64,
    )
    d = cdist(ends, states)
    src = np.repeat(np.arange(k), n_starts)
    d[~same_input[src]] = np.inf
    nearest = np.argmin(d, axis=1)
    settled = d[np.arange(d.shape[0]), nearest] <= radius
    for i in range(k):
        rows = src == i
        targets = [int(t) if s else UNSETTLED for t, s in zip(nearest[rows], settled[rows])]
        for t, c in sorted(
            ((t, targets.count(t)) for t in set(targets)), key=lambda tc: str(tc[0])
        ):
            if t == UNSETTLED and UNSETTLED not in graph:
                graph.add_node(UNSETTLED, stability=UNSETTLED)
            graph.add_edge(i, t, count=int(c), probability=c / n_starts)
    return graph



def root_topology(model: AbstractRNN, fixed_points: FixedPoints, *, key: PRNGKeyArray,
                  **kwargs) -> nx.DiGraph:
    """`topology` among the roots (converged points) of ``fixed_points`` only, its nodes
    numbered by their indices in ``fixed_points``: the flow settles at roots, not at slow
    points (of which a ``slow_tol`` search can keep thousands)."""
    roots = np.nonzero(np.asarray(fixed_points.converged))[0]
    graph = topology(model, fixed_points[roots], key=key, **kwargs)
    return nx.relabel_nodes(graph, {j: int(i) for j, i in enumerate(roots)})

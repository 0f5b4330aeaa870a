"""Beyond single points: the topology graph and continuous attractor manifolds."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
from jaxtyping import ArrayLike, PRNGKeyArray
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree, shortest_path
from scipy.spatial.distance import cdist

from ..models._base import AbstractRNN
from ._fixed_points import FixedPoints, _check_model

UNSETTLED = "unsettled"


def _positive_number(name, value) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


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
    noise_std: float = 0.1,
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
    for name, v in (("n_starts", n_starts), ("n_steps", n_steps)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    noise_std = _positive_number("noise_std", noise_std)
    radius = _positive_number("radius", noise_std if radius is None else radius)
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
        _run_to_end(model, jnp.asarray(x0 + noise, jnp.float32), jnp.asarray(u_all, jnp.float32),
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


# --------------------------------------------------------------------------------- manifolds


@dataclasses.dataclass(frozen=True)
class AttractorManifold:
    """A continuous attractor (or candidate) made of slow/fixed points.

    Fields:
        kind: ``"line"`` (open curve), ``"ring"`` (closed curve) or ``"surface"`` (dimension >= 2).
        dimension: estimated intrinsic dimension.
        states: [M, N] the member points, ordered along the curve (for surfaces: by the first
            principal component).
        indices: [M] the members' indices in the input points, in the same order.
        length: curve length along the ordering (a ring includes the closing segment); for a
            surface, its diameter (largest distance between members).
        speeds: [M] speeds of the members (NaN when plain states were given).
        tangent_eigenvalues: [M] (curves) for each member, the eigenvalue whose right
            eigenvector is most aligned with the local tangent (NaN without Jacobians).
        tangent_alignment: [M] |cos| of the angle between that eigenvector and the tangent.
        near_zero_tangent: whether the median |tangent eigenvalue| is below ``zero_tol`` times
            the median spectral scale (max |eigenvalue|) of the members: the flow along the
            manifold is (nearly) zero, as a continuous attractor requires.
    """

    kind: str
    dimension: int
    states: np.ndarray
    indices: np.ndarray
    length: float
    speeds: np.ndarray
    tangent_eigenvalues: np.ndarray
    tangent_alignment: np.ndarray
    near_zero_tangent: bool


def _local_dimension(x: np.ndarray, n_neighbours: int, variance: float) -> int:
    """Median over points of the number of local principal components that explain
    ``variance`` of the neighbourhood's variance."""
    m = x.shape[0]
    kn = min(n_neighbours, m - 1)
    d = cdist(x, x)
    dims = []
    for i in range(m):
        nb = np.argsort(d[i])[: kn + 1]
        y = x[nb] - x[nb].mean(axis=0)
        s = np.linalg.svd(y, compute_uv=False) ** 2
        if s.sum() <= 0:
            continue
        dims.append(int(np.searchsorted(np.cumsum(s) / s.sum(), variance) + 1))
    return int(np.median(dims)) if dims else 0


def _order_curve(x: np.ndarray) -> tuple[np.ndarray, bool, float]:
    """Order the points of a 1-D cloud along its curve: the longest path of the minimum
    spanning tree, other points placed at their nearest path point. Closed (a ring) when the
    two ends are as close as typical neighbours."""
    d = cdist(x, x)
    mst = minimum_spanning_tree(d).toarray()
    mst = np.maximum(mst, mst.T)
    dist_a = shortest_path(mst, directed=False, indices=0)
    a = int(np.argmax(dist_a))
    dist_b, pred = shortest_path(mst, directed=False, indices=a, return_predecessors=True)
    b = int(np.argmax(dist_b))
    path = [b]
    while path[-1] != a:
        path.append(int(pred[path[-1]]))
    path = np.asarray(path[::-1])
    pos = np.full(x.shape[0], np.inf)
    pos[path] = dist_b[path]
    rest = np.setdiff1d(np.arange(x.shape[0]), path)
    if rest.size:
        near = path[np.argmin(d[np.ix_(rest, path)], axis=1)]
        pos[rest] = dist_b[near] + 1e-9 * np.arange(1, rest.size + 1)
    order = np.argsort(pos, kind="stable")
    steps = np.linalg.norm(np.diff(x[order], axis=0), axis=1)
    typical = np.median(mst[mst > 0]) if np.any(mst > 0) else 0.0
    gap = float(np.linalg.norm(x[order[-1]] - x[order[0]]))
    span = float(steps.sum())
    closed = x.shape[0] >= 6 and gap <= 3.0 * max(typical, np.max(steps) if steps.size else 0) and (
        span > 3.0 * gap
    )
    return order, bool(closed), gap


def attractor_manifolds(
    points: FixedPoints | ArrayLike,
    *,
    link_distance: float | None = None,
    min_points: int = 8,
    n_neighbours: int = 8,
    variance: float = 0.9,
    zero_tol: float = 0.05,
) -> list[AttractorManifold]:
    """Find continuous attractors among slow points.

    Points are linked when closer than ``link_distance`` (default: 3 x the median
    nearest-neighbour distance); each connected group of at least ``min_points`` points is a
    manifold. Its dimension is the median local PCA dimension (``n_neighbours`` neighbours,
    ``variance`` explained). Curves are ordered along the longest path of their minimum
    spanning tree and called a ``ring`` when the two ends meet, else a ``line``. A group must
    be dense (its diameter at least 4 x its median neighbour spacing) and, with a `FixedPoints`
    (Jacobians available), most members must have a slow mode (smallest |eigenvalue| at most
    ``zero_tol`` x the largest, growth rates mu - 1 for maps); then each member's eigenvalue
    along the tangent is measured.

    Args:
        points: a `FixedPoints` (typically from a loose ``slow_tol``) or states [K, N].

    Returns: a list of `AttractorManifold`, largest first.
    """
    if isinstance(points, FixedPoints):
        x = np.asarray(points.states, np.float64)
        speeds = np.asarray(points.speeds)
        vals = np.asarray(points.eigenvalues)
        vecs = np.asarray(points.right_eigenvectors)
        if not points.is_continuous:  # map eigenvalues -> growth rates (mu - 1)
            vals = vals - 1.0
    else:
        x = np.asarray(points, np.float64)
        if x.ndim != 2:
            raise ValueError(f"points must be a FixedPoints or states [K, N], got {x.shape}")
        speeds = np.full(x.shape[0], np.nan)
        vals = vecs = None
    if isinstance(min_points, bool) or not isinstance(min_points, (int, np.integer)) or (
        min_points < 3
    ):
        raise ValueError(f"min_points must be an integer >= 3, got {min_points!r}")
    if not (0 < variance <= 1):
        raise ValueError(f"variance must be in (0, 1], got {variance!r}")
    if x.shape[0] < min_points:
        return []
    d = cdist(x, x)
    np.fill_diagonal(d, np.inf)
    if link_distance is None:
        link_distance = 3.0 * float(np.median(d.min(axis=1)))
    if not (np.isfinite(link_distance) and link_distance > 0):
        raise ValueError(f"link_distance must be a positive number, got {link_distance!r}")
    n_comp, labels = connected_components(d <= link_distance, directed=False)
    out = []
    for c in range(n_comp):
        members = np.nonzero(labels == c)[0]
        if members.size < min_points:
            continue
        xm = x[members]
        dm = cdist(xm, xm)
        np.fill_diagonal(dm, np.inf)
        spacing = float(np.median(dm.min(axis=1)))
        np.fill_diagonal(dm, 0.0)
        if dm.max() < 4.0 * spacing:
            continue  # a small cluster of isolated points, not a dense manifold
        if vals is not None:
            # A continuous attractor has a (nearly) zero mode at its points: skip groups whose
            # members mostly have none (e.g. the isolated corners and saddles of a flip-flop).
            mags = np.abs(vals[members])
            slow_mode = mags.min(axis=1) <= zero_tol * np.maximum(mags.max(axis=1), 1e-300)
            if np.mean(slow_mode) < 0.5:
                continue
        dim = _local_dimension(xm, n_neighbours, variance)
        if dim <= 1:
            order, closed, gap = _order_curve(xm)
            kind = "ring" if closed else "line"
            steps = np.linalg.norm(np.diff(xm[order], axis=0), axis=1)
            length = float(steps.sum() + (gap if closed else 0.0))
            dim = 1
        else:
            centred = xm - xm.mean(axis=0)
            pc1 = np.linalg.svd(centred, full_matrices=False)[2][0]
            order = np.argsort(centred @ pc1)
            kind = "surface"
            length = float(np.max(cdist(xm, xm)))
        idx = members[order]
        tang_vals = np.full(idx.size, np.nan, complex)
        align = np.full(idx.size, np.nan)
        near_zero = False
        if vals is not None and dim == 1:
            xs = x[idx]
            nxt = np.roll(xs, -1, axis=0)
            prv = np.roll(xs, 1, axis=0)
            if kind == "line":
                nxt[-1], prv[0] = xs[-1], xs[0]
            tang = nxt - prv
            tang /= np.maximum(np.linalg.norm(tang, axis=1, keepdims=True), 1e-300)
            for j, p in enumerate(idx):
                v = vecs[p]
                cos = np.abs(tang[j] @ v) / np.maximum(np.linalg.norm(v, axis=0), 1e-300)
                best = int(np.argmax(cos))
                tang_vals[j] = vals[p][best]
                align[j] = cos[best]
            scale = np.median(np.max(np.abs(vals[idx]), axis=1))
            near_zero = bool(np.median(np.abs(tang_vals)) <= zero_tol * max(scale, 1e-300))
        out.append(AttractorManifold(
            kind=kind, dimension=int(dim), states=x[idx], indices=idx, length=length,
            speeds=speeds[idx], tangent_eigenvalues=tang_vals, tangent_alignment=align,
            near_zero_tangent=near_zero,
        ))
    out.sort(key=lambda m: -m.states.shape[0])
    return out

"""Continuous attractors among slow points: linking, dimension, ordering and length.

Slow points found from trajectory samples are spread very unevenly along a line or ring
attractor (dense where trajectories linger, sparse elsewhere, often in clumps), and lie off it
by an amount set by the speed tolerance. Every scale used here is therefore local or estimated
from the data:

- linking: continuous k-nearest neighbours (CkNN, Berry & Sauer 2019), two points are linked
  when ``|x_i - x_j| <= link_factor * sqrt(r_i r_j)`` with ``r_i`` the distance from ``x_i`` to
  its ``n_neighbours``-th nearest neighbour. The threshold follows the local sampling density:
  two curves further apart than their own sampling scale stay apart, and an isolated point at
  distance D from a curve joins it only when D is below about ``link_factor^2 * r`` (r of the
  curve there, about 4 to 8 of its local spacings);
- joining: where the symmetric rule cuts a curve (an abrupt change of density, a chance gap
  in a sparse stretch, clumps), groups that *continue each other* are joined: they meet
  within twice that reach of the sparser side, by a step along both groups' tangents;
  groups that meet sideways (parallel curves, isolated points beside a curve) stay apart;
- dimension and off-manifold spread: local PCA in balls of radius ``local_scale`` x the
  group's diameter (at least the ``n_neighbours``-th neighbour distance), far larger than the
  spacing in dense regions, so that jitter there is not mistaken for extra dimensions;
- length: the ordered points are grouped into consecutive pieces at least ``6 x spread`` long
  and the length is that of the polygon through the pieces' centroids (and, for a line, its two
  end points), so the jitter does not add to the length.
"""

import dataclasses

import numpy as np
from jaxtyping import ArrayLike
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree, shortest_path
from scipy.spatial.distance import cdist

from .._blas import single_blas_thread
from .._validate import integer, positive_number
from ._points import FixedPoints


@dataclasses.dataclass(frozen=True)
class AttractorManifold:
    """A continuous attractor (or candidate) made of slow/fixed points.

    Fields:
        kind: ``"line"`` (open curve), ``"ring"`` (closed curve) or ``"surface"`` (dimension >= 2).
        dimension: estimated intrinsic dimension.
        states: [M, N] the member points, ordered along the curve (for surfaces: by the first
            principal component).
        indices: [M] the members' indices in the input points, in the same order.
        length: arc length along the ordering, from the jitter-averaged curve (a ring includes
            the closing segment); for a surface, its diameter (largest distance between members).
        speeds: [M] speeds of the members (NaN when plain states were given).
        tangent_eigenvalues: [M] (curves) for each member, the eigenvalue whose right
            eigenvector is most aligned with the local tangent (NaN without Jacobians).
        tangent_alignment: [M] |cos| of the angle between that eigenvector and the tangent.
        near_zero_tangent: whether the median |tangent eigenvalue| is below ``zero_tol`` times
            the median spectral scale (max |eigenvalue|) of the members: the flow along the
            manifold is (nearly) zero, as a continuous attractor requires.
        spread: estimated root-mean-square distance of the members from the manifold (the
            off-manifold jitter), in state units.
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
    spread: float = 0.0


def _neighbour_radius(d: np.ndarray, k: int) -> np.ndarray:
    """Distance from each point to its k-th nearest *distinct* other point [K] (duplicates
    skipped; the farthest distinct point when there are fewer than k)."""
    dd = np.where(d > 0, d, np.inf)
    k = max(1, min(k, d.shape[0] - 1))
    r = np.partition(dd, k - 1, axis=1)[:, k - 1]
    bad = ~np.isfinite(r)
    if np.any(bad):
        far = np.max(np.where(np.isfinite(dd[bad]), dd[bad], -np.inf), axis=1)
        r[bad] = np.where(np.isfinite(far), far, 0.0)
    return r


def _local_structure(
    x: np.ndarray, d: np.ndarray, r_k: np.ndarray, variance: float, local_scale: float,
    max_eval: int = 64, max_ball: int = 128,
) -> tuple[int, float]:
    """(dimension, spread): the median over (at most ``max_eval``) points of the number of
    principal components explaining ``variance`` of a ball of radius
    ``max(r_k, local_scale * diameter)``, and the root of the median variance left outside
    them (the off-manifold spread). Large balls are thinned evenly by distance rank."""
    m = x.shape[0]
    radius = np.maximum(r_k, local_scale * float(d.max()))
    dims, resid = [], []
    for i in np.unique(np.linspace(0, m - 1, min(m, max_eval)).round().astype(int)):
        ball = np.flatnonzero(d[i] <= radius[i])
        if ball.size > max_ball:
            ball = ball[np.argsort(d[i, ball], kind="stable")]
            ball = ball[np.linspace(0, ball.size - 1, max_ball).round().astype(int)]
        y = x[ball] - x[ball].mean(axis=0)
        ev = np.clip(np.linalg.eigvalsh(y @ y.T)[::-1], 0.0, None)
        total = ev.sum()
        if not total > 0:
            continue
        k = int(np.searchsorted(np.cumsum(ev) / total, variance * (1 - 1e-12)) + 1)
        dims.append(k)
        resid.append(ev[k:].sum() / ball.size)
    if not dims:
        return 0, 0.0
    return int(np.median(dims)), float(np.sqrt(np.median(resid)))


def _longest_tree_path(tree) -> tuple[np.ndarray, np.ndarray]:
    """The longest path of a (spanning) tree by two sweeps: (path nodes, distance of every node
    from the path's first node)."""
    dist0 = shortest_path(tree, directed=False, indices=0)
    a = int(np.argmax(np.where(np.isfinite(dist0), dist0, -1)))
    dist_a, pred = shortest_path(tree, directed=False, indices=a, return_predecessors=True)
    b = int(np.argmax(np.where(np.isfinite(dist_a), dist_a, -1)))
    path = [b]
    while path[-1] != a:
        path.append(int(pred[path[-1]]))
    return np.asarray(path[::-1]), dist_a



def _pieces(xs: np.ndarray, h: float) -> np.ndarray:
    """Piece index [M] of each point of an ordered curve ``xs`` [M, N]: a new piece starts at
    the first point at least ``h`` from the current piece's first point."""
    piece = np.zeros(xs.shape[0], int)
    start = 0
    for i in range(1, xs.shape[0]):
        if np.linalg.norm(xs[i] - xs[start]) >= h:
            start = i
            piece[i] = piece[i - 1] + 1
        else:
            piece[i] = piece[i - 1]
    return piece

def _order_curve(
    x: np.ndarray, d: np.ndarray, linked: np.ndarray, r_k: np.ndarray, *, link_factor: float,
    local_scale: float, spread: float, n_end: int, min_cos: float = 0.7,
) -> tuple[np.ndarray, bool, float, np.ndarray]:
    """Order a 1-D group along its curve and measure it.

    The order: positions along the longest path of the minimum spanning tree of the linking
    graph plus each member's ``n_end`` nearest neighbours (members off the path are projected
    onto the nearer path segment at their nearest path point). The length:
    consecutive ordered points are grouped into pieces (a new piece starts once a point is
    ``h = 6 * spread`` from the piece's first point, ``h`` at most a tenth of the diameter) and
    the length is that of the polygon through the pieces' centroids (a line adds its first and
    last points, a ring the closing side). Closed (a ring) when the curve continues itself
    across its ends: the closest pair of members of the two end pieces (at least ``n_end``
    points each) within ``2 * link_factor`` x the sparser end's ``r_k`` is a step along the
    tangent at both (|cos| >= ``min_cos``), and the curve is more than three times as long as
    the distance between its ends.

    Returns: (order [M], closed, length, tangent [M, N] unit vectors along the curve).
    """
    m = x.shape[0]
    scale = float(d.max())
    # the links plus each member's n_end nearest neighbours: a tree close to the Euclidean
    # minimum spanning tree, also across the single links that joined groups
    near = np.zeros_like(linked)
    kk = min(n_end, m - 1)
    np.put_along_axis(near, np.argpartition(d, kk, axis=1)[:, : kk + 1], True, axis=1)
    weights = np.where(linked | near | near.T, d + 1e-12 * max(scale, 1e-300), 0.0)
    np.fill_diagonal(weights, 0.0)
    tree = minimum_spanning_tree(csr_matrix(weights))
    path, dist = _longest_tree_path(tree)
    pos = np.full(m, np.inf)
    pos[path] = dist[path]
    rest = np.setdiff1d(np.arange(m), path)
    if rest.size and path.size > 1:
        # project each off-path member onto the nearer of the two path segments at its
        # nearest path point (placing it *at* that point would misorder sparse stretches)
        near = np.argmin(d[np.ix_(rest, path)], axis=1)
        best_t, best_e = np.zeros(rest.size), np.full(rest.size, np.inf)
        for lo, hi in ((near - 1, near), (near, near + 1)):
            ok = (lo >= 0) & (hi < path.size)
            lo, hi = np.clip(lo, 0, path.size - 1), np.clip(hi, 0, path.size - 1)
            xa, xb = x[path[lo]], x[path[hi]]
            seg = xb - xa
            lam = np.clip(np.einsum("ij,ij->i", x[rest] - xa, seg)
                          / np.maximum(np.einsum("ij,ij->i", seg, seg), 1e-300), 0.0, 1.0)
            err = np.linalg.norm(x[rest] - xa - lam[:, None] * seg, axis=1)
            err = np.where(ok, err, np.inf)
            t = dist[path[lo]] + lam * (dist[path[hi]] - dist[path[lo]])
            better = err < best_e
            best_t, best_e = np.where(better, t, best_t), np.where(better, err, best_e)
        pos[rest] = best_t
    elif rest.size:
        pos[rest] = dist[path[0]]
    order = np.lexsort((np.arange(m), pos))

    h = min(6.0 * spread, 0.1 * scale)
    xs = x[order]
    piece = _pieces(xs, h)
    n_pieces = piece[-1] + 1
    counts = np.bincount(piece, minlength=n_pieces)
    centres = np.zeros((n_pieces, x.shape[1]))
    np.add.at(centres, piece, xs)
    centres /= counts[:, None]

    # closed: the curve continues itself across its two ends, by the rule that joins groups
    # (_merge_groups): the closest pair of end members within 2 link_factor x the sparser
    # end's neighbour distance is a step along the curve's tangent at both (a ring's density
    # may jump where its ends meet; the ends of a bent line meet at an angle, if at all)
    first = np.nonzero(piece <= min(1, n_pieces - 1))[0]
    last = np.nonzero(piece >= max(n_pieces - 2, 0))[0]
    first = first if first.size >= n_end else np.arange(min(n_end, m))
    last = last if last.size >= n_end else np.arange(max(m - n_end, 0), m)
    a, b = order[first], order[last]
    dab = d[np.ix_(a, b)]
    meet = dab <= 2.0 * link_factor * np.maximum.outer(r_k[a], r_k[b])
    ends_linked = False
    if np.any(meet):
        i, j = np.unravel_index(np.argmin(np.where(meet, dab, np.inf)), dab.shape)
        near_r = _neighbour_radius(d, 2)
        floor = max(local_scale * scale, 6.0 * spread)
        step = x[b[j]] - x[a[i]]
        ends_linked = min(_along(x, d, p, step, max(near_r[p], floor), 1)
                          for p in (a[i], b[j])) >= min_cos
    open_len = float(np.sum(np.linalg.norm(np.diff(centres, axis=0), axis=1)))
    gap = float(np.linalg.norm(centres[-1] - centres[0]))
    closed = m >= 6 and n_pieces >= 3 and ends_linked and open_len > 3.0 * gap
    if closed:
        length = open_len + gap
        nxt, prv = np.roll(centres, -1, axis=0), np.roll(centres, 1, axis=0)
    else:
        chain = np.concatenate([xs[:1], centres, xs[-1:]])
        length = float(np.sum(np.linalg.norm(np.diff(chain, axis=0), axis=1)))
        nxt = np.concatenate([centres[1:], xs[-1:]])
        prv = np.concatenate([xs[:1], centres[:-1]])
    tangent = (nxt - prv)[piece]
    norms = np.linalg.norm(tangent, axis=1, keepdims=True)
    if np.any(norms == 0):  # a single piece: the principal direction
        pc1 = np.linalg.svd(xs - xs.mean(axis=0), full_matrices=False)[2][0]
        tangent = np.where(norms == 0, pc1, tangent)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-300)
    return order, closed, length, tangent


def _along(x: np.ndarray, d: np.ndarray, a: int | np.integer, step: np.ndarray, radius: float,
           dim: int) -> float:
    """|cos| of the angle between ``step`` and the local tangent space at point ``a``: the
    principal subspace (``dim`` components) of the points within ``radius`` of it."""
    ball = np.flatnonzero(d[a] <= radius)
    y = x[ball] - x[ball].mean(axis=0)
    basis = np.linalg.svd(y, full_matrices=False)[2][: max(dim, 1)]
    return float(np.linalg.norm(basis @ step) / max(np.linalg.norm(step), 1e-300))


def _merge_groups(
    x: np.ndarray, d: np.ndarray, labels: np.ndarray, linked: np.ndarray, *, k: int,
    link_factor: float, min_points: int, variance: float, local_scale: float,
    min_cos: float = 0.7, min_cos_groups: float = 0.85,
) -> np.ndarray:
    """Join groups that continue each other, where the symmetric linking rule can cut a curve:
    where its density jumps, or after a chance gap in a sparse stretch.

    Two groups of at least ``min_points`` points are joined when their closest pair (i, j)
    among those with ``d_ij <= 2 link_factor * max(r_i, r_j)`` (each ``r`` the 2k-th neighbour
    distance within its own group: they meet at the spacing of the sparser one) is a step
    along both groups' local tangent spaces (|cos| >= ``min_cos_groups`` with each). A smaller
    group joins a large one when its closest point within ``2 link_factor * r`` (``r``: k-th
    neighbour distance) of the large group's points lies along that group's tangent space
    (|cos| >= ``min_cos``). Tangent spaces: principal subspace (of the
    group's dimension) of the points within the largest of the 2nd (or (k/2)-th: the better
    aligned counts) neighbour distance, ``local_scale`` x the group's diameter and 6 x the
    larger off-manifold spread of the two. Parallel curves, and isolated points beside a
    curve, meet it sideways and stay apart; small groups are never joined to each other. The
    joining pairs are added to ``linked`` in place; returns the new labels [K]."""
    groups = [np.nonzero(labels == c)[0] for c in np.unique(labels)]
    big = [g for g, m in enumerate(groups) if m.size >= min_points]
    if not big or len(groups) < 2:
        return labels
    sub, own_r, far_r, near_r, dims = {}, {}, {}, {}, {}  # dims: group -> (dim, spread)
    for g in big:
        sub[g] = d[np.ix_(groups[g], groups[g])]
        own_r[g] = _neighbour_radius(sub[g], k)
        # reach from the 2k-th neighbour: slow points come in clumps (many candidates settle
        # close together), and the spacing that matters is that between the clumps
        far_r[g] = _neighbour_radius(sub[g], 2 * k)
        near_r[g] = [_neighbour_radius(sub[g], j) for j in sorted({2, max(2, k // 2)})]
    parent = list(range(len(groups)))
    reach = 2.0 * link_factor  # lenient: the tangent test guards the joins

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def structure(g):
        if g not in dims:
            dims[g] = _local_structure(x[groups[g]], sub[g], own_r[g], variance, local_scale)
        return dims[g]

    def along(g, a, step, other=None):
        """|cos| between ``step`` and group g's tangent space at its member a."""
        # a scale that sees the curve through the jitter and the local clumping: a sparse
        # group's end turns within a few spacings, slow points come in clumps (a slow point
        # next to its polished root), a dense group's jitter needs a wide ball (at least 6 x
        # the larger spread of the two groups: a short dense piece cannot measure its own).
        # Two neighbour scales are tried and the better alignment counts: sideways meetings
        # (parallel curves, isolated points beside a curve) are misaligned at every scale.
        floor = max(6.0 * max(structure(g)[1], structure(other)[1] if other is not None else 0.0),
                    local_scale * float(sub[g].max()))
        return max(_along(x[groups[g]], sub[g], a, step, max(r[a], floor), structure(g)[0])
                   for r in near_r[g])

    def join(g, h, a, b):
        linked[groups[g][a], groups[h][b]] = linked[groups[h][b], groups[g][a]] = True
        parent[root(g)] = root(h)

    for n, g in enumerate(big):
        for h in big[n + 1:]:
            dgh = d[np.ix_(groups[g], groups[h])]
            meet = dgh <= reach * np.maximum.outer(far_r[g], far_r[h])
            if not np.any(meet):
                continue
            a, b = np.unravel_index(np.argmin(np.where(meet, dgh, np.inf)), dgh.shape)
            step = x[groups[h][b]] - x[groups[g][a]]
            if min(along(g, a, step, h), along(h, b, step, g)) >= min_cos_groups:
                join(g, h, a, b)
    for s in (g for g, m in enumerate(groups) if m.size < min_points):
        best = None
        for g in big:
            dsg = d[np.ix_(groups[s], groups[g])]
            dsg = np.where(dsg <= reach * own_r[g][None, :], dsg, np.inf)
            if np.isfinite(dsg.min()) and (best is None or dsg.min() < best[0]):
                a, b = np.unravel_index(np.argmin(dsg), dsg.shape)
                best = (dsg[a, b], g, a, b)
        if best is not None:
            _, g, a, b = best
            if along(g, b, x[groups[s][a]] - x[groups[g][b]]) >= min_cos:
                join(s, g, a, b)
    new = labels.copy()
    for g, m in enumerate(groups):
        new[m] = labels[groups[root(g)][0]]
    _, new = np.unique(new, return_inverse=True)
    return new


def _principal_axis(x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(fraction of the variance on the first principal axis, that axis [N], the mean [N])."""
    mean = x.mean(axis=0)
    y = x - mean
    if y.shape[0] < 2:
        return 1.0, np.eye(x.shape[1])[0], mean
    _, s, vt = np.linalg.svd(y, full_matrices=False)
    total = float(np.sum(s**2))
    return (float(s[0] ** 2 / total) if total > 0 else 1.0), vt[0], mean


def _collinear_merge(x: np.ndarray, labels: np.ndarray, *, line_variance: float,
                     min_points: int) -> np.ndarray:
    """Join groups that lie on one straight(ish) line: slow points of a trained network's line
    attractor come in tight clumps (candidates settle where the flow is slowest) with gaps far
    wider than the clumps' own spacing, which no density-adaptive link bridges.

    A group of at least ``min_points`` (largest first) absorbs another group (any size,
    nearest first) when their union keeps ``line_variance`` of its variance on one axis (the
    points' own spectrum: a line at the union's scale) and the smaller group lies on that axis,
    not beside it: its median distance from the axis is at most twice the union's rms
    distance from it (an isolated point beside a line, or a parallel line, is far off it
    compared with the jitter). Returns the new labels [K]."""
    groups = {c: np.nonzero(labels == c)[0] for c in np.unique(labels)}
    if len(groups) < 2:
        return labels
    centre = {c: x[m].mean(axis=0) for c, m in groups.items()}
    seeds = sorted((c for c, m in groups.items() if m.size >= min_points),
                   key=lambda c: -groups[c].size)
    alive = set(groups)
    for g in seeds:
        if g not in alive:
            continue
        changed = True
        while changed:
            changed = False
            others = sorted((h for h in alive if h != g),
                            key=lambda h: np.linalg.norm(centre[h] - centre[g]))
            for h in others:
                union = np.concatenate([groups[g], groups[h]])
                frac, axis, mean = _principal_axis(x[union])
                if frac < line_variance:
                    continue
                y = x[union] - mean
                perp = np.linalg.norm(y - np.outer(y @ axis, axis), axis=1)
                small = groups[h] if groups[h].size <= groups[g].size else groups[g]
                perp_small = perp[np.isin(union, small)]
                if np.median(perp_small) > 2.0 * np.sqrt(np.mean(perp**2)):
                    continue
                groups[g] = union
                centre[g] = x[union].mean(axis=0)
                alive.discard(h)
                del groups[h]
                changed = True
                break
    new = np.empty_like(labels)
    for i, (c, m) in enumerate(sorted(groups.items())):
        new[m] = i
    return new


def _straight_curve(x: np.ndarray, axis: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Order and measure a nearly straight group (most of its variance on ``axis``): by the
    projection on the axis; the length is that of the polygon from the first point through
    the centroids of equal-width bins (at most 20, about 20 points each) along the axis to the last (the jitter averages out in
    each bin, so a straight line's length is its span along the axis; the ends are
    continued along the axis to the extreme projections). Returns (order [M],
    length, tangent [M, N])."""
    m = x.shape[0]
    proj = (x - x.mean(axis=0)) @ axis
    order = np.argsort(proj, kind="stable")
    n_bins = int(np.clip(m // 20, 1, 20))
    edges = np.linspace(proj.min(), proj.max(), n_bins + 1)
    b = np.clip(np.searchsorted(edges, proj, side="right") - 1, 0, n_bins - 1)
    used = np.unique(b)
    centres = np.stack([x[b == i].mean(axis=0) for i in used])
    # the ends: from the end bins' centroids to the extreme projections, along the axis
    # (the extreme points' own jitter off the axis would lengthen it)
    c_proj = (centres - x.mean(axis=0)) @ axis
    length = float(np.sum(np.linalg.norm(np.diff(centres, axis=0), axis=1))
                   + (c_proj[0] - proj.min()) + (proj.max() - c_proj[-1]))
    pos = np.searchsorted(used, b)
    if centres.shape[0] >= 2:
        nxt = centres[np.minimum(pos + 1, centres.shape[0] - 1)]
        prv = centres[np.maximum(pos - 1, 0)]
        tangent = nxt - prv
    else:
        tangent = np.tile(axis, (m, 1))
    norm = np.linalg.norm(tangent, axis=1, keepdims=True)
    tangent = np.where(norm > 0, tangent / np.maximum(norm, 1e-300), axis)
    sign = np.sign(tangent @ axis)[:, None]
    return order, length, tangent[order] * np.where(sign == 0, 1.0, sign)[order]


def _tree_paths(x: np.ndarray) -> tuple | None:
    """For points ``x`` [M, N] (at least 6, not all equal): their distances [M, M], their
    Euclidean minimum spanning tree (sparse), the path lengths between them along it [M, M],
    and the largest distance; otherwise None."""
    if x.shape[0] < 6:
        return None
    d = cdist(x, x)
    scale = float(d.max())
    if not scale > 0:
        return None
    tree = minimum_spanning_tree(csr_matrix(d + 1e-12 * scale * (d > 0)))
    return d, tree, shortest_path(tree, directed=False), scale


def _cycle(
    x: np.ndarray, *, ring_step: float, spread: float, min_cos: float = 0.7,
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """The closed curve through points ``x`` [M, N], if they lie along one.

    On the Euclidean minimum spanning tree of the points, each pair (i, j) closes a cycle:
    the tree path from i to j plus the step i -> j, which is the cycle's longest step (the
    cycle property of minimum spanning trees). The best cycle is the one whose closing step is
    the smallest fraction of its length; the points close a ring when that fraction is at most
    ``ring_step`` and the closing step continues the curve at both ends: |cos| >= ``min_cos``
    with the direction from the cycle point half a closing step (at least 6 ``spread``) back
    along the cycle to the end (a curve folded back on itself, a hairpin, meets its other
    strand sideways). Three quarters of a circle (closing chord 0.23 of the closed length)
    stay open.

    Returns (cycle [C] indices of the points on the cycle, in order; position [M] of every
    point along it (the position of its nearest cycle point); closing step length), or None."""
    tree_paths = _tree_paths(x)
    if tree_paths is None:
        return None
    d, tree, t, _ = tree_paths
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(t > 0, d / (t + d), np.inf)
    frac[~np.isfinite(t)] = np.inf
    i, j = np.unravel_index(np.argmin(frac), frac.shape)
    if not frac[i, j] <= ring_step:
        return None
    _, pred = shortest_path(tree, directed=False, indices=int(i), return_predecessors=True)
    cycle = [int(j)]
    while cycle[-1] != i:
        cycle.append(int(pred[cycle[-1]]))
    cycle = np.asarray(cycle[::-1])
    # the curve's direction at each end: from the cycle point half a closing step (at least 6
    # spreads) back along it; the closing step must continue both
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(x[cycle], axis=0), axis=1))])
    reach = max(0.5 * float(d[i, j]), 6.0 * spread)
    step = (x[j] - x[i]) / d[i, j]
    for end, sign in ((0, 1.0), (cycle.size - 1, -1.0)):
        k = int(np.argmin(np.abs(np.abs(arc - arc[end]) - reach)))
        u = x[cycle[end]] - x[cycle[k]]
        if not np.linalg.norm(u) > 0 or sign * (u @ step) / np.linalg.norm(u) < min_cos:
            return None
    pos = arc[np.argmin(d[:, cycle], axis=1)]
    return cycle, pos, float(d[i, j])


def _close_loops(x: np.ndarray, found: list, taken: np.ndarray, roots: np.ndarray, *,
                 ring_step: float) -> list:
    """Rings that the curve ordering missed. A ring of slow points of a trained network is
    often broken: the flow along it is slowest near its fixed points, where the slow points
    clump, and faster between, so that the ordering cuts it into one or several open curves,
    or closes it through gaps wider than the linking reach. The union of all open curves
    (``found`` entries of kind "line"), with the fixed points ``roots`` that belong to no
    manifold and lie within the largest step of the union, is a ring when it lies along one
    closed curve (`_cycle`); failing that, each curve alone is tried. The ring takes every
    curve whose points lie mostly within its largest step of it; its length is that of the
    closed polygon through the centroids of consecutive pieces ``6 x spread`` long (at most a
    tenth of the diameter). Returns the updated list."""
    lines = [i for i, f in enumerate(found) if f[1] == "line"]
    if not lines:
        return found
    trials = [lines] if len(lines) > 1 else []
    trials += [[i] for i in lines if not found[i][7]]
    free = np.flatnonzero(roots & ~taken)
    for group in trials:
        members = np.concatenate([found[i][0] for i in group])
        spread = float(np.max([found[i][6] for i in group]))
        lengths = float(np.sum([found[i][4] for i in group]))
        if free.size:
            dist = cdist(x[free], x[members]).min(axis=1)
            members = np.concatenate([members, free[dist <= ring_step * lengths]])
        got = _cycle(x[members], ring_step=ring_step, spread=spread)
        if got is None:
            continue
        cycle, pos, reach = got
        on = cdist(x[members], x[members[cycle]]).min(axis=1) <= reach
        keep = np.ones(members.size, bool)
        for i in group:  # a curve that lies mostly off the cycle stays a curve of its own
            own = np.isin(members, found[i][0])
            if np.mean(on[own]) < 0.5:
                keep[own] = False
        keep &= on | np.isin(members, np.concatenate([found[i][0] for i in group]))
        group = [i for i in group if np.mean(keep[np.isin(members, found[i][0])]) > 0]
        members, pos = members[keep], pos[keep]
        xm = x[members]
        order = np.lexsort((np.arange(members.size), pos))
        xs = xm[order]
        scale = float(cdist(xm, xm).max())
        h = min(6.0 * spread, 0.1 * scale) if spread > 0 else 0.1 * scale
        piece = _pieces(xs, h)
        n_pieces = piece[-1] + 1
        if n_pieces < 3:
            continue
        centres = np.zeros((n_pieces, x.shape[1]))
        np.add.at(centres, piece, xs)
        centres /= np.bincount(piece, minlength=n_pieces)[:, None]
        nxt, prv = np.roll(centres, -1, axis=0), np.roll(centres, 1, axis=0)
        length = float(np.sum(np.linalg.norm(nxt - centres, axis=1)))
        tangent = (nxt - prv)[piece]
        tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-300)
        ring = [members, "ring", 1, order, length, tangent, spread, False]
        return [f for i, f in enumerate(found) if i not in group] + [ring]
    return found


@single_blas_thread
def attractor_manifolds(
    points: FixedPoints | ArrayLike,
    *,
    link_distance: float | None = None,
    link_factor: float = 1.5,
    min_points: int = 8,
    n_neighbours: int = 8,
    variance: float = 0.9,
    local_scale: float = 0.1,
    zero_tol: float = 0.05,
    line_variance: float = 0.99,
    ring_step: float = 0.15,
) -> list[AttractorManifold]:
    """Find continuous attractors (lines, rings, surfaces) among slow points.

    1. Linking (robust to uneven sampling): with ``r_i`` the distance from point i to its
       ``n_neighbours``-th nearest neighbour, points i and j are linked when
       ``|x_i - x_j| <= link_factor * sqrt(r_i * r_j)`` (continuous k-nearest neighbours,
       Berry & Sauer 2019): the threshold follows the local density, while a gap much wider
       than the sampling on both sides (a second curve, an isolated fixed point more than
       about ``link_factor^2 * r`` away) separates. Then groups that continue each other are
       joined (where density jumps, after chance gaps, between clumps): their closest pair
       within ``2 * link_factor`` x the sparser group's 2k-th neighbour distance is a step
       along both groups' local tangents (|cos| >= 0.85); a group of fewer than
       ``min_points`` joins a larger one when it lies along that group's tangent
       (|cos| >= 0.7) within ``2 * link_factor * r``. Groups meeting sideways stay apart.
       With ``link_distance`` the rule is instead ``|x_i - x_j| <= link_distance`` (no joins).
    2. Each connected group of at least ``min_points`` points is a candidate. It is kept if it
       is extended (diameter at least 4 x its median nearest-neighbour distance) and, with a
       `FixedPoints` (Jacobians available), if most members have a slow mode (smallest
       |eigenvalue| at most ``zero_tol`` x the largest; growth rates mu - 1 for maps).
    3. Dimension: the median over members of the number of local principal components that
       explain ``variance`` of the points within ``local_scale`` x the group's diameter (at
       least the ``n_neighbours``-th neighbour); what the dimension leaves unexplained is the
       off-manifold ``spread``. Jitter up to about 2% of the diameter leaves a curve 1-D.
    4. Curves are ordered along the longest path of the minimum spanning tree of their links
       and nearest neighbours (members off the path projected onto it); the ``length`` is
       that of the curve through centroids of consecutive pieces about ``6 x spread`` long
       (so the jitter does not lengthen it). A curve is a ``ring`` when it continues itself
       across its two ends (the joining rule above: the ends meet and the closing step runs
       along the tangent at both, |cos| >= 0.7; three quarters of a ring, sampled 20 : 1,
       stays a ``line``) and it is more than 3 times longer than the distance between its ends.
       Surfaces are ordered by their first principal component.
       Rings broken by gaps: slow points of a trained ring crowd near its fixed points and are
       absent between them, so the ordering may cut a ring into open curves. The union of all
       open curves (with the fixed points of a `FixedPoints` that belong to no manifold and lie
       near them) is a ``ring`` when it lies along one closed curve: on its Euclidean minimum
       spanning tree, the step that closes a cycle is at most ``ring_step`` of the cycle's
       length and continues the curve at both ends (|cos| >= 0.7; a hairpin's ends meet
       sideways); failing that, each curve alone is tried. The ring's length is that of the
       closed polygon through piece centroids, as above.
    5. With Jacobians, each curve member's eigenvalue whose right eigenvector is most aligned
       with the curve's tangent is reported, and ``near_zero_tangent`` says whether their
       median magnitude is below ``zero_tol`` x the spectral scale.

    Resolution: two curves, or a curve and an isolated point, closer than a few of the
    curve's local spacings cannot be told apart from one sampled curve; curves are kept
    apart reliably when the gap is above ~10 local spacings of the sparser one.

    Args:
        points: a `FixedPoints` (typically from a loose ``slow_tol``) or states [K, N].
        link_distance: a fixed linking distance (state units) instead of the local rule.
        link_factor: the CkNN factor of step 1 (default 1.5).
        min_points: smallest group reported (>= 3, default 8).
        n_neighbours: the k of the local scale ``r_i`` (default 8).
        variance: explained variance that fixes the local dimension (default 0.9).
        local_scale: neighbourhood radius for the dimension, a fraction of the group's diameter
            (default 0.1).
        zero_tol: relative size of a "near-zero" eigenvalue (default 0.05).
        line_variance: variance on one axis that makes a group a straight line (0.99).
        ring_step: largest gap of a ring broken by gaps, as a fraction of its length (default
            0.15: rings of 3 to 8 clumps with gaps up to 0.9 rad close; three quarters of a
            circle, whose closing chord is 0.23 of the closed length, stays open).

    Returns: a list of `AttractorManifold`, largest first. Costs O(K^2) memory and time for K
    points (2000 points in 128 dimensions: about 1 s on a 2-core CPU).
    """
    if isinstance(points, FixedPoints):
        x = np.asarray(points.states, np.float64)
        speeds = np.asarray(points.speeds)
        vals = np.asarray(points.eigenvalues)
        vecs = np.asarray(points.right_eigenvectors)
        roots = np.asarray(points.converged, bool)
        if not points.is_continuous:  # map eigenvalues -> growth rates (mu - 1)
            vals = vals - 1.0
    else:
        x = np.asarray(points, np.float64)
        if x.ndim != 2:
            raise ValueError(f"points must be a FixedPoints or states [K, N], got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("points must be finite (states [K, N] with no NaN or inf)")
        speeds = np.full(x.shape[0], np.nan)
        vals = vecs = None
        roots = np.zeros(x.shape[0], bool)
    min_points = integer("min_points", min_points, 3)
    n_neighbours = integer("n_neighbours", n_neighbours, 1)
    if not (0 < variance <= 1):
        raise ValueError(f"variance must be in (0, 1], got {variance!r}")
    if isinstance(line_variance, bool) or not (np.isscalar(line_variance)
                                               and 0 < line_variance <= 1):
        raise ValueError(f"line_variance must be in (0, 1], got {line_variance!r}")
    link_factor = positive_number("link_factor", link_factor)
    ring_step = positive_number("ring_step", ring_step)
    local_scale = positive_number("local_scale", local_scale)
    link_distance = positive_number("link_distance", link_distance, allow_none=True)
    if x.shape[0] < min_points:
        return []
    d = cdist(x, x)
    r_k = _neighbour_radius(d, n_neighbours)
    if link_distance is None:
        linked = d <= link_factor * np.sqrt(np.outer(r_k, r_k))
    else:
        linked = d <= link_distance
    n_comp, labels = connected_components(csr_matrix(linked), directed=False)
    if link_distance is None:
        labels = _merge_groups(x, d, labels, linked, k=n_neighbours, link_factor=link_factor,
                               min_points=min_points, variance=variance,
                               local_scale=local_scale)
        labels = _collinear_merge(x, labels, line_variance=line_variance,
                                  min_points=min_points)
        n_comp = int(labels.max()) + 1
    found = []  # (members, kind, dim, order, length, tangent, spread, straight)
    taken = np.zeros(x.shape[0], bool)
    for c in range(n_comp):
        members = np.nonzero(labels == c)[0]
        if members.size < min_points:
            continue
        xm = x[members]
        dm = d[np.ix_(members, members)]
        nn = np.where(dm > 0, dm, np.inf).min(axis=1)
        spacing = float(np.median(nn[np.isfinite(nn)])) if np.any(np.isfinite(nn)) else 0.0
        if not dm.max() >= 4.0 * spacing or dm.max() == 0:
            continue  # a small cluster of isolated points, not an extended manifold
        if vals is not None:
            # A continuous attractor has a (nearly) zero mode at its points: skip groups whose
            # members mostly have none (e.g. the isolated corners and saddles of a flip-flop).
            mags = np.abs(vals[members])
            slow_mode = mags.min(axis=1) <= zero_tol * np.maximum(mags.max(axis=1), 1e-300)
            if np.mean(slow_mode) < 0.5:
                continue
        rm = _neighbour_radius(dm, n_neighbours)
        dim, spread = _local_structure(xm, dm, rm, variance, local_scale)
        tangent = None
        frac, axis, _ = _principal_axis(xm)
        straight = False
        if frac >= line_variance:
            # the group's own spectrum: a line at its scale, whatever its local clumping
            order, length, tangent = _straight_curve(xm, axis)
            kind, dim, straight = "line", 1, True
        elif dim <= 1:
            order, closed, length, tangent = _order_curve(
                xm, dm, linked[np.ix_(members, members)], rm, link_factor=link_factor,
                local_scale=local_scale, spread=spread, n_end=n_neighbours)
            kind = "ring" if closed else "line"
            dim = 1
        else:
            centred = xm - xm.mean(axis=0)
            pc1 = np.linalg.svd(centred, full_matrices=False)[2][0]
            order = np.argsort(centred @ pc1, kind="stable")
            kind = "surface"
            length = float(dm.max())
        taken[members] = True
        found.append([members, kind, dim, order, length, tangent, spread, straight])
    found = _close_loops(x, found, taken, roots, ring_step=ring_step)
    out = []
    for members, kind, dim, order, length, tangent, spread, _ in found:
        idx = members[order]
        tang_vals = np.full(idx.size, np.nan, complex)
        align = np.full(idx.size, np.nan)
        near_zero = False
        if vals is not None and tangent is not None:
            for lo in range(0, idx.size, 256):  # chunks: eigenvector stacks can be large
                p = idx[lo:lo + 256]
                v = vecs[p]
                cos = np.abs(np.einsum("mn,mnk->mk", tangent[lo:lo + 256], v)) / np.maximum(
                    np.linalg.norm(v, axis=1), 1e-300)
                best = np.argmax(cos, axis=1)
                rows = np.arange(p.size)
                tang_vals[lo:lo + 256] = vals[p][rows, best]
                align[lo:lo + 256] = cos[rows, best]
            scale = np.median(np.max(np.abs(vals[idx]), axis=1))
            near_zero = bool(np.median(np.abs(tang_vals)) <= zero_tol * max(scale, 1e-300))
        out.append(AttractorManifold(
            kind=kind, dimension=int(dim), states=x[idx], indices=idx, length=float(length),
            speeds=speeds[idx], tangent_eigenvalues=tang_vals, tangent_alignment=align,
            near_zero_tangent=near_zero, spread=float(spread),
        ))
    out.sort(key=lambda m: -m.states.shape[0])
    return out


def _mst_cycle(x: np.ndarray, max_fraction: float) -> np.ndarray | None:
    """The cycle of points ``x`` [M, N] closed by one step off their Euclidean minimum
    spanning tree with the smallest closing step for its length (as `_cycle`), if that step
    is at most ``max_fraction`` of the cycle's length: the indices around it, the first
    repeated at the end; otherwise None. Pairs joined by a tree edge close no cycle."""
    tree_paths = _tree_paths(x)
    if tree_paths is None:
        return None
    d, tree, t, scale = tree_paths
    with np.errstate(invalid="ignore", divide="ignore"):
        # a pair joined through the tree by a path no longer than its own step (a tree
        # edge, or points on one straight run) closes no cycle
        frac = np.where((t > d * (1 + 1e-6)) & (d > 1e-9 * scale), d / (t + d), np.inf)
    frac[~np.isfinite(t)] = np.inf
    i, j = np.unravel_index(np.argmin(frac), frac.shape)
    if not frac[i, j] <= max_fraction:
        return None
    _, pred = shortest_path(tree, directed=False, indices=int(i), return_predecessors=True)
    cycle = [int(j)]
    while cycle[-1] != i:
        cycle.append(int(pred[cycle[-1]]))
    if len(cycle) < 6:
        return None
    return np.asarray(cycle[::-1] + [int(i)])


def ring_gaps(
    points: FixedPoints | ArrayLike,
    *,
    max_closing: float = 0.35,
    min_gap: float = 0.05,
    ring_step: float = 0.15,
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """The gaps of a ring that `attractor_manifolds` would close if they were sampled: where
    to look for the slow points that decide whether a candidate ring closes.

    The candidate: the open curves found (kind "line", not straight) together, with the
    fixed points of a `FixedPoints` that belong to no manifold and lie within ``ring_step``
    x the curves' summed length of them (as `attractor_manifolds` closes rings broken by
    gaps); failing that, each curve alone. Its cycle (`_mst_cycle`): the closing step off the
    points' minimum spanning tree that is the smallest fraction of the cycle's length, at
    most ``max_closing`` (0.35: a curve bent through 0.6 turn of a circle; a straight or
    slightly bent line closes none). Its gaps: the cycle's steps (the closing one included)
    longer than ``min_gap`` of the cycle's length. Nothing when the points already form a
    ring.

    Returns ``[(a [N], b [N], cycle length), ...]``: the two ends of each gap (member states),
    widest first.
    """
    found = attractor_manifolds(points, ring_step=ring_step)
    if isinstance(points, FixedPoints):
        x = np.asarray(points.states, np.float64)
        roots = np.asarray(points.converged, bool)
    else:
        x = np.asarray(points, np.float64)
        roots = np.zeros(x.shape[0], bool)
    max_closing = positive_number("max_closing", max_closing)
    min_gap = positive_number("min_gap", min_gap)
    if any(m.kind == "ring" for m in found):
        return []
    lines = [m for m in found if m.kind == "line" and m.indices.size >= 6]
    taken = np.zeros(x.shape[0], bool)
    for m in found:
        taken[m.indices] = True
    free = np.flatnonzero(roots & ~taken)
    trials = [lines] if len(lines) > 1 else []
    trials += [[m] for m in lines]
    # last: every point outside a surface (slow points the manifold search left in groups
    # too small to report can be most of a sparsely sampled ring)
    rest = np.ones(x.shape[0], bool)
    for m in found:
        if m.kind == "surface":
            rest[m.indices] = False
    trials += [[None]] if lines and np.sum(rest) > sum(m.indices.size for m in lines) else []
    for group in trials:
        if group == [None]:
            cycle = _mst_cycle(x[rest], max_closing)
            members = np.flatnonzero(rest)
        else:
            members = np.concatenate([m.indices for m in group])
            if free.size:
                dist = cdist(x[free], x[members]).min(axis=1)
                members = np.concatenate(
                    [members, free[dist <= ring_step * sum(m.length for m in group)]])
            cycle = _mst_cycle(x[members], max_closing)
        if cycle is None:
            continue
        xc = x[members[cycle]]
        steps = np.linalg.norm(np.diff(xc, axis=0), axis=1)
        length = float(steps.sum())
        wide = np.flatnonzero(steps > min_gap * length)
        wide = wide[np.argsort(-steps[wide], kind="stable")]
        return [(xc[k], xc[k + 1], length) for k in wide]
    return []

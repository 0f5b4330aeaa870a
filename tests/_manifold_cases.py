"""Point clouds whose continuous attractors are known by construction (for test_manifolds.py).

Each case is a ``Case``: the points ``x`` [K, N] and the list of true manifolds, each with its
member indices, kind, dimension, the true curve parameter of its members (arc length for curves,
an angle for rings) and its true length. Curves are sampled unevenly (density varying 20:1, or
beta-distributed) and embedded in N dimensions by a random orthonormal map, with isotropic
off-manifold jitter of a given root-mean-square norm.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass
class TrueManifold:
    indices: np.ndarray  # members in x
    kind: str
    dimension: int
    param: np.ndarray | None  # [len(indices)]: arc length (lines) or angle (rings)
    length: float | None  # arc length of the sampled curve (ring: circumference)


@dataclasses.dataclass
class Case:
    x: np.ndarray
    manifolds: list[TrueManifold]
    jitter: float  # rms norm of the off-manifold jitter


def embed(y, n, rng, jitter):
    """[K, d] -> [K, n] by a random orthonormal map, plus isotropic jitter of rms norm ``jitter``."""
    q = np.linalg.qr(rng.normal(size=(n, n)))[0][:, : y.shape[1]]
    x = y @ q.T
    return x + rng.normal(size=x.shape) * jitter / np.sqrt(n)


def uneven(rng, k, ratio=20.0):
    """k samples of t in [0, 1] with density proportional to ratio**t (ratio : 1 end to end)."""
    return np.log1p(rng.uniform(size=k) * (ratio - 1)) / np.log(ratio)


def helix(t, pitch=0.3):
    """A curved open line; arc length = sqrt(1 + pitch^2) * t."""
    return np.stack([np.cos(t), np.sin(t), pitch * t], 1), np.sqrt(1 + pitch**2) * t


def circle(theta, radius=1.0, centre=(0.0, 0.0)):
    return np.stack([centre[0] + radius * np.cos(theta), centre[1] + radius * np.sin(theta)], 1)


def _line(y, s, n, rng, jitter):
    x = embed(y, n, rng, jitter)
    return Case(x, [TrueManifold(np.arange(len(x)), "line", 1, s, float(s.max() - s.min()))],
                jitter)


def _ring(theta, n, rng, jitter, radius=1.0):
    x = embed(circle(theta, radius), n, rng, jitter)
    return Case(x, [TrueManifold(np.arange(len(x)), "ring", 1, theta, 2 * np.pi * radius)], jitter)


def helix_line_exp20(n=3, k=300, jitter=0.005, seed=0):
    rng = np.random.default_rng(seed)
    y, s = helix(1.5 * np.pi * uneven(rng, k))
    return _line(y, s, n, rng, jitter)


def helix_line_beta(n=100, k=400, jitter=0.01, seed=1):
    """Crowded at both ends (beta(0.5, 0.5)), as slow points of a decision line are."""
    rng = np.random.default_rng(seed)
    y, s = helix(1.5 * np.pi * rng.beta(0.5, 0.5, k))
    return _line(y, s, n, rng, jitter)


def line_step_density(n=100, k=400, jitter=0.005, seed=11):
    """A helix line sampled 20 times more densely on its first half than on its second (an
    abrupt change of density)."""
    rng = np.random.default_rng(seed)
    dense = rng.uniform(size=k) < 20 / 21
    t = np.where(dense, 0.5 * rng.uniform(size=k), 0.5 + 0.5 * rng.uniform(size=k))
    y, s = helix(1.5 * np.pi * t)
    return _line(y, s, n, rng, jitter)


def ring_von_mises(n=3, k=300, jitter=0.005, seed=2):
    """Density exp(kappa cos theta), kappa = ln(20) / 2: 20 : 1, smooth."""
    rng = np.random.default_rng(seed)
    theta = rng.vonmises(0.0, np.log(20.0) / 2, k) % (2 * np.pi)
    return _ring(theta, n, rng, jitter)


def ring_exp20(n=100, k=400, jitter=0.01, seed=3):
    """Density 20 : 1 with an abrupt jump (from 20 back to 1) at theta = 0."""
    rng = np.random.default_rng(seed)
    return _ring(2 * np.pi * uneven(rng, k), n, rng, jitter)


def open_arc(n=100, k=400, jitter=0.01, seed=4):
    """Three quarters of a ring, unevenly sampled: an open curve ("line")."""
    rng = np.random.default_rng(seed)
    theta = 1.5 * np.pi * uneven(rng, k)
    x = embed(circle(theta), n, rng, jitter)
    return Case(x, [TrueManifold(np.arange(k), "line", 1, theta, float(np.ptp(theta)))], jitter)


def two_parallel_lines(n=100, k=250, gap=0.5, jitter=0.005, seed=5):
    """Two straight segments of length 2, ``gap`` apart, sampled 20 : 1 in opposite senses."""
    rng = np.random.default_rng(seed)
    t1, t2 = 2 * uneven(rng, k), 2 * (1 - uneven(rng, k))
    y = np.concatenate([np.stack([t1, 0 * t1], 1), np.stack([t2, gap + 0 * t2], 1)])
    x = embed(y, n, rng, jitter)
    return Case(x, [TrueManifold(np.arange(k), "line", 1, t1, float(np.ptp(t1))),
                    TrueManifold(np.arange(k, 2 * k), "line", 1, t2, float(np.ptp(t2)))], jitter)


def concentric_rings(n=3, k=400, radii=(1.0, 1.5), jitter=0.005, seed=6):
    """Two concentric rings, each 20 : 1, densest on opposite sides."""
    rng = np.random.default_rng(seed)
    th1 = 2 * np.pi * uneven(rng, k)
    th2 = (2 * np.pi * uneven(rng, k) + np.pi) % (2 * np.pi)
    y = np.concatenate([circle(th1, radii[0]), circle(th2, radii[1])])
    x = embed(y, n, rng, jitter)
    return Case(x, [TrueManifold(np.arange(k), "ring", 1, th1, 2 * np.pi * radii[0]),
                    TrueManifold(np.arange(k, 2 * k), "ring", 1, th2, 2 * np.pi * radii[1])],
                jitter)


def disjoint_rings(n=100, k=(400, 200), jitter=0.01, seed=7):
    """Two unit rings in orthogonal planes, centres 2.5 apart, different sizes of sample."""
    rng = np.random.default_rng(seed)
    th1 = 2 * np.pi * uneven(rng, k[0])
    th2 = rng.vonmises(1.0, np.log(20.0) / 2, k[1]) % (2 * np.pi)
    y = np.zeros((sum(k), 4))
    y[: k[0], :2] = circle(th1)
    y[k[0]:, 2:] = circle(th2)
    y[k[0]:, 0] += 2.5
    x = embed(y, n, rng, jitter)
    return Case(x, [TrueManifold(np.arange(k[0]), "ring", 1, th1, 2 * np.pi),
                    TrueManifold(np.arange(k[0], sum(k)), "ring", 1, th2, 2 * np.pi)], jitter)


def line_and_isolated_points(n=100, k=300, n_isolated=6, jitter=0.01, seed=8):
    """A helix line (20 : 1) plus isolated points, each at least 0.5 and at least 3 times the
    line's local 8th-neighbour distance from every line point (beyond the linking rule's
    reach); three of them in a tight group (a chain of isolated points)."""
    rng = np.random.default_rng(seed)
    y, s = helix(1.5 * np.pi * uneven(rng, k))
    d = np.linalg.norm(y[:, None] - y[None], axis=-1)
    r8 = np.sort(d, axis=1)[:, 8]
    iso = []
    while len(iso) < n_isolated:
        p = rng.uniform([-1.6, -1.6, -0.5], [1.6, 1.6, 1.9])
        group = [p] if iso else [p, p + rng.normal(size=3) * 0.03, p + rng.normal(size=3) * 0.03]
        if all(np.all(np.linalg.norm(y - q, axis=1) >= np.maximum(0.5, 3 * r8)) for q in group):
            iso += group
    x = embed(np.concatenate([y, np.array(iso[:n_isolated])]), n, rng, jitter)
    return Case(x, [TrueManifold(np.arange(k), "line", 1, s, float(np.ptp(s)))], jitter)


def sheet(n=100, k=800, jitter=0.005, seed=9):
    """The unit square, density 20 : 1 along one side: a surface."""
    rng = np.random.default_rng(seed)
    y = np.stack([uneven(rng, k), rng.uniform(size=k)], 1)
    x = embed(y, n, rng, jitter)
    return Case(x, [TrueManifold(np.arange(k), "surface", 2, None, None)], jitter)


def torus_patch(n=3, k=800, jitter=0.005, seed=10):
    """A patch (a quarter turn each way) of a torus with radii 2 and 1, unevenly sampled."""
    rng = np.random.default_rng(seed)
    u, v = 0.5 * np.pi * uneven(rng, k), 0.5 * np.pi * rng.beta(0.7, 0.7, k)
    y = np.stack([(2 + np.cos(v)) * np.cos(u), (2 + np.cos(v)) * np.sin(u), np.sin(v)], 1)
    x = embed(y, n, rng, jitter)
    return Case(x, [TrueManifold(np.arange(k), "surface", 2, None, None)], jitter)


CASES = {
    "helix_line_exp20_n3": helix_line_exp20,
    "helix_line_beta_n100": helix_line_beta,
    "line_step_density_n100": line_step_density,
    "ring_von_mises_n3": ring_von_mises,
    "ring_exp20_n100": ring_exp20,
    "open_arc_n100": open_arc,
    "two_parallel_lines_n100": two_parallel_lines,
    "concentric_rings_n3": concentric_rings,
    "disjoint_rings_n100": disjoint_rings,
    "line_and_isolated_points_n100": line_and_isolated_points,
    "sheet_n100": sheet,
    "torus_patch_n3": torus_patch,
}


def ordering_error(param, periodic):
    """How far (in parameter units) the order along a manifold runs backwards: the largest drop
    below the running maximum of the true parameter, in the better of the two senses (rings:
    the unwrapped angle). 0 for a perfectly monotone order."""
    s = np.unwrap(param) if periodic else np.asarray(param, float)
    return float(min(np.max(np.maximum.accumulate(v) - v) for v in (s, -s)))


def check(case, found, *, length_rtol=0.03, order_tol=None):
    """Failures (strings) of ``found`` (attractor_manifolds' output) against the truth."""
    errors = []
    if len(found) != len(case.manifolds):
        errors.append(f"{len(found)} manifolds found, {len(case.manifolds)} expected "
                      f"(sizes {[len(m.indices) for m in found]})")
    # ordering tolerance: points closer than a few jitter norms along the curve cannot be ordered
    tol = 5 * case.jitter if order_tol is None else order_tol
    for true in case.manifolds:
        members = set(true.indices.tolist())
        match = [m for m in found if members & set(np.asarray(m.indices).tolist())]
        if len(match) != 1:
            errors.append(f"true {true.kind} of {len(members)} points split over {len(match)} "
                          "manifolds")
            continue
        m = match[0]
        got = set(np.asarray(m.indices).tolist())
        if got != members:
            errors.append(f"{true.kind}: {len(members - got)} members missing, "
                          f"{len(got - members)} foreign points included")
        if m.kind != true.kind or m.dimension != true.dimension:
            errors.append(f"{true.kind} (dimension {true.dimension}) found as {m.kind} "
                          f"(dimension {m.dimension})")
        if true.param is not None and got == members:
            where = {p: i for i, p in enumerate(true.indices.tolist())}
            param = true.param[[where[p] for p in np.asarray(m.indices).tolist()]]
            periodic = true.kind == "ring"
            err = ordering_error(param, periodic)
            scale = 1.0 if not periodic else true.length / (2 * np.pi)  # angle -> arc length
            if err * scale > tol:
                errors.append(f"{true.kind}: order runs back by {err * scale:.3g} (tol {tol:.3g})")
            if periodic and np.ptp(np.unwrap(param)) < 1.5 * np.pi:
                errors.append(f"ring: the order winds only {np.ptp(np.unwrap(param)):.2f} rad")
        if true.length is not None:
            rel = m.length / true.length - 1
            if abs(rel) > length_rtol:
                errors.append(f"{true.kind}: length {m.length:.4g} vs true {true.length:.4g} "
                              f"({100 * rel:+.1f}%)")
    return errors

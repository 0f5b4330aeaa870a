"""attractor_manifolds on point clouds whose manifolds are known by construction.

The clouds (tests/_manifold_cases.py) are sampled as slow points are: very unevenly along the
curve (density 20 : 1, or crowded at both ends), a little off it, embedded in 3 or 100
dimensions. The truths: how many manifolds, which points belong to each, kind and dimension,
the order along the curve (monotone in the true parameter up to jitter, up to reversal and,
for rings, rotation) and the true arc length. Then real slow points of hand-built CT-RNNs with
a line and a ring attractor, found by `find_fixed_points(..., slow_tol=...)`.
"""

import dataclasses

import numpy as np
import pytest
import scipy.optimize
from _manifold_cases import CASES, check, embed, ordering_error, uneven

import rnnlab as rl

TAU, DT = 100.0, 10.0
HANDOFF_1E4 = rl.analysis.FixedPointSolver(descent=rl.analysis.AdamDescent(handoff_speed=1e-4))


@pytest.mark.parametrize("name", sorted(CASES))
def test_known_manifolds(name):
    case = CASES[name]()
    found = rl.analysis.attractor_manifolds(case.x)
    assert check(case, found) == []


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_known_manifolds_many_seeds(name):
    failures = {}
    for seed in range(100, 140):
        case = CASES[name](seed=seed)
        errors = check(case, rl.analysis.attractor_manifolds(case.x))
        if errors:
            failures[seed] = errors
    assert failures == {}


def test_the_checker_can_fail():
    """check() catches what a wrong answer gets wrong (else the tests above prove nothing)."""
    case = CASES["helix_line_exp20_n3"]()
    (line,) = rl.analysis.attractor_manifolds(case.x)
    assert check(case, []) != []
    rng = np.random.default_rng(0)
    shuffled = dataclasses.replace(line, indices=rng.permutation(line.indices))
    assert any("order runs back" in e for e in check(case, [shuffled]))
    assert check(case, [dataclasses.replace(line, indices=line.indices[::-1])]) == []
    assert any("length" in e for e in check(case, [dataclasses.replace(line, length=1.05 * line.length)]))
    assert any("found as ring" in e for e in check(case, [dataclasses.replace(line, kind="ring")]))
    half = dataclasses.replace(line, indices=line.indices[: len(line.indices) // 2])
    assert any("missing" in e for e in check(case, [half]))
    ring_case = CASES["ring_von_mises_n3"]()
    (ring,) = rl.analysis.attractor_manifolds(ring_case.x)
    rolled = dataclasses.replace(ring, indices=np.roll(ring.indices, 37))  # rotation: still fine
    assert check(ring_case, [rolled]) == []


def test_spread_estimates_the_jitter():
    """On a straight line the off-manifold spread is the jitter's rms norm off the line."""
    rng = np.random.default_rng(3)
    t = 2.0 * uneven(rng, 400)
    n, jitter = 100, 0.01
    x = embed(np.stack([t, 0 * t], 1), n, rng, jitter)
    (line,) = rl.analysis.attractor_manifolds(x)
    off_line = jitter * np.sqrt((n - 1) / n)
    assert line.spread == pytest.approx(off_line, rel=0.2)
    assert line.length == pytest.approx(np.ptp(t), rel=0.01)


def test_invariant_to_rigid_motion_and_order_of_points():
    case = CASES["disjoint_rings_n100"]()
    base = rl.analysis.attractor_manifolds(case.x)
    rng = np.random.default_rng(1)
    q = np.linalg.qr(rng.normal(size=(100, 100)))[0]
    moved = rl.analysis.attractor_manifolds(case.x @ q.T + 3.0)
    assert [m.kind for m in moved] == [m.kind for m in base]
    for a, b in zip(base, moved):
        assert set(a.indices.tolist()) == set(b.indices.tolist())
        assert b.length == pytest.approx(a.length, rel=1e-6)
    perm = rng.permutation(len(case.x))
    shuffled = rl.analysis.attractor_manifolds(case.x[perm])
    assert [m.kind for m in shuffled] == [m.kind for m in base]
    for a, b in zip(base, shuffled):
        assert set(a.indices.tolist()) == set(perm[b.indices].tolist())
        assert b.length == pytest.approx(a.length, rel=0.01)


def test_link_distance_is_a_fixed_threshold():
    """A straight line with spacing 0.1 and one gap of 0.5: a fixed link_distance splits it
    exactly where asked; the default (local) rule reads a 5-spacing gap as part of the line."""
    t = np.concatenate([np.arange(0.0, 2.0001, 0.1), np.arange(2.5, 4.0001, 0.1)])
    x = np.stack([t, np.zeros_like(t)], 1)
    (one,) = rl.analysis.attractor_manifolds(x)
    assert one.kind == "line" and one.length == pytest.approx(4.0, rel=1e-9)
    two = rl.analysis.attractor_manifolds(x, link_distance=0.3)
    assert sorted(m.length for m in two) == pytest.approx([1.5, 2.0], rel=1e-9)
    (joined,) = rl.analysis.attractor_manifolds(x, link_distance=0.6)
    assert joined.length == pytest.approx(4.0, rel=1e-9)
    assert rl.analysis.attractor_manifolds(x, link_distance=0.05) == []


def test_isolated_points_alone_are_no_manifold():
    rng = np.random.default_rng(0)
    assert rl.analysis.attractor_manifolds(rng.normal(size=(30, 10))) == []


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"link_distance": -1.0}, "link_distance"),
        ({"link_factor": 0.0}, "link_factor"),
        ({"local_scale": float("nan")}, "local_scale"),
        ({"n_neighbours": 0}, "n_neighbours"),
        ({"min_points": 2}, "min_points"),
        ({"variance": 1.5}, "variance"),
    ],
)
def test_bad_arguments(kwargs, match):
    x = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ValueError, match=match):
        rl.analysis.attractor_manifolds(x, **kwargs)


def test_bad_points():
    with pytest.raises(ValueError, match="points"):
        rl.analysis.attractor_manifolds(np.zeros((5, 2, 2)))
    x = np.zeros((20, 3))
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        rl.analysis.attractor_manifolds(x)


# --------------------------------------------------------- real slow points of CT-RNNs

N = 64


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow),
                                  pytest.param(2, marks=pytest.mark.slow)])
def test_ctrnn_line_attractor_slow_points(seed):
    """tanh CT-RNN with W = u u^T, u_i = +-1/sqrt(N): along x = c u the flow is exactly
    (-c + sqrt(N) tanh(c / sqrt(N))) u / tau ~ -c^3 / (3 N tau), a line of slow points; u is an
    eigenvector of the Jacobian there with eigenvalue (-1 + sech^2(c / sqrt(N))) / tau.
    Candidates are spread 20 : 1 along the line, off it in the other directions."""
    rng = np.random.default_rng(seed)
    u = rng.choice([-1.0, 1.0], N) / np.sqrt(N)
    model = rl.CTRNN.from_weights(np.outer(u, u), np.zeros((N, 1)), u[None, :],
                                  activation="tanh", dt=DT, tau=TAU)
    c0 = -2.5 + 5.0 * uneven(rng, 300)
    off = np.eye(N) - np.outer(u, u)
    x0 = c0[:, None] * u + (rng.normal(size=(300, N)) @ off) * 0.3 / np.sqrt(N)
    fps = rl.find_fixed_points(model, np.zeros(1), x0, slow_tol=1e-4, solver=HANDOFF_1E4)
    x = np.asarray(fps.states)
    c = x @ u
    assert len(fps) >= 60 and np.ptp(c) > 2.0
    assert np.linalg.norm(x @ off, axis=1).max() < 0.02  # on the line, up to the tolerance

    (line,) = rl.analysis.attractor_manifolds(fps)
    assert line.kind == "line" and line.dimension == 1
    assert sorted(line.indices.tolist()) == list(range(len(fps)))
    cl = c[line.indices]
    # monotone along the line up to the slow points' distance from it
    perp = np.linalg.norm(x @ off, axis=1).max()
    assert ordering_error(cl, periodic=False) <= 5 * max(perp, line.spread)
    assert line.length == pytest.approx(np.ptp(c), rel=0.03)
    lam = (-1 + 1 / np.cosh(cl / np.sqrt(N)) ** 2) / TAU
    np.testing.assert_allclose(line.tangent_eigenvalues.real, lam, atol=1e-6)
    assert np.all(line.tangent_alignment > 0.99)
    assert line.near_zero_tangent


@pytest.mark.parametrize("seed", [1, pytest.param(2, marks=pytest.mark.slow),
                                  pytest.param(3, marks=pytest.mark.slow)])
def test_ctrnn_ring_attractor_slow_points(seed):
    """tanh CT-RNN with W = g (u u^T + v v^T), u, v = sqrt(2/N) (cos, sin) of N equally
    spaced preferred angles: rotation-symmetric (up to harmonics of order N), a ring of fixed
    points of radius rho with rho = g sqrt(2/N) sum_j cos(phi_j) tanh(rho sqrt(2/N) cos(phi_j)).
    Candidates are spread 20 : 1 around it."""
    rng = np.random.default_rng(seed)
    phi = 2 * np.pi * np.arange(N) / N
    u, v = np.sqrt(2 / N) * np.cos(phi), np.sqrt(2 / N) * np.sin(phi)
    g = 2.0
    model = rl.CTRNN.from_weights(g * (np.outer(u, u) + np.outer(v, v)), np.zeros((N, 1)),
                                  np.stack([u, v]), activation="tanh", dt=DT, tau=TAU)
    rho = scipy.optimize.brentq(
        lambda r: -r + g * np.sqrt(2 / N) * np.sum(
            np.cos(phi) * np.tanh(r * np.sqrt(2 / N) * np.cos(phi))), 0.1, 100.0)
    theta0 = 2 * np.pi * uneven(rng, 300)
    off = np.eye(N) - np.outer(u, u) - np.outer(v, v)
    x0 = ((rho * (1 + 0.3 * rng.uniform(-1, 1, 300)))[:, None]
          * (np.cos(theta0)[:, None] * u + np.sin(theta0)[:, None] * v)
          + (rng.normal(size=(300, N)) @ off) * 0.3 / np.sqrt(N))
    fps = rl.find_fixed_points(model, np.zeros(1), x0, slow_tol=1e-4, solver=HANDOFF_1E4)
    x = np.asarray(fps.states)
    a, b = x @ u, x @ v
    np.testing.assert_allclose(np.hypot(a, b), rho, rtol=2e-3)
    perp = np.linalg.norm(x @ off, axis=1).max()
    assert perp < 0.02

    (ring,) = rl.analysis.attractor_manifolds(fps)
    assert ring.kind == "ring" and ring.dimension == 1
    # slow points come in clumps with gaps of up to ~20 degrees between them in the sparse
    # part; a handful of stragglers in such gaps may be left out, no more
    assert len(ring.indices) >= 0.99 * len(fps)
    angle = np.arctan2(b, a)[ring.indices]
    sorted_angle = np.sort(angle)
    widest_gap = np.max(np.diff(np.append(sorted_angle, sorted_angle[0] + 2 * np.pi)))
    assert np.ptp(np.unwrap(angle)) >= 2 * np.pi - widest_gap - 1e-9  # once round
    # Order: the unwrapped angle increases (or decreases) along it, up to the jitter, except
    # for at most a few points where the candidates' slow points and their polished roots
    # form two strands near the ring's cut (the tree's longest path can start on one strand
    # and fold back: a known limitation, bounded here).
    unwrapped = np.unwrap(angle)
    s = unwrapped if unwrapped[-1] > unwrapped[0] else -unwrapped
    back = (np.maximum.accumulate(s) - s) * rho
    assert np.mean(back > 5 * max(perp, ring.spread)) <= 0.02
    assert ordering_error(angle, periodic=True) <= 0.02 * 2 * np.pi
    assert ring.length == pytest.approx(2 * np.pi * rho, rel=0.03)
    assert ring.near_zero_tangent
    assert np.median(ring.tangent_alignment) > 0.99
    # the tangent mode is neutral at the roots on the ring (most members), nearly so at the
    # slow points beside it; all other modes contract at rates >= 1 / tau off the ring's plane
    tangent = np.abs(ring.tangent_eigenvalues)
    assert np.median(tangent) < 1e-9 / TAU and np.max(tangent) < 0.01 / TAU


# ------------------------------------- slow points of a trained network (saved fixture)

def test_trained_integrator_line_at_every_tolerance():
    """Slow points of a CLI-trained integrator (tests/fixtures/manifolds/make_fixtures.py) at
    slow_tol 1e-5 ... 3e-4 /ms: one line holding every point at each level, its length at
    least the span along PC1 and at most 10% more (the line is slightly bent)."""
    from pathlib import Path

    z = np.load(Path(__file__).parent / "fixtures/manifolds/integrator__no_input.npz")
    for i, _ in enumerate(z["tols"]):
        x = z[f"states_{i}"].astype(np.float64)
        (line,) = rl.analysis.attractor_manifolds(x)
        y = x - x.mean(axis=0)
        span = np.ptp(y @ np.linalg.svd(y, full_matrices=False)[2][0])
        assert line.kind == "line" and len(line.indices) == len(x)
        assert span * 0.999 <= line.length <= 1.1 * span


def test_line_with_99_75_percent_variance_in_64_dimensions():
    """A straight segment in 64 dimensions in 10 tight clumps (gaps far wider than the clumps),
    99.75% of the variance on its axis: one line whose length is the span on the axis."""
    rng = np.random.default_rng(0)
    t = np.repeat(np.linspace(0.0, 3.0, 10), 20) + rng.normal(size=200) * 0.002
    q = np.linalg.qr(rng.normal(size=(64, 64)))[0]
    off = rng.normal(size=(200, 63))
    off *= np.sqrt(np.var(t) * 0.0025 / 0.9975 / np.sum(np.var(off, axis=0)))
    x = np.column_stack([t, off]) @ q.T
    y = x - x.mean(axis=0)
    ev = np.linalg.svd(y, compute_uv=False) ** 2
    assert ev[0] / ev.sum() == pytest.approx(0.9975, abs=1e-3)
    (line,) = rl.analysis.attractor_manifolds(x)
    assert line.kind == "line" and line.dimension == 1 and len(line.indices) == 200
    assert line.length == pytest.approx(np.ptp(t), rel=0.02)


def _clumped_ring(n_clumps, arc, n, seed, drop=0):
    """Points of a unit circle in ``n_clumps`` evenly spaced clumps, each covering ``arc`` rad
    (slow points crowd near a ring's fixed points and are absent between them), the last
    ``drop`` clumps left out, in 100 dimensions."""
    rng = np.random.default_rng(seed)
    centres = np.arange(n_clumps - drop) * 2 * np.pi / n_clumps + rng.uniform(0, 0.2)
    th = np.concatenate([c + arc * (rng.uniform(size=n) - 0.5) for c in centres])
    return embed(np.stack([np.cos(th), np.sin(th)], 1), 100, rng, 0.005), th


@pytest.mark.parametrize("n_clumps, arc", [(8, 0.35), (5, 0.4), (4, 0.8), (3, 1.2)])
@pytest.mark.parametrize("seed", [0, 1])
def test_ring_of_clumps_with_gaps_is_a_ring(n_clumps, arc, seed):
    """A ring sampled in clumps with empty gaps (up to 0.9 rad, wider than any linking reach):
    one ring holding every point, ordered around the circle, its length the circumference less
    what the chords across the gaps cut (at most 3%)."""
    x, th = _clumped_ring(n_clumps, arc, 30 + 10 * seed, seed)
    (ring,) = rl.analysis.attractor_manifolds(x)
    assert ring.kind == "ring" and ring.dimension == 1 and len(ring.indices) == len(x)
    assert ring.length == pytest.approx(2 * np.pi, rel=0.03)
    assert ordering_error(th[ring.indices] % (2 * np.pi), periodic=True) <= 0.05


def test_clumped_arc_with_a_wide_gap_stays_open():
    """The same clumps with two neighbouring clumps missing (a gap of 2 rad, a third of the
    circle): an open curve, never a ring."""
    for seed in range(3):
        x, _ = _clumped_ring(8, 0.35, 30, seed, drop=2)
        found = rl.analysis.attractor_manifolds(x)
        assert found and all(m.kind != "ring" for m in found)


def test_clumped_hairpin_stays_open():
    """A hairpin (two parallel strands 4 long and 0.6 apart, joined by a half circle) sampled
    in clumps: its ends are close (0.6, a sixteenth of the closed length, well within the
    ring rule's reach) but meet sideways, so it is not closed into a ring."""
    rng = np.random.default_rng(0)
    r, long = 0.3, 4.0
    half = np.pi * r
    total = 2 * long + half
    s = np.concatenate([c + 0.2 * (rng.uniform(size=25) - 0.5)
                        for c in np.linspace(0.1, total - 0.1, 19)])
    y = np.stack([long - s, r + 0 * s], 1)
    bend = (s >= long) & (s < long + half)
    phi = (s[bend] - long) / r
    y[bend] = np.stack([-r * np.sin(phi), r * np.cos(phi)], 1)
    back = s >= long + half
    y[back] = np.stack([s[back] - long - half, -r + 0 * s[back]], 1)
    x = embed(y, 100, rng, 0.003)
    found = rl.analysis.attractor_manifolds(x)
    assert found and all(m.kind != "ring" for m in found)


def test_trained_angular_integrator_heading_helix_is_not_closed():
    """Slow points of a CLI-trained angular integrator (the task's defaults before 2026-12-07:
    velocity_std 0.1, velocity_tau 200, cue 100, no holds; seed 0; recipe in
    tests/fixtures/manifolds/make_fixtures.py) at slow_tol 1e-5 and 3e-5 /ms. Their decoded
    headings cover the circle (no gap over 0.6 rad), but in state space they lie on open curves:
    at 3e-5, each curve of 100 points or more runs through a full turn of heading and its ends
    are more than half its length apart (a helix of heading, not a ring: held for 5 s at zero
    velocity, the network's states of one heading sit on different turns). The ring rule must
    not close them: curves only, no ring, at both levels."""
    from pathlib import Path

    z = np.load(Path(__file__).parent
                / "fixtures/manifolds/angular_integrator__zero_angular_velocity.npz")
    for i, _ in enumerate(z["tols"]):
        x = z[f"states_{i}"].astype(np.float64)
        y = z[f"outputs_{i}"]
        heading = np.arctan2(y[:, 0], y[:, 1])
        h = np.sort(heading)
        assert np.max(np.diff(np.concatenate([h, h[:1] + 2 * np.pi]))) < 0.6
        found = rl.analysis.attractor_manifolds(x)
        assert found and all(m.kind == "line" for m in found)
        assert len(found[0].indices) >= 0.5 * len(x)
        if i == 1:
            big = [m for m in found if len(m.indices) >= 100]
            assert big
            for m in big:
                assert np.ptp(np.unwrap(heading[m.indices])) > 0.95 * 2 * np.pi
                assert np.linalg.norm(m.states[0] - m.states[-1]) > 0.5 * m.length


def test_analysis_runs_with_one_blas_thread_and_restores_the_setting():
    """The analysis entry points limit BLAS to one thread while they run (small problems are
    hundreds of times slower with OpenBLAS's threads once JAX is imported) and give the
    user's setting back."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from rnnlab._blas import single_blas_thread

    def blas_threads():
        return [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]

    seen = []

    @single_blas_thread
    def probe():
        seen.append(blas_threads())

    with threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        probe()
        assert blas_threads() == before
    assert seen[0] and all(n == 1 for n in seen[0])
    assert before and all(n == 2 for n in before)


def test_trained_angular_integrator_with_holds_is_a_ring():
    """Slow points of a CLI-trained angular integrator on the task's defaults since 2026-12-07
    (Cueva & Wei's trials with zero-velocity holds; seed 1; recipe in
    tests/fixtures/ring_gaps/make_fixture.py), at the analysis' own tolerance: one ring holding
    every point, around which the decoded heading turns exactly once (the wrapped steps of
    the heading along the closed ring sum to +-2 pi), nearly monotonically."""
    from pathlib import Path

    z = np.load(Path(__file__).parent / "fixtures/ring_gaps/holds_s1_points.npz")
    x = z["states"].astype(np.float64)
    (ring,) = rl.analysis.attractor_manifolds(x)
    assert ring.kind == "ring" and len(ring.indices) == len(x)
    y = z["outputs"][ring.indices]
    heading = np.arctan2(y[:, 0], y[:, 1])
    steps = np.angle(np.exp(1j * np.diff(np.append(heading, heading[0]))))
    assert abs(steps.sum()) == pytest.approx(2 * np.pi, abs=1e-6)
    assert np.mean(np.sign(steps) == np.sign(steps.sum())) > 0.8

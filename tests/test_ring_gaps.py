"""Gaps of a candidate ring decided by the dynamics (`fill_ring_gaps`): slow points found from
trajectory samples crowd near a ring's fixed points; seeds placed in the gaps and searched as
slow points are stay there on a ring and run on to the ends across the opening of an arc.

Truths: a tanh CT-RNN whose ring of fixed points is known in closed form (every point of the
circle is slow), and a planar system with an exactly known open arc (slow on 3/4 of its limit
circle, fast on the rest), both given as clumped slow points that `attractor_manifolds` alone
cannot close; and the real networks' points of tests/test_manifolds.py, whose verdicts do not
depend on the gaps.
"""

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import rnnlab as rl
from rnnlab.analysis import attractor_manifolds, find_fixed_points
from rnnlab.analysis._manifolds import ring_gaps
from rnnlab.analysis._slow import fill_ring_gaps

TAU, DT, N = 100.0, 10.0, 32
SLOW = 1e-4


def _ring_ctrnn():
    """W = g (u u^T + v v^T), u, v = sqrt(2/N) (cos, sin) of N equally spaced preferred
    angles: a ring of fixed points of radius rho in the (u, v) plane (rotation-symmetric up to
    harmonics of order N)."""
    phi = 2 * np.pi * np.arange(N) / N
    u, v = np.sqrt(2 / N) * np.cos(phi), np.sqrt(2 / N) * np.sin(phi)
    g = 2.0
    model = rl.CTRNN.from_weights(g * (np.outer(u, u) + np.outer(v, v)), np.zeros((N, 1)),
                                  np.stack([u, v]), activation="tanh", dt=DT, tau=TAU)
    rho = scipy.optimize.brentq(
        lambda r: -r + g * np.sqrt(2 / N) * np.sum(
            np.cos(phi) * np.tanh(r * np.sqrt(2 / N) * np.cos(phi))), 0.1, 100.0)
    return model, u, v, rho


def _clumps(centres, width, n, rng):
    """Angles in clumps of ``width`` rad around ``centres``, ``n`` each."""
    return np.concatenate([c + width * (rng.uniform(size=n) - 0.5) for c in centres])


def test_ctrnn_ring_with_clumped_slow_points_closes():
    """Slow points of the ring network found from candidates in three clumps of 0.6 rad (gaps
    of 1.5 rad, a quarter of the circle each: wider than the ring rule's closing step, so the
    points alone are open curves); the gaps are slow everywhere, so their seeds stay there and
    the ring closes, holding the gap points, its length the circumference."""
    model, u, v, rho = _ring_ctrnn()
    rng = np.random.default_rng(0)
    th = _clumps([0.3, 0.3 + 2 * np.pi / 3, 0.3 + 4 * np.pi / 3], 0.6, 30, rng)
    off = np.eye(N) - np.outer(u, u) - np.outer(v, v)
    x0 = (rho * (np.cos(th)[:, None] * u + np.sin(th)[:, None] * v)
          + (rng.normal(size=(th.size, N)) @ off) * 0.05 / np.sqrt(N))
    fps = find_fixed_points(model, np.zeros(1), x0, slow_tol=SLOW)
    before = attractor_manifolds(fps)
    assert before and all(m.kind != "ring" for m in before)
    gaps = ring_gaps(fps)
    assert len(gaps) >= 2

    fill = fill_ring_gaps(model, np.zeros(1), fps, slow_tol=SLOW)
    assert 0 < fill.n_seeds <= 256 and fill.n_landed > 0
    new = np.asarray(fill.points.states)
    assert np.all(np.asarray(fill.points.speeds) <= SLOW)
    # on the ring (its radius, in its plane) and inside the former gaps
    np.testing.assert_allclose(np.hypot(new @ u, new @ v), rho, rtol=1e-2)
    angle = np.arctan2(new @ v, new @ u)
    dist = np.abs((angle[:, None] - np.array([0.3, 0.3 + 2 * np.pi / 3, 0.3 + 4 * np.pi / 3])
                   + np.pi) % (2 * np.pi) - np.pi).min(axis=1)
    assert np.mean(dist > 0.3) > 0.8
    both = rl.FixedPoints.concatenate([fps, fill.points])
    (ring,) = attractor_manifolds(both)
    assert ring.kind == "ring" and len(ring.indices) >= 0.95 * len(both)
    assert ring.length == pytest.approx(2 * np.pi * rho, rel=0.05)
    # deterministic: the same points again
    again = fill_ring_gaps(model, np.zeros(1), fps, slow_tol=SLOW)
    np.testing.assert_array_equal(np.asarray(again.points.states), new)


def _arc_model(gap: float, fast: float = 0.05, n: int = 6):
    """x in R^n: in the plane of the first two coordinates (r, theta), r' = (1 - r) / 10 and
    theta' = fast * b(theta) with b a smooth bump, 1 at theta = pi, below 1e-3 outside
    |theta - pi| < gap / 2; the other coordinates decay (x' = -x / 10). The unit circle is
    invariant and attracting; it is slow (|F| <= 5e-5) only on the arc |theta| < pi - gap / 2:
    an open arc with a fast opening, through which the flow runs on into the arc."""
    kappa = np.log(1e3) / (1 - np.cos(gap / 2))

    def field(x, u):
        r = jnp.hypot(x[0], x[1])
        th = jnp.arctan2(x[1], x[0])
        w = fast * jnp.exp(kappa * (jnp.cos(th - jnp.pi) - 1.0))
        radial = (1.0 - r) / 10.0
        dx0 = radial * jnp.cos(th) - r * w * jnp.sin(th)
        dx1 = radial * jnp.sin(th) + r * w * jnp.cos(th)
        return jnp.concatenate([jnp.stack([dx0, dx1]), -x[2:] / 10.0])

    return rl.FunctionModel(vector_field=field, state_size=n, n_in=1, dt=1.0)


def _clumped_arc_points(model, gap):
    """Slow points of the planar system ``model`` from candidates in 6 clumps along the 3/4 of
    the unit circle outside the opening of width ``gap`` (plus small off-plane parts)."""
    rng = np.random.default_rng(1)
    th = _clumps(np.linspace(-np.pi + gap / 2 + 0.2, np.pi - gap / 2 - 0.2, 6), 0.3, 20, rng)
    x0 = np.zeros((th.size, 6))
    x0[:, 0], x0[:, 1] = np.cos(th), np.sin(th)
    x0[:, 2:] = 0.01 * rng.normal(size=(th.size, 4))
    return find_fixed_points(model, np.zeros(1), x0, slow_tol=SLOW)


def test_open_arc_with_clumped_slow_points_stays_open():
    """The open arc (3/4 of the circle slow, the rest fast) given as slow points in clumps
    along it: the candidate cycle's closing gap is the fast opening; its seeds are not slow
    there, or run on to the arc's ends, so nothing lands and no ring is made."""
    gap = np.pi / 2
    model = _arc_model(gap)
    fps = _clumped_arc_points(model, gap)
    assert len(fps) > 60
    before = attractor_manifolds(fps)
    assert before and all(m.kind != "ring" for m in before)
    gaps = ring_gaps(fps)
    assert gaps  # a candidate: 3/4 of a circle
    fill = fill_ring_gaps(model, np.zeros(1), fps, slow_tol=SLOW)
    assert fill.n_seeds > 0
    # anything kept lies on the slow arc, never in the opening
    th_new = np.arctan2(np.asarray(fill.points.states)[:, 1], np.asarray(fill.points.states)[:, 0])
    assert np.all(np.abs(th_new) < np.pi - gap / 2 + 0.1)
    both = rl.FixedPoints.concatenate([fps, fill.points])
    after = attractor_manifolds(both)
    assert after and all(m.kind != "ring" for m in after)


def test_ring_of_the_same_planar_system_closes():
    """The planar system with no fast opening (theta' = 0 everywhere: a circle of fixed
    points), the same clumps on 3/4 of it: the opening is slow, its seeds stay, a ring."""
    gap = np.pi / 2
    model = _arc_model(gap, fast=0.0)
    fps = _clumped_arc_points(model, gap)
    assert all(m.kind != "ring" for m in attractor_manifolds(fps))
    fill = fill_ring_gaps(model, np.zeros(1), fps, slow_tol=SLOW)
    assert fill.n_landed > 0
    after = attractor_manifolds(rl.FixedPoints.concatenate([fps, fill.points]))
    assert [m.kind for m in after][:1] == ["ring"]
    assert after[0].length == pytest.approx(2 * np.pi, rel=0.05)


def test_straight_line_has_no_gaps_to_fill():
    """A line attractor's slow points (W = u u^T, tests/test_manifolds.py) in clumps: no
    candidate cycle, so no seeds."""
    rng = np.random.default_rng(0)
    u = rng.choice([-1.0, 1.0], N) / np.sqrt(N)
    model = rl.CTRNN.from_weights(np.outer(u, u), np.zeros((N, 1)), u[None, :],
                                  activation="tanh", dt=DT, tau=TAU)
    c = np.concatenate([k + 0.2 * rng.uniform(size=20) for k in (-2.0, -0.5, 1.0, 2.2)])
    fps = find_fixed_points(model, np.zeros(1), c[:, None] * u, slow_tol=SLOW)
    assert ring_gaps(fps) == []
    fill = fill_ring_gaps(model, np.zeros(1), fps, slow_tol=SLOW)
    assert fill.n_seeds == 0 and len(fill.points) == 0


def test_bad_arguments():
    model, *_ = _ring_ctrnn()
    fps = find_fixed_points(model, np.zeros(1), np.zeros((1, N)))
    with pytest.raises(ValueError, match="slow_tol"):
        fill_ring_gaps(model, np.zeros(1), fps, slow_tol=-1.0)
    with pytest.raises(ValueError, match="max_seeds"):
        fill_ring_gaps(model, np.zeros(1), fps, slow_tol=SLOW, max_seeds=-1)
    with pytest.raises(ValueError, match="max_closing"):
        ring_gaps(np.zeros((10, 3)), max_closing=0.0)


# ---------------------- a trained network (fixture: tests/fixtures/ring_gaps/make_fixture.py)

FIXTURE = __import__("pathlib").Path(__file__).parent / "fixtures" / "ring_gaps"


def _cueva():
    model = rl.load(FIXTURE / "cueva_s0.safetensors")
    z = np.load(FIXTURE / "cueva_s0_points.npz")
    return model, z["states"].astype(np.float64), float(z["slow_tol"]), z["input"]


def test_trained_ring_shaped_set_with_fast_gaps_stays_open():
    """The angular integrator trained on Cueva & Wei's trials (seed 0): its slow points lie
    around one loop in clumps, the widest gap of the candidate cycle wider than the ring rule
    allows. Simulating the network (its Euler map) from each gap's midpoint for 25 steps
    (0.5 s, five time constants: onto the attracting loop) leaves it moving faster than the
    run's slow-point tolerance: the gaps are not slow, so the seeds placed in them find no
    slow point there and the set stays open, as attractor_manifolds alone says."""
    import jax

    model, states, slow_tol, u = _cueva()
    fps = find_fixed_points(model, u, states, slow_tol=slow_tol)
    assert len(fps) >= 0.9 * len(states)
    assert all(m.kind != "ring" for m in attractor_manifolds(fps))
    gaps = ring_gaps(fps)
    assert gaps and np.linalg.norm(gaps[0][1] - gaps[0][0]) > 0.15 * gaps[0][2]
    mid = np.stack([(a + b) / 2 for a, b, _ in gaps])
    step = jax.jit(jax.vmap(lambda h: model.step(h, jnp.asarray(u, jnp.float32))))
    h = jnp.asarray(mid, jnp.float32)
    for _ in range(25):
        h = step(h)
    speed = np.linalg.norm(np.asarray(jax.vmap(
        lambda s: model.vector_field(s, jnp.asarray(u, jnp.float32)))(h)), axis=1)
    assert np.all(speed > 3 * slow_tol)

    fill = fill_ring_gaps(model, u, fps, slow_tol=slow_tol)
    assert fill.n_seeds > 0 and fill.n_landed == 0 and len(fill.points) == 0


@pytest.mark.slow
def test_trained_run_default_analysis_reports_the_gap_search(tmp_path):
    """`analyze_run` with defaults on the same trained run: the gaps are searched (seeds
    placed, recorded per input in the summary), none fills, and no ring is reported."""
    import shutil

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(FIXTURE / "cueva_s0.safetensors", run / "model.safetensors")
    shutil.copy(FIXTURE / "cueva_s0.config.json", run / "config.json")
    result = rl.analyze_run(run, save=False)
    (row,) = result.summary["inputs"]
    assert row["ring_gaps"]["seeds"] > 0 and row["ring_gaps"]["landed"] == 0
    kinds = [m["kind"] for m in result.summary["manifolds"]]
    assert kinds and "ring" not in kinds

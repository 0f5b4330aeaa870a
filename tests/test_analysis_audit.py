"""Audit of the reverse-engineering API on cases the other analysis tests do not hold.

Each test asserts a truth computed independently here (closed forms, numpy maps, scipy), or is
the regression test of a bug the audit found (marked "regression").
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import rnnlab as rl

TAU, DT = 100.0, 10.0
# Adam's first step moves every coordinate by about its learning rate: 0.1 suits gated units.
SMALL_STEPS = rl.analysis.FixedPointSolver(descent=rl.analysis.AdamDescent(learning_rate=0.1))


def _f32(*arrays):
    """The float32-rounded values the models store, as float64 (for numpy references)."""
    return tuple(np.asarray(a, np.float32).astype(np.float64) for a in arrays)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _near_line(eps=1e-3):
    """tau dx/dt = -x + (1 - eps) v v^T x: the only root is 0; along v the speed is
    eps |c| / tau at x = c v, across it |x_perp| / tau."""
    v = np.array([1.0, 1.0, 0.0]) / np.sqrt(2.0)
    model = rl.CTRNN.from_weights((1 - eps) * np.outer(v, v), np.zeros((3, 1)), np.eye(3),
                                  activation="linear", dt=DT, tau=TAU)
    return model, v


# ------------------------------------------------------------------ tolerance sweep


def test_tolerance_sweep_levels_are_the_searches_at_each_level():
    # regression: the sweep used to filter one search at the loosest level, whose stage 1
    # stops every candidate as soon as it is that slow: tighter levels came back with the
    # root only, although a search at that level finds the slow points along the line.
    eps = 1e-3
    model, v = _near_line(eps)
    starts = np.random.default_rng(0).normal(size=(200, 3))
    tols = [1e-4, 1e-5]
    sweep = rl.analysis.tolerance_sweep(model, np.zeros(1), starts, tols)
    assert list(sweep) == tols
    for t in tols:
        level = sweep[t]
        alone = rl.find_fixed_points(model, np.zeros(1), starts, slow_tol=t)
        np.testing.assert_array_equal(np.asarray(level.states), np.asarray(alone.states))
        x = np.asarray(level.states)
        c = x @ v
        # speed at c v + p is sqrt(eps^2 c^2 + |p|^2) / tau <= t, so |c| <= t tau / eps
        bound = t * TAU / eps
        assert np.all(np.abs(c) <= bound * (1 + 1e-6))
        assert np.all(np.asarray(level.speeds) <= t)
        # the slow points spread along the line over most of the allowed stretch
        assert len(level) > 10
        assert np.max(np.abs(c)) > 0.5 * min(bound, 1.0)
    # the tight level is within a tenth of the loose level's stretch, as the bound says
    assert np.max(np.abs(np.asarray(sweep[1e-5].states) @ v)) <= 1.0 + 1e-6


def test_tolerance_sweep_below_tol_keeps_roots_only():
    model, _ = _near_line()
    starts = np.random.default_rng(1).normal(size=(50, 3))
    sweep = rl.analysis.tolerance_sweep(model, np.zeros(1), starts, [1e-12])
    tight = sweep[1e-12]
    assert len(tight) == 1 and np.all(np.asarray(tight.converged))
    np.testing.assert_allclose(np.asarray(tight.states), 0.0, atol=1e-10)


def test_tolerance_sweep_bad_arguments():
    model, _ = _near_line()
    x0 = np.zeros((4, 3))
    with pytest.raises(TypeError, match="tolerances"):
        rl.analysis.tolerance_sweep(model, np.zeros(1), x0, 1e-3)
    with pytest.raises(TypeError, match="tolerances"):
        rl.analysis.tolerance_sweep(model, np.zeros(1), x0, "1e-3")
    with pytest.raises(ValueError, match="tolerances"):
        rl.analysis.tolerance_sweep(model, np.zeros(1), x0, [1e-3, -1.0])
    with pytest.raises(ValueError, match="tolerances"):
        rl.analysis.tolerance_sweep(model, np.zeros(1), x0, [])
    with pytest.raises(TypeError, match="slow_tol"):
        rl.analysis.tolerance_sweep(model, np.zeros(1), x0, [1e-3], slow_tol=1e-2)


# ------------------------------------------------------------------ stability views


def test_map_stability_marginal_band_in_map_units():
    # regression: a mode with Re(lambda) = 2^-22 / tau = 2.4e-9 /ms is marginal in the
    # continuous view (marginal_tol 1e-8); its Euler multiplier 1 + dt lambda = 1 + 2.4e-8
    # was called unstable (a "saddle") by map_stability, which compared |mu| - 1 with the
    # same 1e-8 although |mu| - 1 = dt * Re(lambda) for a real mode.
    w = 1.0 + 2.0**-22  # exact in float32
    model = rl.CTRNN.from_weights(np.diag([w, 0.5]), np.zeros((2, 1)), np.eye(2),
                                  activation="linear", dt=DT, tau=TAU)
    fps = rl.find_fixed_points(model, np.zeros(1), np.random.default_rng(0).normal(size=(8, 2)))
    assert len(fps) == 1
    np.testing.assert_allclose(np.asarray(fps.eigenvalues)[0].real,
                               [(w - 1) / TAU, -0.5 / TAU], rtol=1e-12)
    assert fps.stability == ("marginal",)
    assert fps.map_stability == ("marginal",)
    np.testing.assert_allclose(np.asarray(fps.map_eigenvalues)[0].real,
                               [1 + DT * (w - 1) / TAU, 1 - DT * 0.5 / TAU], rtol=1e-12)
    # a mode beyond the band is unstable in both views
    model2 = rl.CTRNN.from_weights(np.diag([1.0 + 2.0**-10, 0.5]), np.zeros((2, 1)), np.eye(2),
                                   activation="linear", dt=DT, tau=TAU)
    fps2 = rl.find_fixed_points(model2, np.zeros(1), np.random.default_rng(0).normal(size=(8, 2)))
    assert fps2.stability == fps2.map_stability == ("saddle",)


def test_per_unit_tau_keeps_points_and_inertia():
    # With symmetric W, J = T^-1 (-I + W D) is similar to C^1/2 (W - D^-1) C^1/2 with
    # C = T^-1 D > 0: its inertia (number of unstable modes) does not depend on tau
    # (Sylvester), and the roots do not either. With scalar tau, lambda scales as 1/tau.
    rng = np.random.default_rng(0)
    n = 5
    a = rng.normal(size=(n, n))
    w_rec, b = _f32(1.6 * (a + a.T) / np.sqrt(4 * n), 0.05 * rng.normal(size=n))
    starts = 1.5 * rng.normal(size=(256, n))
    taus = {"100": 100.0, "50": 50.0, "vec": rng.uniform(20.0, 300.0, size=n)}
    out = {}
    for name, tau in taus.items():
        model = rl.CTRNN.from_weights(w_rec, np.zeros((n, 1)), np.eye(n), b, activation="tanh",
                                      dt=DT, tau=tau)
        out[name] = rl.find_fixed_points(model, np.zeros(1), starts)
    assert len(out["100"]) == 3  # two stable points and a saddle for this draw
    order = {k: np.lexsort(np.asarray(f.states).T[::-1]) for k, f in out.items()}
    ref = out["100"]
    for k, f in out.items():
        assert len(f) == len(ref)
        np.testing.assert_allclose(np.asarray(f.states)[order[k]],
                                   np.asarray(ref.states)[order["100"]], atol=1e-9)
        np.testing.assert_array_equal(np.asarray(f.n_unstable)[order[k]],
                                      np.asarray(ref.n_unstable)[order["100"]])
        np.testing.assert_allclose(np.asarray(f.eigenvalues).imag, 0.0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(out["50"].eigenvalues)[order["50"]],
                               2.0 * np.asarray(ref.eigenvalues)[order["100"]], rtol=1e-9)
    # per-unit Euler map: mu = eig(I + diag(dt / tau) (-I + W D)), compared with numpy
    tau = np.asarray(
        rl.CTRNN.from_weights(w_rec, np.zeros((n, 1)), np.eye(n), tau=taus["vec"], dt=DT).tau,
        np.float64,
    )
    fv = out["vec"]
    ct_model = rl.CTRNN.from_weights(w_rec, np.zeros((n, 1)), np.eye(n), b, activation="tanh",
                                     dt=DT, tau=taus["vec"])
    lin = rl.analysis.linearize(ct_model, np.asarray(fv.states)[0], np.zeros(1))
    np.testing.assert_allclose(lin.eigenvalues, np.asarray(fv.eigenvalues)[0], atol=1e-12)
    np.testing.assert_allclose(lin.map_eigenvalues, np.asarray(fv.map_eigenvalues)[0],
                               atol=1e-12)
    for i, x in enumerate(np.asarray(fv.states)):
        step_jac = np.eye(n) + (DT / tau)[:, None] * (-np.eye(n) + w_rec / np.cosh(x)[None] ** 2)
        mu = np.linalg.eigvals(step_jac)
        np.testing.assert_allclose(np.sort_complex(np.asarray(fv.map_eigenvalues)[i]),
                                   np.sort_complex(mu), atol=1e-12)


def test_rate_and_potential_forms_agree():
    # r = tanh(x) maps the potential form's roots onto the rate form's; the Jacobians
    # (-I + W D) / tau and (-I + D W) / tau have the same eigenvalues (scalar tau).
    rng = np.random.default_rng(10)
    n = 6
    w_rec, w_in, b = _f32(1.5 * rng.normal(size=(n, n)) / np.sqrt(n), rng.normal(size=(n, 1)),
                          0.1 * rng.normal(size=n))
    u = np.array([0.2])
    starts = 2.0 * rng.normal(size=(256, n))
    kw = dict(activation="tanh", dt=DT, tau=TAU)
    pot = rl.find_fixed_points(rl.CTRNN.from_weights(w_rec, w_in, np.eye(n), b, **kw), u, starts)
    rate = rl.find_fixed_points(
        rl.CTRNN.from_weights(w_rec, w_in, np.eye(n), b, form="rate", **kw), u, np.tanh(starts)
    )
    assert len(pot) == len(rate) == 3
    r_pot = np.tanh(np.asarray(pot.states))
    for i in range(len(pot)):
        d = np.linalg.norm(np.asarray(rate.states) - r_pot[i], axis=1)
        j = int(np.argmin(d))
        assert d[j] < 1e-9
        np.testing.assert_allclose(np.sort_complex(np.asarray(pot.eigenvalues)[i]),
                                   np.sort_complex(np.asarray(rate.eigenvalues)[j]), atol=1e-12)
        assert pot.stability[i] == rate.stability[j]
        np.testing.assert_allclose(np.asarray(pot.outputs)[i], np.asarray(rate.outputs)[j],
                                   atol=1e-12)


# ------------------------------------------------------------------ inputs per condition


def _roots_1d(u, w=2.0):
    g = lambda x: -x + w * np.tanh(x) + u  # noqa: E731
    xs = np.linspace(-8.0, 8.0, 20000)  # no grid point on a root
    v = g(xs)
    idx = np.nonzero(np.sign(v[:-1]) != np.sign(v[1:]))[0]
    return np.sort([scipy.optimize.brentq(g, xs[i], xs[i + 1], xtol=1e-15) for i in idx])


def test_condition_wise_inputs_get_their_own_roots():
    # tau dx/dt = -x + 2 tanh(x) + u: three roots at u = 0 and 0.5, one at 1.5 and -2
    model = rl.CTRNN.from_weights(np.array([[2.0]]), np.array([[1.0]]), np.array([[1.0]]),
                                  activation="tanh", dt=DT, tau=TAU)
    levels = [0.0, 0.5, 1.5, -2.0]
    grid = np.linspace(-4.0, 4.0, 41)[:, None]
    inputs = np.repeat(np.array(levels)[:, None], grid.shape[0], axis=0)
    starts = np.tile(grid, (len(levels), 1))
    fps = rl.find_fixed_points(model, inputs, starts)
    for u in levels:
        sel = np.asarray(fps.inputs)[:, 0] == u
        np.testing.assert_allclose(np.sort(np.asarray(fps.states)[sel, 0]), _roots_1d(u),
                                   atol=1e-10)
    x = np.asarray(fps.states)[:, 0]
    np.testing.assert_allclose(np.asarray(fps.eigenvalues)[:, 0].real,
                               (-1 + 2 / np.cosh(x) ** 2) / TAU, atol=1e-14)
    np.testing.assert_allclose(np.asarray(fps.outputs)[:, 0], np.tanh(x), atol=1e-14)
    np.testing.assert_allclose(np.asarray(fps.input_jacobians), 1.0 / TAU, atol=1e-15)
    assert fps.summary()["stable"] == 2 + 2 + 1 + 1


# ------------------------------------------------------------------ gated maps vs numpy


def _gru_np(wi, wh, bi, bh, h, u):
    n = h.size
    gi, gh = wi @ u + bi, wh @ h + bh
    r = _sigmoid(gi[:n] + gh[:n])
    z = _sigmoid(gi[n:2 * n] + gh[n:2 * n])
    cand = np.tanh(gi[2 * n:] + r * gh[2 * n:])
    return (1 - z) * cand + z * h


def _lstm_np(wi, wh, bi, bh, s, u):
    n = s.size // 2
    h, c = s[:n], s[n:]
    g = wi @ u + bi + wh @ h + bh
    i, f, cc, o = _sigmoid(g[:n]), _sigmoid(g[n:2 * n]), np.tanh(g[2 * n:3 * n]), _sigmoid(g[3 * n:])
    c2 = f * c + i * cc
    return np.concatenate([o * np.tanh(c2), c2])


@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
def test_gated_maps_against_numpy_and_scipy(kind):
    cls, n_gates, fmap = {"GRU": (rl.GRU, 3, _gru_np), "LSTM": (rl.LSTM, 4, _lstm_np)}[kind]
    rng = np.random.default_rng(0)
    n = 5
    wi, wh, bi, bh = _f32(rng.normal(size=(n_gates * n, 2)),
                          3.0 * rng.normal(size=(n_gates * n, n)) / np.sqrt(n),
                          0.5 * rng.normal(size=n_gates * n), 0.5 * rng.normal(size=n_gates * n))
    model = cls.from_weights(wi, wh, np.eye(n)[:2], bi, bh)
    u = np.array([0.3, -0.1])
    size = model.state_size
    starts = rng.uniform(-1.0, 1.0, size=(128, size))
    fps = rl.find_fixed_points(model, u, starts, solver=SMALL_STEPS)
    assert not fps.is_continuous and len(fps) >= 1
    g = lambda s: fmap(wi, wh, bi, bh, s, u) - s  # noqa: E731
    eps = 1e-6
    for i, x in enumerate(np.asarray(fps.states)):
        assert np.linalg.norm(g(x)) < 1e-12
        jac = np.stack([(fmap(wi, wh, bi, bh, x + eps * e, u) - fmap(wi, wh, bi, bh, x - eps * e, u))
                        / (2 * eps) for e in np.eye(size)], axis=1)
        np.testing.assert_allclose(np.asarray(fps.jacobians)[i], jac, atol=1e-8)
        jin = np.stack([(fmap(wi, wh, bi, bh, x, u + eps * e) - fmap(wi, wh, bi, bh, x, u - eps * e))
                        / (2 * eps) for e in np.eye(2)], axis=1)
        np.testing.assert_allclose(np.asarray(fps.input_jacobians)[i], jin, atol=1e-8)
        mu = np.linalg.eigvals(jac)
        assert int(fps.n_unstable[i]) == int(np.sum(np.abs(mu) > 1 + 1e-6))
        np.testing.assert_allclose(np.asarray(fps.outputs)[i], x[:2], atol=1e-14)
    # every root scipy reaches from the same starts within the states' range (|h| <= 1: far
    # out, saturated update gates make spurious near-roots) is found
    for s0 in starts[:40]:
        sol = scipy.optimize.root(g, s0, tol=1e-13)
        if sol.success and np.linalg.norm(g(sol.x)) < 1e-10 and np.all(np.abs(sol.x[:n]) <= 1):
            assert np.min(np.linalg.norm(np.asarray(fps.states) - sol.x, axis=1)) < 1e-6


# ------------------------------------------------------------------ bad inputs


def test_linearize_rejects_non_finite():
    # regression: a NaN point or input used to give a LinearSystem full of NaN
    model = rl.CTRNN.from_weights(np.diag([2.0, 2.0]), np.zeros((2, 1)), np.eye(2), dt=DT, tau=TAU)
    with pytest.raises(ValueError, match="point"):
        rl.analysis.linearize(model, np.array([np.nan, 0.0]), np.zeros(1))
    with pytest.raises(ValueError, match="inputs"):
        rl.analysis.linearize(model, np.zeros(2), np.array([np.inf]))


def _bistable_points():
    model = rl.CTRNN.from_weights(np.diag([2.0, 2.0]), np.zeros((2, 1)), np.eye(2),
                                  activation="tanh", dt=DT, tau=TAU)
    grid = np.array(list(itertools.product(np.linspace(-3, 3, 5), repeat=2)))
    return model, rl.find_fixed_points(model, np.zeros(1), grid)


def test_topology_rejects_foreign_points_and_bad_arguments():
    # regression: points of another network failed inside XLA (a broadcasting TypeError)
    model, fps = _bistable_points()
    key = jax.random.PRNGKey(0)
    bigger = rl.CTRNN.from_weights(2 * np.eye(3), np.zeros((3, 1)), np.eye(3), dt=DT, tau=TAU)
    more_inputs = rl.CTRNN.from_weights(2 * np.eye(2), np.zeros((2, 3)), np.eye(2), dt=DT, tau=TAU)
    for other in (bigger, more_inputs):
        with pytest.raises(ValueError, match="fixed_points do not belong"):
            rl.analysis.topology(other, fps, key=key)
    with pytest.raises(ValueError, match="inputs"):
        rl.analysis.topology(model, fps, np.array([np.nan]), key=key)
    with pytest.raises(ValueError, match="noise_std"):
        rl.analysis.topology(model, fps, key=key, noise_std="0.1")
    with pytest.raises(ValueError, match="radius"):
        rl.analysis.topology(model, fps, key=key, radius=float("nan"))


def test_sample_states_rejects_empty_and_diverged_trajectories():
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="trajectory"):
        rl.analysis.sample_states(np.zeros((0, 2)), 5, key=key)
    states = np.zeros((2, 10, 3))
    states[1, 5:] = np.nan  # the second trial diverged halfway
    with pytest.raises(ValueError, match="trajectory contains NaN"):
        rl.analysis.sample_states(states, 50, key=key)
    # a mask of the finite states lets the finite part be used
    ok = rl.analysis.sample_states(states, 50, key=key, mask=np.all(np.isfinite(states), -1))
    assert ok.shape == (50, 3) and np.all(np.isfinite(np.asarray(ok)))


def test_argument_types_are_named():
    model, fps = _bistable_points()
    with pytest.raises(TypeError, match="initial_states"):
        rl.find_fixed_points(model, np.zeros(1), "abc")
    with pytest.raises(TypeError, match="inputs"):
        rl.find_fixed_points(model, None, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="tol"):
        fps.with_speed_below(-1.0)
    assert len(fps.with_speed_below(1e-10)) == len(fps) == 9


def test_linearize_discrete_map_matches_simulation():
    # for maps, LinearSystem.step is x + F; near a stable root the linear and the true GRU
    # trajectories differ by O(|dx|^2)
    rng = np.random.default_rng(3)
    model = rl.GRU(2, 6, 2, key=jax.random.PRNGKey(1))
    u = np.array([0.2, -0.4])
    fps = rl.find_fixed_points(model, u, rng.uniform(-0.5, 0.5, size=(64, 6)),
                               solver=SMALL_STEPS)
    i = fps.stability.index("stable")
    x0 = np.asarray(fps.states)[i]
    lin = rl.analysis.linearize(model, x0, u)
    np.testing.assert_allclose(lin.A + np.eye(6), np.asarray(fps.jacobians)[i], atol=1e-12)
    # the map's multipliers are the FixedPoints eigenvalues; A's are mu - 1
    np.testing.assert_allclose(lin.map_eigenvalues, np.asarray(fps.eigenvalues)[i], atol=1e-12)
    np.testing.assert_allclose(lin.eigenvalues, np.asarray(fps.eigenvalues)[i] - 1, atol=1e-12)
    errors = []
    for size in (1e-2, 1e-3):
        dx = size * rng.normal(size=6)
        inputs = np.tile(u, (20, 1))
        true = np.asarray(rl.simulate(model, jnp.asarray(inputs, jnp.float32),
                                      initial_state=jnp.asarray(x0 + dx, jnp.float32)).states)
        errors.append(np.max(np.abs(true - lin.simulate(inputs, x0 + dx))))
    # second order: a 10x smaller start is ~100x closer (float32 simulation floor ~1e-7)
    assert errors[1] < errors[0] / 30


def test_linearize_is_one_compiled_call(caplog):
    # linearize used to evaluate the Jacobians op by op (3.7 s for a 6-unit GRU, every
    # call); now one jitted call, compiled once per model structure
    import logging

    def compiled():
        return [r.getMessage() for r in caplog.records if r.getMessage().startswith("Compiling")]

    model = rl.GRU(3, 7, 2, key=jax.random.PRNGKey(2))  # sizes no other test uses
    u = np.array([0.1, 0.2, 0.3])
    caplog.set_level(logging.WARNING)
    with jax.log_compiles(True):
        rl.analysis.linearize(model, np.zeros(7), u)
    first = compiled()
    # op by op, this was 75 compilations of single primitives
    assert any("_linear_terms" in m for m in first) and len(first) <= 20
    caplog.clear()
    with jax.log_compiles(True):
        lin = rl.analysis.linearize(model, np.full(7, 0.3), u)
    assert compiled() == []
    jac = jax.jacfwd(lambda h: model.step(h, jnp.asarray(u, jnp.float32)))(jnp.full(7, 0.3))
    np.testing.assert_allclose(lin.A + np.eye(7), np.asarray(jac), atol=1e-6)


# ------------------------------------------------------------------ rnnlab analyze


def _linear_line_run(tmp_path):
    """A flip-flop run directory whose network is replaced by a linear CT-RNN with W =
    diag(1, .5, .5), W_in = I: at input (0, a, 0) its fixed points are the line
    {(s, 2a, 0)} (eigenvalue 0 along e1), so two inputs give two parallel lines."""
    from rnnlab.cli import main

    run = tmp_path / "run"
    assert main(["train", "flipflop", "--out", str(run), "--hidden", "3", "--steps", "1",
                 "--no-progress"]) == 0
    model = rl.CTRNN.from_weights(np.diag([1.0, 0.5, 0.5]), np.eye(3), np.eye(3),
                                  activation="linear", dt=DT, tau=TAU)
    rl.save(run / "model.safetensors", model)
    return run, main


def test_cli_analyze_manifolds_per_input(tmp_path, capsys):
    # regression: attractor_manifolds ran on the points of all inputs pooled, so two parallel
    # line attractors of two different inputs (0.1 apart) came out as one "surface"
    import json

    run, main = _linear_line_run(tmp_path)
    capsys.readouterr()
    assert main(["analyze", str(run), "--n-initial", "256", "--n-trials", "32",
                 "--slow-tol", "1e-6", "--topology-starts", "2",
                 "--inputs", "[[0, 0, 0], [0, 0.05, 0]]"]) == 0
    table = capsys.readouterr().out
    summary = json.loads((run / "analysis" / "summary.json").read_text())
    fps = rl.FixedPoints.load(run / "analysis" / "fixed_points.safetensors")
    manifolds = summary["manifolds"]
    assert [(m["input"], m["kind"], m["dimension"]) for m in manifolds] == [
        ("input0", "line", 1), ("input1", "line", 1)]
    assert all(m["near_zero_tangent"] for m in manifolds)
    for row, shift in zip(summary["inputs"], (0.0, 0.1)):
        assert row["manifolds"] == 1
        sel = np.all(np.asarray(fps.inputs) == np.asarray(row["input"]), axis=1)
        x = np.asarray(fps.states)[sel]
        # every point lies on its input's line, all modes but the line's decay: off the line
        # F_i = (-x_i / 2 + u_i) / tau, so a point of speed |F| is within 2 tau |F| of it
        off = np.abs(x[:, 1:] - np.array([shift, 0.0]))
        bound = 2 * TAU * np.asarray(fps.speeds)[sel][:, None] * (1 + 1e-6) + 1e-15
        assert np.all(off <= bound), (off.max(), bound.max())
        assert set(np.asarray(fps.stability)[sel]) == {"marginal"}
        assert row["marginal"] == row["n_points"] == int(sel.sum())
    assert "line (" in table and "input input1" in table
    # the table's rows are the file's counts
    for line, row in zip(table.splitlines()[2:4], summary["inputs"]):
        cells = line.split()
        assert cells[0] == row["name"] and int(cells[1]) == row["n_points"]
        assert int(cells[-1]) == 1 and int(cells[-3]) == row["marginal"]


def test_cli_analyze_context_task_inputs():
    # the context-dependent decision task is analysed per context (Mante et al. 2013) at
    # zero coherence, with the task's own channel layout
    from rnnlab.runs import analysis_inputs as task_inputs

    task = rl.tasks.make("context_decision_making")
    named = dict(task_inputs(task))
    # no zero input: the network never receives it (it always sees a context cue)
    assert list(named) == ["motion context coh=0", "colour context coh=0"]
    trial = task.trial_for(0, 0.0, 0.0, 2, 3, 2)
    stim = np.asarray(trial.inputs)[3]  # a stimulus step of a motion-context trial
    np.testing.assert_allclose(named["motion context coh=0"], stim)
    trial = task.trial_for(1, 0.0, 0.0, 2, 3, 2)
    np.testing.assert_allclose(named["colour context coh=0"], np.asarray(trial.inputs)[3])


def test_cli_analyze_sine_wave_inputs_are_trained_levels():
    from rnnlab.runs import analysis_inputs as task_inputs

    task = rl.tasks.make("sine_wave")
    named = task_inputs(task)
    # the lowest, middle and highest trained frequency levels; no zero input
    assert len(named) == 3 and all(n.startswith("frequency") for n, _ in named)
    first = np.asarray(task.trial_for(0).inputs)[0]
    last = np.asarray(task.trial_for(task.n_frequencies - 1).inputs)[0]
    np.testing.assert_allclose(named[0][1], first, rtol=1e-6)
    np.testing.assert_allclose(named[-1][1], last, rtol=1e-6)


@pytest.mark.slow
def test_flipflop_edge_saddles_connect_neighbouring_corners():
    """The scaffold of a trained 3-bit flip-flop (Sussillo & Barak 2013): every saddle with
    one unstable mode sits between two memories, so its unstable manifold leads to exactly
    two stable points whose outputs differ in exactly one bit, and every stable point
    returns to itself."""
    task = rl.tasks.make("flipflop")
    model = rl.CTRNN(3, 32, 3, key=jax.random.PRNGKey(0))
    res = rl.train(model, task, key=jax.random.PRNGKey(1), steps=600, learning_rate=1e-2,
                   target_accuracy=0.99, progress=False)
    traj = rl.simulate(res.model, task.sample_batch(jax.random.PRNGKey(2), 64).inputs)
    x0 = rl.analysis.sample_states(traj, 1024, key=jax.random.PRNGKey(3))
    fps = rl.find_fixed_points(res.model, np.zeros(3), x0)
    graph = rl.analysis.topology(res.model, fps, key=jax.random.PRNGKey(4), n_starts=64,
                                 noise_std=0.05, n_steps=2000)
    lab, nu = np.array(fps.stability), np.asarray(fps.n_unstable)
    bits = np.sign(np.asarray(fps.outputs))
    assert np.sum(lab == "stable") == 8
    edge_saddles = np.nonzero((lab == "saddle") & (nu == 1))[0]
    assert len(edge_saddles) >= 7  # enough to connect the cube
    for i in edge_saddles:
        targets = {j: d["probability"] for _, j, d in graph.out_edges(int(i), data=True)}
        assert set(targets) <= set(np.nonzero(lab == "stable")[0].tolist())
        a, b = targets
        assert int(np.sum(bits[a] != bits[b])) == 1
        assert sum(targets.values()) == pytest.approx(1.0)
    for i in np.nonzero(lab == "stable")[0]:
        assert graph.edges[int(i), int(i)]["probability"] == 1.0


def test_concatenate_checks_its_parts():
    model, fps = _bistable_points()
    empty = fps[np.zeros(len(fps), bool)]
    both = rl.FixedPoints.concatenate([empty, fps, fps[:2]])
    assert len(both) == len(fps) + 2 and both.stability == fps.stability + fps.stability[:2]
    with pytest.raises(TypeError, match="parts"):
        rl.FixedPoints.concatenate([fps, np.zeros((2, 2))])
    # labels made with another marginal band cannot share one marginal_tol field
    looser = rl.find_fixed_points(model, np.zeros(1), np.asarray(fps.states),
                                  post=rl.analysis.PostProcessing(marginal_tol=1e-3))
    with pytest.raises(ValueError, match="marginal_tol"):
        rl.FixedPoints.concatenate([fps, looser])
    # same state size, other input size: another model
    other = rl.CTRNN.from_weights(2 * np.eye(2), np.zeros((2, 2)), np.eye(2), dt=DT, tau=TAU)
    with pytest.raises(ValueError, match="different models"):
        rl.FixedPoints.concatenate(
            [fps, rl.find_fixed_points(other, np.zeros(2), np.asarray(fps.states))])

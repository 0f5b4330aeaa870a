"""FORCE learning: the compiled RLS loop against a numpy loop, the ridge-regression identity of
RLS, the computation-thru-dynamics notebook (chaotic teacher) and Sussillo & Abbott 2009's
periodic targets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnlab as rl
from rnnlab.training import _force


def np_force(w_rec, w_in, w_fb, w_out, targets, inputs, a0, alpha_dt, alpha_rls, passes, every):
    """Independent reference: FORCE with feedback written out in numpy (float64)."""
    n = w_rec.shape[0]
    P = np.eye(n) / alpha_rls
    w_out = w_out.copy()
    errors = np.zeros((passes,) + targets.shape)
    for p in range(passes):
        a = a0.copy()
        for t, (u, f) in enumerate(zip(inputs, targets)):
            r = np.tanh(a)
            a = a + alpha_dt * (-a + w_rec @ r + w_in @ u + w_fb @ (w_out @ r))
            r = np.tanh(a)
            e = w_out @ r - f
            errors[p, t] = e
            if t % every == 0:
                k = P @ r
                c = 1.0 / (1.0 + r @ k)
                P -= c * np.outer(k, k)
                w_out -= c * np.outer(e, k)
    return w_out, P, errors, a


def test_matches_numpy_force_loop():
    rng = np.random.default_rng(0)
    n, n_out, T = 40, 2, 60
    with jax.enable_x64(True):
        w_rec = rng.normal(size=(n, n)) * 1.5 / np.sqrt(n)
        w_in = rng.normal(size=(n, 1))
        w_fb = rng.normal(size=(n, n_out))
        w_out = rng.normal(size=(n_out, n)) / np.sqrt(n)
        a0 = rng.normal(size=n) * 0.25
        t = np.arange(T) * 0.1
        targets = np.stack([np.sin(t), np.cos(0.5 * t)], 1)
        inputs = rng.normal(size=(T, 1)) * 0.1
        esn = rl.EchoStateNetwork.from_weights(w_rec, w_in, w_out, w_fb, initial_state=a0)
        esn = jax.tree.map(lambda x: x.astype(jnp.float64) if hasattr(x, "dtype") and
                           jnp.issubdtype(x.dtype, jnp.floating) else x, esn)
        res = rl.train_force(esn, jnp.asarray(targets), inputs=jnp.asarray(inputs), alpha=2.0,
                             passes=3, update_every=2)
        w_ref, P_ref, e_ref, a_ref = np_force(
            np.asarray(esn.w_rec), np.asarray(esn.w_in), np.asarray(esn.w_fb),
            np.asarray(esn.w_out), targets, inputs, np.asarray(esn.h0), 0.1, 2.0, 3, 2)
        np.testing.assert_allclose(np.asarray(res.model.w_out), w_ref, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(np.asarray(res.P), P_ref, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(np.asarray(res.errors), e_ref, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(np.asarray(res.final_state), a_ref, rtol=1e-9, atol=1e-12)
        assert res.errors.shape == (3, T, n_out) and res.pass_rmse.shape == (3,)
        # everything except the readout is unchanged
        assert np.array_equal(np.asarray(res.model.w_rec), np.asarray(esn.w_rec))


def test_rls_is_recursive_ridge_regression():
    """Without feedback the rates do not depend on W_out, and RLS from (W0, P0 = I/alpha) ends at
    the ridge solution W = (alpha W0 + F^T R)(alpha I + R^T R)^-1, P = (alpha I + R^T R)^-1,
    R the rates at the update steps."""
    rng = np.random.default_rng(1)
    n, T, every, alpha = 30, 90, 3, 0.5
    with jax.enable_x64(True):
        esn = rl.EchoStateNetwork.from_weights(
            rng.normal(size=(n, n)) * 1.2 / np.sqrt(n), rng.normal(size=(n, 2)),
            rng.normal(size=(1, n)), None, initial_state=rng.normal(size=n))
        esn = jax.tree.map(lambda x: x.astype(jnp.float64) if hasattr(x, "dtype") and
                           jnp.issubdtype(x.dtype, jnp.floating) else x, esn)
        inputs = jnp.asarray(rng.normal(size=(T, 2)))
        f = jnp.asarray(np.sin(np.arange(T) / 5.0)[:, None])
        res = rl.train_force(esn, f, inputs=inputs, alpha=alpha, update_every=every)
        R = np.asarray(rl.simulate(esn, inputs).rates)[::every]
        F = np.asarray(f)[::every]
        A = alpha * np.eye(n) + R.T @ R
        P = np.linalg.inv(A)
        W = (alpha * np.asarray(esn.w_out) + F.T @ R) @ P
        np.testing.assert_allclose(np.asarray(res.P), P, rtol=1e-7, atol=1e-10)
        np.testing.assert_allclose(np.asarray(res.model.w_out), W, rtol=1e-7, atol=1e-9)
        # continuing from the returned P equals one longer run
        half = rl.train_force(esn, f[:45], inputs=inputs[:45], alpha=alpha, update_every=every)
        rest = rl.train_force(half.model, f[45:], inputs=inputs[45:], P=half.P,
                              update_every=every, initial_state=half.final_state)
        np.testing.assert_allclose(np.asarray(rest.model.w_out), W, rtol=1e-7, atol=1e-9)


def test_chaotic_teacher_notebook():
    """computation-thru-dynamics FORCE notebook: a 500-unit reservoir (g = 1.5) learns the 20
    first rates of a chaotic g = 1.8 teacher over 300 steps (T = 30, dt/tau = 0.1) in 15 passes,
    then reproduces them running free from its initial state."""
    T, n, m = 300, 500, 20
    teacher = rl.EchoStateNetwork(1, n, m, key=jax.random.PRNGKey(7868221), gain=1.8,
                                  initial_state="random")
    f = rl.simulate(teacher, jnp.zeros((T, 1))).rates[:, :m]
    assert float(jnp.std(f)) > 0.5  # a rich, large-amplitude target
    esn = rl.EchoStateNetwork(1, n, m, key=jax.random.PRNGKey(1), gain=1.5,
                              initial_state="random")
    res = rl.train_force(esn, f, passes=15, alpha=1.0)
    rmse = np.asarray(res.pass_rmse)
    assert rmse[-1] < 0.02 and rmse[-1] < rmse[0] / 3
    free = rl.simulate(res.model, jnp.zeros((T, 1))).outputs
    test_rmse = float(jnp.sqrt(jnp.mean((free - f) ** 2)))
    before = float(jnp.sqrt(jnp.mean((rl.simulate(esn, jnp.zeros((T, 1))).outputs - f) ** 2)))
    assert test_rmse < 0.03, test_rmse
    assert before > 0.5
    # The trained closed loop is an ordinary model: its Jacobian is built from
    # W_rec + W_fb W_out, whose spectrum moved away from the reservoir's.
    loop = np.asarray(res.model.closed_loop_weights(), np.float64)
    np.testing.assert_allclose(
        loop, np.asarray(esn.w_rec) + np.asarray(esn.w_fb) @ np.asarray(res.model.w_out),
        atol=1e-5)
    s = res.final_state
    jac = np.asarray(res.model.jacobian(s, jnp.zeros(1)), np.float64)
    np.testing.assert_allclose(jac, -np.eye(n) + loop * (1 - np.tanh(np.asarray(s)) ** 2),
                               atol=1e-4)


def sum_of_sines(t):
    """Sussillo & Abbott 2009, Fig. 2 (their MATLAB demo): period 120 tau."""
    w = np.pi / 60.0
    return (1.3 * np.sin(w * t) + 0.65 * np.sin(2 * w * t) + 1.3 / 6 * np.sin(3 * w * t)
            + 1.3 / 3 * np.sin(4 * w * t)) / 1.5


def triangle(t, period=60.0):
    return 4.0 * np.abs((t / period) % 1.0 - 0.5) - 1.0


def _periodic(fn, period, n, density, cycles, key):
    dt = 0.1
    steps = int(round(period / dt))
    t = np.arange(1, cycles * steps + 1) * dt
    f = fn(t)[:, None].astype(np.float32)
    esn = rl.EchoStateNetwork(1, n, 1, key=jax.random.PRNGKey(key), gain=1.5, density=density,
                              readout_scale=0.0, initial_state="random", dt=dt, tau=1.0)
    res = rl.train_force(esn, f, alpha=1.0, update_every=2)
    train_rmse = float(jnp.sqrt(jnp.mean(res.errors[0, -steps:] ** 2)))
    t_test = t[-1] + np.arange(1, 2 * steps + 1) * dt
    out = rl.simulate(res.model, jnp.zeros((2 * steps, 1)), initial_state=res.final_state)
    test_rmse = float(np.sqrt(np.mean((np.asarray(out.outputs[:, 0]) - fn(t_test)) ** 2)))
    return train_rmse, test_rmse, float(np.std(f))


def test_sussillo_abbott_triangle_wave():
    train_rmse, test_rmse, std = _periodic(triangle, 60.0, 300, 1.0, 4, key=3)
    assert train_rmse < 0.02, train_rmse
    assert test_rmse < 0.1, test_rmse  # target std 0.58: the free-running wave is the triangle
    assert std > 0.5


def test_sussillo_abbott_sum_of_sines():
    """Their network: N = 1000, p = 0.1, g = 1.5, dt/tau = 0.1, an update every 2 steps,
    alpha = 1, 1440 tau of training (12 periods); then it runs free."""
    train_rmse, test_rmse, std = _periodic(sum_of_sines, 120.0, 1000, 0.1, 12, key=3)
    assert train_rmse < 0.03, train_rmse
    assert test_rmse < 0.05, test_rmse  # target std 0.72
    assert std > 0.7


def test_compiles_once_per_shape(monkeypatch):
    calls = []
    orig = _force._rls_update

    def counting(*args):
        calls.append(1)
        return orig(*args)

    monkeypatch.setattr(_force, "_rls_update", counting)
    esn = rl.EchoStateNetwork(1, 17, 1, key=jax.random.PRNGKey(0), initial_state="random")
    f = jnp.sin(jnp.arange(33.0) / 4)[:, None]
    rl.train_force(esn, f, passes=2)
    n_traces = len(calls)
    rl.train_force(esn, 0.5 * f, passes=2, alpha=3.0)
    rl.train_force(esn, -f, passes=2)
    assert n_traces >= 1 and len(calls) == n_traces  # new values, no new trace


def test_argument_errors():
    esn = rl.EchoStateNetwork(2, 10, 3, key=jax.random.PRNGKey(0))
    f = jnp.zeros((20, 3))
    with pytest.raises(TypeError, match="esn"):
        rl.train_force(rl.GRU(2, 10, 3, key=jax.random.PRNGKey(0)), f)
    with pytest.raises(ValueError, match="targets"):
        rl.train_force(esn, jnp.zeros((20, 2)))
    with pytest.raises(ValueError, match="inputs"):
        rl.train_force(esn, f, inputs=jnp.zeros((19, 2)))
    with pytest.raises(ValueError, match="alpha"):
        rl.train_force(esn, f, alpha=0.0)
    with pytest.raises(ValueError, match="passes"):
        rl.train_force(esn, f, passes=0)
    with pytest.raises(ValueError, match="update_every"):
        rl.train_force(esn, f, update_every=1.5)
    with pytest.raises(ValueError, match="P"):
        rl.train_force(esn, f, P=jnp.eye(9))
    with pytest.raises(ValueError, match="targets"):
        rl.train_force(esn, f.at[3, 1].set(jnp.nan))


@pytest.mark.slow
def test_closed_loop_after_force_is_an_ordinary_model_for_fixed_points():
    """FORCE-train a constant 2-D output; the trained closed loop then has a stable fixed point
    whose readout is that constant (found by `rl.find_fixed_points` from its own trajectory),
    and the free-running network settles there."""
    esn = rl.EchoStateNetwork(1, 200, 2, key=jax.random.PRNGKey(2), gain=1.5, readout_scale=0.0,
                              initial_state="random")
    c = jnp.array([0.6, -0.4])
    res = rl.train_force(esn, jnp.tile(c, (1000, 1)), passes=3)
    free = rl.simulate(res.model, jnp.zeros((1000, 1)))
    np.testing.assert_allclose(np.asarray(free.outputs[-200:]), np.tile(c, (200, 1)), atol=1e-3)
    starts = np.asarray(free.states[:300:15])
    fps = rl.find_fixed_points(res.model, np.zeros(1), starts)
    stable = np.asarray(fps.outputs)[np.asarray([s == "stable" for s in fps.stability])]
    assert len(stable) >= 1
    assert np.min(np.linalg.norm(stable - np.asarray(c), axis=1)) < 1e-3
    # its linearisation is built from the closed-loop matrix W_rec + W_fb W_out
    k = int(np.argmin(np.linalg.norm(np.asarray(fps.outputs) - np.asarray(c), axis=1)))
    x = np.asarray(fps.states[k])
    loop = np.asarray(res.model.closed_loop_weights(), np.float64)
    np.testing.assert_allclose(np.asarray(fps.jacobians[k]),
                               -np.eye(200) + loop * (1 - np.tanh(x) ** 2)[None, :], atol=1e-4)

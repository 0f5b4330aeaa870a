"""EchoStateNetwork: numpy Euler reference with feedback, closed-loop equivalence with a CT-RNN,
reservoir statistics, gradients, save/load, argument errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnlab as rl


def np_esn(w_rec, w_in, w_fb, w_out, b, inputs, a0, alpha):
    """Independent reference: Euler ESN with output feedback, float64."""
    a = np.array(a0, np.float64)
    states, outs = [], []
    for u in inputs:
        r = np.tanh(a)
        z = w_out @ r
        a = a + alpha * (-a + w_rec @ r + w_in @ u + w_fb @ z + b)
        states.append(a.copy())
        outs.append(w_out @ np.tanh(a))
    return np.array(states), np.array(outs)


def weights(rng, n=30, n_in=2, n_out=3):
    return (rng.normal(size=(n, n)) * 1.5 / np.sqrt(n), rng.normal(size=(n, n_in)),
            rng.normal(size=(n_out, n)) / np.sqrt(n), rng.normal(size=(n, n_out)),
            rng.normal(size=n) * 0.1)


def test_simulation_matches_numpy_with_feedback():
    rng = np.random.default_rng(0)
    w_rec, w_in, w_out, w_fb, b = weights(rng)
    esn = rl.EchoStateNetwork.from_weights(w_rec, w_in, w_out, w_fb, b, dt=0.1, tau=1.0)
    inputs = rng.normal(size=(80, 2))
    a0 = rng.normal(size=30) * 0.3
    tr = rl.simulate(esn, jnp.asarray(inputs, jnp.float32), initial_state=a0)
    states, outs = np_esn(w_rec, w_in, w_fb, w_out, b, inputs, a0, 0.1)
    np.testing.assert_allclose(np.asarray(tr.states), states, atol=5e-5)
    np.testing.assert_allclose(np.asarray(tr.outputs), outs, atol=5e-5)
    np.testing.assert_allclose(np.asarray(tr.rates), np.tanh(states), atol=5e-5)
    # step == state + dt * vector_field (Euler), and the step-by-step map equals the scan
    s = jnp.asarray(a0, jnp.float32)
    u = jnp.asarray(inputs[0], jnp.float32)
    np.testing.assert_allclose(np.asarray(esn.step(s, u)),
                               np.asarray(s + 0.1 * esn.vector_field(s, u)), atol=1e-6)
    np.testing.assert_allclose(np.asarray(esn.step(s, u)), states[0], atol=5e-5)
    assert esn.is_continuous and esn.feedback


def test_without_feedback_ignores_w_fb():
    rng = np.random.default_rng(1)
    w_rec, w_in, w_out, w_fb, b = weights(rng)
    esn = rl.EchoStateNetwork.from_weights(w_rec, w_in, w_out, None, b)
    assert not esn.feedback
    inputs = rng.normal(size=(30, 2))
    states, _ = np_esn(w_rec, w_in, np.zeros_like(w_fb), w_out, b, inputs, np.zeros(30), 0.1)
    tr = rl.simulate(esn, jnp.asarray(inputs, jnp.float32))
    np.testing.assert_allclose(np.asarray(tr.states), states, atol=5e-5)
    np.testing.assert_allclose(np.asarray(esn.closed_loop_weights()), w_rec, atol=1e-6)


def test_closed_loop_is_a_ctrnn_with_w_rec_plus_wfb_wout():
    rng = np.random.default_rng(2)
    w_rec, w_in, w_out, w_fb, b = weights(rng)
    esn = rl.EchoStateNetwork.from_weights(w_rec, w_in, w_out, w_fb, b, dt=0.2, tau=2.0)
    loop = w_rec + w_fb @ w_out
    np.testing.assert_allclose(np.asarray(esn.closed_loop_weights()), loop, atol=1e-5)
    ct = rl.CTRNN.from_weights(loop, w_in, w_out, b, dt=0.2, tau=2.0)
    x = jnp.asarray(rng.normal(size=(50, 2)), jnp.float32)
    np.testing.assert_allclose(np.asarray(rl.simulate(esn, x).outputs),
                               np.asarray(rl.simulate(ct, x).outputs), atol=1e-5)
    s = jnp.asarray(rng.normal(size=30), jnp.float32)
    u = x[0]
    np.testing.assert_allclose(np.asarray(esn.vector_field(s, u)),
                               np.asarray(ct.vector_field(s, u)), atol=1e-5)
    # Jacobian of the closed loop: (-I + (W_rec + W_fb W_out) diag(1 - tanh^2)) / tau
    jac = np.asarray(esn.jacobian(s, u))
    expect = (-np.eye(30) + loop * (1 - np.tanh(np.asarray(s, np.float64)) ** 2)[None, :]) / 2.0
    np.testing.assert_allclose(jac, expect, atol=1e-5)


def test_reservoir_statistics():
    n, g, p = 600, 1.5, 0.2
    esn = rl.EchoStateNetwork(1, n, 2, key=jax.random.PRNGKey(0), gain=g, density=p)
    w = np.asarray(esn.w_rec)
    nz = w[w != 0]
    assert abs(nz.size / n**2 - p) < 0.01
    assert abs(nz.std() - g / np.sqrt(p * n)) < 0.03 * g / np.sqrt(p * n)
    # circular law: spectral radius close to g
    rho = np.max(np.abs(np.linalg.eigvals(w)))
    assert abs(rho - g) < 0.1
    assert np.all(np.asarray(esn.h0) == 0)
    r = rl.EchoStateNetwork(1, n, 2, key=jax.random.PRNGKey(0), initial_state="random")
    assert abs(float(jnp.std(r.h0)) - 0.25) < 0.03


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        w_rec, w_in, w_out, w_fb, b = weights(rng, n=10)
        esn = rl.EchoStateNetwork.from_weights(
            w_rec, w_in, w_out, w_fb, b, trainable=("w_out", "w_fb", "w_rec", "h0"))
        esn = jax.tree.map(lambda x: x.astype(jnp.float64) if eqx.is_inexact_array(x) else x, esn)
        x = jnp.asarray(rng.normal(size=(20, 2)))
        y = jnp.asarray(rng.normal(size=(20, 3)))

        @eqx.filter_jit
        def loss(m):
            return jnp.mean((m.readout_all(m.unroll(x, m.initial_state())) - y) ** 2)

        params, static = eqx.partition(esn, esn.trainable_filter())
        grads = jax.grad(lambda p: loss(eqx.combine(p, static)))(params)
        assert grads.w_in is None  # frozen: not a trainable leaf at all
        for name in ("w_out", "w_fb", "w_rec", "h0"):
            d = jnp.asarray(rng.normal(size=getattr(esn, name).shape))
            eps = 1e-6
            plus = eqx.tree_at(lambda m: getattr(m, name), esn, getattr(esn, name) + eps * d)
            minus = eqx.tree_at(lambda m: getattr(m, name), esn, getattr(esn, name) - eps * d)
            fd = (loss(plus) - loss(minus)) / (2 * eps)
            np.testing.assert_allclose(float(jnp.sum(getattr(grads, name) * d)), float(fd),
                                       rtol=1e-6, atol=1e-10)


def test_save_load_round_trip(tmp_path):
    esn = rl.EchoStateNetwork(2, 40, 3, key=jax.random.PRNGKey(5), density=0.3,
                              initial_state="random", dt=0.05, tau=0.5)
    rl.save(tmp_path / "esn.safetensors", esn)
    loaded = rl.load(tmp_path / "esn.safetensors")
    assert isinstance(loaded, rl.EchoStateNetwork) and loaded.config() == esn.config()
    x = jnp.ones((25, 2))
    np.testing.assert_array_equal(np.asarray(rl.simulate(loaded, x).outputs),
                                  np.asarray(rl.simulate(esn, x).outputs))


def test_argument_errors():
    k = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="dt"):
        rl.EchoStateNetwork(1, 10, 1, key=k, dt=2.0, tau=1.0)
    with pytest.raises(ValueError, match="density"):
        rl.EchoStateNetwork(1, 10, 1, key=k, density=0.0)
    with pytest.raises(ValueError, match="initial_state"):
        rl.EchoStateNetwork(1, 10, 1, key=k, initial_state="ones")
    with pytest.raises(ValueError, match="trainable"):
        rl.EchoStateNetwork(1, 10, 1, key=k, trainable=("w_hh",))
    with pytest.raises(ValueError, match="w_fb"):
        rl.EchoStateNetwork.from_weights(np.zeros((4, 4)), np.zeros((4, 1)), np.zeros((2, 4)),
                                         np.zeros((4, 3)))

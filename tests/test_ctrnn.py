"""CT-RNN: simulation against an independent numpy Euler, noise statistics, constraints."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnlab as rl

ACT_NP = {
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
    "softplus": lambda x: np.log1p(np.exp(x)),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "retanh": lambda x: np.maximum(np.tanh(x), 0.0),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.01 * x),
    "linear": lambda x: x,
}


def numpy_euler(w_rec, w_in, w_out, b_rec, b_out, tau, dt, f, inputs, x0, form):
    """Independent reference: the Euler CT-RNN written out in numpy, float64."""
    alpha = dt / np.asarray(tau, dtype=np.float64)
    x = np.array(x0, dtype=np.float64)
    states, outs = [], []
    for u in inputs:
        if form == "potential":
            x = (1 - alpha) * x + alpha * (w_rec @ f(x) + w_in @ u + b_rec)
            r = f(x)
        else:
            x = (1 - alpha) * x + alpha * f(w_rec @ x + w_in @ u + b_rec)
            r = x
        states.append(x.copy())
        outs.append(w_out @ r + b_out)
    return np.array(states), np.array(outs)


def random_weights(rng, n_in, n, n_out, g=1.2):
    return (
        rng.normal(0, g / np.sqrt(n), (n, n)),
        rng.normal(0, 1 / np.sqrt(n_in), (n, n_in)),
        rng.normal(0, 1 / np.sqrt(n), (n_out, n)),
        rng.normal(0, 0.1, n),
        rng.normal(0, 0.1, n_out),
    )


@pytest.mark.parametrize("form", ["potential", "rate"])
@pytest.mark.parametrize("activation", sorted(ACT_NP))
def test_simulation_matches_numpy_euler(form, activation):
    rng = np.random.default_rng(0)
    n_in, n, n_out, T = 2, 12, 3, 40
    w_rec, w_in, w_out, b_rec, b_out = random_weights(rng, n_in, n, n_out)
    tau = rng.uniform(50, 150, n)  # per-unit time constants
    dt = 10.0
    model = rl.CTRNN.from_weights(
        w_rec, w_in, w_out, b_rec, b_out, activation=activation, dt=dt, tau=tau, form=form
    )
    inputs = rng.normal(0, 1, (T, n_in))
    ref_states, ref_out = numpy_euler(
        w_rec, w_in, w_out, b_rec, b_out, tau, dt, ACT_NP[activation], inputs, np.zeros(n), form
    )
    traj = rl.simulate(model, jnp.asarray(inputs, jnp.float32))
    np.testing.assert_allclose(traj.states, ref_states, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(traj.outputs, ref_out, rtol=2e-4, atol=2e-5)
    expected_rates = ACT_NP[activation](ref_states) if form == "potential" else ref_states
    np.testing.assert_allclose(traj.rates, expected_rates, rtol=2e-4, atol=2e-5)


def test_batched_simulation_and_initial_state():
    rng = np.random.default_rng(1)
    w = random_weights(rng, 2, 8, 1)
    model = rl.CTRNN.from_weights(*w, activation="tanh", dt=20.0, tau=100.0)
    inputs = rng.normal(size=(3, 15, 2)).astype(np.float32)
    x0 = rng.normal(size=(3, 8)).astype(np.float32)
    traj = rl.simulate(model, inputs, initial_state=x0)
    assert traj.states.shape == (3, 15, 8) and traj.outputs.shape == (3, 15, 1)
    for b in range(3):
        ref, ref_out = numpy_euler(*w, 100.0, 20.0, np.tanh, inputs[b], x0[b], "potential")
        np.testing.assert_allclose(traj.states[b], ref, rtol=2e-4, atol=2e-5)


def test_step_vector_field_and_unroll_agree():
    model = rl.CTRNN(3, 10, 2, key=jax.random.PRNGKey(0), tau=jnp.linspace(50, 200, 10))
    x = jax.random.normal(jax.random.PRNGKey(1), (10,))
    u = jax.random.normal(jax.random.PRNGKey(2), (3,))
    # Euler: x[t+1] = x + dt * dx/dt
    np.testing.assert_allclose(
        model.step(x, u), x + model.dt * model.vector_field(x, u), rtol=1e-5, atol=1e-6
    )
    inputs = jax.random.normal(jax.random.PRNGKey(3), (20, 3))
    states = model.unroll(inputs, x)
    s = x
    for t in range(20):
        s = model.step(s, inputs[t])
        np.testing.assert_allclose(states[t], s, rtol=1e-5, atol=1e-6)


def test_noise_only_with_key_and_reproducible():
    model = rl.CTRNN(1, 6, 1, key=jax.random.PRNGKey(0), noise_std=0.1, input_noise_std=0.1)
    inputs = jnp.ones((30, 1))
    a = rl.simulate(model, inputs).states
    b = rl.simulate(model, inputs).states
    np.testing.assert_array_equal(a, b)
    c = rl.simulate(model, inputs, key=jax.random.PRNGKey(5)).states
    d = rl.simulate(model, inputs, key=jax.random.PRNGKey(5)).states
    e = rl.simulate(model, inputs, key=jax.random.PRNGKey(6)).states
    np.testing.assert_array_equal(c, d)
    assert not np.allclose(a, c) and not np.allclose(c, e)


@pytest.mark.parametrize("dt", [5.0, 20.0, 50.0])
def test_stationary_noise_variance_is_analytic(dt):
    """x' = (1-a) x + sqrt(2a) s xi has stationary variance s^2 / (1 - a/2): nearly dt-free."""
    n, sigma, tau = 200, 0.3, 100.0
    model = rl.CTRNN.from_weights(
        np.zeros((n, n)), np.zeros((n, 1)), np.zeros((1, n)), activation="linear", dt=dt,
        tau=tau, noise_std=sigma,
    )
    alpha = dt / tau
    T = int(20 / alpha) + 400
    traj = rl.simulate(model, jnp.zeros((T, 1)), key=jax.random.PRNGKey(0))
    var = float(jnp.var(traj.states[int(20 / alpha):]))
    expected = sigma**2 / (1 - alpha / 2)
    assert abs(var - expected) / expected < 0.05


def test_input_noise_enters_through_w_in():
    n = 1
    model = rl.CTRNN.from_weights(
        np.zeros((n, n)), np.ones((n, 1)), np.ones((1, n)), activation="linear", dt=100.0,
        tau=100.0, input_noise_std=0.5,
    )  # alpha = 1: x[t] = u[t] + 0.5 xi
    traj = rl.simulate(model, jnp.full((20000, 1), 2.0), key=jax.random.PRNGKey(1))
    x = np.asarray(traj.states[:, 0])
    assert abs(x.mean() - 2.0) < 0.02 and abs(x.std() - 0.5) < 0.01


def test_gain_and_spectral_radius_init():
    n = 400
    m = rl.CTRNN(1, n, 1, key=jax.random.PRNGKey(0), gain=1.3)
    std = float(jnp.std(m.effective_weights()["w_rec"]))
    assert abs(std - 1.3 / np.sqrt(n)) / (1.3 / np.sqrt(n)) < 0.03
    m2 = rl.CTRNN(1, 50, 1, key=jax.random.PRNGKey(0), spectral_radius=1.1)
    rho = np.max(np.abs(np.linalg.eigvals(np.asarray(m2.effective_weights()["w_rec"]))))
    assert abs(rho - 1.1) < 1e-4
    m3 = rl.CTRNN(1, 50, 1, key=jax.random.PRNGKey(0), dale=True)
    rho = np.max(np.abs(np.linalg.eigvals(np.asarray(m3.effective_weights()["w_rec"]))))
    assert m3.activation_name == "relu"  # Dale networks default to a non-negative activation
    assert abs(rho - 0.9) < 1e-4  # Dale init is rescaled to the (relu) gain
    assert m.effective_weights()["w_in"].shape == (n, 1)


def test_constraints_at_init():
    key = jax.random.PRNGKey(0)
    mask = np.random.default_rng(0).random((20, 20)) < 0.3
    m = rl.CTRNN(
        2, 20, 2, key=key, dale=True, autapses=False, w_rec_mask=mask, readout="excitatory",
        nonnegative_inputs=True, nonnegative_outputs=True,
    )
    w = m.effective_weights()
    assert set(w) == {"w_rec", "w_in", "w_out", "b_rec", "b_out"}
    check_constraints(m, mask)


def check_constraints(m, mask=None):
    w = {k: np.asarray(v) for k, v in m.effective_weights().items()}
    n_e = m.n_excitatory
    assert n_e == 16
    assert np.all(w["w_rec"][:, :n_e] >= 0) and np.all(w["w_rec"][:, n_e:] <= 0)
    assert np.all(np.diag(w["w_rec"]) == 0)
    if mask is not None:
        assert np.all(w["w_rec"][~mask] == 0)
    assert np.all(w["w_out"][:, n_e:] == 0)
    assert np.all(w["w_in"] >= 0) and np.all(w["w_out"] >= 0)


def test_constraints_hold_after_training_with_large_learning_rate():
    task = rl.tasks.FlipFlop(n_bits=2, n_steps=40)
    rng = np.random.default_rng(0)
    mask = rng.random((20, 20)) < 0.5
    in_mask = rng.random((20, 2)) < 0.7
    m = rl.CTRNN(
        2, 20, 2, key=jax.random.PRNGKey(0), dale=True, autapses=False, w_rec_mask=mask,
        w_in_mask=in_mask, readout="excitatory", nonnegative_inputs=True,
        nonnegative_outputs=True, trainable=("w_rec", "w_out", "b_out"),
    )
    res = rl.train(m, task, key=jax.random.PRNGKey(1), steps=30, learning_rate=0.5,
                   grad_clip=None, eval_every=30, progress=False)
    t = res.model
    check_constraints(t, mask)
    assert np.all(np.asarray(t.effective_weights()["w_in"])[~in_mask] == 0)
    # the raw parameters did move (so the constraints are doing work) ...
    assert not np.allclose(t.w_rec, m.w_rec)
    # ... and frozen leaves (w_in, b_rec, tau, h0) are bit-identical
    np.testing.assert_array_equal(t.w_in, m.w_in)
    np.testing.assert_array_equal(t.b_rec, m.b_rec)
    np.testing.assert_array_equal(t.tau, m.tau)
    np.testing.assert_array_equal(t.h0, m.h0)


def test_trainable_tau_and_h0_move_and_stay_above_dt():
    task = rl.tasks.FlipFlop(n_bits=1, n_steps=30)
    m = rl.CTRNN(1, 8, 1, key=jax.random.PRNGKey(0), tau=jnp.full(8, 30.0),
                 trainable=("w_rec", "w_in", "w_out", "tau", "h0"))
    res = rl.train(m, task, key=jax.random.PRNGKey(1), steps=20, learning_rate=0.1,
                   eval_every=20, progress=False)
    t = res.model
    assert not np.allclose(t.tau, m.tau) and not np.allclose(t.h0, m.h0)
    assert np.all(np.asarray(t.tau) >= t.dt)


def test_stack_of_models_vmaps():
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    stack = eqx.filter_vmap(lambda k: rl.CTRNN(2, 8, 1, key=k))(keys)
    inputs = jnp.ones((10, 2))
    out = eqx.filter_vmap(lambda m: m.readout_all(m.unroll(inputs, m.initial_state())))(stack)
    assert out.shape == (4, 10, 1)
    single = rl.CTRNN(2, 8, 1, key=keys[2])
    np.testing.assert_allclose(out[2], rl.simulate(single, inputs).outputs, rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(dt=200.0), "dt"),
        (dict(tau=np.ones(3) * 100), "tau"),
        (dict(activation="nope"), "activation"),
        (dict(w_rec_mask=np.ones((4, 4))), "w_rec_mask"),
        (dict(form="other"), "form"),
        (dict(noise_std=-1.0), "noise_std"),
        (dict(excitatory_fraction=1.5), "excitatory_fraction"),
        (dict(readout="excitatory"), "readout"),
        (dict(trainable=("w_rec", "bogus")), "trainable"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rl.CTRNN(2, 8, 1, key=jax.random.PRNGKey(0), **kwargs)


def test_trainable_as_one_string_is_refused_by_name():
    # set("w_rec") would be its letters: a confusing "unknown names ['_', 'c', ...]" before
    with pytest.raises(TypeError, match=r"trainable must be a collection of names, e\.g\."):
        rl.CTRNN(2, 8, 1, key=jax.random.PRNGKey(0), trainable="w_rec")


def test_bad_sizes_and_from_weights_errors():
    with pytest.raises(ValueError, match="n_hidden"):
        rl.CTRNN(2, 0, 1, key=jax.random.PRNGKey(0))
    z = np.zeros
    with pytest.raises(ValueError, match="w_in"):
        rl.CTRNN.from_weights(z((4, 4)), z((3, 2)), z((1, 4)))
    with pytest.raises(ValueError, match="w_out"):
        rl.CTRNN.from_weights(z((4, 4)), z((4, 2)), z((1, 5)))
    with pytest.raises(ValueError, match="b_rec"):
        rl.CTRNN.from_weights(z((4, 4)), z((4, 2)), z((1, 4)), b_rec=z(3))
    with pytest.raises(ValueError, match="Dale"):
        rl.CTRNN.from_weights(-np.ones((5, 5)), z((5, 1)), z((1, 5)), dale=True)
    with pytest.raises(ValueError, match="w_rec"):
        rl.CTRNN.from_weights(np.eye(4), z((4, 1)), z((1, 4)), autapses=False)
    model = rl.CTRNN(2, 4, 1, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="n_in"):
        rl.simulate(model, jnp.zeros((5, 3)))
    with pytest.raises(ValueError, match="inputs"):
        rl.simulate(model, jnp.zeros((5,)))
    with pytest.raises(ValueError, match="initial_state"):
        rl.simulate(model, jnp.zeros((5, 2)), initial_state=jnp.zeros(3))


def test_from_weights_roundtrip_effective_weights():
    rng = np.random.default_rng(3)
    w_rec = np.abs(rng.normal(size=(10, 10)))
    w_rec[:, 8:] *= -1  # 8 excitatory, 2 inhibitory
    np.fill_diagonal(w_rec, 0)
    m = rl.CTRNN.from_weights(w_rec, rng.normal(size=(10, 2)), rng.normal(size=(1, 10)),
                              dale=True, autapses=False)
    np.testing.assert_allclose(m.effective_weights()["w_rec"], w_rec.astype(np.float32))


def test_multi_area_mask():
    mask = rl.models.multi_area_mask([30, 20], [[1.0, 0.0], [0.5, 1.0]], key=jax.random.PRNGKey(0))
    assert mask.shape == (50, 50)
    assert mask[:30, :30].all() and not mask[:30, 30:].any()  # area 2 does not project to 1
    assert 0.3 < mask[30:, :30].mean() < 0.7
    m = rl.CTRNN(1, 50, 1, key=jax.random.PRNGKey(0), w_rec_mask=mask)
    assert np.all(np.asarray(m.effective_weights()["w_rec"])[~mask] == 0)

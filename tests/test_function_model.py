"""`FunctionModel`: user JAX functions under the model contract, checked against systems whose
fixed points and Jacobians are known in closed form, and against the built-in CT-RNN."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnlab as rl
from rnnlab.analysis import (
    attractor_manifolds,
    find_fixed_points,
    linearize,
    sample_states,
    topology,
)


def _bistable(x, u):
    # x' = x - x^3 (+ u), y' = -y: roots (-1, 0), (1, 0) stable, (0, 0) a saddle
    return jnp.stack([x[0] - x[0] ** 3 + u[0], -x[1]])


GRID = np.array([[a, b] for a in np.linspace(-2.0, 2.0, 9) for b in (-0.7, 0.4)])


def _sorted(fp):
    order = np.argsort(fp.states[:, 0])
    return fp.states[order], [fp.stability[i] for i in order], order


def test_bistable_fixed_points_and_stability():
    m = rl.FunctionModel(vector_field=_bistable, state_size=2, n_in=1, dt=0.1)
    assert m.is_continuous and m.n_out == 2 and m.state_size == 2
    fp = find_fixed_points(m, jnp.zeros(1), GRID)
    states, labels, order = _sorted(fp)
    np.testing.assert_allclose(states, [[-1, 0], [0, 0], [1, 0]], atol=1e-9)
    assert labels == ["stable", "saddle", "stable"]
    assert [fp.ode_stability[i] for i in order] == ["stable", "saddle", "stable"]
    # analytic Jacobians: diag(1 - 3 x^2, -1)
    lam = np.sort(fp.eigenvalues[order].real, axis=1)
    np.testing.assert_allclose(lam, [[-2, -1], [-1, 1], [-2, -1]], atol=1e-9)
    assert list(fp.n_unstable[order]) == [0, 1, 0]


def test_euler_map_and_ode_views_differ_as_for_a_ctrnn():
    # a weakly damped focus: the ODE is stable (Re lambda = -0.1), the Euler map with dt = 0.5
    # is not (|1 + dt lambda| = |0.95 +- 0.5 i| = 1.074)
    a = jnp.array([[-0.1, 1.0], [-1.0, -0.1]])
    m = rl.FunctionModel(vector_field=lambda x, u: a @ x, state_size=2, n_in=1, dt=0.5)
    fp = find_fixed_points(m, jnp.zeros(1), GRID[:4])
    assert len(fp.states) == 1 and np.allclose(fp.states, 0, atol=1e-12)
    np.testing.assert_allclose(np.sort_complex(fp.eigenvalues[0]), [-0.1 - 1j, -0.1 + 1j])
    assert fp.ode_stability == ("stable",) and fp.stability == ("unstable",)
    assert bool(fp.views_differ[0])
    # the simulated network does leave the point: the Euler map grows by 1.074 per step
    traj = rl.simulate(m, jnp.zeros((40, 1)), initial_state=jnp.array([1e-3, 0.0]))
    growth = np.linalg.norm(traj.states[-1]) / np.linalg.norm(traj.states[0])
    np.testing.assert_allclose(growth, np.hypot(0.95, 0.5) ** 39, rtol=1e-4)


def test_bistable_with_input_shifts_the_roots():
    # x - x^3 + u = 0 at u = 0.3: compare with numpy's roots of the cubic
    m = rl.FunctionModel(vector_field=_bistable, state_size=2, n_in=1, dt=0.1)
    fp = find_fixed_points(m, jnp.array([0.3]), GRID)
    roots = np.sort(np.roots([-1.0, 0.0, 1.0, 0.3]).real)
    np.testing.assert_allclose(np.sort(fp.states[:, 0]), roots, atol=1e-8)


def test_duffing_pytree_state():
    # double-well Duffing oscillator x'' = x - x^3 - delta x', state {"x", "v"} (a pytree)
    delta = 0.3

    def duffing(s, u):
        return {"v": s["x"] - s["x"] ** 3 - delta * s["v"] + u[0], "x": s["v"]}

    template = {"v": jnp.zeros(()), "x": jnp.zeros(())}
    m = rl.FunctionModel(vector_field=duffing, state_size=template, n_in=1, dt=0.05,
                         readout=lambda s: jnp.stack([s["x"]]))
    assert m.state_size == 2 and m.n_out == 1
    # flattened in tree order: keys sorted, "v" then "x"
    grid = np.array([[v, x] for x in np.linspace(-1.6, 1.6, 9) for v in (-0.3, 0.2)])
    fp = find_fixed_points(m, jnp.zeros(1), grid)
    tree = m.unflatten(fp.states)
    assert set(tree) == {"x", "v"} and tree["x"].shape == (len(fp.states),)
    order = np.argsort(np.asarray(tree["x"]))
    np.testing.assert_allclose(np.asarray(tree["x"])[order], [-1, 0, 1], atol=1e-9)
    np.testing.assert_allclose(np.asarray(tree["v"]), 0, atol=1e-9)
    assert [fp.ode_stability[i] for i in order] == ["stable", "saddle", "stable"]
    # wells: J = [[0, 1], [-2, -delta]] in (x, v): lambda = (-delta +- sqrt(delta^2 - 8)) / 2
    lam = np.sort_complex(fp.eigenvalues[order[0]])
    expected = np.sort_complex(np.roots([1.0, delta, 2.0]))
    np.testing.assert_allclose(lam, expected, atol=1e-9)
    # outputs are the readout (x) of the flat states
    np.testing.assert_allclose(fp.outputs[:, 0], np.asarray(tree["x"]), atol=1e-12)


def test_pytree_round_trip_and_simulation():
    template = {"a": jnp.zeros((2, 3)), "b": [jnp.zeros(4), jnp.zeros(())]}

    def step(s, u):
        return {"a": 0.5 * s["a"] + u[0], "b": [jnp.tanh(s["b"][0]) - u[1], 0.9 * s["b"][1]]}

    h0 = {"a": jnp.arange(6.0).reshape(2, 3), "b": [jnp.ones(4), jnp.asarray(2.0)]}
    m = rl.FunctionModel(step=step, state_size=template, n_in=2, initial_state=h0)
    assert m.state_size == 11 and not m.is_continuous
    flat = m.initial_state()
    back = m.unflatten(flat)
    jax.tree.map(np.testing.assert_array_equal, back, h0)
    np.testing.assert_array_equal(m.flatten(back), flat)
    # leading axes are kept both ways
    stacked = m.unflatten(jnp.stack([flat, 2 * flat]))
    assert stacked["a"].shape == (2, 2, 3) and stacked["b"][1].shape == (2,)
    np.testing.assert_array_equal(m.flatten(stacked), jnp.stack([flat, 2 * flat]))

    us = jax.random.normal(jax.random.PRNGKey(0), (5, 2))
    traj = rl.simulate(m, us)
    s = h0
    for t in range(5):
        s = step(s, us[t])
        np.testing.assert_allclose(traj.states[t], m.flatten(s), rtol=1e-6)
    assert traj.outputs.shape == (5, 11)
    picked = sample_states(traj, 7, key=jax.random.PRNGKey(2))
    assert picked.shape == (7, 11)
    assert all(np.any(np.all(np.isclose(traj.states, p), axis=1)) for p in np.asarray(picked))


def test_euler_simulation_and_linearize():
    m = rl.FunctionModel(vector_field=_bistable, state_size=2, n_in=1, dt=0.1,
                         initial_state=jnp.array([0.5, 1.0]))
    us = jnp.full((4, 1), 0.2)
    traj = rl.simulate(m, us)
    x = np.array([0.5, 1.0])
    for t in range(4):
        x = x + 0.1 * np.array([x[0] - x[0] ** 3 + 0.2, -x[1]])
        np.testing.assert_allclose(traj.states[t], x, rtol=1e-6)
    lin = linearize(m, np.array([0.5, 1.0]), np.array([0.2]))
    np.testing.assert_allclose(lin.A, [[1 - 3 * 0.25, 0], [0, -1]], atol=1e-12)
    np.testing.assert_allclose(lin.B, [[1.0], [0.0]], atol=1e-12)


def test_user_jacobian_is_used_and_matches_autodiff():
    calls = []

    def jac(x, u):
        calls.append(1)
        return jnp.diag(jnp.stack([1 - 3 * x[0] ** 2, -jnp.ones_like(x[0])]))

    m = rl.FunctionModel(vector_field=_bistable, jacobian=jac, state_size=2, n_in=1, dt=0.1)
    ref = rl.FunctionModel(vector_field=_bistable, state_size=2, n_in=1, dt=0.1)
    x, u = jnp.array([0.3, -0.2]), jnp.zeros(1)
    calls.clear()
    np.testing.assert_allclose(m.jacobian(x, u), ref.jacobian(x, u), atol=1e-6)
    assert calls
    # for a map, the given Jacobian is d step / dh; the vector field's is that minus I
    step = lambda h, u: 0.5 * h  # noqa: E731
    mm = rl.FunctionModel(step=step, jacobian=lambda h, u: 0.5 * jnp.eye(2), state_size=2,
                          n_in=1)
    np.testing.assert_allclose(mm.jacobian(x, u), -0.5 * np.eye(2))


def test_wrapping_a_ctrnn_gives_its_fixed_points():
    net = rl.CTRNN(1, 6, 1, key=jax.random.PRNGKey(3), dt=10.0, tau=100.0, gain=1.6)
    u = jnp.array([0.1])
    traj = rl.simulate(net, jnp.full((60, 1), 0.1),
                       initial_state=jax.random.normal(jax.random.PRNGKey(4), (6,)))
    x0 = np.asarray(traj.states[::4])
    fp_net = find_fixed_points(net, u, x0)
    # the bound methods are pytrees: the CT-RNN's weights become the model's leaves
    as_map = rl.FunctionModel(step=net.step, state_size=6, n_in=1, readout=net.readout)
    as_ode = rl.FunctionModel(vector_field=net.vector_field, state_size=6, n_in=1,
                              readout=net.readout, dt=net.dt)
    for m in (as_map, as_ode):
        fp = find_fixed_points(m, u, x0)
        assert len(fp.states) == len(fp_net.states)
        for s, label in zip(fp_net.states, fp_net.stability):
            i = int(np.argmin(np.linalg.norm(fp.states - s, axis=1)))
            np.testing.assert_allclose(fp.states[i], s, atol=1e-7)
            assert fp.stability[i] == label
            np.testing.assert_allclose(fp.outputs[i], net.readout(jnp.asarray(s)), atol=1e-5)
    # the same trajectories
    np.testing.assert_allclose(rl.simulate(as_map, jnp.full((5, 1), 0.1)).states,
                               rl.simulate(net, jnp.full((5, 1), 0.1)).states, atol=1e-6)


def test_topology_and_manifolds_run_on_a_function_model():
    m = rl.FunctionModel(vector_field=_bistable, state_size=2, n_in=1, dt=0.1)
    fp = find_fixed_points(m, jnp.zeros(1), GRID)
    graph = topology(m, fp, jnp.zeros(1), key=jax.random.PRNGKey(0), n_starts=16,
                     n_steps=200)
    saddle = int(np.flatnonzero(np.asarray(fp.stability) == "saddle")[0])
    # noisy starts at the saddle leave it along x towards both wells
    targets = {v for _, v in graph.out_edges(saddle)} - {saddle}
    assert targets == set(np.flatnonzero(np.asarray(fp.stability) == "stable").tolist())
    assert attractor_manifolds(fp) == []  # isolated points: no manifold


def test_figures_draw_a_function_model():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = rl.FunctionModel(vector_field=_bistable, state_size=2, n_in=1, dt=0.1)
    traj = rl.simulate(m, jnp.zeros((4, 30, 1)), initial_state=jnp.asarray(GRID[:4]))
    fp = find_fixed_points(m, jnp.zeros(1), GRID)
    fig = rl.plot.state_space(traj, fixed_points=fp)
    # one marker per root, by stability: 2 stable (filled), 1 saddle
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes)]
    legend = [t.get_text() for lg in legends if lg is not None for t in lg.get_texts()]
    assert "fixed point: stable (2)" in legend and "fixed point: saddle (1)" in legend
    plt.close(fig)
    plt.close(rl.plot.eigenspectra(fp))


def test_ring_attractor_is_a_manifold():
    # r' = r (1 - r^2), theta' = 0 in Cartesian coordinates: a ring of fixed points at r = 1
    def ring(x, u):
        return x * (1.0 - jnp.sum(x ** 2))

    m = rl.FunctionModel(vector_field=ring, state_size=2, n_in=1, dt=0.1)
    angles = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    x0 = 0.8 * np.stack([np.cos(angles), np.sin(angles)], 1)
    fp = find_fixed_points(m, jnp.zeros(1), x0, tol_unique=1e-4)
    radii = np.linalg.norm(fp.states, axis=1)
    np.testing.assert_allclose(radii, 1.0, atol=1e-8)
    manifolds = attractor_manifolds(fp, min_points=8)
    assert [man.kind for man in manifolds] == ["ring"]


def test_a_second_call_does_not_retrace():
    traces = []

    def step(h, u):
        traces.append(1)  # runs only while JAX traces
        return jnp.tanh(h + u[0])

    m = rl.FunctionModel(step=step, state_size=3, n_in=1)
    same = rl.FunctionModel(step=step, state_size=3, n_in=1)  # (each checks shapes: a trace)
    us = jnp.ones((6, 1))
    a = rl.simulate(m, us)
    n = len(traces)
    b = rl.simulate(m, 2 * us)
    c = rl.simulate(same, us)  # a model rebuilt from the same function: the same program
    assert len(traces) == n
    np.testing.assert_array_equal(a.states, c.states)
    assert not np.array_equal(a.states, b.states)


def test_function_accepting_a_key_gets_it():
    def noisy(h, u, *, key=None):
        if key is None:
            return 0.5 * h
        return 0.5 * h + jax.random.normal(key, h.shape)

    m = rl.FunctionModel(step=noisy, state_size=3, n_in=1)
    us = jnp.zeros((4, 1))
    np.testing.assert_array_equal(rl.simulate(m, us).states, 0.0)
    a = rl.simulate(m, us, key=jax.random.PRNGKey(1)).states
    b = rl.simulate(m, us, key=jax.random.PRNGKey(1)).states
    assert np.all(np.asarray(a) != 0) and np.array_equal(a, b)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="exactly one of step"):
        rl.FunctionModel(state_size=2, n_in=1)
    with pytest.raises(ValueError, match="both were given"):
        rl.FunctionModel(step=_bistable, vector_field=_bistable, state_size=2, n_in=1)
    with pytest.raises(ValueError, match="returned a state of"):
        rl.FunctionModel(step=lambda h, u: h[:1], state_size=2, n_in=1)
    with pytest.raises(ValueError, match="step failed"):
        rl.FunctionModel(step=lambda h, u: h @ jnp.ones((3, 3)), state_size=2, n_in=1)
    with pytest.raises(ValueError, match="must return one like its input"):  # same size, but
        rl.FunctionModel(step=lambda s, u: {"a": s["b"], "b": s["a"]},  # another structure
                         state_size={"a": jnp.zeros(2), "b": jnp.zeros((1, 2))}, n_in=1)
    with pytest.raises(ValueError, match="n_in"):
        rl.FunctionModel(step=_bistable, state_size=2, n_in=0)
    with pytest.raises(ValueError, match="leave dt out"):
        rl.FunctionModel(step=_bistable, state_size=2, n_in=1, dt=0.1)
    with pytest.raises(TypeError, match="state_size"):
        rl.FunctionModel(step=_bistable, state_size="two", n_in=1)
    with pytest.raises(ValueError, match="initial_state must have shape"):
        rl.FunctionModel(step=_bistable, state_size=2, n_in=1, initial_state=jnp.zeros(3))
    with pytest.raises(ValueError, match="jacobian must return"):
        rl.FunctionModel(step=_bistable, state_size=2, n_in=1,
                         jacobian=lambda h, u: jnp.eye(3))
    no_dt = rl.FunctionModel(vector_field=_bistable, state_size=2, n_in=1)
    with pytest.raises(ValueError, match="give dt="):
        rl.simulate(no_dt, jnp.zeros((3, 1)))
    # without dt the analysis is the ODE's
    fp = find_fixed_points(no_dt, jnp.zeros(1), GRID)
    assert fp.stability_view == "ODE" and sorted(fp.stability) == ["saddle", "stable", "stable"]


def test_saving_is_refused_with_the_reason(tmp_path):
    m = rl.FunctionModel(vector_field=_bistable, state_size=2, n_in=1, dt=0.1)
    with pytest.raises(ValueError, match="cannot be saved.*your own Python functions"):
        rl.save(tmp_path / "m.safetensors", m)
    assert not (tmp_path / "m.safetensors").exists()

"""Fixed points of GRU / LSTM / vanilla networks: hand-set networks with known roots (scipy root
finder on an independent numpy map), a trained GRU's flip-flop cube (Sussillo & Barak 2013), and
agreement with `rnnlab.find_fixed_points`."""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize as so

import rnnlab as rl

find_fixed_points = rl.find_fixed_points


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def to64(model):
    return jax.tree.map(
        lambda x: x.astype(jnp.float64) if eqx.is_inexact_array(x) else x, model)


def scipy_roots(fun, jac, starts, tol=1e-11, unique=1e-6):
    roots = []
    for x0 in starts:
        r = so.root(fun, x0, jac=jac, method="hybr", tol=1e-13)
        if np.linalg.norm(fun(r.x)) < tol and not any(
                np.linalg.norm(r.x - q) < unique for q in roots):
            roots.append(r.x)
    return np.array(roots)


def fd_jacobian(fun, x, eps=1e-6):
    cols = [(fun(x + eps * e) - fun(x - eps * e)) / (2 * eps) for e in np.eye(len(x))]
    return np.array(cols).T


# ------------------------------------------------------------------ hand-set networks


def hand_gru():
    """Two uncoupled bistable GRU units: r ~ 1 (reset bias 8), z = 1/2, candidate tanh(2 h).
    Each unit has roots h = 0 (unstable) and h = +-h* (stable): 9 fixed points in all."""
    H = 2
    w_in = np.zeros((3 * H, 1))
    w_rec = np.zeros((3 * H, H))
    w_rec[2 * H:] = 2.0 * np.eye(H)  # n-block
    b_in = np.zeros(3 * H)
    b_in[:H] = 8.0  # reset gate open
    return dict(w_in=w_in, w_rec=w_rec, w_out=np.eye(H), b_in=b_in, b_rec=np.zeros(3 * H))


def np_gru_F(w, h):
    H = w["w_rec"].shape[1]
    pre_i = w["w_in"] @ np.zeros(1) + w["b_in"]
    pre_h = w["w_rec"] @ h + w["b_rec"]
    r = sigmoid(pre_i[:H] + pre_h[:H])
    z = sigmoid(pre_i[H:2 * H] + pre_h[H:2 * H])
    n = np.tanh(pre_i[2 * H:] + r * pre_h[2 * H:])
    return (1 - z) * n + z * h - h


def hand_lstm():
    """Two uncoupled bistable LSTM units: i = f = 1/2, o ~ 1 (bias 8), cell input tanh(3 h):
    c* = tanh(3 h*), h* ~ tanh(c*): 9 fixed points of the joint (h, c) state."""
    H = 2
    w_rec = np.zeros((4 * H, H))
    w_rec[2 * H:3 * H] = 3.0 * np.eye(H)
    b_in = np.zeros(4 * H)
    b_in[3 * H:] = 8.0
    return dict(w_in=np.zeros((4 * H, 1)), w_rec=w_rec, w_out=np.eye(H), b_in=b_in,
                b_rec=np.zeros(4 * H))


def np_lstm_F(w, s):
    H = w["w_rec"].shape[1]
    h, c = s[:H], s[H:]
    pre = w["b_in"] + w["w_rec"] @ h + w["b_rec"]
    i, f, g, o = np.split(pre, 4)
    c2 = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    h2 = sigmoid(o) * np.tanh(c2)
    return np.concatenate([h2, c2]) - s


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_hand_set_fixed_points_match_scipy(kind):
    w = hand_gru() if kind == "gru" else hand_lstm()
    cls, np_F = (rl.GRU, np_gru_F) if kind == "gru" else (rl.LSTM, np_lstm_F)
    fun = lambda x: np_F(w, x)  # noqa: E731
    dim = 2 if kind == "gru" else 4
    rng = np.random.default_rng(0)
    grid = np.array(list(itertools.product([-1.0, -0.3, 0.0, 0.3, 1.0], repeat=2)))
    starts = grid if kind == "gru" else np.concatenate([grid, grid], 1)
    starts = np.concatenate([starts, rng.uniform(-1.2, 1.2, (40, dim))])
    roots = scipy_roots(fun, lambda x: fd_jacobian(fun, x), starts)
    assert len(roots) == 9  # 3 per unit, units uncoupled

    with jax.enable_x64(True):
        model = to64(cls.from_weights(w["w_in"], w["w_rec"], w["w_out"], w["b_in"], w["b_rec"]))
        u = jnp.zeros(1)
        n_stable = 0
        for q in roots:
            x = jnp.asarray(q)
            # the library's map has the same roots as the independent numpy map ...
            assert float(jnp.linalg.norm(model.vector_field(x, u))) < 1e-10
            # ... and the same linearisation there
            jac = np.asarray(model.jacobian(x, u))
            np.testing.assert_allclose(jac, fd_jacobian(fun, q), atol=1e-7)
            mu = np.abs(np.linalg.eigvals(np.eye(dim) + jac))
            n_stable += bool(np.all(mu < 1))
        assert n_stable == 4  # the 2 x 2 corners

    # the library's finder (float32 model, as users call it)
    model32 = cls.from_weights(w["w_in"], w["w_rec"], w["w_out"], w["b_in"], w["b_rec"])
    fps = find_fixed_points(model32, np.zeros(1), starts)
    found = np.asarray(fps.states)
    assert len(found) == 9
    for q in roots:
        assert np.min(np.linalg.norm(found - q, axis=1)) < 1e-6
    assert sum(s == "stable" for s in fps.stability) == 4


def test_vanilla_fixed_points_match_scipy():
    """h = tanh(W h) with W = [[2, 0], [0, 0.5]]: roots (0, 0), (+-h*, 0), h* = tanh(2 h*)."""
    model = rl.VanillaRNN.from_weights(np.diag([2.0, 0.5]), np.zeros((2, 1)), np.eye(2))
    h_star = so.brentq(lambda h: np.tanh(2 * h) - h, 0.5, 1.5)
    with jax.enable_x64(True):
        m = to64(model)
        u = jnp.zeros(1)
        for root in ([0.0, 0.0], [h_star, 0.0], [-h_star, 0.0]):
            assert float(jnp.linalg.norm(m.vector_field(jnp.asarray(root), u))) < 1e-12
        J = np.asarray(m.jacobian(jnp.asarray([h_star, 0.0]), u))
        np.testing.assert_allclose(np.diag(J), [2 * (1 - h_star**2) - 1, 0.5 - 1], atol=1e-12)


# ------------------------------------------------------------------ a trained GRU


@pytest.fixture(scope="module")
def flipflop_gru():
    """A GRU trained on the 3-bit flip-flop, candidate states from its trajectories, and the
    roots scipy finds from them (float64, zero input) with their unstable-mode counts."""
    task = rl.tasks.make("flipflop", n_bits=3)
    model = rl.GRU(task.n_in, 32, task.n_out, key=jax.random.PRNGKey(0), dt=task.dt)
    result = rl.train(model, task, key=jax.random.PRNGKey(1), steps=500, batch_size=64,
                      learning_rate=1e-2, eval_every=50, target_accuracy=0.995, progress=False)
    trial = task.sample_batch(jax.random.PRNGKey(5), 128)
    states = np.asarray(rl.simulate(result.model, trial.inputs).states).reshape(-1, 32)
    starts = states[np.random.default_rng(0).choice(len(states), 200, replace=False)]
    with jax.enable_x64(True):
        m = to64(result.model)
        u = jnp.zeros(task.n_in)
        F = jax.jit(lambda x: m.vector_field(x, u))
        J = jax.jit(lambda x: m.jacobian(x, u))
        roots = scipy_roots(lambda x: np.asarray(F(jnp.asarray(x))),
                            lambda x: np.asarray(J(jnp.asarray(x))), starts, unique=1e-5)
        n_unstable = np.array([
            int(np.sum(np.abs(np.linalg.eigvals(np.eye(32) + np.asarray(J(jnp.asarray(q)))))
                       > 1)) for q in roots])
        outs = np.asarray(jax.vmap(m.readout)(jnp.asarray(roots)))
    return dict(result=result, task=task, starts=starts, roots=roots, n_unstable=n_unstable,
                outputs=outs)


def test_trained_gru_flipflop_has_the_cube_of_fixed_points(flipflop_gru):
    """Sussillo & Barak 2013 with a GRU: after training on the 3-bit flip-flop, the zero-input
    map has 8 stable fixed points whose readouts sit at the 8 corners of the output cube, and
    saddles (one unstable mode) between them."""
    ff = flipflop_gru
    assert ff["result"].history[-1]["accuracy"] >= 0.995
    stable = ff["outputs"][ff["n_unstable"] == 0]
    assert len(stable) == 8
    assert np.all(np.abs(stable) > 0.7)
    assert len({tuple(np.sign(y).astype(int)) for y in stable}) == 8
    assert np.sum(ff["n_unstable"] == 1) >= 3  # saddles on the cube's edges


def _compare_finder(ff, **kwargs):
    fps = find_fixed_points(ff["result"].model, np.zeros(ff["task"].n_in), ff["starts"],
                            **kwargs)
    stable = np.asarray(fps.states)[np.asarray([s == "stable" for s in fps.stability])]
    assert len(stable) == 8
    for q in ff["roots"][ff["n_unstable"] == 0]:
        assert np.min(np.linalg.norm(stable - q, axis=1)) < 1e-5
    return fps


@pytest.mark.slow
def test_finder_newton_stage_matches_scipy_on_trained_gru(flipflop_gru):
    """`find_fixed_points` with its Levenberg-Marquardt stage alone finds the same 8 stable
    points as scipy, and saddles with one unstable mode."""
    fps = _compare_finder(flipflop_gru, solver=rl.analysis.FixedPointSolver(
        descent=None, polish=rl.analysis.NewtonPolish(max_iters=200)))
    assert np.sum(np.asarray(fps.n_unstable) == 1) >= 3


@pytest.mark.slow
def test_finder_defaults_match_scipy_on_trained_gru(flipflop_gru):
    """The finder with its default two stages finds the same 8 stable points as scipy."""
    _compare_finder(flipflop_gru)

"""The GRU of computation-thru-dynamics' decision tutorial shows its line of slow points.

A GRU trained to report the sign of the integral of white noise (``binary_decision`` with the
tutorial's statistics) integrates along an approximate line attractor: at zero input its slow
points lie on one curve whose ends are the two choices, with one eigenvalue of the map near 1
along the curve and every other mode contracting. Truths are checked against an independent
numpy GRU map (speeds, Jacobians, eigenvalues) and, for a hand-set GRU, against closed forms.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.stats

import rnnlab as rl

# The tutorial (computation-thru-dynamics GRU / fixed-point-finder tutorial, and BrainPy's
# port): 25 steps of bias + white noise, bias ~ U(-0.01, 0.01), noise std 0.025 / sqrt(0.04)
# = 0.125 per step, +-1 target at the end; 100 units. rnnlab's task adds one zero-input
# decision step (dt 20 ms: stimulus 500 ms = 25 steps, decision 20 ms = 1 step).
TUTORIAL_TASK = dict(bias_max=0.01, noise_std=0.125, stimulus=500.0, decision=20.0)
N_HIDDEN = 100
# |F| = |step(h) - h| per step. Crossing the line (length ~3.6) at this speed takes >= 120
# steps, ~5x the integration window. The middle of the line moves at 0.007, 0.015 and 0.021
# per step in networks trained from seeds 0, 2 and 3 (all three pass this test).
SLOW_TOL = 3e-2


def _handoff(speed):
    """The default solver with stage 1 handing over at ``speed``."""
    return rl.analysis.FixedPointSolver(descent=rl.analysis.AdamDescent(handoff_speed=speed))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_gru_map(model):
    """An independent numpy implementation of the model's zero-input GRU map h -> h'."""
    w = {k: np.asarray(v, np.float64) for k, v in model.effective_weights().items()}
    n = model.n_hidden

    def step(h):
        gi = w["b_in"]  # W_in @ 0 + b_in
        gh = w["w_rec"] @ h + w["b_rec"]
        r = sigmoid(gi[:n] + gh[:n])
        z = sigmoid(gi[n:2 * n] + gh[n:2 * n])
        cand = np.tanh(gi[2 * n:] + r * gh[2 * n:])
        return (1 - z) * cand + z * h

    return step


def fd_jacobian(fun, x, eps=1e-6):
    return np.array([(fun(x + eps * e) - fun(x - eps * e)) / (2 * eps)
                     for e in np.eye(x.size)]).T


def tutorial_gru(task, n_hidden, seed):
    """The tutorial's initialisation: W_in ~ N(0, 1), W_rec ~ N(0, 1/N), W_out ~ N(0, 1/N),
    zero biases, trainable h0 ~ N(0, 0.1^2)."""
    rng = np.random.default_rng(seed)
    s = 1.0 / np.sqrt(n_hidden)
    return rl.GRU.from_weights(
        rng.normal(0.0, 1.0, (3 * n_hidden, task.n_in)),
        rng.normal(0.0, s, (3 * n_hidden, n_hidden)),
        rng.normal(0.0, s, (task.n_out, n_hidden)),
        dt=task.dt,
        initial_state=rng.normal(0.0, 0.1, n_hidden),
        trainable=("w_rec", "w_in", "b_rec", "b_in", "w_out", "b_out", "h0"),
    )


def evidence_sweep_states(model, task, n_trials, *, key, delay=800.0, settle=10):
    """Candidate states for the slow-point search, from trajectories of both signs of evidence.

    Noise-free trials with a constant bias swept over [-bias_max, bias_max] end the stimulus at
    graded positions along the integration manifold; the decision epoch is lengthened to
    ``delay`` ms of zero input, and after ``settle`` steps (the fast modes relax) one state
    per trial is taken at a random time. Returns (states [n_trials, H], biases [n_trials])."""
    long = dataclasses.replace(task, decision=delay)
    n_stim = round(task.stimulus / task.dt)
    biases = jnp.linspace(-task.bias_max, task.bias_max, n_trials)
    trials = jax.vmap(lambda b: long.trial_for(b, jnp.zeros(long.n_steps), n_stim))(biases)
    states = np.asarray(rl.simulate(model, trials.inputs).states)
    t = np.asarray(jax.random.randint(key, (n_trials,), n_stim + settle, long.n_steps))
    return states[np.arange(n_trials), t], np.asarray(biases)


# ------------------------------------------------------------------ a hand-set line


def hand_set_line_gru():
    """Two GRU units with a closed-form slow line. Reset gates open (bias 8, r = sigmoid(8));
    unit 1's update gate nearly shut (bias 6, z1 = sigmoid(6)) with candidate tanh(u + r h1):
    at zero input h1' - h1 = (1 - z1) (tanh(r h1) - h1), slower than 1e-3 for |h1| <= 1.2,
    map eigenvalue z1 + (1 - z1) r sech^2(r h1) along h1. Unit 2 (z2 = 1/2, candidate
    tanh(r h2 / 2)) contracts to 0 with eigenvalue 1/2 + r/4 sech^2(r h2 / 2). Readout h1."""
    H = 2
    w_in = np.zeros((3 * H, 1))
    w_in[2 * H] = 1.0
    w_rec = np.zeros((3 * H, H))
    w_rec[2 * H:] = np.diag([1.0, 0.5])
    b_in = np.zeros(3 * H)
    b_in[:H] = 8.0
    b_in[H] = 6.0
    return rl.GRU.from_weights(w_in, w_rec, np.array([[1.0, 0.0]]), b_in, np.zeros(3 * H))


def test_hand_set_gru_line_of_slow_points():
    model = hand_set_line_gru()
    r, z1 = sigmoid(8.0), sigmoid(6.0)
    # Zero-input trajectories from initial states of both signs; candidates once unit 2 has
    # relaxed (after 10 steps).
    rng = np.random.default_rng(0)
    h0 = np.stack([rng.uniform(-1.1, 1.1, 128), rng.uniform(-0.5, 0.5, 128)], 1)
    traj = rl.simulate(model, jnp.zeros((128, 40, 1)), initial_state=jnp.asarray(h0, jnp.float32))
    states = np.asarray(traj.states)[:, 10:].reshape(-1, 2)
    starts = states[rng.choice(states.shape[0], 256, replace=False)]
    tol = 1e-3
    fps = rl.find_fixed_points(model, np.zeros(1), starts, slow_tol=tol, tol_unique=0.02,
                               solver=_handoff(tol))
    x = np.asarray(fps.states)
    assert len(fps) >= 40
    # closed-form speeds, all slow; the points sit on the h1 axis
    G = numpy_gru_map(model)
    np.testing.assert_allclose(np.asarray(fps.speeds),
                               [np.linalg.norm(G(h) - h) for h in x], rtol=1e-6, atol=1e-14)
    assert np.asarray(fps.speeds).max() <= tol
    assert np.abs(x[:, 1]).max() <= tol / 0.2  # |F_2| ~ (1/2 - r/4) |h2|
    assert x[:, 0].min() < -0.9 and x[:, 0].max() > 0.9
    # one root (h = 0, stable); the rest are slow points
    roots = np.nonzero(np.asarray(fps.converged))[0]
    assert roots.size == 1 and np.abs(x[roots[0]]).max() < 1e-9
    assert fps.stability[roots[0]] == "stable"

    (line,) = rl.analysis.attractor_manifolds(fps)
    assert line.kind == "line" and line.dimension == 1 and line.near_zero_tangent
    assert len(line.indices) == len(fps)
    h1 = x[line.indices, 0]
    assert np.all(np.diff(h1) > 0) or np.all(np.diff(h1) < 0)
    ro = np.asarray(fps.outputs)[line.indices, 0]
    np.testing.assert_allclose(ro, h1, atol=1e-12)  # readout = h1: both choices, monotone

    # eigenvalues in closed form; the one near 1 is along the line (the h1 axis)
    mu1 = z1 + (1 - z1) * r / np.cosh(r * x[:, 0]) ** 2
    mu2 = 0.5 + 0.25 * r / np.cosh(0.5 * r * x[:, 1]) ** 2
    mu = np.sort(np.asarray(fps.map_eigenvalues).real, axis=1)
    np.testing.assert_allclose(mu, np.sort(np.stack([mu1, mu2], 1), axis=1), atol=1e-9)
    assert np.all(np.abs(mu1 - 1) <= 3e-3)
    np.testing.assert_allclose(line.tangent_eigenvalues.real, mu1[line.indices] - 1, atol=1e-9)
    assert np.all(line.tangent_alignment >= 0.999)


@pytest.mark.parametrize("handoff", [1e-3, None])
def test_slow_points_below_the_default_handoff_are_kept(handoff):
    """h -> diag(0.999, 0.5) h: the h1 axis is a line of slow points, |F| = 1e-3 |h1| <= 1e-3
    on [-1, 1]. Every start in [-1, 1]^2 descends onto it keeping (nearly) its h1, so the
    slow points at slow_tol = 1e-3 cover the whole segment."""
    model = rl.VanillaRNN.from_weights(np.diag([0.999, 0.5]), np.zeros((2, 1)), np.eye(2),
                                       activation="linear")
    x0 = np.random.default_rng(0).uniform(-1, 1, (200, 2)).astype(np.float32)
    kw = {} if handoff is None else {"solver": _handoff(handoff)}
    fps = rl.find_fixed_points(model, np.zeros(1), x0, slow_tol=1e-3, **kw)
    x = np.asarray(fps.states)
    assert np.asarray(fps.speeds).max() <= 1e-3
    assert len(fps) >= 150
    assert x[:, 0].min() < -0.9 and x[:, 0].max() > 0.9


# ------------------------------------------------------------------ the trained tutorial GRU


@pytest.fixture(scope="module")
def decision_gru():
    """A 100-unit GRU trained as in the tutorial: Adam (lr 0.04 decaying x0.9998 per step,
    epsilon 0.1), gradient clipping at norm 10; 10k steps of 64 trials (the tutorial runs 20k
    of 150)."""
    task = rl.tasks.make("binary_decision", **TUTORIAL_TASK)
    model = tutorial_gru(task, N_HIDDEN, seed=0)
    opt = optax.chain(
        optax.clip_by_global_norm(10.0),
        optax.adam(optax.exponential_decay(0.04, 1, 0.9998), eps=0.1),
    )
    result = rl.train(model, task, key=jax.random.PRNGKey(1), steps=10_000, batch_size=64,
                      optimizer=opt, eval_every=500, progress=False)
    return task, result.model


@pytest.mark.slow
def test_trained_decision_gru_has_a_line_of_slow_points(decision_gru):
    task, model = decision_gru
    trial = task.sample_batch(jax.random.PRNGKey(11), 512)
    acc = float(task.accuracy(rl.simulate(model, trial.inputs).outputs, trial))
    assert acc >= 0.97

    starts, _ = evidence_sweep_states(model, task, 512, key=jax.random.PRNGKey(7))
    # tol_unique thins the slow points to about one per 1/50 of the line, so that the
    # manifold finder's density-based linking sees an even curve.
    fps = rl.find_fixed_points(model, np.zeros(1), starts, slow_tol=SLOW_TOL,
                               solver=_handoff(SLOW_TOL), tol_unique=0.05)
    x = np.asarray(fps.states)
    assert len(fps) >= 20

    # Slow: the speeds are |G(h) - h| of an independent numpy GRU map, all below SLOW_TOL.
    G = numpy_gru_map(model)
    speeds = np.array([np.linalg.norm(G(h) - h) for h in x])
    np.testing.assert_allclose(np.asarray(fps.speeds), speeds, rtol=1e-6, atol=1e-12)
    assert speeds.max() <= SLOW_TOL

    # On one curve: >= 90% of the variance of the points on their first principal component.
    c = x - x.mean(axis=0)
    sv = np.linalg.svd(c, compute_uv=False) ** 2
    assert sv[0] / sv.sum() >= 0.9

    # `attractor_manifolds` finds one line holding (nearly) all of them.
    manifolds = rl.analysis.attractor_manifolds(fps)
    line = manifolds[0]
    assert line.kind == "line" and line.dimension == 1
    assert len(line.indices) >= 0.9 * len(fps)
    assert line.near_zero_tangent

    # The readout along the ordered line spans both choices, monotonically.
    ro = np.asarray(fps.outputs)[line.indices, 0]
    assert ro.min() <= -0.5 and ro.max() >= 0.5
    assert abs(scipy.stats.spearmanr(np.arange(ro.size), ro)[0]) >= 0.9
    k = max(3, ro.size // 10)
    assert np.sign(ro[:k].mean()) == -np.sign(ro[-k:].mean())

    # Each point has one map eigenvalue near 1 (the CT eigenvalue near 0) whose eigenvector is
    # the line's tangent; every other mode contracts. Jacobians from finite differences of
    # the numpy map, eigenvalues from numpy.
    xs = x[line.indices]
    tangent = np.gradient(xs, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    near_one, aligned = [], []
    for i, p in enumerate(line.indices):
        J = fd_jacobian(G, x[p])
        np.testing.assert_allclose(np.asarray(fps.jacobians)[p], J,  # the map Jacobian dG/dh
                                   atol=1e-6)
        mu, vec = np.linalg.eig(J)
        top = int(np.argmin(np.abs(mu - 1.0)))
        near_one.append(abs(mu[top] - 1.0))
        aligned.append(abs(tangent[i] @ vec[:, top]) / np.linalg.norm(vec[:, top]))
        assert np.sort(np.abs(mu))[-2] <= 0.95  # the line attracts: one slow mode only
    near_one, aligned = np.array(near_one), np.array(aligned)
    assert np.all(near_one <= 0.02)
    assert np.mean(aligned >= 0.9) >= 0.9
    # the library's own tangent eigenvalues (growth rates mu - 1) agree
    assert np.median(np.abs(line.tangent_eigenvalues)) <= 0.02
    assert np.median(line.tangent_alignment) >= 0.9

    # The true fixed points found (roots, |F| <= 1e-10) lie on the line. (Their number varies
    # between trained networks: e.g. stable - saddle - stable, or one stable end and a slow
    # ghost at the other: an approximate line attractor either way.)
    roots = np.nonzero(np.asarray(fps.converged))[0]
    assert roots.size >= 1
    assert set(roots.tolist()) <= set(line.indices.tolist())


def test_stage1_learning_rate_is_used():
    """h -> 0.5 h: Adam's first step moves every coordinate by about the initial learning rate
    (|g| >> eps), so one stage-1 iteration from starts far from the root moves each coordinate
    by ~learning_rate; a non-positive rate is refused by name."""
    import jax.numpy as jnp

    from rnnlab.analysis import _solvers

    model = rl.VanillaRNN.from_weights(0.5 * np.eye(3), np.zeros((3, 1)), np.eye(3),
                                       activation="linear")
    x0 = np.random.default_rng(1).uniform(2, 5, (16, 3)) * np.sign(
        np.random.default_rng(2).uniform(-1, 1, (16, 3)))
    for lr in (1.0, 0.05):
        hp = dict(_solvers.FPF_DEFAULTS, max_iters=1, lr_init=lr)
        st = _solvers.adam_stage(model, jnp.asarray(x0, jnp.float32),
                                 jnp.zeros((16, 1), jnp.float32), 1.0, hp, 0.0)
        step = np.abs(np.asarray(st.x, np.float64) - x0)
        np.testing.assert_allclose(step, lr, rtol=0.02)
    with pytest.raises(ValueError, match="learning_rate"):
        rl.analysis.AdamDescent(learning_rate=0.0)

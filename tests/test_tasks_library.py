"""The task library (integrators, decisions, memory tasks): hand-computed trials, scoring,
duration specs, jit/vmap/reproducibility, shapes and dtypes, bad parameters, psychometrics."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnlab as rl
from rnnlab import tasks as T
from rnnlab.tasks._common import (
    decode_linear_ring,
    linear_ring_code,
    max_steps,
    min_steps,
    sample_steps,
)
from rnnlab.tasks._decisions import _CDDM_COHERENCES

KEY = jax.random.PRNGKey(0)


def batch(task, key, n):
    """``n`` trials, sampled inside jit (eager sampling dispatches op by op: slow)."""
    return jax.jit(lambda k: task.sample_batch(k, n))(key)

NEW_TASKS = [
    "integrator", "angular_integrator", "binary_decision", "context_decision_making",
    "delayed_discrimination", "go_no_go", "delayed_match_to_sample", "memory_number",
    "memory_anti_number", "memory_anti_angle",
]
DECISION_TASKS = ["binary_decision", "context_decision_making", "delayed_discrimination",
                  "go_no_go", "delayed_match_to_sample"]


# ------------------------------------------------------------------ generic properties


@pytest.mark.parametrize("name", NEW_TASKS)
def test_shapes_dtypes_jit_vmap_reproducible(name):
    task = T.make(name)
    keys = jax.random.split(KEY, 8)

    @jax.jit
    def run(k):
        tr = task.sample_batch(k, 8)
        one = task.sample(keys[3])
        return tr, one, task.accuracy(tr.targets, tr), task.loss(tr.targets, tr)

    a, one, acc, loss = run(KEY)
    b = run(KEY)[0]
    c = run(jax.random.PRNGKey(1))[0]
    assert run._cache_size() == 1  # a new key does not recompile
    assert a.inputs.shape == (8, task.n_steps, task.n_in) and a.inputs.dtype == jnp.float32
    assert a.targets.shape == (8, task.n_steps, task.n_out) and a.targets.dtype == jnp.float32
    assert a.mask.shape == (8, task.n_steps, task.n_out) and a.mask.dtype == jnp.float32
    for v in a.conditions.values():
        assert v.shape[0] == 8
    # same key, same trials, bit for bit; another key, other trials
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert not np.array_equal(np.asarray(a.inputs), np.asarray(c.inputs))
    # the batch is the vmap of single trials
    np.testing.assert_allclose(np.asarray(one.inputs), np.asarray(a.inputs[3]), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(one.mask), np.asarray(a.mask[3]))
    # targets score perfectly; the loss of the targets is 0
    assert float(acc) == 1.0
    assert float(loss) == pytest.approx(0.0, abs=1e-7)
    assert set(np.unique(np.asarray(a.mask))) <= {0.0, 1.0}
    # config round trip through the registry
    assert T.make(name, **task.config()) == task


@pytest.mark.parametrize("name", DECISION_TASKS)
def test_decision_tasks_wrong_choice_scores_zero(name):
    task = T.make(name)
    trial = batch(task, KEY, 32)
    right = task.choices(trial.targets, trial)
    np.testing.assert_array_equal(np.asarray(right), np.asarray(trial.conditions["choice"]))
    # an output that prefers the other answer on every trial
    if name in ("binary_decision",):
        wrong = -trial.targets
    elif name == "go_no_go":
        wrong = 1.0 - trial.targets
    else:
        wrong = trial.targets[..., ::-1]
        if name == "delayed_discrimination":
            wrong = jnp.where(trial.mask > 0, wrong, 0.0)
    w = task.trial_weights(trial)
    scores = task.trial_scores(wrong, trial)
    assert float(jnp.sum(scores * w)) == 0.0


def test_capabilities_are_declared_by_the_classes():
    """`is_decision_task` / `has_psychometric` say what the class can do: every registered
    decision task (and only those) has choices, and its psychometric x axis (and split) is
    one of the conditions its trials carry."""
    decision = set()
    for name in T.available():
        task = T.make(name)
        assert task.is_decision_task == isinstance(task, T.DecisionTask), name
        assert not task.has_psychometric or task.is_decision_task, name
        if task.has_psychometric:
            decision.add(name)
            conds = jax.eval_shape(task.sample, KEY).conditions
            assert task.psychometric_x in conds and "choice" in conds, name
            assert task.psychometric_by is None or task.psychometric_by in conds, name
    assert decision >= set(DECISION_TASKS) | {"perceptual_decision_making"}
    assert not {"flipflop", "sine_wave", "integrator", "memory_number"} & decision
    model = rl.CTRNN(3, 4, 3, key=KEY, dt=10.0)
    with pytest.raises(TypeError, match="not a decision task"):
        T.psychometric(model, T.make("flipflop"), key=KEY)


def test_every_task_scores_trials_alone():
    """`trial_scores` is part of every task: for a task that declares no rule of its own it is
    the fraction of masked entries within tolerance, trial by trial (numpy here)."""
    task = T.make("flipflop")
    trial = batch(task, KEY, 8)
    # an error that grows over the trial, past the tolerance at a different step per trial
    ramp = jnp.linspace(0.0, 2 * task.tolerance, task.n_steps)[None, :, None]
    out = trial.targets + ramp * jnp.linspace(0.6, 1.0, 8)[:, None, None]
    got = np.asarray(task.trial_scores(out, trial))
    hit = np.abs(np.asarray(out) - np.asarray(trial.targets)) < task.tolerance
    m = np.asarray(trial.mask) > 0
    want = (hit & m).sum(axis=(1, 2)) / m.sum(axis=(1, 2))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert np.all((want > 0) & (want < 1)) and len(np.unique(want.round(6))) > 1


def test_bad_parameters_name_the_argument():
    cases = [
        (lambda: T.Integrator(n_steps=0), "n_steps"),
        (lambda: T.Integrator(noise_std=-1.0), "noise_std"),
        (lambda: T.AngularIntegrator(output="degrees"), "output"),
        (lambda: T.AngularIntegrator(cue=5000.0), "cue"),
        (lambda: T.BinaryDecision(stimulus=("uniform", 500.0, 100.0)), "stimulus"),
        (lambda: T.BinaryDecision(stimulus=("gaussian", 1.0)), "stimulus"),
        (lambda: T.ContextDecisionMaking(coherences=(0.5, 2.0)), "coherences"),
        (lambda: T.ContextDecisionMaking(response=0.0), "response"),
        (lambda: T.ContextDecisionMaking(fixation=("truncexp", -1.0, 0.0, 10.0)), "fixation"),
        (lambda: T.DelayedDiscrimination(frequency_pairs=((10.0, 10.0),)), "frequency_pairs"),
        (lambda: T.GoNoGo(input_noise=-0.1), "input_noise"),
        (lambda: T.DelayedMatchToSample(test_on=135, test_off=145), "test"),
        (lambda: T.DelayedMatchToSample(jitter=-1), "jitter"),
        (lambda: T.MemoryNumber(recall_on=10, recall_off=5), "recall_off"),
        (lambda: T.MemoryAntiAngle(angle_tolerance=0.0), "angle_tolerance"),
    ]
    for make, arg in cases:
        with pytest.raises(ValueError, match=arg):
            make()
    with pytest.raises(ValueError, match="no parameter"):
        T.make("integrator", n_bits=3)


# ------------------------------------------------------------------ duration specs


def test_duration_specs_sample_their_distributions():
    keys = jax.random.split(KEY, 20000)
    dt = 1.0
    u = np.asarray(jax.vmap(lambda k: sample_steps(("uniform", 100.0, 300.0), k, dt))(keys))
    assert u.min() >= 100 and u.max() <= 300 and abs(u.mean() - 200) < 2
    c = np.asarray(jax.vmap(lambda k: sample_steps(("choice", 2.0, 4.0, 8.0), k, dt))(keys))
    assert set(np.unique(c)) == {2, 4, 8}
    np.testing.assert_allclose(np.bincount(c)[[2, 4, 8]] / len(c), 1 / 3, atol=0.015)
    # truncated exponential: the mean of Exp(mean m) conditioned on [lo, hi], by quadrature
    m, lo, hi = 100.0, 50.0, 400.0
    x = np.linspace(lo, hi, 200001)
    pdf = np.exp(-x / m)
    want = np.trapezoid(x * pdf, x) / np.trapezoid(pdf, x)
    e = np.asarray(jax.vmap(lambda k: sample_steps(("truncexp", m, lo, hi), k, dt))(keys))
    assert e.min() >= lo and e.max() <= hi
    assert abs(e.mean() - want) < 2.0
    assert max_steps(("truncexp", m, lo, hi), 10.0) == 40
    assert min_steps(("choice", 300.0, 100.0), 20.0) == 5
    assert int(sample_steps(250.0, KEY, 20.0)) == round(250 / 20)


def test_variable_timing_pads_with_mask_off():
    task = T.ContextDecisionMaking(fixation=("uniform", 200.0, 600.0),
                                   stimulus=("choice", 200.0, 800.0), delay=0.0,
                                   response=400.0, input_noise=0.0, target="response")
    trial = batch(task, KEY, 64)
    assert task.n_steps == (600 + 800 + 400) // 20
    ends = np.asarray(trial.conditions["trial_end"])
    assert len(np.unique(ends)) > 1
    for i in range(64):
        e = ends[i]
        assert np.all(np.asarray(trial.mask[i, e:]) == 0)
        assert np.all(np.asarray(trial.inputs[i, e:]) == 0)
        assert np.all(np.asarray(trial.mask[i, e - 20:e]) == 1)  # response epoch is 20 steps


# ------------------------------------------------------------------ hand-computed trials


def test_integrator_running_sum():
    task = T.Integrator(n_steps=6, noise_std=0.5)
    noise = jnp.array([1.0, -2.0, 0.0, 0.5, 3.0, -1.0])
    tr = task.trial_for(0.1, noise)
    u = 0.1 + 0.5 * np.array([1.0, -2.0, 0.0, 0.5, 3.0, -1.0])
    np.testing.assert_allclose(np.asarray(tr.inputs[:, 0]), u, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(tr.targets[:, 0]), np.cumsum(u), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(tr.mask), np.ones((6, 1)))
    assert float(tr.conditions["final_sum"]) == pytest.approx(u.sum(), rel=1e-6)
    # accuracy: fraction of steps within the tolerance (0.2)
    out = tr.targets.at[:2, 0].add(0.3)
    assert float(task.accuracy(out, tr)) == pytest.approx(4 / 6)


def test_angular_integrator_heading_and_mask():
    task = T.AngularIntegrator(n_steps=8, cue=40.0, dt=20.0)
    omega = jnp.array([0.1, 0.2, -0.3, 0.0, 1.0, 1.0, 1.0, 1.0])
    tr = task.trial_for(3.0, omega)
    theta = 3.0 + np.cumsum(np.asarray(omega))
    np.testing.assert_allclose(np.asarray(tr.targets), np.stack(
        [np.sin(theta), np.cos(theta)], 1), atol=1e-6)
    # the velocity channel is omega times velocity_gain (default 5)
    np.testing.assert_allclose(np.asarray(tr.inputs[:, 0]), 5.0 * np.asarray(omega), rtol=1e-6)
    one = T.AngularIntegrator(n_steps=8, cue=40.0, dt=20.0, velocity_gain=1.0)
    np.testing.assert_allclose(np.asarray(one.trial_for(3.0, omega).inputs[:, 0]),
                               np.asarray(omega))
    np.testing.assert_allclose(np.asarray(tr.inputs[:2, 1:]), [[np.sin(3), np.cos(3)]] * 2,
                               atol=1e-6)
    assert np.all(np.asarray(tr.inputs[2:, 1:]) == 0)
    np.testing.assert_array_equal(np.asarray(tr.mask[:, 0]), [0, 0, 1, 1, 1, 1, 1, 1])
    phase = T.AngularIntegrator(n_steps=8, cue=40.0, output="phase").trial_for(3.0, omega)
    want = (theta + np.pi) % (2 * np.pi) - np.pi
    np.testing.assert_allclose(np.asarray(phase.targets[:, 0]), want, atol=1e-5)
    assert np.all(np.abs(np.asarray(phase.targets)) <= np.pi)
    # a heading off by 0.5 rad (> pi/8) on 3 of the 6 scored steps
    out = np.asarray(tr.targets).copy()
    off = theta[5:] + 0.5
    out[5:] = np.stack([np.sin(off), np.cos(off)], 1)
    assert float(task.accuracy(jnp.asarray(out), tr)) == pytest.approx(3 / 6)


def test_binary_decision_sign_of_integral():
    task = T.BinaryDecision(stimulus=("choice", 200.0, 500.0), decision=100.0, dt=20.0,
                            noise_std=1.0)
    noise = jnp.zeros(task.n_steps).at[0].set(-0.5).at[3].set(0.2)
    tr = task.trial_for(0.02, noise, 10)
    integral = 10 * 0.02 - 0.5 + 0.2
    assert float(tr.conditions["integral"]) == pytest.approx(integral, abs=1e-6)
    assert int(tr.conditions["choice"]) == 0  # negative
    assert task.n_steps == 25 + 5
    want_mask = np.zeros(30)
    want_mask[10:15] = 1
    np.testing.assert_array_equal(np.asarray(tr.mask[:, 0]), want_mask)
    np.testing.assert_array_equal(np.asarray(tr.targets[:, 0]), -want_mask)
    assert np.all(np.asarray(tr.inputs[10:, 0]) == 0)


def test_context_decision_making_layout():
    # trainRNNbrain's layout at dt = 1 step = 10 ms (the default follows Mante's epochs)
    task = T.ContextDecisionMaking(dt=10.0, input_noise=0.0, fixation=1000, stimulus=1000,
                                   delay=0, response=1000, stimulus_until_end=True,
                                   stimulus_coding="pair", target="response")
    assert task.n_steps == 300
    tr = task.trial_for(1, 0.5, -0.25, 100, 100, 100)
    x = np.asarray(tr.inputs)
    np.testing.assert_allclose(x[0], [0, 1, 0, 0, 0, 0])
    np.testing.assert_allclose(x[150], [0, 1, 0.75, 0.25, 0.375, 0.625])
    np.testing.assert_allclose(x[299], [0, 1, 0.75, 0.25, 0.375, 0.625])
    y = np.asarray(tr.targets)
    assert np.all(y[:200] == 0)
    np.testing.assert_array_equal(y[200:], np.tile([0.0, 1.0], (100, 1)))  # colour < 0: left
    m = np.asarray(tr.mask[:, 0])
    np.testing.assert_array_equal(m, np.r_[np.ones(100), np.zeros(100), np.ones(100)])
    assert int(tr.conditions["choice"]) == 0
    # relevant coherence 0: no target, and the trial does not count in the accuracy
    zero = task.trial_for(0, 0.0, 1.0, 100, 100, 100)
    assert np.all(np.asarray(zero.targets) == 0)
    assert float(task.trial_weights(zero)) == 0.0
    want = sorted([0.0] + [s * 2.0**-k for k in range(7) for s in (1, -1)])
    assert list(_CDDM_COHERENCES) == want  # NeuroGym's protocol's grid (no longer the default)


def test_delayed_discrimination_codes():
    task = T.DelayedDiscrimination(input_noise=0.0)
    np.testing.assert_allclose(np.asarray(task.encode(10.0)), [0.4, 1.2], atol=1e-6)
    np.testing.assert_allclose(np.asarray(task.encode(34.0)), [1.2, 0.4], atol=1e-6)
    tr = task.trial_for(18.0, 26.0, [2, 5, 3, 4, 6])
    x = np.asarray(tr.inputs)
    np.testing.assert_allclose(x[2:7], np.tile([0.4 + 0.8 * 8 / 24, 0.4 + 0.8 * 16 / 24],
                                               (5, 1)), atol=1e-6)
    assert np.all(x[7:10] == 0) and np.all(x[:2] == 0)
    np.testing.assert_allclose(x[10:14], np.tile([0.4 + 0.8 * 16 / 24, 0.4 + 0.8 * 8 / 24],
                                                 (4, 1)), atol=1e-6)
    y, m = np.asarray(tr.targets), np.asarray(tr.mask[:, 0])
    np.testing.assert_allclose(y[14:20], np.tile([0.2, 1.0], (6, 1)))  # f1 < f2: choice 1
    assert m[14:20].all() and m.sum() == 6
    assert int(tr.conditions["choice"]) == 1


def test_go_no_go_targets():
    task = T.GoNoGo(input_noise=0.0)
    go = task.trial_for(0.7, [10, 20, 15, 20])
    nogo = task.trial_for(0.3, [10, 20, 15, 20])
    y = np.asarray(go.targets[:, 0])
    np.testing.assert_array_equal(y, np.r_[np.zeros(45), np.ones(20), np.zeros(task.n_steps - 65)])
    assert np.all(np.asarray(nogo.targets) == 0)
    x = np.asarray(go.inputs)
    np.testing.assert_allclose(x[10:30, 0], 0.7)
    np.testing.assert_array_equal(x[:, 1], y)  # the cue is the response window
    np.testing.assert_array_equal(np.asarray(go.mask[:, 0]), (np.arange(task.n_steps) < 65))


def test_delayed_match_to_sample_trainrnnbrain_layout():
    task = T.DelayedMatchToSample(input_noise=0.0)
    tr = task.trial_for(0, 1, 3, -2)
    x = np.asarray(tr.inputs)
    on0 = np.zeros(140)
    on0[13:23] = 1
    on1 = np.zeros(140)
    on1[78:88] = 1
    cue = np.zeros(140)
    cue[100:140] = 1
    np.testing.assert_array_equal(x[:, 0], on0)
    np.testing.assert_array_equal(x[:, 1], on1)
    np.testing.assert_array_equal(x[:, 2], cue)
    np.testing.assert_array_equal(np.asarray(tr.targets), np.stack([0 * cue, cue], 1))
    assert int(tr.conditions["choice"]) == 0
    match = task.trial_for(1, 1)
    np.testing.assert_array_equal(np.asarray(match.targets[:, 0]), cue)
    shifts = np.asarray(batch(task, KEY, 256).conditions["sample_on"]) - 10
    assert shifts.min() == -10 and shifts.max() == 9


@pytest.mark.parametrize("cls,report", [(T.MemoryNumber, 0.3), (T.MemoryAntiNumber, 0.7)])
def test_memory_number_and_anti(cls, report):
    task = cls(input_noise=0.0)
    tr = task.trial_for(0.3, shift=2)
    x = np.asarray(tr.inputs)
    assert np.allclose(x[12:22, 0], 0.3) and np.all(x[:12, 0] == 0) and np.all(x[22:, 0] == 0)
    recall = (np.arange(120) >= 80).astype(float)
    np.testing.assert_array_equal(x[:, 1], recall)
    np.testing.assert_allclose(np.asarray(tr.targets[:, 0]), report * recall, atol=1e-6)
    # scored on recall steps only: off by 0.2 on half of them
    out = tr.targets.at[80:100, 0].add(0.2)
    assert float(task.accuracy(out, tr)) == pytest.approx(0.5)


def test_linear_ring_code_and_decoder():
    np.testing.assert_allclose(np.asarray(linear_ring_code(jnp.pi / 3, 3)), [0.5, 0.5, 0.0],
                               atol=1e-6)
    np.testing.assert_allclose(np.asarray(linear_ring_code(4 * jnp.pi / 3, 3)), [0, 0, 1],
                               atol=1e-6)
    np.testing.assert_allclose(np.asarray(linear_ring_code(11 * jnp.pi / 6, 3)),
                               [0.75, 0, 0.25], atol=1e-6)
    th = jnp.linspace(0, 2 * jnp.pi, 50, endpoint=False)
    back = jax.vmap(lambda a: decode_linear_ring(linear_ring_code(a, 3)))(th)
    np.testing.assert_allclose(np.asarray(back), np.asarray(th), atol=1e-5)


def test_memory_anti_angle_reports_opposite():
    # trainRNNbrain's fixed layout (the default draws the recall onset per trial)
    task = T.MemoryAntiAngle(input_noise=0.0, n_steps=200, recall_on=120, recall_off=200,
                             angle_tolerance=0.5236)
    tr = task.trial_for(jnp.pi / 3)
    x, y = np.asarray(tr.inputs), np.asarray(tr.targets)
    np.testing.assert_allclose(x[25, :3], [0.5, 0.5, 0], atol=1e-6)
    assert np.all(x[:, 3] == 1)
    np.testing.assert_array_equal(x[:, 4], (np.arange(200) >= 120).astype(float))
    np.testing.assert_allclose(y[150], [0, 0, 1], atol=1e-6)  # 60 + 180 = 240 degrees
    assert np.all(y[:120] == 0)
    assert float(tr.conditions["anti_theta"]) == pytest.approx(4 * np.pi / 3, abs=1e-6)
    # a report rotated by 45 degrees (> 30) fails, by 20 degrees passes
    for deg, ok in ((45, 0.0), (20, 1.0)):
        rot = linear_ring_code(4 * jnp.pi / 3 + np.deg2rad(deg), 3)
        out = tr.targets.at[120:].set(jnp.broadcast_to(rot, (80, 3)))
        assert float(task.accuracy(out, tr)) == ok


# ------------------------------------------------------------------ psychometric


def test_psychometric_of_a_motion_only_network():
    """A hand-built linear network that always integrates motion and holds the sum through the
    delay: P(right) is a step in motion coherence in both contexts."""
    task = T.ContextDecisionMaking(input_noise=0.0, stimulus_coding="pair", target="response")
    w_in = np.zeros((2, 6))
    w_in[0, 2], w_in[0, 3] = 1.0, -1.0  # h0 += motion right - left = c_m at every step
    w_out = np.array([[1.0, 0.0], [-1.0, 0.0]])
    # W = I with tau = dt: h <- h + W_in u, a perfect integrator that holds its sum
    net = rl.CTRNN.from_weights(np.eye(2), w_in, w_out, activation="linear",
                                dt=task.dt, tau=task.dt)
    curve = task.psychometric(net, KEY, n_trials=1024)
    assert curve["groups"].tolist() == [0.0, 1.0]
    x = curve["x"]
    for g in range(2):
        p = curve["p_choice"][g]
        seen = curve["n"][g] > 0
        np.testing.assert_array_equal(p[seen & (x > 0)], 1.0)
        np.testing.assert_array_equal(p[seen & (x <= 0)], 0.0)
    assert curve["n"].sum() == 1024
    # in the motion context the network is right on every trial with non-zero coherence
    acc = curve["accuracy"][0]
    assert np.all(acc[(x != 0) & (curve["n"][0] > 0)] == 1.0)
    full = rl.training.evaluate(net, task, key=KEY, batch_size=512)
    assert 0.45 < full["accuracy"] < 0.85  # right in the motion context only
    with pytest.raises(ValueError, match="x="):
        task.psychometric(net, KEY, n_trials=16, x="nonexistent")

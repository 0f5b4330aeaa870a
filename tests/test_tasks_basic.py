"""The foundation tasks: hand-checked targets and masks, jit/vmap, reproducibility, registry."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnlab as rl
from rnnlab.tasks import FlipFlop, PerceptualDecisionMaking, SineWave

KEY = jax.random.PRNGKey(0)


def flipflop_reference(inputs, pulse_duration):
    """Targets and mask re-derived from the pulses, by hand, in numpy."""
    T, n = inputs.shape
    targets = np.zeros((T, n))
    mask = np.zeros((T, n))
    for b in range(n):
        held, since = 0.0, None
        for t in range(T):
            x = inputs[t, b]
            if x != 0 and (t == 0 or inputs[t - 1, b] == 0 or since >= pulse_duration):
                held, since = x, 0
            elif since is not None:
                since += 1
            targets[t, b] = held
            mask[t, b] = float(since is not None and since >= pulse_duration)
    return targets, mask


def test_flipflop_targets_follow_last_pulse():
    task = FlipFlop(n_bits=3, n_steps=200, pulse_duration=4, min_gap=3, pulse_prob=0.1)
    batch = task.sample_batch(KEY, 16)
    assert batch.inputs.shape == (16, 200, 3) and batch.inputs.dtype == jnp.float32
    assert batch.targets.shape == (16, 200, 3) and batch.mask.shape == (16, 200, 3)
    for i in range(16):
        inp = np.asarray(batch.inputs[i])
        assert set(np.unique(inp)) <= {-1.0, 0.0, 1.0}
        ref_t, ref_m = flipflop_reference(inp, 4)
        np.testing.assert_array_equal(batch.targets[i], ref_t)
        np.testing.assert_array_equal(batch.mask[i], ref_m)
        # pulses last exactly pulse_duration steps and are at least pulse_duration+min_gap apart
        for b in range(3):
            on = np.flatnonzero(np.diff(np.concatenate([[0], inp[:, b] != 0]).astype(int)) == 1)
            assert np.all(np.diff(on) >= 7)
        np.testing.assert_array_equal(batch.conditions["final_bits"][i], ref_t[-1])


def test_flipflop_hand_trial():
    """A trial laid out by hand: one +1 pulse at t=0 on bit 0, nothing on bit 1."""
    task = FlipFlop(n_bits=2, n_steps=12, pulse_duration=2, min_gap=100, pulse_prob=1.0)
    trial = task.sample(KEY)
    # with pulse_prob 1 every channel pulses at t=0 and never again (refractory 102 > 12)
    inp = np.asarray(trial.inputs)
    assert np.all(inp[:2] != 0) and np.all(inp[2:] == 0)
    np.testing.assert_array_equal(trial.targets, np.repeat(inp[:1], 12, axis=0))
    np.testing.assert_array_equal(trial.mask[:, 0], [0, 0] + [1] * 10)
    np.testing.assert_array_equal(trial.conditions["n_pulses"], [1, 1])


def test_flipflop_accuracy_definition():
    task = FlipFlop(n_bits=1, n_steps=10, pulse_duration=1, min_gap=100, pulse_prob=1.0)
    trial = task.sample(KEY)
    target = trial.targets
    assert float(task.evaluate(target, trial)["accuracy"]) == 1.0
    off = target + 0.6 * jnp.where(jnp.arange(10)[:, None] < 5, 1.0, 0.0)
    # steps 1..4 are masked-in and off by 0.6 (> 0.5): 4 of 9 wrong
    assert math.isclose(float(task.accuracy(off, trial)), 5 / 9, rel_tol=1e-6)


def test_sine_wave_values():
    task = SineWave()
    assert np.allclose(task.frequencies, 0.10 + 0.01 * np.arange(40))
    trial = task.trial_for(0)
    np.testing.assert_allclose(trial.inputs[:, 0], 0.25 + (10 - 9) / 51, rtol=1e-6)
    np.testing.assert_allclose(trial.targets[:, 0], np.sin(0.1 * np.arange(100)), atol=1e-6)
    trial = task.trial_for(39)
    np.testing.assert_allclose(trial.inputs[0, 0], 0.25 + (49 - 9) / 51, rtol=1e-6)
    np.testing.assert_allclose(trial.targets[7, 0], np.sin(0.49 * 7), atol=1e-6)
    batch = task.sample_batch(KEY, 64)
    w = np.asarray(batch.conditions["frequency"])
    np.testing.assert_allclose(batch.targets[:, 5, 0], np.sin(5 * w), atol=1e-5)
    np.testing.assert_allclose(batch.inputs[:, 0, 0], 0.25 + (100 * w - 9) / 51, rtol=1e-5)
    scores = task.evaluate(batch.targets, batch)
    assert float(scores["accuracy"]) == 1.0 and abs(float(scores["r2"]) - 1) < 1e-6


def test_pdm_epochs_and_noise_free_trial():
    task = PerceptualDecisionMaking(sigma=0.0, fixation=100, stimulus=2000)  # layout of before
    assert task.dt == 20.0 and task.n_steps == 5 + 100 + 0 + 5
    assert task.epochs == {"fixation": (0, 5), "stimulus": (5, 105), "delay": (105, 105),
                           "decision": (105, 110)}
    trial = task.trial_for(25.6, 1)
    inp = np.asarray(trial.inputs)
    np.testing.assert_array_equal(inp[:105, 0], 1.0)
    np.testing.assert_array_equal(inp[105:, 0], 0.0)
    np.testing.assert_array_equal(inp[:5, 1:], 0.0)
    np.testing.assert_allclose(inp[5:105, 1], 0.5 - 25.6 / 200, rtol=1e-6)  # cos(0 - pi) = -1
    np.testing.assert_allclose(inp[5:105, 2], 0.5 + 25.6 / 200, rtol=1e-6)
    labels = np.argmax(np.asarray(trial.targets), axis=1)
    np.testing.assert_array_equal(labels, [0] * 105 + [2] * 5)
    assert float(trial.conditions["signed_coherence"]) == pytest.approx(-25.6)


def test_pdm_noise_std_and_accuracy():
    task = PerceptualDecisionMaking(coherences=(0.0,), fixation=100, stimulus=2000)
    batch = task.sample_batch(KEY, 256)
    stim = np.asarray(batch.inputs[:, 5:105, 1])
    assert abs(stim.std() - 1 / math.sqrt(20)) < 0.01 and abs(stim.mean() - 0.5) < 0.01
    # perfect logits score 1, fixating (class 0) scores 0
    assert float(task.accuracy(batch.targets * 10, batch)) == 1.0
    assert float(task.accuracy(jnp.zeros_like(batch.targets).at[..., 0].set(1), batch)) == 0.0
    mse = PerceptualDecisionMaking(loss_type="mse")
    assert mse.loss_type == "mse"
    t = mse.sample(KEY)
    assert float(mse.loss(t.targets, t)) == 0.0


@pytest.mark.parametrize("name", ["flipflop", "sine_wave", "perceptual_decision_making"])
def test_sampling_is_jittable_vmappable_reproducible(name):
    task = rl.tasks.make(name)
    a = jax.jit(task.sample)(KEY)
    b = task.sample(KEY)
    c = jax.jit(task.sample)(KEY)
    for x, y, z in zip(jax.tree.leaves(a), jax.tree.leaves(b), jax.tree.leaves(c)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)  # XLA may fuse differently
        np.testing.assert_array_equal(x, z)
    batch = task.sample_batch(KEY, 8)
    again = task.sample_batch(KEY, 8)
    other = task.sample_batch(jax.random.PRNGKey(1), 8)
    np.testing.assert_array_equal(batch.inputs, again.inputs)
    assert not np.array_equal(batch.targets, other.targets) or not np.array_equal(
        batch.inputs, other.inputs)
    assert batch.inputs.shape == (8, task.n_steps, task.n_in)
    assert batch.targets.shape == (8, task.n_steps, task.n_out)
    assert batch.mask.shape == (8, task.n_steps, task.n_out)
    for arr in (batch.inputs, batch.targets, batch.mask):
        assert arr.dtype == jnp.float32
    assert set(np.unique(np.asarray(batch.mask))) <= {0.0, 1.0}


def test_registry():
    assert {"flipflop", "sine_wave", "perceptual_decision_making"} <= set(rl.tasks.available())
    assert rl.tasks.make("flipflop", n_bits=4).n_in == 4
    with pytest.raises(ValueError, match="unknown task"):
        rl.tasks.make("nope")
    with pytest.raises(ValueError, match="n_bitz"):
        rl.tasks.make("flipflop", n_bitz=4)


@pytest.mark.parametrize(
    "cls, kw, match",
    [
        (FlipFlop, dict(n_bits=0), "n_bits"),
        (FlipFlop, dict(pulse_prob=1.5), "pulse_prob"),
        (FlipFlop, dict(n_steps=2.5), "n_steps"),
        (SineWave, dict(w_min=0.5, w_max=0.1), "w_max"),
        (PerceptualDecisionMaking, dict(coherences=(120.0,)), "coherences"),
        (PerceptualDecisionMaking, dict(loss_type="hinge"), "loss_type"),
        (PerceptualDecisionMaking, dict(decision=0.0), "decision"),
    ],
)
def test_bad_task_parameters(cls, kw, match):
    # a value of the wrong type (n_steps=2.5) is a TypeError when the test suite's jaxtyping
    # checks see it first, else the task's own ValueError; both name the argument
    with pytest.raises((ValueError, TypeError), match=match):
        cls(**kw)


def test_user_defined_task_trains():
    class Copy(rl.tasks.AbstractTask):
        n_steps: int = 20
        dt: float = 10.0
        n_in = 1
        n_out = 1

        def sample(self, key):
            u = jax.random.normal(key, (self.n_steps, 1))
            return rl.tasks.Trial(u, u, jnp.ones_like(u))

    task = Copy()
    model = rl.CTRNN(1, 16, 1, key=KEY)
    res = rl.train(model, task, key=KEY, steps=100, learning_rate=1e-2, eval_every=50,
                   progress=False)
    assert res.history[-1]["loss"] < res.history[0]["loss"]

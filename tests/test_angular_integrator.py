"""The angular integrator's trials: the default layout (Cueva & Wei's statistics with
zero-velocity holds) holds headings anywhere, the previous defaults need several turns, and
explicit old values reproduce the earlier trials exactly (values recorded from the layout
before those: n_steps=100, velocity_std=0.05, unscaled velocity input)."""

import jax
import numpy as np
import pytest

from rnnlab import tasks as T

# the defaults before 2026-12-07 (helix-trained networks), and the layout before those
PREVIOUS = {"velocity_std": 0.1, "velocity_tau": 200.0, "cue": 100.0, "still_probability": 0.0}
OLD = {**PREVIOUS, "n_steps": 100, "velocity_std": 0.05, "velocity_gain": 1.0}


def test_old_layout_reproduces_the_earlier_trials():
    tr = T.AngularIntegrator(**OLD).sample_batch(jax.random.PRNGKey(3), 4)
    x, y = np.asarray(tr.inputs), np.asarray(tr.targets)
    assert x.shape == (4, 100, 3) and float(np.asarray(tr.mask).sum()) == 760.0
    np.testing.assert_allclose(x[0, :6, 0], [-0.019429978, -0.014322212, -0.032384686,
                                             -0.06260177, -0.0792554, -0.035166305], rtol=1e-6)
    np.testing.assert_allclose(x[2, 95:, 0], [0.022083834, 0.023169706, -0.017441608,
                                              -0.015580321, -0.035002384], rtol=1e-6)
    np.testing.assert_allclose(x[0, 0, 1:], [0.9813978672027588, -0.19198492169380188],
                               rtol=1e-6)
    # targets: cos and sin of a heading summed over 50-100 float32 steps, equal to a few ulps
    # of the heading (how XLA compiles the sum moves its last bits)
    np.testing.assert_allclose(y[1, -1], [0.48310304, -0.8755635], rtol=0, atol=1e-6)
    np.testing.assert_allclose(y[3, 50], [-0.9774549, -0.21114439], rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(tr.conditions["initial_heading"]),
                               [1.7639806, -2.4988329, -1.0556595, -0.8363266], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(tr.conditions["final_heading"]),
                               [1.1434667, 2.6373975, 1.6125748, -0.9732883], rtol=1e-5)


def test_velocity_gain_scales_only_the_velocity_input():
    key = jax.random.PRNGKey(0)
    one = T.AngularIntegrator(velocity_gain=1.0).sample_batch(key, 8)
    five = T.AngularIntegrator().sample_batch(key, 8)
    np.testing.assert_allclose(np.asarray(five.inputs[..., 0]),
                               5.0 * np.asarray(one.inputs[..., 0]), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(five.inputs[..., 1:]),
                                  np.asarray(one.inputs[..., 1:]))
    np.testing.assert_array_equal(np.asarray(five.targets), np.asarray(one.targets))
    with pytest.raises(ValueError, match="velocity_gain"):
        T.AngularIntegrator(velocity_gain=0.0)


def test_default_trials_hold_the_heading_anywhere():
    """Cueva & Wei's statistics: half the trials hold the velocity at exactly zero over one
    window (up to 2/3 of the trial); a trial travels about a turn (its heading sweeping about
    a third of one), and the initial headings cover the circle. Trials without a hold are
    those of ``still_probability=0`` exactly."""
    task = T.AngularIntegrator()
    assert (task.velocity_std, task.velocity_tau, task.cue) == (0.05, 90.0, 200.0)
    tr = task.sample_batch(jax.random.PRNGKey(1), 1024)
    omega = np.asarray(tr.inputs[..., 0]) / task.velocity_gain
    held = omega == 0
    n_held = held.sum(axis=1)
    assert 0.45 < np.mean(n_held > 0) < 0.55
    assert n_held.max() <= 2 / 3 * task.n_steps
    for i in np.flatnonzero(n_held > 1)[:50]:  # one contiguous window
        idx = np.flatnonzero(held[i])
        assert idx[-1] - idx[0] + 1 == idx.size
    travelled = np.abs(omega).sum(axis=1) / (2 * np.pi)
    assert 0.9 < np.median(travelled) < 1.4
    theta0 = np.asarray(tr.conditions["initial_heading"])
    assert np.histogram(theta0, 8, (-np.pi, np.pi))[0].min() > 80
    free = T.AngularIntegrator(still_probability=0.0).sample_batch(jax.random.PRNGKey(1), 1024)
    np.testing.assert_array_equal(np.asarray(free.inputs)[n_held == 0],
                                  np.asarray(tr.inputs)[n_held == 0])
    assert task.recommended_training() == {"learning_rate": 1e-3, "steps": 5000,
                                           "target_accuracy": 1.0}
    with pytest.raises(ValueError, match="still_probability"):
        T.AngularIntegrator(still_probability=1.5)
    with pytest.raises(ValueError, match="still_max"):
        T.AngularIntegrator(still_max=0.0)


def test_previous_default_trials_need_several_turns():
    task = T.AngularIntegrator(**PREVIOUS)
    assert task.n_steps * task.dt == 4000.0
    tr = task.sample_batch(jax.random.PRNGKey(1), 256)
    omega = np.asarray(tr.inputs[..., 0]) / task.velocity_gain
    heading = np.cumsum(omega, axis=1)
    travelled = np.abs(omega).sum(axis=1) / (2 * np.pi)
    swept = np.ptp(heading, axis=1) / (2 * np.pi)
    assert np.median(travelled) > 2.0  # turns travelled per trial
    assert np.mean(swept > 1.0) > 0.6  # most trials sweep the whole circle
    old = T.AngularIntegrator(**OLD).sample_batch(jax.random.PRNGKey(1), 256)
    assert np.mean(np.ptp(np.cumsum(np.asarray(old.inputs[..., 0]), 1), 1) > 2 * np.pi) < 0.05

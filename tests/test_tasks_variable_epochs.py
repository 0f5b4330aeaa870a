"""Variable epoch durations of perceptual_decision_making and memory_anti_angle (issue 12,
item 5)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnlab as rl
from rnnlab.tasks._common import decode_linear_ring
from rnnlab.tasks._common import linear_ring_code as code


def test_pdm_durations_come_from_the_declared_set_and_targets_follow_them():
    task = rl.tasks.make("perceptual_decision_making", sigma=0.0, fixation=100.0,
                         delay=("choice", 0.0, 200.0))
    # 100 ms fixation = 5 steps; stimulus 400/800/1600 ms = 20/40/80; delay 0/10; decision 5
    assert task.n_steps == 5 + 80 + 10 + 5
    b = task.sample_batch(jax.random.PRNGKey(0), 256)
    stim = np.asarray(b.conditions["stimulus_steps"])
    delay = np.asarray(b.conditions["delay_steps"])
    assert set(stim.tolist()) == {20, 40, 80} and set(delay.tolist()) == {0, 10}
    dec = np.asarray(b.conditions["decision_start"])
    np.testing.assert_array_equal(dec, 5 + stim + delay)
    labels = np.argmax(np.asarray(b.targets), -1)
    for i in range(16):
        d, c = dec[i], int(b.conditions["choice"][i])
        np.testing.assert_array_equal(labels[i, :d], 0)
        np.testing.assert_array_equal(labels[i, d:d + 5], c + 1)
        np.testing.assert_array_equal(b.mask[i, :, 0], np.arange(task.n_steps) < d + 5)
        np.testing.assert_array_equal(b.inputs[i, :, 0], np.arange(task.n_steps) < d)
        on = (np.arange(task.n_steps) >= 5) & (np.arange(task.n_steps) < 5 + stim[i])
        np.testing.assert_array_equal(b.inputs[i, ~on, 1:], 0.0)
    # perfect logits are correct on every trial; the right choice outside the decision
    # window is not
    assert float(task.accuracy(b.targets * 10, b)) == 1.0
    old = rl.tasks.make("perceptual_decision_making", fixation=100, stimulus=2000)
    assert old.fixed_layout and old.n_steps == 110


def test_memory_anti_angle_recall_onsets_come_from_the_declared_range():
    task = rl.tasks.make("memory_anti_angle", input_noise=0.0)
    assert task.recall_on == ("uniform", 80.0, 240.0) and not task.fixed_layout
    assert task.n_steps == task.recall_off == 300
    out = jax.random.uniform(jax.random.PRNGKey(2), (128, 300, 3))

    @jax.jit
    def run(key):
        b = task.sample_batch(key, 128)
        return (b, jax.vmap(code, (0, None))(b.conditions["anti_theta"], 3),
                task.accuracy(b.targets, b), task.reported_angles(out, b))

    b, anti_code, acc, reported = run(jax.random.PRNGKey(0))
    inputs, targets, mask = (np.asarray(a) for a in (b.inputs, b.targets, b.mask))
    on = np.asarray(b.conditions["recall_on"])
    assert on.min() >= 80 and on.max() <= 240 and len(set(on.tolist())) > 60
    t = np.arange(task.n_steps)
    recall = t[None] >= on[:, None]
    np.testing.assert_array_equal(inputs[..., 4], recall)
    np.testing.assert_array_equal(inputs[..., 3], 1.0)
    np.testing.assert_array_equal(np.any(targets != 0, axis=-1), recall)
    np.testing.assert_allclose(targets[np.arange(128), on], anti_code, atol=1e-6)
    np.testing.assert_array_equal(mask, 1.0)
    s0 = np.asarray(b.conditions["stim_on"])
    np.testing.assert_array_equal(np.any(inputs[..., :3] != 0, axis=-1),
                                  (t[None] >= s0[:, None]) & (t[None] < s0[:, None] + 20))
    # scored on each trial's own recall window
    assert float(acc) == 1.0
    out = np.asarray(out)
    mean = np.stack([out[i, on[i]:].mean(0) for i in range(len(on))])
    np.testing.assert_allclose(np.asarray(reported),
                               np.asarray(decode_linear_ring(jnp.asarray(mean))), atol=1e-5)
    with pytest.raises(ValueError, match="pass the trial"):
        task.reported_angles(b.targets)
    # a choice set, in steps (drawn by `sample_steps`, as every duration spec)
    ch = rl.tasks.make("memory_anti_angle", recall_on=["choice", 90, 150])
    assert ch.recall_on == ("choice", 90.0, 150.0) and ch.recall_bounds == (90, 150)
    with pytest.raises(ValueError, match="recall_on"):  # before the stimulus has ended
        rl.tasks.make("memory_anti_angle", recall_on=("uniform", 40.0, 160.0))
    with pytest.raises(ValueError, match="recall_on"):  # no recall left
        rl.tasks.make("memory_anti_angle", recall_on=("uniform", 80.0, 300.0))


def test_memory_anti_angle_fixed_recall_on_gives_the_old_trials_bit_for_bit():
    """``n_steps=200, recall_on=120, recall_off=200, angle_tolerance=0.5236`` is the layout
    and scoring of before (trainRNNbrain's): the same draws from the same key, built here as
    the task built them."""
    task = rl.tasks.make("memory_anti_angle", n_steps=200, recall_on=120, recall_off=200,
                         angle_tolerance=0.5236)
    assert task.fixed_layout and task.config()["recall_on"] == 120

    def old(key):  # the task's sample() before variable recall onsets
        ks = jax.random.split(key, 3)
        theta = jax.random.uniform(ks[0], (), maxval=2 * jnp.pi)
        shift = jax.random.randint(ks[1], (), -10, 10)
        noise = jax.random.normal(ks[2], (200, 5))
        t = jnp.arange(200)
        stim = (t >= 20 + shift) & (t < 40 + shift)
        recall = (t >= 120) & (t < 200)
        theta = theta % (2 * jnp.pi)
        inputs = jnp.concatenate([stim[:, None] * code(theta, 3)[None], jnp.ones((200, 1)),
                                  recall[:, None].astype(jnp.float32)], axis=1)
        inputs = (inputs + 0.02 * noise).astype(jnp.float32)
        targets = recall[:, None] * code((theta + jnp.pi) % (2 * jnp.pi), 3)[None]
        return inputs, targets.astype(jnp.float32), 20 + shift

    keys = jax.random.split(jax.random.PRNGKey(7), 32)

    @jax.jit
    def run(keys):
        new = jax.vmap(task.sample)(keys)
        out = new.targets + 0.3 * jax.random.normal(jax.random.PRNGKey(3), new.targets.shape)
        return (new, jax.vmap(old)(keys), out, task.accuracy(out, new),
                task.reported_angles(out), task.reported_angles(out, new))

    new, ref, out, acc, angles, angles_trial = run(keys)
    np.testing.assert_array_equal(np.asarray(new.inputs), np.asarray(ref[0]))
    np.testing.assert_array_equal(np.asarray(new.targets), np.asarray(ref[1]))
    np.testing.assert_array_equal(np.asarray(new.conditions["stim_on"]), np.asarray(ref[2]))
    np.testing.assert_array_equal(np.asarray(new.mask), 1.0)
    np.testing.assert_array_equal(np.asarray(new.conditions["recall_on"]), 120)
    # the old scoring: mean output over steps 120-200, within 30 degrees
    mean = np.asarray(out)[:, 120:].mean(1)
    err = np.asarray(rl.tasks._common.circular_distance(
        decode_linear_ring(jnp.asarray(mean)), new.conditions["anti_theta"]))
    assert float(acc) == pytest.approx(np.mean(err < 0.5236))
    np.testing.assert_allclose(np.asarray(angles), np.asarray(angles_trial))

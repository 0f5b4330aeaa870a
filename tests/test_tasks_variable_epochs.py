"""Variable epoch durations of perceptual_decision_making (issue 12, item 5)."""

import jax
import numpy as np

import rnnlab as rl


def test_pdm_durations_come_from_the_declared_set_and_targets_follow_them():
    task = rl.tasks.make("perceptual_decision_making", sigma=0.0,
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
    old = rl.tasks.make("perceptual_decision_making", stimulus=2000)
    assert old.fixed_layout and old.n_steps == 110

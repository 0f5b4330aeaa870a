"""Decision tasks whose epochs demand the published mechanism (issue 12, item 5):
context_decision_making follows Mante et al. 2013's epochs (the stimulus ends, a variable delay
follows, then the response; trainRNNbrain's layout stays reachable by parameters), and
perceptual_decision_making draws its stimulus onset (Yang et al. 2019's dm)."""

import jax
import numpy as np
import pytest

import rnnlab as rl

KEY = jax.random.PRNGKey(0)


def test_default_epochs_follow_mante_with_a_variable_delay():
    task = rl.tasks.make("context_decision_making", input_noise=0.0, stimulus_coding="pair",
                         target="response")  # NeuroGym's epochs (the default until 2026-12-07)
    assert task.delay == ("truncexp", 300.0, 83.0, 1200.0) and not task.stimulus_until_end
    # 750 ms fixation = 38 steps of 20 ms (37.5 rounded to even), 750 stimulus, delay up to
    # 1200 = 60 steps, 500 response = 25 steps
    assert task.n_steps == 38 + 38 + 60 + 25
    b = jax.jit(lambda k: task.sample_batch(k, 1024))(KEY)
    delay = np.asarray(b.conditions["delay_steps"])
    # truncated exponential of mean 300 ms on [83, 1200] ms: rounded to steps of 20 ms
    assert delay.min() >= 4 and delay.max() <= 60 and len(set(delay.tolist())) > 30
    lo, hi, m = 83.0, 1200.0, 300.0
    want = m + (lo * np.exp(-lo / m) - hi * np.exp(-hi / m)) / (np.exp(-lo / m) - np.exp(-hi / m))
    assert abs(delay.mean() * 20 - want) < 20
    r_on = np.asarray(b.conditions["response_start"])
    np.testing.assert_array_equal(r_on, 38 + 38 + delay)
    t = np.arange(task.n_steps)
    for i in range(32):
        stim = (t >= 38) & (t < 76)
        resp = (t >= r_on[i]) & (t < r_on[i] + 25)
        x = np.asarray(b.inputs[i])
        # the context cue is on for the whole trial, the stimulus only in its epoch
        np.testing.assert_array_equal(x[:, :2].sum(axis=1), t < r_on[i] + 25)
        np.testing.assert_array_equal(np.any(x[:, 2:] != 0, axis=1), stim)
        np.testing.assert_array_equal(np.any(np.asarray(b.targets[i]) != 0, axis=1),
                                      resp & (float(b.conditions["relevant_coherence"][i]) != 0))
        # scored: fixation, delay and response; not the stimulus, not the padding
        np.testing.assert_array_equal(b.mask[i, :, 0], (t < 38) | ((t >= 76) & (t < r_on[i] + 25)))
    assert float(task.accuracy(b.targets, b)) == 1.0


def test_trainrnnbrain_layout_by_parameters():
    # the earlier default, with dt=10 trainRNNbrain's 300 steps: stimulus from step 100 to the
    # end, response from 200, mask [0, 100) and [200, 300)
    task = rl.tasks.make("context_decision_making", fixation=1000, stimulus=1000, delay=0,
                         response=1000, stimulus_until_end=True, input_noise=0.0, dt=10.0,
                         stimulus_coding="pair", target="response")
    assert task.n_steps == 300
    tr = task.trial_for(1, 0.25, -0.5, 100, 100, 100)
    x = np.asarray(tr.inputs)
    np.testing.assert_array_equal(x[:, :2], np.tile([0.0, 1.0], (300, 1)))
    np.testing.assert_array_equal(x[:100, 2:], 0.0)
    np.testing.assert_allclose(x[100:, 2:], np.tile([0.625, 0.375, 0.25, 0.75], (200, 1)))
    m = np.asarray(tr.mask[:, 0])
    np.testing.assert_array_equal(m, (np.arange(300) < 100) | (np.arange(300) >= 200))
    y = np.asarray(tr.targets)
    np.testing.assert_array_equal(y[:200], 0.0)
    np.testing.assert_array_equal(y[200:], np.tile([0.0, 1.0], (100, 1)))  # colour -> left


@pytest.mark.parametrize("bad, match", [
    (dict(delay=("truncexp", 0.0, 10.0, 20.0)), "delay"),
    (dict(stimulus=0.0), "stimulus"),
    (dict(stimulus_until_end="yes"), "stimulus_until_end"),
])
def test_bad_epochs_are_refused_by_name(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        rl.tasks.make("context_decision_making", **bad)


def test_pdm_stimulus_onset_is_drawn_and_every_epoch_follows_it():
    # Yang 2019's dm: stimulus onset uniform in [100, 400] ms (5..20 steps of 20 ms); with a
    # fixed onset every trial starts the same way and a transient locked to it can stand in
    # for integration
    task = rl.tasks.make("perceptual_decision_making", sigma=0.0)
    assert task.fixation == ("uniform", 100.0, 400.0) and not task.fixed_layout
    assert task.n_steps == 20 + 80 + 0 + 5
    b = task.sample_batch(jax.random.PRNGKey(1), 512)
    stim = np.asarray(b.conditions["stimulus_steps"])
    dec = np.asarray(b.conditions["decision_start"])
    onset = dec - stim
    assert onset.min() == 5 and onset.max() == 20 and len(set(onset.tolist())) == 16
    t = np.arange(task.n_steps)
    for i in range(32):
        on = (t >= onset[i]) & (t < onset[i] + stim[i])
        np.testing.assert_array_equal(np.any(np.asarray(b.inputs[i, :, 1:]) != 0, axis=1), on)
        np.testing.assert_array_equal(b.inputs[i, :, 0], t < dec[i])
        np.testing.assert_array_equal(b.mask[i, :, 0], t < dec[i] + 5)
    assert float(task.accuracy(b.targets * 10, b)) == 1.0
    # the layout before the drawn onset, by parameters
    assert rl.tasks.make("perceptual_decision_making", fixation=100).n_steps == 5 + 80 + 5

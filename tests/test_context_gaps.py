"""Evidence gaps inside the stimulus of `context_decision_making` (`gap_probability`, `gap`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlab.tasks import ContextDecisionMaking
from rnnlab.tasks._common import sample_steps
from rnnlab.tasks._decisions import _CDDM_COHERENCES
from _task_batches import batch

# the gaps were built on NeuroGym's epochs (the task's default until the Mante lab's protocol)
NEUROGYM = dict(stimulus_coding="pair", target="response", input_noise=0.1,
                coherences=_CDDM_COHERENCES)


def CDM(**params):
    return ContextDecisionMaking(**{**NEUROGYM, **params})

KEYS = jax.random.split(jax.random.PRNGKey(3), 64)


def _batch(task, keys=KEYS):
    return batch(task, keys)


def _old_sample(task, key):
    """The task's sampler as it was before the gap existed, written out step by step."""
    ks = jax.random.split(key, 7)
    cohs = jnp.asarray(task.coherences)
    context = jax.random.randint(ks[0], (), 0, 2)
    motion = cohs[jax.random.randint(ks[1], (), 0, len(task.coherences))]
    colour = cohs[jax.random.randint(ks[2], (), 0, len(task.coherences))]
    fix = sample_steps(task.fixation, ks[3], task.dt)
    stim = sample_steps(task.stimulus, ks[4], task.dt)
    resp = sample_steps(task.response, ks[5], task.dt)
    delay = sample_steps(task.delay, jax.random.fold_in(ks[4], 1), task.dt)
    noise = jax.random.normal(ks[6], (task.n_steps, 6))
    return task.trial_for(context, motion, colour, fix, stim, resp, noise=noise,
                          delay_steps=delay)


@pytest.mark.parametrize("params", [{}, {"stimulus": ("choice", 400.0, 800.0, 1600.0)},
                                    {"stimulus_until_end": True, "delay": 0.0}])
def test_gap_off_reproduces_todays_trials(params):
    task = CDM(**params)
    assert task.gap_probability == 0
    assert task.n_steps == CDM(**params, gap=("uniform", 20.0, 2000.0)).n_steps
    new = _batch(task)
    old = jax.jit(jax.vmap(lambda k: _old_sample(task, k)))(KEYS)
    for name in ("inputs", "targets", "mask"):
        np.testing.assert_array_equal(getattr(new, name), getattr(old, name))
    assert set(new.conditions) == set(old.conditions)
    for name in old.conditions:
        np.testing.assert_array_equal(new.conditions[name], old.conditions[name])


def test_gap_does_not_change_the_other_draws():
    off, on = _batch(CDM()), _batch(CDM(gap_probability=0.5))
    for name in ("context", "motion_coherence", "colour_coherence", "delay_steps"):
        np.testing.assert_array_equal(off.conditions[name], on.conditions[name])
    # the response starts later by exactly the gap
    np.testing.assert_array_equal(on.conditions["response_start"],
                                  off.conditions["response_start"] + on.conditions["gap_steps"])


def test_gap_inputs_are_the_no_stimulus_inputs_and_evidence_is_unchanged():
    task = CDM(gap_probability=1.0, input_noise=0.0)
    trials = _batch(task)
    off = _batch(CDM(input_noise=0.0))
    fix, stim = 38, 38  # 750 ms at dt 20
    inputs, masks, targets = map(np.asarray, (trials.inputs, trials.mask, trials.targets))
    conds = {k: np.asarray(v) for k, v in trials.conditions.items()}
    ends_off = np.asarray(off.conditions["trial_end"])
    inputs_off = np.asarray(off.inputs)
    for i in range(len(KEYS)):
        x = inputs[i]
        c = {k: v[i].item() for k, v in conds.items()}
        g0, g = fix + c["gap_start"], c["gap_steps"]
        assert 10 <= g <= 50 and 1 <= c["gap_start"] <= stim - 1
        cue = np.eye(2)[c["context"]]
        no_stim = np.concatenate([cue, np.zeros(4)])
        # the gap is exactly the fixation's (and the delay's) input
        np.testing.assert_array_equal(x[g0:g0 + g], np.broadcast_to(no_stim, (g, 6)))
        np.testing.assert_array_equal(x[fix - 1], no_stim)
        np.testing.assert_array_equal(x[fix + stim + g], no_stim)  # first delay step
        m, k = c["motion_coherence"], c["colour_coherence"]
        levels = np.concatenate([cue, [(1 + m) / 2, (1 - m) / 2, (1 + k) / 2, (1 - k) / 2]])
        on = np.flatnonzero(np.any(x[:, 2:] != 0, axis=1))
        # the same stimulus steps, resumed with the same coherences after the gap
        np.testing.assert_array_equal(
            on, np.r_[fix:g0, g0 + g:fix + stim + g])
        np.testing.assert_allclose(x[on], np.broadcast_to(levels, (len(on), 6)))
        # the trial is the gap longer; the stimulus steps are those without a gap, shifted
        assert c["trial_end"] == ends_off[i] + g
        x_off = inputs_off[i]
        np.testing.assert_array_equal(x[on], x_off[fix:fix + stim])
        # mask: fixation, delay and response; the gap is unmasked like the stimulus epoch
        mask = masks[i, :, 0]
        expected = np.zeros(task.n_steps)
        expected[:fix] = 1
        expected[fix + stim + g:c["trial_end"]] = 1
        np.testing.assert_array_equal(mask, expected)
        assert np.all(targets[i, :c["response_start"]] == 0)


def test_gap_input_noise_is_that_of_the_epochs_without_stimulus():
    task = CDM(gap_probability=1.0, input_noise=0.3)
    quiet = CDM(gap_probability=1.0, input_noise=0.0)
    noisy, clean = _batch(task), _batch(quiet)
    noise = (np.asarray(noisy.inputs) - np.asarray(clean.inputs)) / 0.3
    end = np.asarray(noisy.conditions["trial_end"])
    t = np.arange(task.n_steps)
    in_trial = t[None, :] < end[:, None]
    # the same unit-variance draw on every channel of every step of the trial, gap included
    assert np.all(noise[~in_trial] == 0)
    assert abs(noise[in_trial].std() - 1) < 0.02
    g0 = 38 + np.asarray(noisy.conditions["gap_start"])
    g = np.asarray(noisy.conditions["gap_steps"])
    gap = (t[None, :] >= g0[:, None]) & (t[None, :] < (g0 + g)[:, None])
    assert 0.9 < noise[gap].std() < 1.1


def test_gap_probability_is_the_fraction_of_trials_with_a_gap():
    keys = jax.random.split(jax.random.PRNGKey(0), 2000)
    g = np.asarray(_batch(CDM(gap_probability=0.3, input_noise=0.0),
                          keys).conditions["gap_steps"])
    # binomial std at p = 0.3: 0.010
    assert abs(np.mean(g > 0) - 0.3) < 0.04
    assert np.all((g == 0) | ((g >= 10) & (g <= 50)))
    every = _batch(CDM(gap_probability=1.0, input_noise=0.0))
    assert np.all(np.asarray(every.conditions["gap_steps"]) >= 10)


def test_trial_length_and_fixed_point_inputs():
    base = CDM()
    task = CDM(gap_probability=0.5, gap=("uniform", 100.0, 600.0))
    assert task.n_steps == base.n_steps + 30
    assert task.fixed_point_inputs().keys() == base.fixed_point_inputs().keys()
    for name, u in base.fixed_point_inputs().items():
        np.testing.assert_array_equal(task.fixed_point_inputs()[name], u)
    trials = _batch(task)
    assert int(trials.conditions["trial_end"].max()) <= task.n_steps


@pytest.mark.parametrize("kwargs, name", [
    ({"gap_probability": 1.5}, "gap_probability"),
    ({"gap_probability": -0.1}, "gap_probability"),
    ({"gap_probability": True}, "gap_probability"),
    ({"gap_probability": 0.5, "gap": ("uniform", 500.0, 100.0)}, "gap"),
    ({"gap_probability": 0.5, "stimulus": 20.0}, "stimulus"),
])
def test_bad_gap_settings_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        CDM(**kwargs)

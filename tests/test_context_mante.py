"""Mante et al.'s protocol as options of `context_decision_making`: signed inputs
(`stimulus_coding="signed"`), a target at the stimulus' end only (`target="stimulus_end"`) and
the bounded running integral (`target="integral"`)."""

import jax
import numpy as np
import pytest

from rnnlab.tasks import ContextDecisionMaking
from rnnlab.tasks._common import to_steps
from rnnlab.tasks._decisions import _CDDM_COHERENCES
from _task_batches import batch

KEYS = jax.random.split(jax.random.PRNGKey(11), 48)
MANTE_COHS = (-0.15, -0.036, -0.009, 0.009, 0.036, 0.15)


def _batch(task, keys=KEYS):
    return batch(task, keys)


def _todays_trial(task, key, cond):
    """The previous default (NeuroGym's epochs) trial written out in numpy from its conditions and its noise draw
    (fixation and stimulus are fixed durations by default)."""
    noise = np.asarray(jax.random.normal(jax.random.split(key, 7)[6], (task.n_steps, 6)))
    t = np.arange(task.n_steps)
    fix, stim = to_steps(task.fixation, task.dt), to_steps(task.stimulus, task.dt)
    d_on, r_on, end = fix + stim, int(cond["response_start"]), int(cond["trial_end"])
    assert r_on == d_on + int(cond["delay_steps"])
    m, c, ctx = float(cond["motion_coherence"]), float(cond["colour_coherence"]), cond["context"]
    inputs = np.zeros((task.n_steps, 6), np.float32)
    inputs[:end, int(ctx)] = 1.0
    inputs[fix:d_on, 2:] = np.float32([(1 + m) / 2, (1 - m) / 2, (1 + c) / 2, (1 - c) / 2])
    inputs[:end] += np.float32(task.input_noise) * noise[:end].astype(np.float32)
    rel = m if ctx == 0 else c
    targets = np.zeros((task.n_steps, 2), np.float32)
    targets[r_on:end] = [rel > 0, rel < 0]
    mask = ((t < fix) | ((t >= d_on) & (t < end)))[:, None] * np.ones((1, 2), np.float32)
    return inputs, targets, mask


def test_neurogym_protocol_is_the_previous_default_trials():
    task = ContextDecisionMaking(stimulus_coding="pair", target="response", input_noise=0.1,
                                 coherences=_CDDM_COHERENCES)
    assert (task.n_in, task.n_steps) == (6, 161)
    b = _batch(task)
    for i in range(len(KEYS)):
        cond = {k: np.asarray(v[i]) for k, v in b.conditions.items()}
        inputs, targets, mask = _todays_trial(task, KEYS[i], cond)
        np.testing.assert_allclose(b.inputs[i], inputs, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(b.targets[i], targets)
        np.testing.assert_array_equal(b.mask[i], mask)


def test_default_is_the_mante_lab_protocol():
    task = ContextDecisionMaking()
    assert (task.stimulus_coding, task.target, task.n_in, task.n_out) == ("signed", "integral",
                                                                           4, 2)
    assert task.coherences == MANTE_COHS and task.input_noise == 0.2236
    # 750 ms of context, then 750 ms of stimulus; the trial ends with the stimulus
    assert task.n_steps == 2 * to_steps(750.0, 20.0)
    b = _batch(task)
    np.testing.assert_array_equal(b.conditions["trial_end"], task.n_steps)
    # the lab's noise: std 1 per 1 ms step, the same variance per ms at 20 ms steps
    assert abs(task.input_noise**2 * task.dt - 1.0) < 1e-3


def test_signed_channels_equal_the_coherences():
    task = ContextDecisionMaking(stimulus_coding="signed", input_noise=0.0, coherences=MANTE_COHS)
    b = _batch(task)
    assert task.n_in == 4 and b.inputs.shape[-1] == 4
    fix, stim = to_steps(task.fixation, task.dt), to_steps(task.stimulus, task.dt)
    for i in range(len(KEYS)):
        x = np.asarray(b.inputs[i])
        np.testing.assert_array_equal(x[fix:fix + stim, 2], b.conditions["motion_coherence"][i])
        np.testing.assert_array_equal(x[fix:fix + stim, 3], b.conditions["colour_coherence"][i])
        assert np.all(x[:fix, 2:] == 0) and np.all(x[fix + stim:, 2:] == 0)
        np.testing.assert_array_equal(x[:int(b.conditions["trial_end"][i]), :2].argmax(1),
                                      b.conditions["context"][i])
    # with noise, the stimulus channels' mean is still the coherence (zero at coherence 0)
    noisy = ContextDecisionMaking(stimulus_coding="signed", input_noise=0.5, coherences=(0.1,))
    x = np.asarray(_batch(noisy).inputs[:, fix:fix + stim, 2:])
    assert abs(x.mean() - 0.1) < 4 * 0.5 / np.sqrt(x.size)
    zero = ContextDecisionMaking(stimulus_coding="signed", coherences=(0.0,))
    assert zero.fixed_point_inputs()["colour context coh=0"].tolist() == [0, 1, 0, 0]


@pytest.mark.parametrize("coding", ["pair", "signed"])
def test_stimulus_end_target_only_on_the_last_window(coding):
    task = ContextDecisionMaking(stimulus_coding=coding, target="stimulus_end",
                                 target_window=60.0, stimulus=("choice", 400.0, 800.0))
    b = _batch(task)
    assert task.n_steps == to_steps(750.0, 20.0) + to_steps(800.0, 20.0)
    fix = to_steps(task.fixation, task.dt)
    for i in range(len(KEYS)):
        end = int(b.conditions["trial_end"][i])
        assert end - fix in (20, 40) and int(b.conditions["response_start"][i]) == end - 3
        on = np.nonzero(np.asarray(b.mask[i, :, 0]))[0]
        np.testing.assert_array_equal(on, np.arange(end - 3, end))
        rel = float(b.conditions["relevant_coherence"][i])
        np.testing.assert_array_equal(b.targets[i, end - 3:end], [[rel > 0, rel < 0]] * 3)
        assert np.all(b.targets[i, :end - 3] == 0) and np.all(b.inputs[i, end:] == 0)
        assert int(b.conditions["delay_steps"][i]) == 0
    # outputs equal to the targets choose the relevant sign on every trial that counts
    scores = task.trial_scores(b.targets, b)
    w = np.asarray(task.trial_weights(b))
    assert w.sum() > 0 and np.all(np.asarray(scores)[w > 0] == 1)


def _bounded(evidence, gain_per_step):
    out, total, done = [], 0.0, None
    for e in evidence:
        total += gain_per_step * e
        if done is None and abs(total) >= 1:
            done = np.sign(total)
        out.append(done if done is not None else total)
    return np.array(out)


@pytest.mark.parametrize("coding", ["pair", "signed"])
def test_integral_target_is_the_bounded_sum_of_the_relevant_evidence(coding):
    task = ContextDecisionMaking(stimulus_coding=coding, target="integral", input_noise=0.3,
                                 coherences=MANTE_COHS, integral_gain=0.01)
    b = _batch(task)
    fix, stim = to_steps(task.fixation, task.dt), to_steps(task.stimulus, task.dt)
    hits = 0
    for i in range(len(KEYS)):
        x = np.asarray(b.inputs[i], np.float64)
        ctx = int(b.conditions["context"][i])
        if coding == "signed":
            ev = x[:, 2 + ctx]
        else:
            ev = x[:, 2 + 2 * ctx] - x[:, 3 + 2 * ctx]
        ev = np.where((np.arange(len(ev)) >= fix) & (np.arange(len(ev)) < fix + stim), ev, 0)
        want = _bounded(ev, 0.01 * 20.0)
        got = np.asarray(b.targets[i, :, 0] - b.targets[i, :, 1])
        np.testing.assert_allclose(got, want, atol=1e-5)
        assert np.all(np.asarray(b.targets[i]) >= 0)
        assert np.all(np.asarray(b.mask[i]) == 1)  # every step of the trial (which fills n_steps)
        hits += np.any(np.abs(want) == 1)
    assert 0 < hits < len(KEYS)  # some trials reach the bound and stay, others do not


@pytest.mark.parametrize("params, name", [
    ({"stimulus_coding": "one"}, "stimulus_coding"),
    ({"target": "end"}, "target"),
    ({"target": "stimulus_end", "target_window": 5.0}, "target_window"),
    ({"target": "stimulus_end", "target_window": 1000.0}, "target_window"),
    ({"target_window": -1.0}, "target_window"),
    ({"integral_gain": 0.0}, "integral_gain"),
    ({"target": "integral", "stimulus_until_end": True}, "stimulus_until_end"),
])
def test_bad_options_name_the_argument(params, name):
    with pytest.raises(ValueError, match=name):
        ContextDecisionMaking(**params)

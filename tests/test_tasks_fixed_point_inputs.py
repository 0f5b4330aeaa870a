"""`AbstractTask.fixed_point_inputs`: every declared input is one the network receives."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnlab.tasks as T
from rnnlab.tasks._base import AbstractTask, Trial, most_frequent_input

# Tasks whose held input is the centre of a continuous input distribution: it occurs exactly
# once the distribution's spread is set to 0 (the input the network sees with no evidence);
# the context task's (both coherences 0 at once, 1 trial in 225 by default) and the sine
# wave's (3 of 40 frequencies) with fewer levels, so that 32 trials hold them.
_NO_SPREAD = {
    "integrator": {"bias_max": 0.0, "noise_std": 0.0},
    "angular_integrator": {"velocity_std": 0.0},
    "context_decision_making": {"coherences": (-0.5, 0.0, 0.5)},
    "sine_wave": {"n_frequencies": 5},
}


def _occurs(trials: Trial, vec: np.ndarray) -> bool:
    rows = np.asarray(trials.inputs).reshape(-1, trials.inputs.shape[-1])
    return bool(np.any(np.all(rows == np.asarray(vec, np.float32), axis=1)))


# The Yang rules share one rule (`_Yang19Common.fixed_point_inputs`): three stand for all.
_YANG = ("yang19.dm1", "yang19.delaygo", "yang19.contextdelaydm1")


@pytest.mark.parametrize(
    "name", [n for n in T.available() if not n.startswith("yang19")] + list(_YANG))
def test_declared_inputs_occur_in_noise_free_trials(name):
    task = T.make(name, **_NO_SPREAD.get(name, {}))
    inputs = task.fixed_point_inputs()
    assert inputs and all(isinstance(k, str) and k for k in inputs)
    trials = task.noise_free().sample_batch(jax.random.PRNGKey(1), 32)
    for label, vec in inputs.items():
        vec = np.asarray(vec)
        assert vec.shape == (task.n_in,) and vec.dtype == np.float64, label
        assert _occurs(trials, vec), f"{name}: {label} = {vec} never occurs"


def test_yang19_multitask_declares_each_rules_fixation_input():
    task = T.make("yang19", rules=("dm1", "delaygo"))
    inputs = task.fixed_point_inputs()
    assert list(inputs) == ["fixation, dm1", "fixation, delaygo"]
    # fixation (channel 0) and the rule input (after 1 + 2 * 32 ring channels) only; that
    # these occur is tested on the single rules above
    for vec, rule in zip(inputs.values(), ("dm1", "delaygo")):
        assert np.flatnonzero(vec).tolist() == [0, 65 + T.YANG19_RULES.index(rule)]


def test_known_inputs_by_hand():
    assert np.array_equal(T.make("flipflop", n_bits=2).fixed_point_inputs()["no pulse"],
                          [0.0, 0.0])
    pdm = T.make("perceptual_decision_making").fixed_point_inputs()
    assert np.array_equal(pdm["fixation+stimulus coh=0"], [1.0, 0.5, 0.5])
    ctx = T.make("context_decision_making", stimulus_coding="pair").fixed_point_inputs()
    assert np.array_equal(ctx["motion context coh=0"], [1, 0, 0.5, 0.5, 0.5, 0.5])
    assert np.array_equal(ctx["colour context coh=0"], [0, 1, 0.5, 0.5, 0.5, 0.5])
    ctx = T.make("context_decision_making").fixed_point_inputs()  # signed channels: mean 0
    assert np.array_equal(ctx["motion context coh=0"], [1, 0, 0, 0])
    sine = T.make("sine_wave").fixed_point_inputs()  # w = 0.10, 0.29 (index 19), 0.49
    assert list(sine) == ["frequency w=0.1", "frequency w=0.29", "frequency w=0.49"]
    np.testing.assert_allclose([v[0] for v in sine.values()],
                               [0.25 + (100 * w - 9) / 51 for w in (0.10, 0.29, 0.49)],
                               rtol=1e-6)


def test_memory_anti_angle_is_not_analysed_at_zero_input():
    task = T.make("memory_anti_angle")
    inputs = task.fixed_point_inputs()
    assert list(inputs) == ["delay", "recall"]
    assert np.array_equal(inputs["delay"], [0, 0, 0, 1, 0])
    assert np.array_equal(inputs["recall"], [0, 0, 0, 1, 1])
    trials = task.noise_free().sample_batch(jax.random.PRNGKey(0), 16)
    assert not _occurs(trials, np.zeros(task.n_in))  # the constant channel is always on


def test_mixture_inputs_carry_the_rule_input():
    mix = T.Mixture([T.make("flipflop", n_bits=2), T.make("memory_number")])
    inputs = mix.fixed_point_inputs()
    assert len(inputs) == 2
    np.testing.assert_array_equal(list(inputs.values())[0], [0, 0, 1, 0])
    np.testing.assert_array_equal(list(inputs.values())[1], [0, 0, 0, 1])
    trials = mix.noise_free().sample_batch(jax.random.PRNGKey(0), 16)
    for vec in inputs.values():
        assert _occurs(trials, vec)


class _ThreeLevels(AbstractTask):
    """Input 2 for 5 steps, then 7 for 3 steps, then 1 for 2 unscored steps."""

    n_in: int = 1
    n_out: int = 1
    n_steps: int = 10
    dt: float = 10.0

    def sample(self, key):
        u = jnp.array([2.0] * 5 + [7.0] * 3 + [1.0] * 2)[:, None]
        mask = jnp.array([1.0] * 8 + [0.0] * 2)[:, None]
        return Trial(u, u, mask)


def test_default_is_the_most_frequent_scored_input():
    task = _ThreeLevels()
    np.testing.assert_array_equal(most_frequent_input(task), [2.0])
    assert list(task.fixed_point_inputs()) == ["most frequent input"]
    assert task.noise_free() is task  # no noise fields


def test_noise_free_zeroes_only_noise():
    task = T.make("context_decision_making", input_noise=0.3)
    quiet = task.noise_free()
    assert quiet.input_noise == 0.0 and quiet.coherences == task.coherences
    assert T.make("perceptual_decision_making", sigma=2.0).noise_free().sigma == 0.0

"""The NeuroGym adapter: trial-aligned padded banks that reproduce the environment's own
trials, masks, targets, scoring, and the message when NeuroGym is missing."""

import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnlab as rl
from rnnlab import tasks as T

KEY = jax.random.PRNGKey(0)
ENVS = ["PerceptualDecisionMaking-v0", "ContextDecisionMaking-v0", "DelayMatchSample-v0"]


def test_missing_neurogym_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "neurogym", None)  # makes `import neurogym` fail
    with pytest.raises(ImportError, match=r"rnnlab\[neurogym\]"):
        T.from_neurogym("PerceptualDecisionMaking-v0")


def test_bad_arguments_name_them():
    with pytest.raises(ValueError, match="n_trials"):
        T.from_neurogym("PerceptualDecisionMaking-v0", n_trials=0)
    with pytest.raises(ValueError, match="targets"):
        T.from_neurogym("PerceptualDecisionMaking-v0", targets="soft")
    with pytest.raises(ValueError, match="mask"):
        T.from_neurogym("PerceptualDecisionMaking-v0", mask="all")
    with pytest.raises(TypeError, match="env_or_name"):
        T.from_neurogym(object())


def _own_trials(name, n, seed):
    """The environment's trials, generated independently of the adapter."""
    ngym = pytest.importorskip("neurogym")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = ngym.make(name).unwrapped
        u.seed(seed)
        out = []
        for _ in range(n):
            info = u.new_trial()
            dec = np.zeros(len(u.gt))
            dec[u.start_ind["decision"]:u.end_ind["decision"]] = 1
            out.append((np.array(u.ob, np.float32), np.array(u.gt), dec, dict(info)))
    return out


@pytest.mark.parametrize("name", ENVS)
def test_bank_is_trial_aligned_and_padded(name):
    pytest.importorskip("neurogym")
    task = T.from_neurogym(name, n_trials=40, seed=3)
    own = _own_trials(name, 40, 3)
    lengths = [len(g) for _, g, _, _ in own]
    assert task.n_steps == max(lengths) and task.n_trials == 40
    assert task.n_in == own[0][0].shape[1] and task.dt == 100.0
    for i, (ob, gt, dec, info) in enumerate(own):
        tr = task.trial_at(i)
        L = len(gt)
        np.testing.assert_array_equal(np.asarray(tr.inputs[:L]), ob)
        assert np.all(np.asarray(tr.inputs[L:]) == 0)
        np.testing.assert_array_equal(np.asarray(tr.targets[:L]).argmax(1), gt)
        np.testing.assert_array_equal(np.asarray(tr.targets).sum(1), 1.0)
        np.testing.assert_array_equal(np.asarray(tr.mask[:, 0]), np.arange(task.n_steps) < L)
        np.testing.assert_array_equal(np.asarray(tr.conditions["decision_mask"][:L]), dec)
        assert int(tr.conditions["length"]) == L
        assert int(tr.conditions["choice"]) == gt[dec > 0][0]
        assert int(tr.conditions["ground_truth"]) == int(info["ground_truth"])
    if name == "ContextDecisionMaking-v0":  # its epochs vary: padding is exercised
        assert len(set(lengths)) > 1


def test_sampling_scoring_and_options():
    pytest.importorskip("neurogym")
    task = T.from_neurogym("DelayMatchSample-v0", n_trials=30, seed=1)
    run = jax.jit(lambda k: task.sample_batch(k, 64))
    a, b = run(KEY), run(KEY)
    np.testing.assert_array_equal(np.asarray(a.inputs), np.asarray(b.inputs))
    assert a.inputs.dtype == jnp.float32 and a.inputs.shape == (64, task.n_steps, task.n_in)
    assert task.loss_type == "cross_entropy"
    assert float(task.accuracy(10 * a.targets, a)) == 1.0
    # the wrong action at every decision step scores 0
    wrong = jnp.roll(a.targets, 1, axis=-1)
    assert float(task.accuracy(10 * wrong, a)) == 0.0
    # same seed, same bank; another seed, another bank
    again = T.from_neurogym("DelayMatchSample-v0", n_trials=30, seed=1)
    np.testing.assert_array_equal(np.asarray(again.inputs), np.asarray(task.inputs))
    other = T.from_neurogym("DelayMatchSample-v0", n_trials=30, seed=2)
    assert not np.array_equal(np.asarray(other.inputs), np.asarray(task.inputs))
    # regression targets and decision-only mask
    mse = T.from_neurogym("DelayMatchSample-v0", n_trials=30, seed=1, targets="one_hot",
                          mask="decision")
    assert mse.loss_type == "mse"
    tr = mse.trial_at(0)
    np.testing.assert_array_equal(np.asarray(tr.mask[:, 0]),
                                  np.asarray(tr.conditions["decision_mask"]))
    # environment keyword arguments reach neurogym.make
    slow = T.from_neurogym("PerceptualDecisionMaking-v0", n_trials=5, dt=50)
    assert slow.dt == 50.0
    # extra input noise at sampling time, only on the trial's steps
    noisy = T.from_neurogym("DelayMatchSample-v0", n_trials=30, seed=1, input_noise=0.5)
    c = noisy.sample(KEY)
    clean = noisy.trial_at(c.conditions["index"])
    L = int(c.conditions["length"])
    assert np.std(np.asarray(c.inputs[:L] - clean.inputs[:L])) > 0.3
    assert np.all(np.asarray(c.inputs[L:]) == 0)


@pytest.mark.slow
def test_trains_on_perceptual_decision_making_to_80_percent():
    pytest.importorskip("neurogym")
    task = T.from_neurogym("PerceptualDecisionMaking-v0", n_trials=2000, seed=0)
    net = rl.CTRNN(task.n_in, 64, task.n_out, key=jax.random.PRNGKey(0), dt=task.dt)
    res = rl.train(net, task, key=jax.random.PRNGKey(1), steps=2000, learning_rate=5e-3,
                   target_accuracy=0.85, eval_every=50, progress=False)
    fresh = T.from_neurogym("PerceptualDecisionMaking-v0", n_trials=2000, seed=99)
    ev = rl.training.evaluate(res.model, fresh, key=jax.random.PRNGKey(7), batch_size=2000)
    assert ev["accuracy"] >= 0.8

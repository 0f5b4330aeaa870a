"""Which evaluation `rl.train` keeps as the best model (issue 12, item 6): when it trains all its
steps, accuracies within the evaluation's binomial standard error of the top count as equal and
the lower loss decides; a run that stops at a target keeps the highest accuracy."""

import math

import jax
import numpy as np
import pytest

import rnnlab as rl
from rnnlab.training._train import _best_from_history, is_better


def test_rule_without_trials_is_accuracy_then_loss():
    assert is_better(0.91, 0.5, 0.9, 0.1)
    assert not is_better(0.89, 0.01, 0.9, 0.1)
    assert is_better(0.9, 0.05, 0.9, 0.1) and not is_better(0.9, 0.2, 0.9, 0.1)
    assert not is_better(math.nan, math.nan, -1.0, math.inf)
    assert not is_better(0.95, math.nan, 0.95, 1.0)


def test_accuracies_within_the_standard_error_are_equal():
    n = 256
    se = math.sqrt(0.9 * 0.1 / n)  # 0.01875
    # within se of the top: the lower loss wins, whichever accuracy is higher
    assert is_better(0.9 - 0.9 * se, 0.05, 0.9, 0.1, top_accuracy=0.9, n_trials=n)
    assert not is_better(0.9 + 0.9 * se, 0.2, 0.9, 0.1, top_accuracy=0.9, n_trials=n)
    # beyond it: the accuracy decides
    assert is_better(0.9 + 1.1 * se, 0.2, 0.9, 0.1, top_accuracy=0.9, n_trials=n)
    assert not is_better(0.9 - 1.1 * se, 0.0, 0.9, 0.1, top_accuracy=0.9, n_trials=n)
    # a perfect top still has a band of one trial (p (1 - p) floored at 1 / n)
    assert is_better(1 - 0.9 / n, 0.0, 1.0, 0.1, top_accuracy=1.0, n_trials=n)
    assert not is_better(1 - 2.0 / n, 0.0, 1.0, 0.1, top_accuracy=1.0, n_trials=n)
    # NaN never wins
    assert not is_better(math.nan, math.nan, -1.0, math.inf, top_accuracy=-1.0, n_trials=n)
    assert not is_better(math.nan, 0.0, 0.5, 1.0, top_accuracy=0.5, n_trials=n)


def test_noise_capped_history_keeps_the_lowest_loss_and_a_collapse_is_never_kept():
    # accuracy hovering at its cap (0.90 +- 0.01) while the loss keeps falling, then a
    # collapse: the best is the last record before the collapse, not the luckiest early one
    acc = [0.70, 0.905, 0.89, 0.91, 0.895, 0.90, 0.30]
    loss = [0.9, 0.30, 0.25, 0.20, 0.15, 0.10, 0.05]
    hist = [{"step": 50 * (i + 1), "accuracy": a, "loss": l} for i, (a, l) in
            enumerate(zip(acc, loss))]
    assert _best_from_history(hist, 256)[2] == 300
    assert _best_from_history(hist)[2] == 200  # accuracy alone: the luckiest evaluation


@pytest.mark.parametrize("target", [None, 1.0, 0.99])
def test_train_keeps_what_the_rule_says(target):
    # the run's best step is the rule replayed on its own history: within noise of the top
    # when training runs all its steps, the highest accuracy when it stops at a target
    task = rl.tasks.make("flipflop")
    model = rl.CTRNN(task.n_in, 16, task.n_out, key=jax.random.PRNGKey(0), dt=task.dt)
    res = rl.train(model, task, key=jax.random.PRNGKey(1), steps=60, learning_rate=1e-2,
                   eval_every=10, eval_batch_size=64, progress=False,
                   target_accuracy=target)
    all_steps = target is None or target >= 1
    want = _best_from_history(res.history, 64 if all_steps else None)[2]
    assert res.best_step == want
    if not all_steps:
        assert res.best_record["accuracy"] == max(h["accuracy"] for h in res.history)
    rec = res.best_record
    assert rec["step"] == want and np.isfinite(rec["loss"])
    top = max(h["accuracy"] for h in res.history)
    assert rec["accuracy"] >= top - math.sqrt(max(top * (1 - top), 1 / 64) / 64) - 1e-12


@pytest.mark.parametrize("bad", [0, -3])
def test_eval_batch_size_is_checked(bad):
    task = rl.tasks.make("flipflop")
    model = rl.CTRNN(task.n_in, 4, task.n_out, key=jax.random.PRNGKey(0), dt=task.dt)
    with pytest.raises(ValueError, match="eval_batch_size"):
        rl.train(model, task, key=jax.random.PRNGKey(1), steps=1, eval_batch_size=bad,
                 progress=False)

"""`rl.train_ensemble`: each member equals the same network trained alone by `rl.train`, with
per-network early stopping, learning rates, noise levels and divergence."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnlab as rl

SETTINGS = dict(steps=40, eval_every=10, batch_size=8, eval_batch_size=32, progress=False)


@pytest.fixture(scope="module")
def task():
    return rl.tasks.make("flipflop", n_steps=30)


def net(task, seed, **kw):
    return rl.CTRNN(task.n_in, 12, task.n_out, key=jax.random.PRNGKey(seed), dt=task.dt,
                    noise_std=kw.pop("noise_std", 0.05), **kw)


def assert_same_model(a, b, tol=2e-5):
    la = jax.tree.leaves(eqx.filter(a, eqx.is_array))
    lb = jax.tree.leaves(eqx.filter(b, eqx.is_array))
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol)


def test_members_equal_networks_trained_alone_with_their_own_early_stopping(task):
    models = [net(task, 0), net(task, 1)]
    lrs = [3e-2, 1e-9]  # the second network barely moves: it never reaches the target
    keys = jax.random.split(jax.random.PRNGKey(7), 2)
    # the target: the best accuracy the first network reaches alone within the budget
    probe = rl.train(models[0], task, key=keys[0], learning_rate=lrs[0], **SETTINGS)
    accs = [h["accuracy"] for h in probe.history]
    target = max(accs)
    stop0 = probe.history[int(np.argmax(accs))]["step"]

    ens = rl.train_ensemble(models, task, key=jnp.stack(keys), learning_rate=lrs,
                            target_accuracy=target, **SETTINGS)
    assert len(ens) == 2 and ens.compile_time > 0 and ens.run_time > 0
    alone = [
        rl.train(m, task, key=k, learning_rate=lr, target_accuracy=target, **SETTINGS)
        for m, k, lr in zip(models, keys, lrs)
    ]
    assert alone[0].steps == stop0 and alone[0].stopped == "target_accuracy"
    assert alone[1].steps == SETTINGS["steps"] and alone[1].stopped == "steps"
    for member, single in zip(ens, alone):
        assert member.steps == single.steps
        assert member.stopped == single.stopped
        assert [h["step"] for h in member.history] == [h["step"] for h in single.history]
        np.testing.assert_allclose(
            [h["accuracy"] for h in member.history], [h["accuracy"] for h in single.history],
            atol=1e-4,
        )
        assert_same_model(member.model, single.model)
    # the first network was frozen at its stopping step: it equals its best (= stopping) model
    assert_same_model(ens[0].model, probe.best_model)
    assert list(ens.steps) == [stop0, SETTINGS["steps"]]


def test_noise_levels_differ_per_member_and_divergence_stays_per_member(task):
    quiet, noisy = net(task, 2, noise_std=0.0), net(task, 3, noise_std=0.3)
    broken = net(task, 4, noise_std=0.1)
    broken = eqx.tree_at(lambda m: m.w_rec, broken, jnp.full_like(broken.w_rec, jnp.nan))
    keys = jax.random.split(jax.random.PRNGKey(11), 3)
    # a fourth member: the noisy network's twin without noise, on the noisy one's key
    silent_twin = net(task, 3, noise_std=0.0)
    ens = rl.train_ensemble([quiet, noisy, broken, silent_twin], task,
                            key=jnp.stack([keys[0], keys[1], keys[2], keys[1]]),
                            learning_rate=1e-2, **SETTINGS)
    for i, m in enumerate((quiet, noisy)):
        single = rl.train(m, task, key=keys[i], learning_rate=1e-2, **SETTINGS)
        assert ens[i].steps == single.steps == SETTINGS["steps"]
        assert ens[i].stopped == "steps"
        # training and evaluation (batches and noise) are identical; members keep their own
        # noise level
        assert_same_model(ens[i].model, single.model)
        np.testing.assert_allclose(
            [h["accuracy"] for h in ens[i].history], [h["accuracy"] for h in single.history],
            atol=1e-4,
        )
        assert ens[i].model.noise_std == m.noise_std
    assert ens[2].stopped == "diverged" and ens[2].steps == 0 and ens[2].history == []
    assert_same_model(ens[2].model, broken)
    assert ens[3].stopped == "steps" and ens[3].model.noise_std == 0.0
    # same batches, same start, only the noise differs: the noisy member really saw noise
    diff = float(jnp.max(jnp.abs(ens[1].model.w_rec - ens[3].model.w_rec)))
    assert diff > 1e-4


def test_bad_arguments_are_named(task):
    a = net(task, 0)
    with pytest.raises(TypeError, match="models"):
        rl.train_ensemble(a, task, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="models"):
        rl.train_ensemble([], task, key=jax.random.PRNGKey(0))
    other = rl.CTRNN(task.n_in, 13, task.n_out, key=jax.random.PRNGKey(1), dt=task.dt)
    with pytest.raises(ValueError, match=r"models\[1\]"):
        rl.train_ensemble([a, other], task, key=jax.random.PRNGKey(0))
    relu = net(task, 1, activation="relu")
    with pytest.raises(ValueError, match=r"models\[1\]"):
        rl.train_ensemble([a, relu], task, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="learning_rate"):
        rl.train_ensemble([a, a], task, key=jax.random.PRNGKey(0), learning_rate=[1e-3])
    with pytest.raises(ValueError, match="key"):
        rl.train_ensemble([a, a], task, key=jax.random.split(jax.random.PRNGKey(0), 3))
    with pytest.raises(ValueError, match="target_accuracy"):
        rl.train_ensemble([a, a], task, key=jax.random.PRNGKey(0), target_accuracy=2.0)

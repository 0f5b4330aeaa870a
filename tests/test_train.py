"""Training: learning, determinism, resume, divergence, checkpoints, argument checks."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnlab as rl

TASK = rl.tasks.FlipFlop(n_bits=2, n_steps=40)


def _model(seed=0, **kw):
    return rl.CTRNN(TASK.n_in, 24, TASK.n_out, key=jax.random.PRNGKey(seed), **kw)


def _leaves_equal(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_flipflop_reaches_99_percent():
    task = rl.tasks.FlipFlop()
    model = rl.CTRNN(3, 64, 3, key=jax.random.PRNGKey(0))
    res = rl.train(model, task, key=jax.random.PRNGKey(1), steps=1500, learning_rate=1e-2,
                   eval_every=50, target_accuracy=0.99, progress=False)
    assert res.stopped == "target_accuracy"
    scores = rl.training.evaluate(res.model, task, key=jax.random.PRNGKey(99), batch_size=512)
    assert scores["accuracy"] >= 0.98
    assert res.history[-1]["loss"] < res.history[0]["loss"] or len(res.history) == 1


def test_loss_decreases_and_history_fields():
    res = rl.train(_model(), TASK, key=jax.random.PRNGKey(0), steps=60, learning_rate=1e-2,
                   eval_every=20, progress=False)
    assert [h["step"] for h in res.history] == [20, 40, 60]
    for h in res.history:
        assert {"step", "loss", "accuracy", "train_loss", "wall_time", "r2"} <= set(h)
        assert 0 <= h["accuracy"] <= 1
    assert res.history[-1]["loss"] < res.history[0]["loss"]


def test_same_seed_same_result_different_seed_differs():
    kw = dict(steps=15, learning_rate=1e-2, eval_every=5, progress=False)
    model = _model(noise_std=0.05)
    a = rl.train(model, TASK, key=jax.random.PRNGKey(3), **kw)
    b = rl.train(model, TASK, key=jax.random.PRNGKey(3), **kw)
    c = rl.train(model, TASK, key=jax.random.PRNGKey(4), **kw)
    _leaves_equal(a.model, b.model)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    assert not np.allclose(a.model.w_rec, c.model.w_rec)


def test_resume_equals_uninterrupted(tmp_path):
    kw = dict(learning_rate=1e-2, eval_every=4, progress=False)
    model = _model(noise_std=0.05)
    full = rl.train(model, TASK, key=jax.random.PRNGKey(7), steps=12, **kw)
    # "interrupted" run: only the first 8 steps happen, with checkpoints every 4
    part = rl.train(model, TASK, key=jax.random.PRNGKey(7), steps=8, out_dir=tmp_path, **kw)
    assert part.steps == 8
    resumed = rl.train(model, TASK, key=jax.random.PRNGKey(7), steps=12, out_dir=tmp_path,
                       resume=True, **kw)
    assert resumed.steps == 12
    _leaves_equal(full.model, resumed.model)
    assert [h["loss"] for h in full.history] == [h["loss"] for h in resumed.history]
    # the run directory holds the best evaluated model and the final one beside it
    _leaves_equal(rl.load(tmp_path / "model.safetensors"), full.best_model)
    _leaves_equal(rl.load(tmp_path / "model_final.safetensors"), full.model)
    assert json.loads((tmp_path / "best.json").read_text())["step"] == full.best_step
    lines = (tmp_path / "history.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [4, 8, 12]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["task"]["name"] == "flipflop" and config["version"] == rl.__version__


def test_resume_after_a_crash_mid_run(tmp_path, monkeypatch):
    """A run killed between checkpoints resumes from the last checkpoint to the same result."""
    kw = dict(learning_rate=1e-2, eval_every=3, progress=False)
    model = _model()
    full = rl.train(model, TASK, key=jax.random.PRNGKey(2), steps=9, **kw)
    import rnnlab.training._train as tr

    real = tr._evaluate_jit
    calls = {"n": 0}

    def crash(*a):
        calls["n"] += 1
        if calls["n"] == 2:  # dies during the second evaluation (step 6), after step-3 ckpt
            raise KeyboardInterrupt
        return real(*a)

    monkeypatch.setattr(tr, "_evaluate_jit", crash)
    with pytest.raises(KeyboardInterrupt):
        rl.train(model, TASK, key=jax.random.PRNGKey(2), steps=9, out_dir=tmp_path, **kw)
    monkeypatch.setattr(tr, "_evaluate_jit", real)
    resumed = rl.train(model, TASK, key=jax.random.PRNGKey(2), steps=9, out_dir=tmp_path,
                       resume=True, **kw)
    _leaves_equal(full.model, resumed.model)


def test_resume_refuses_another_key_or_model(tmp_path):
    kw = dict(steps=4, eval_every=2, progress=False, out_dir=tmp_path)
    rl.train(_model(), TASK, key=jax.random.PRNGKey(0), **kw)
    with pytest.raises(ValueError, match="checkpoint"):
        rl.train(_model(), TASK, key=jax.random.PRNGKey(1), resume=True, **kw)
    with pytest.raises(ValueError, match="checkpoint"):
        rl.train(_model(activation="relu"), TASK, key=jax.random.PRNGKey(0), resume=True, **kw)
    with pytest.raises(FileExistsError):
        rl.train(_model(), TASK, key=jax.random.PRNGKey(0), **kw)


def test_divergence_stops_and_keeps_last_good_checkpoint(tmp_path):
    # a learning rate that explodes after 4 steps
    schedule = lambda step: jnp.where(step < 4, 1e-3, 1e30)  # noqa: E731
    with pytest.raises(rl.TrainingDiverged, match="diverged") as info:
        rl.train(_model(activation="relu"), TASK, key=jax.random.PRNGKey(0), steps=50,
                 learning_rate=schedule, grad_clip=None, eval_every=2, out_dir=tmp_path,
                 progress=False)
    good = info.value.result.model
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(good))
    from rnnlab.io import read_safetensors

    tensors, meta = read_safetensors(tmp_path / "checkpoints" / "checkpoint.safetensors")
    assert meta["step"] >= 2
    assert all(np.all(np.isfinite(v)) for v in tensors.values())
    assert str(meta["step"]) in str(info.value)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(steps=0), "steps"),
        (dict(batch_size=-1), "batch_size"),
        (dict(learning_rate=-1.0), "learning_rate"),
        (dict(target_accuracy=2.0), "target_accuracy"),
        (dict(l2_rates=-1.0), "l2_rates"),
        (dict(resume=True), "out_dir"),
    ],
)
def test_bad_training_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        rl.train(_model(), TASK, key=jax.random.PRNGKey(0), **kw)


def test_mismatched_model_and_task():
    with pytest.raises(ValueError, match="n_in"):
        rl.train(rl.CTRNN(5, 8, 2, key=jax.random.PRNGKey(0)), TASK, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="dt"):
        rl.train(rl.CTRNN(2, 8, 2, key=jax.random.PRNGKey(0), dt=20.0), TASK,
                 key=jax.random.PRNGKey(0))


def test_regularisers_shrink_rates_and_weights():
    kw = dict(steps=40, learning_rate=1e-2, eval_every=40, progress=False)
    base = rl.train(_model(), TASK, key=jax.random.PRNGKey(0), **kw).model
    reg = rl.train(_model(), TASK, key=jax.random.PRNGKey(0), l2_rates=1.0, l2_weights=1.0,
                   **kw).model
    trial = TASK.sample_batch(jax.random.PRNGKey(5), 32)
    r_base = jnp.mean(rl.simulate(base, trial.inputs).rates ** 2)
    r_reg = jnp.mean(rl.simulate(reg, trial.inputs).rates ** 2)
    assert r_reg < r_base
    assert jnp.mean(reg.effective_weights()["w_rec"] ** 2) < jnp.mean(
        base.effective_weights()["w_rec"] ** 2)

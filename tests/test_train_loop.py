"""The chunked training loop: one `TrainConfig` for `train` and `train_ensemble`, no
device-to-host transfer inside a chunk, and divergence located at its exact step although
the host looks only at chunk boundaries."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnlab as rl
import rnnlab.training._train as tr
from rnnlab.io import read_safetensors
from rnnlab.training import TrainConfig

TASK = rl.tasks.FlipFlop(n_bits=2, n_steps=30)


def _model(seed=0, **kw):
    return rl.CTRNN(TASK.n_in, 10, TASK.n_out, key=jax.random.PRNGKey(seed), dt=TASK.dt, **kw)


def _assert_identical(a, b):
    la = jax.tree.leaves(eqx.filter(a, eqx.is_array))
    lb = jax.tree.leaves(eqx.filter(b, eqx.is_array))
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        assert np.array_equal(np.asarray(x), np.asarray(y))


def _without_wall_time(history):
    return [{k: v for k, v in h.items() if k != "wall_time"} for h in history]


def test_a_config_object_and_keywords_are_the_same_call():
    cfg = TrainConfig(steps=6, batch_size=8, eval_every=3, eval_batch_size=16,
                      learning_rate=1e-2, progress=False)
    a = rl.train(_model(noise_std=0.05), TASK, key=jax.random.PRNGKey(0), config=cfg)
    b = rl.train(_model(noise_std=0.05), TASK, key=jax.random.PRNGKey(0), steps=6,
                 batch_size=8, eval_every=3, eval_batch_size=16, learning_rate=1e-2,
                 progress=False)
    _assert_identical(a.model, b.model)
    assert _without_wall_time(a.history) == _without_wall_time(b.history)
    # keywords replace the config's fields
    c = rl.train(_model(noise_std=0.05), TASK, key=jax.random.PRNGKey(0), config=cfg, steps=3)
    assert c.steps == 3 and [h["step"] for h in c.history] == [3]
    assert _without_wall_time(c.history) == _without_wall_time(a.history[:1])


def test_the_config_is_checked_once_with_named_options():
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="eval_every"):
        TrainConfig(eval_every=1.5)
    with pytest.raises(ValueError, match="grad_clip"):
        TrainConfig(grad_clip=-1.0)
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig(learning_rate=[1e-3, -1.0])
    with pytest.raises(ValueError, match="checkpoint_every"):
        TrainConfig(checkpoint_every=0)
    with pytest.raises(TypeError, match="optimizer"):
        TrainConfig(optimizer="adam")
    cfg = TrainConfig(steps=np.int64(5), l2_rates=np.float32(0.5), learning_rate=[1e-3, 2e-3])
    assert type(cfg.steps) is int and type(cfg.l2_rates) is float
    assert cfg.learning_rate == (1e-3, 2e-3) and cfg.checkpoint_interval == cfg.eval_every
    with pytest.raises(TypeError, match="stepz"):
        rl.train(_model(), TASK, key=jax.random.PRNGKey(0), stepz=3)
    with pytest.raises(ValueError, match="train_ensemble"):
        rl.train(_model(), TASK, key=jax.random.PRNGKey(0), learning_rate=[1e-3, 2e-3])
    with pytest.raises(TypeError, match="stepz"):
        rl.train_ensemble([_model(0), _model(1)], TASK, key=jax.random.PRNGKey(0), stepz=3)


def _forbid_host_reads(monkeypatch):
    """A switch: while on, reading a JAX array's value on the host (``float``, ``np.asarray``,
    ``jax.device_get``: all go through ``ArrayImpl._value``) raises. (JAX's transfer guard
    does not see these reads on the CPU backend, where device memory is host memory.)"""
    from jax._src.array import ArrayImpl

    real = ArrayImpl._value
    state = {"on": False}

    def value(self):
        if state["on"]:
            raise AssertionError("a device-to-host read inside a chunk")
        return real.fget(self)

    monkeypatch.setattr(ArrayImpl, "_value", property(value))
    return state


def test_no_device_to_host_read_inside_a_chunk(monkeypatch):
    """Every step of a chunk is queued on the device with no read back to the host (a read
    there raises); the host reads the losses once per chunk."""
    forbid = _forbid_host_reads(monkeypatch)
    chunks, syncs = [], []
    advance, sync = tr.SingleEngine.advance, tr.SingleEngine.sync

    def guarded(self, start, stop):
        chunks.append((start, stop))
        # (the first chunk compiles the step, which reads the closed-over constants)
        forbid["on"] = len(chunks) > 1
        try:
            advance(self, start, stop)
        finally:
            forbid["on"] = False

    def counted(self, start, stop):
        syncs.append(stop)
        return sync(self, start, stop)

    monkeypatch.setattr(tr.SingleEngine, "advance", guarded)
    monkeypatch.setattr(tr.SingleEngine, "sync", counted)
    res = rl.train(_model(noise_std=0.05), TASK, key=jax.random.PRNGKey(0), steps=30,
                   batch_size=8, eval_every=10, eval_batch_size=16, progress=False)
    assert chunks == [(0, 10), (10, 20), (20, 30)] and syncs == [10, 20, 30]
    assert res.steps == 30 and [h["step"] for h in res.history] == [10, 20, 30]

    # the switch does catch a read (what the loop before did after every step)
    def read_each_step(self, start, stop):
        forbid["on"] = True
        try:
            float(jnp.ones(()) + 1)
        finally:
            forbid["on"] = False

    monkeypatch.setattr(tr.SingleEngine, "advance", read_each_step)
    with pytest.raises(AssertionError, match="device-to-host"):
        rl.train(_model(), TASK, key=jax.random.PRNGKey(0), steps=2, progress=False)


@pytest.mark.parametrize("checkpoint_every", [3, 4])
def test_divergence_inside_a_chunk_is_found_at_its_step(tmp_path, checkpoint_every):
    """The 6th update uses a huge rate: the parameters after 6 steps are finite but their
    loss is not. Chunks end at evaluations (every 10) and checkpoints (every 3 or 4); the
    run still returns the parameters after 5 steps, bit for bit a run of exactly 5 steps, and
    the checkpoint on disk holds good parameters: that of step 4 stays, that of step 6 (the
    failed parameters) is put back to step 5."""
    schedule = lambda step: jnp.where(step < 5, 1e-3, 1e8)  # noqa: E731
    kw = dict(batch_size=8, learning_rate=schedule, grad_clip=None, eval_every=10,
              eval_batch_size=16, progress=False)
    model = _model(activation="relu", gain=2.0)
    with pytest.raises(rl.TrainingDiverged) as info:
        rl.train(model, TASK, key=jax.random.PRNGKey(0), steps=40, out_dir=tmp_path,
                 checkpoint_every=checkpoint_every, **kw)
    result = info.value.result
    assert result.stopped == "diverged" and result.steps == 5 and result.history == []
    assert "at step 7 (the parameters after 6 steps)" in str(info.value)
    again = rl.train(model, TASK, key=jax.random.PRNGKey(0), steps=5, **kw)
    _assert_identical(result.model, again.model)
    tensors, meta = read_safetensors(tmp_path / "checkpoints" / "checkpoint.safetensors")
    assert meta["step"] == {3: 5, 4: 4}[checkpoint_every]
    assert f"(step {meta['step']})" in str(info.value)
    if meta["step"] == 5:
        from rnnlab.io._model_io import tree_to_tensors

        good = eqx.filter(again.model, again.model.trainable_filter())
        for name, value in tree_to_tensors(good, "params").items():
            assert np.array_equal(tensors[name], value)


def test_ensemble_member_diverging_inside_a_chunk_is_put_back_one_step():
    schedule = lambda step: jnp.where(step < 5, 1e-3, 1e8)  # noqa: E731
    kw = dict(batch_size=8, learning_rate=schedule, grad_clip=None, eval_every=10,
              eval_batch_size=16, progress=False, steps=20)
    models = [_model(0, activation="relu", gain=2.0), _model(1, activation="relu", gain=2.0)]
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    ens = rl.train_ensemble(models, TASK, key=keys, **kw)
    assert [r.stopped for r in ens] == ["diverged", "diverged"]
    assert list(ens.steps) == [5, 5]
    short = rl.train_ensemble(models, TASK, key=keys, **{**kw, "steps": 5})
    for a, b in zip(ens, short):
        _assert_identical(a.model, b.model)

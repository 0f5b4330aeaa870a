"""`rl.train_ensemble` with a run directory: an interrupted ensemble resumes to the result of an
uninterrupted run, bit for bit; its checkpoint is written atomically; its files are laid out
as one `rl.train` run per network."""

import json
import os

import equinox as eqx
import jax
import numpy as np
import pytest

import rnnlab as rl
import rnnlab.training._ensemble as ens_module
from rnnlab.io import read_safetensors

TASK = rl.tasks.FlipFlop(n_bits=2, n_steps=30)
# chunks end at the checkpoints (every 3 steps) and the evaluations (every 4): a checkpoint
# between two evaluations carries the training losses summed so far
KW = dict(steps=12, batch_size=8, eval_every=4, eval_batch_size=16, checkpoint_every=3,
          learning_rate=[1e-2, 3e-2], progress=False)


def _models():
    return [rl.CTRNN(TASK.n_in, 10, TASK.n_out, key=jax.random.PRNGKey(s), dt=TASK.dt,
                     noise_std=0.05) for s in (0, 1)]


def _arrays(model):
    return [np.asarray(x) for x in jax.tree.leaves(eqx.filter(model, eqx.is_array))]


def _assert_identical(a, b):
    la, lb = _arrays(a), _arrays(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        assert x.dtype == y.dtype and np.array_equal(x, y)


def _without_wall_time(history):
    return [{k: v for k, v in h.items() if k != "wall_time"} for h in history]


def _chunks(monkeypatch):
    """The (start, stop) of every chunk the ensemble runs from now on."""
    seen = []
    real = ens_module.EnsembleEngine.advance

    def advance(self, start, stop):
        seen.append((start, stop))
        return real(self, start, stop)

    monkeypatch.setattr(ens_module.EnsembleEngine, "advance", advance)
    return seen


def _assert_same_runs(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        _assert_identical(x.model, y.model)
        _assert_identical(x.best_model, y.best_model)
        assert _without_wall_time(x.history) == _without_wall_time(y.history)
        assert (x.steps, x.stopped, x.best_step) == (y.steps, y.stopped, y.best_step)


@pytest.fixture(scope="module")
def full():
    return rl.train_ensemble(_models(), TASK, key=jax.random.PRNGKey(5), **KW)


def test_resume_after_an_interruption_equals_the_uninterrupted_run(tmp_path, monkeypatch,
                                                                   full):
    real = ens_module.write_safetensors
    written = []

    def write_then_die(path, tensors, meta):
        real(path, tensors, meta)
        written.append(meta["step"])
        if meta["step"] == 9:  # between the evaluations at 8 and 12
            raise KeyboardInterrupt

    monkeypatch.setattr(ens_module, "write_safetensors", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        rl.train_ensemble(_models(), TASK, key=jax.random.PRNGKey(5), out_dir=tmp_path, **KW)
    assert written == [3, 6, 9]
    monkeypatch.setattr(ens_module, "write_safetensors", real)
    ckpt = tmp_path / "checkpoints" / "checkpoint.safetensors"
    assert read_safetensors(ckpt)[1]["step"] == 9
    chunks = _chunks(monkeypatch)
    resumed = rl.train_ensemble(_models(), TASK, key=jax.random.PRNGKey(5), out_dir=tmp_path,
                                resume=True, **KW)
    assert chunks == [(9, 12)]  # it went on from the checkpoint
    _assert_same_runs(resumed, full)
    # one run directory per network, as rl.train lays it out
    for i, res in enumerate(full):
        net = tmp_path / f"network_{i}"
        _assert_identical(rl.load(net / "model.safetensors"), res.best_model)
        _assert_identical(rl.load(net / "model_final.safetensors"), res.model)
        lines = (net / "history.jsonl").read_text().splitlines()
        assert _without_wall_time([json.loads(x) for x in lines]) == _without_wall_time(
            res.history)
        assert json.loads((net / "best.json").read_text())["step"] == res.best_step
        assert json.loads((net / "config.json").read_text())["training"]["learning_rate"] == (
            KW["learning_rate"][i])
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["networks"] == 2 and config["task"]["name"] == "flipflop"
    # a finished run resumed does nothing more; a fresh start over it is refused
    again = rl.train_ensemble(_models(), TASK, key=jax.random.PRNGKey(5), out_dir=tmp_path,
                              resume=True, **KW)
    _assert_same_runs(again, full)
    with pytest.raises(FileExistsError):
        rl.train_ensemble(_models(), TASK, key=jax.random.PRNGKey(5), out_dir=tmp_path, **KW)
    with pytest.raises(ValueError, match="checkpoint"):
        rl.train_ensemble(_models(), TASK, key=jax.random.PRNGKey(6), out_dir=tmp_path,
                          resume=True, **KW)


def test_resume_from_a_shorter_run_equals_the_longer_run(tmp_path, monkeypatch, full):
    part = rl.train_ensemble(_models(), TASK, key=jax.random.PRNGKey(5), out_dir=tmp_path,
                             **{**KW, "steps": 8})
    assert list(part.steps) == [8, 8]
    chunks = _chunks(monkeypatch)
    resumed = rl.train_ensemble(_models(), TASK, key=jax.random.PRNGKey(5), out_dir=tmp_path,
                                resume=True, **KW)
    assert chunks == [(8, 9), (9, 12)]
    _assert_same_runs(resumed, full)


def test_the_checkpoint_is_written_atomically(tmp_path, monkeypatch, full):
    """The checkpoint goes to a temporary file in its folder, then is renamed over the old
    one: a write that dies before the rename leaves the previous checkpoint, whole, and the
    run resumes from it to the uninterrupted result."""
    ckpt = tmp_path / "checkpoints" / "checkpoint.safetensors"
    real = os.replace
    renames = []

    def replace(src, dst):
        if os.fspath(dst) == os.fspath(ckpt):
            renames.append((os.fspath(src), read_safetensors_raw_step(src)))
            if len(renames) == 2:  # the checkpoint of step 6 dies before its rename
                raise KeyboardInterrupt
        return real(src, dst)

    def read_safetensors_raw_step(path):
        # the temporary file is a complete, valid checkpoint before it is renamed
        from safetensors import safe_open

        with safe_open(path, "np") as f:
            return json.loads(f.metadata()["rnnlab"])["step"]

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        rl.train_ensemble(_models(), TASK, key=jax.random.PRNGKey(5), out_dir=tmp_path, **KW)
    monkeypatch.setattr(os, "replace", real)
    assert [step for _, step in renames] == [3, 6]
    for src, _ in renames:
        assert os.path.dirname(src) == os.fspath(ckpt.parent)
        assert os.path.basename(src).startswith(".checkpoint.safetensors.")
    # the previous checkpoint is there, whole (its checksum holds), and no temporary is left
    assert read_safetensors(ckpt)[1]["step"] == 3
    assert not list(tmp_path.rglob(".*.tmp"))
    # a temporary left by a process killed inside a write is removed on resume
    stale = ckpt.parent / ".checkpoint.safetensors.k1ll3d.tmp"
    stale.write_bytes(b"\0" * 64)
    chunks = _chunks(monkeypatch)
    resumed = rl.train_ensemble(_models(), TASK, key=jax.random.PRNGKey(5), out_dir=tmp_path,
                                resume=True, **KW)
    assert not stale.exists()
    assert chunks[0] == (3, 4)  # from the checkpoint that survived
    _assert_same_runs(resumed, full)

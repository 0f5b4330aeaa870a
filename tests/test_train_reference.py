"""`rl.train` and `rl.train_ensemble` reproduce, bit for bit, the results of release e8a0820
(tests/fixtures/train_reference, made by make_reference.py there): the same key and settings
give the same trained weights and the same history numbers."""

import json
from pathlib import Path

import jax
import numpy as np
import pytest

import rnnlab as rl
from rnnlab.io import read_safetensors

# bits saved under XLA's default optimisation: run with XLA's default flags (tests/conftest.py)
pytestmark = pytest.mark.default_xla

REF = Path(__file__).parent / "fixtures" / "train_reference"
SETTINGS = dict(steps=30, batch_size=8, eval_every=10, eval_batch_size=32, learning_rate=1e-2,
                progress=False)


@pytest.fixture(scope="module")
def reference():
    return json.loads((REF / "reference.json").read_text())


@pytest.fixture(scope="module")
def task():
    return rl.tasks.make("flipflop", n_bits=2)


def _model(task, kind, noise, seed):
    k = jax.random.PRNGKey(seed)
    if kind == "ctrnn":
        return rl.CTRNN(task.n_in, 12, task.n_out, key=k, noise_std=noise,
                        input_noise_std=noise / 2)
    if kind == "gru":
        return rl.GRU(task.n_in, 12, task.n_out, key=k, noise_std=noise) if noise else rl.GRU(
            task.n_in, 12, task.n_out, key=k)
    return rl.VanillaRNN(task.n_in, 12, task.n_out, key=k)


def _stored_tensors(name):
    tensors, _ = read_safetensors(REF / f"{name}.safetensors")
    return tensors


def _assert_equals_reference(model, name, expected, result, *, best_step=True):
    stored = _stored_tensors(name)
    # the reference file read back as a model, and its raw tensors: every array equal
    loaded = rl.load(REF / f"{name}.safetensors")
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(model)):
        if hasattr(a, "shape"):
            assert np.array_equal(np.asarray(a), np.asarray(b)), name
    mine = _tensors_of(model)
    assert set(mine) == set(stored), name
    for k in stored:
        assert stored[k].dtype == mine[k].dtype, (name, k)
        assert np.array_equal(stored[k], mine[k]), (name, k)
    history = [{k: v for k, v in h.items() if k != "wall_time"} for h in result.history]
    assert history == expected["history"], name  # exact float equality, every number
    assert result.steps == expected["steps"]
    if best_step:
        assert result.best_step == expected["best_step"]


def _tensors_of(model):
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        rl.save(Path(d) / "m.safetensors", model)
        return read_safetensors(Path(d) / "m.safetensors")[0]


@pytest.mark.parametrize("kind, noise", [("ctrnn", 0.0), ("ctrnn", 0.1), ("gru", 0.0),
                                         ("vanilla", 0.0)])
def test_train_equals_the_previous_release(task, reference, kind, noise):
    name = f"{kind}_noise{noise:g}"
    res = rl.train(_model(task, kind, noise, 1), task, key=jax.random.PRNGKey(7), **SETTINGS)
    _assert_equals_reference(res.model, name, reference[name], res)


def test_ensemble_equals_the_previous_release(task, reference):
    models = [_model(task, "ctrnn", 0.05, s) for s in (2, 3)]
    ens = rl.train_ensemble(models, task, key=jax.random.PRNGKey(9), **SETTINGS)
    for i, res in enumerate(ens.results):
        # (release e8a0820 did not record the ensemble's best step: best_step was None)
        _assert_equals_reference(res.model, f"ensemble{i}", reference[f"ensemble{i}"], res,
                                 best_step=False)


def test_the_comparison_can_fail(task, reference):
    """One more step, or another key, changes the weights: the comparison above sees it."""
    res = rl.train(_model(task, "ctrnn", 0.0, 1), task, key=jax.random.PRNGKey(8), **SETTINGS)
    with pytest.raises(AssertionError):
        _assert_equals_reference(res.model, "ctrnn_noise0", reference["ctrnn_noise0"], res)

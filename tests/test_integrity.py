"""Integrity of stored files (issue 17): the checksum covers metadata and tensors, every field
is checked on load with a one-line error naming the file, same content gives the same bytes,
and the smaller holes (NaN inputs, resume with another optimizer, leftovers, CSP)."""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import optax
import pytest

import rnnlab as rl
from rnnlab.io._model_io import model_tensors
from rnnlab.io._safe import (
    FileFormatError,
    encode_safetensors,
    read_safetensors,
    write_safetensors,
)

FIXTURES = Path(__file__).parent / "fixtures"


def _model(**kw):
    return rl.CTRNN(3, 8, 3, key=jax.random.PRNGKey(1), **kw)


def _resign(path: Path, meta=None, tensors=None) -> None:
    """Rewrite ``path`` with its checksum recomputed over changed content: what an attacker
    who knows the format (or a buggy writer) produces; the checks after the checksum must
    catch it."""
    t, m = read_safetensors(path)
    if meta is not None:
        meta(m)  # changes m in place
    if tensors is not None:
        tensors(t)
    path.write_bytes(encode_safetensors(t, m))


def _assert_one_line(err: BaseException, path) -> None:
    text = str(err)
    assert "\n" not in text and str(path) in text, text


# ------------------------------------------------------------------------------ model files


def test_same_model_same_bytes_across_processes(tmp_path):
    """Saving one model in separate processes gives byte-identical files (metadata keys in a
    canonical order): hash-based reproducibility checks hold."""
    code = ("import sys, jax, rnnlab as rl; m = rl.CTRNN(3, 8, 3, key=jax.random.PRNGKey(1), "
            "dale=True, noise_std=0.1); rl.save(sys.argv[1], m)")
    env = {**os.environ, "PYTHONHASHSEED": "random"}
    paths = [tmp_path / "m0.safetensors"]
    procs = [subprocess.Popen([sys.executable, "-c", code, str(p)], env=env) for p in paths]
    assert [p.wait(timeout=300) for p in procs] == [0]
    rl.save(tmp_path / "here.safetensors", _model(dale=True, noise_std=0.1))
    blobs = {p.read_bytes() for p in [*paths, tmp_path / "here.safetensors"]}
    assert len(blobs) == 1
    # and the file is a standard safetensors file that the reference reader accepts
    from safetensors.numpy import load_file

    ref = load_file(paths[0])
    assert set(ref) == set(model_tensors(_model(dale=True)))


def test_changed_activation_in_the_header_is_refused(tmp_path):
    """The issue's attack: 'tanh' -> 'relu' in the header bytes (same length) used to load a
    different model silently; the checksum now covers the metadata."""
    path = tmp_path / "m.safetensors"
    rl.save(path, _model())
    data = path.read_bytes()
    assert data.count(b"tanh") == 1
    path.write_bytes(data.replace(b"tanh", b"relu"))
    with pytest.raises(FileFormatError, match="checksum") as info:
        rl.load(path)
    _assert_one_line(info.value, path)


@pytest.mark.parametrize("change, match", [
    (lambda m: m["config"].update(n_hidden=30000), "does not match the stored tensors"),
    (lambda m: m["config"].update(n_in=10**12), "positive integer"),
    # (under the test suite's runtime type checks a wrong type is caught by them first)
    (lambda m: m["config"].update(dale="yes"), "dale|Type-check"),
    (lambda m: m["config"].update(dt=-1.0), "dt"),
    (lambda m: m["config"].update(noise_std=float("nan")), "noise_std"),
    (lambda m: m["config"].update(excitatory_fraction=0.5), "ei_sign"),
    (lambda m: m.update(config=[1, 2]), "must be an object"),
    (lambda m: m.update(config=None), "must be an object"),
    (lambda m: m.update({"class": "Pickle"}), "unknown model class"),
    (lambda m: m.update({"class": 7}), "class"),
    (lambda m: m["config"].update(bogus=1), "bogus"),
])
def test_resigned_hostile_metadata_is_refused(tmp_path, change, match):
    """Metadata whose checksum was recomputed still gets every field checked: types, ranges,
    sizes against the tensors (before anything is built: n_hidden=30000 allocates nothing)."""
    path = tmp_path / "m.safetensors"
    rl.save(path, _model(dale=True))
    _resign(path, meta=change)
    with pytest.raises(FileFormatError, match=match) as info:
        rl.load(path)
    _assert_one_line(info.value, path)


@pytest.mark.parametrize("change, match", [
    (lambda t: t.update({".w_rec": t[".w_rec"].astype(np.float64)}), "dtype"),
    (lambda t: t.update({".w_rec": t[".w_rec"][:4]}), "shape"),
    (lambda t: t[".w_in"].__setitem__((0, 0), np.nan), "NaN"),
    (lambda t: t.update({".extra": np.zeros(3, np.float32)}), "unexpected tensor"),
    (lambda t: t.pop(".b_out"), "missing tensor"),
])
def test_resigned_hostile_tensors_are_refused(tmp_path, change, match):
    path = tmp_path / "m.safetensors"
    rl.save(path, _model())
    _resign(path, tensors=change)
    with pytest.raises(FileFormatError, match=match) as info:
        rl.load(path)
    _assert_one_line(info.value, path)


def test_files_of_the_previous_format_still_load():
    """Format-1 files (checksum over the tensors only) load, with every field checked."""
    path = FIXTURES / "flipflop3_ctrnn64.safetensors"
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert b'"format"' not in raw[8:8 + n]  # really a format-1 file
    model = rl.load(path)
    assert model.n_hidden == 64


def test_a_newer_format_is_refused_by_name(tmp_path):
    path = tmp_path / "m.safetensors"
    rl.save(path, _model())
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header["__metadata__"]["format"] = "3"
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n:])
    with pytest.raises(FileFormatError, match="format '3'") as info:
        rl.load(path)
    _assert_one_line(info.value, path)


def test_load_returns_the_saved_model_exactly(tmp_path):
    for kw in ({}, {"dale": True, "noise_std": 0.05, "autapses": False},
               {"form": "rate", "tau": list(np.linspace(50, 150, 8)),
                "trainable": ("w_rec", "tau")}):
        m = _model(**kw)
        rl.save(tmp_path / "m.safetensors", m)
        back = rl.load(tmp_path / "m.safetensors")
        assert back.config() == m.config()
        for a, b in zip(jax.tree.leaves(m), jax.tree.leaves(back)):
            assert np.asarray(a).dtype == np.asarray(b).dtype
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ------------------------------------------------------------------------------ fixed points


def _points(tmp_path) -> Path:
    fp = rl.analysis.FixedPoints.load(FIXTURES / "fixed_points_v2.safetensors")
    path = tmp_path / "fp.safetensors"
    fp.save(path)
    return path


@pytest.mark.parametrize("change, match", [
    # the case: 5 states and 27 labels
    (lambda t, m: t.update(stability_codes=np.zeros(27, np.int8)), "stability_codes"),
    (lambda t, m: t.update(stability_codes=np.full(len(t["states"]), 9, np.int8)), "codes"),
    (lambda t, m: m.update(stability_labels=["stable", "wobbly"]), "stability_labels"),
    (lambda t, m: m.update(is_continuous="yes"), "is_continuous"),
    (lambda t, m: m.update(marginal_tol=-1), "marginal_tol"),
    (lambda t, m: m.update(labels_version=99), "labels_version"),
    (lambda t, m: t.update(converged=np.full(len(t["states"]), 7, np.uint8)), "0/1"),
    (lambda t, m: t.pop("jacobians"), "jacobians"),
    (lambda t, m: m.update(n_points=1000), "n_points"),
])
def test_resigned_hostile_fixed_points_are_refused(tmp_path, change, match):
    path = _points(tmp_path)
    t, m = read_safetensors(path)
    change(t, m)
    path.write_bytes(encode_safetensors(t, m))
    with pytest.raises(FileFormatError, match=match) as info:
        rl.analysis.FixedPoints.load(path)
    _assert_one_line(info.value, path)


# ------------------------------------------------------------------------------ smaller holes


def test_simulate_refuses_nan_and_inf_inputs_by_name():
    m = _model()
    u = np.zeros((6, 3), np.float32)
    u[2, 1] = np.inf
    with pytest.raises(ValueError, match="inputs contains NaN or inf"):
        rl.simulate(m, u)
    with pytest.raises(ValueError, match="initial_state contains NaN"):
        rl.simulate(m, np.zeros((6, 3)), initial_state=np.full(8, np.nan))
    assert np.all(np.isfinite(np.asarray(rl.simulate(m, np.zeros((6, 3))).states)))


TASK = rl.tasks.FlipFlop(n_bits=2, n_steps=20)


def _tiny():
    return rl.CTRNN(TASK.n_in, 6, TASK.n_out, key=jax.random.PRNGKey(0))


def test_resume_refuses_another_optimizer_or_schedule(tmp_path):
    kw = dict(steps=2, batch_size=4, eval_every=1, eval_batch_size=4, progress=False)
    rl.train(_tiny(), TASK, key=jax.random.PRNGKey(0), out_dir=tmp_path,
             optimizer=optax.sgd(0.1), **kw)
    kw["steps"] = 3
    with pytest.raises(ValueError, match="optimizer"):
        rl.train(_tiny(), TASK, key=jax.random.PRNGKey(0), out_dir=tmp_path, resume=True,
                 optimizer=optax.sgd(0.2), **kw)
    with pytest.raises(ValueError, match="optimizer"):
        rl.train(_tiny(), TASK, key=jax.random.PRNGKey(0), out_dir=tmp_path, resume=True,
                 optimizer=optax.adam(0.1), **kw)
    # the same optimizer resumes
    res = rl.train(_tiny(), TASK, key=jax.random.PRNGKey(0), out_dir=tmp_path, resume=True,
                   optimizer=optax.sgd(0.1), **kw)
    assert res.steps == 3
    # a checkpoint whose entries are not what resume reads is refused by name
    ckpt = tmp_path / "checkpoints" / "checkpoint.safetensors"
    t, m = read_safetensors(ckpt)
    m["history"] = "lost"
    ckpt.write_bytes(encode_safetensors(t, m))
    with pytest.raises(FileFormatError, match="history") as info:
        rl.train(_tiny(), TASK, key=jax.random.PRNGKey(0), out_dir=tmp_path, resume=True,
                 optimizer=optax.sgd(0.1), **kw)
    _assert_one_line(info.value, ckpt)
    # two schedules that differ only after step 0 are told apart by their values
    from rnnlab.training._train import describe_optimizer

    a = describe_optimizer(None, optax.linear_schedule(0.1, 0.0, 100))
    b = describe_optimizer(None, optax.linear_schedule(0.1, 0.0, 200))
    assert a != b and a == describe_optimizer(None, optax.linear_schedule(0.1, 0.0, 100))


def test_rewound_checkpoint_keeps_its_window_of_recent_losses(tmp_path):
    """After divergence the checkpoint is put back one step; its window of training losses
    since the last evaluation holds the losses of the steps before it (not an empty window),
    those an uninterrupted run averages."""
    import jax.numpy as jnp

    schedule = lambda step: jnp.where(step < 5, 1e-3, 1e8)  # noqa: E731
    kw = dict(batch_size=8, learning_rate=schedule, grad_clip=None, eval_every=10,
              eval_batch_size=8, progress=False)
    model = rl.CTRNN(TASK.n_in, 24, TASK.n_out, key=jax.random.PRNGKey(0), activation="relu",
                     gain=2.0)
    with pytest.raises(rl.TrainingDiverged):
        rl.train(model, TASK, key=jax.random.PRNGKey(0), steps=40, out_dir=tmp_path / "a",
                 checkpoint_every=3, **kw)
    _, rewound = read_safetensors(tmp_path / "a" / "checkpoints" / "checkpoint.safetensors")
    assert rewound["step"] == 5
    # an uninterrupted run of those 5 steps averages the same training losses into the
    # train_loss of its final evaluation
    straight = rl.train(model, TASK, key=jax.random.PRNGKey(0), steps=5, **kw)
    assert len(rewound["losses_since_eval"]) == 5
    assert float(np.mean(rewound["losses_since_eval"])) == straight.history[-1]["train_loss"]


def test_save_figure_leaves_nothing_behind_on_failure(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig = plt.figure()

    def broken(target, *a, **k):  # a disk that fills up halfway through the file
        with open(target, "wb") as f:
            f.write(b"\x89PNG half a figure")
        raise OSError(28, "No space left on device")

    fig.savefig = broken
    with pytest.raises(OSError):
        rl.plot.save_figure(fig, tmp_path / "training")
    assert list(tmp_path.iterdir()) == []


def test_report_policy_allows_only_its_own_scripts():
    from rnnlab.report._report import content_security_policy

    page = "<script>a()</script><p>x</p><script type='text/javascript'>b()</script>"
    csp = content_security_policy(page)
    script_src = csp.split("script-src ")[1].split(";")[0]
    assert "unsafe-inline" not in csp.split("style-src")[0] and "unsafe-eval" not in csp
    import base64
    import hashlib

    want = {"'sha256-" + base64.b64encode(hashlib.sha256(s).digest()).decode() + "'"
            for s in (b"a()", b"b()")}
    assert set(script_src.split()) == want


def test_atomic_writes_leave_no_temporary_on_failure(tmp_path):
    class Boom:
        pass

    with pytest.raises(TypeError):
        write_safetensors(tmp_path / "x.safetensors", {"a": np.array([Boom()], object)}, {})
    assert list(tmp_path.iterdir()) == []

"""Saving and loading: bit-identical round trips and clear errors on bad files."""

import json
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnlab as rl


def _model(**kw):
    return rl.CTRNN(3, 16, 2, key=jax.random.PRNGKey(0), **kw)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        dict(dale=True, autapses=False, readout="excitatory", activation="relu", form="rate"),
        dict(tau=np.linspace(50, 150, 16), trainable=("w_rec", "tau", "h0"), noise_std=0.1),
        dict(w_rec_mask=np.random.default_rng(0).random((16, 16)) < 0.3, use_bias=False),
    ],
)
def test_save_load_bit_identical(tmp_path, kw):
    model = _model(**kw)
    # move the weights away from their init so the test cannot pass by re-initialising
    model = jax.tree.map(lambda x: x + 0.01 if jnp.issubdtype(x.dtype, jnp.floating) else x, model)
    path = tmp_path / "m.safetensors"
    rl.save(path, model)
    loaded = rl.load(path)
    assert type(loaded) is type(model)
    assert loaded.config() == model.config()
    inputs = jax.random.normal(jax.random.PRNGKey(1), (4, 25, 3))
    a = rl.simulate(model, inputs, key=jax.random.PRNGKey(2))
    b = rl.simulate(loaded, inputs, key=jax.random.PRNGKey(2))
    np.testing.assert_array_equal(a.outputs, b.outputs)
    np.testing.assert_array_equal(a.states, b.states)
    for k, v in model.effective_weights().items():
        np.testing.assert_array_equal(v, loaded.effective_weights()[k])


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        rl.load(tmp_path / "nope.safetensors")


def test_truncated_file(tmp_path):
    path = tmp_path / "m.safetensors"
    rl.save(path, _model())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="m.safetensors"):
        rl.load(path)
    path.write_bytes(data[:5])
    with pytest.raises(ValueError, match="m.safetensors"):
        rl.load(path)


def test_tampered_file(tmp_path):
    path = tmp_path / "m.safetensors"
    rl.save(path, _model())
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # flip bits in the last tensor's data
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        rl.load(path)


def test_tampered_metadata(tmp_path):
    path = tmp_path / "m.safetensors"
    rl.save(path, _model())
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = json.loads(header["__metadata__"]["rnnlab"])
    meta["config"]["n_hidden"] = 17
    header["__metadata__"]["rnnlab"] = json.dumps(meta)
    raw = json.dumps(header).encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])
    with pytest.raises(ValueError, match="m.safetensors"):
        rl.load(path)


def test_not_an_rnnlab_file(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "foreign.safetensors"
    save_file({"x": np.zeros(3, np.float32)}, str(path))
    with pytest.raises(ValueError, match="foreign.safetensors"):
        rl.load(path)
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="junk.safetensors"):
        rl.load(tmp_path / "junk.safetensors")


def test_custom_activation_cannot_be_saved(tmp_path):
    model = rl.CTRNN(1, 4, 1, key=jax.random.PRNGKey(0), activation=lambda x: x**3)
    with pytest.raises(ValueError, match="activation"):
        rl.save(tmp_path / "m.safetensors", model)
    assert not (tmp_path / "m.safetensors").exists()


def test_save_is_atomic_on_error(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    rl.save(path, _model())
    before = path.read_bytes()
    import rnnlab.io._safe as safe

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(safe.os, "fsync", boom)
    with pytest.raises(OSError):
        rl.save(path, rl.CTRNN(3, 16, 2, key=jax.random.PRNGKey(9)))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


@pytest.mark.parametrize("name", ["CTRNN", "VanillaRNN", "GRU", "LSTM", "EchoStateNetwork"])
def test_every_model_loads_without_running_its_initialiser(tmp_path, name):
    """`rl.load` only traces the constructor (no random initialiser runs, nothing compiles):
    every model's constructor must be traceable from its configuration; the loaded model
    equals the saved one leaf for leaf (masks and E/I signs read off the trace included)."""
    import equinox as eqx

    cls = getattr(rl, name)
    kw = {"w_rec_mask": np.random.default_rng(0).random((12, 12)) < 0.5} \
        if name in ("CTRNN", "VanillaRNN") else {}
    model = cls(3, 12, 2, key=jax.random.PRNGKey(0), **kw)
    eqx.filter_make_jaxpr(cls.from_config)(model.config())  # raises if it needs values
    model = jax.tree.map(lambda x: x + 0.01 if jnp.issubdtype(x.dtype, jnp.floating) else x,
                         model)
    rl.save(tmp_path / "m.safetensors", model)
    loaded = rl.load(tmp_path / "m.safetensors")
    for a, b in zip(jax.tree.leaves(model), jax.tree.leaves(loaded)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

"""rl.export: .npz / .mat files whose stored plain-text equations, executed with numpy on the
stored arrays, reproduce the model's trajectory and outputs."""

import functools
import json

import jax
import numpy as np
import pytest
import scipy.io

import rnnlab as rl


@functools.cache
def _models():
    k = jax.random.PRNGKey
    return {
        "ctrnn": rl.CTRNN(3, 8, 2, key=k(0), tau=np.linspace(20, 90, 8), activation="softplus",
                          initial_state=np.linspace(-0.2, 0.4, 8)),
        "ctrnn_rate_dale": rl.CTRNN(3, 10, 2, key=k(1), form="rate", dale=True,
                                    w_in_mask=np.eye(10, 3)),
        "vanilla": rl.VanillaRNN(3, 8, 2, key=k(2), activation="retanh"),
        "gru": rl.GRU(3, 8, 2, key=k(3)),
        "lstm": rl.LSTM(3, 8, 2, key=k(4)),
    }


def _load(path):
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
        return data, {k: str(data[k]) for k in ("equations", "model", "activation", "config")}
    data = scipy.io.loadmat(path)
    text = {k: str(data[k][0]) for k in ("equations", "model", "activation", "config")}
    return {k: v for k, v in data.items() if not k.startswith("__")}, text


def _run_equations(data, equations, inputs, column):
    """Execute the stored equations with numpy over the stored arrays, one step per input."""
    code = compile(equations, "equations", "exec")
    ns = dict(data, np=np)
    x = ns["h0"]
    states, outputs = [], []
    for u in inputs:
        ns["x"], ns["u"] = x, (u[:, None] if column else u)
        exec(code, ns)
        x = ns["x"]
        states.append(np.ravel(x))
        outputs.append(np.ravel(ns["y"]))
    return np.array(states), np.array(outputs)


@pytest.mark.parametrize("suffix", [".npz", ".mat"])
@pytest.mark.parametrize("name", ["ctrnn", "ctrnn_rate_dale", "vanilla", "gru", "lstm"])
def test_exported_equations_recompute_the_model(tmp_path, name, suffix):
    model = _models()[name]
    path = rl.export(model, tmp_path / f"net{suffix}")
    assert path.exists() and not list(tmp_path.glob(".*.tmp"))
    data, text = _load(path)
    assert text["model"] == type(model).__name__
    assert text["activation"] == model.activation_name
    assert json.loads(text["config"]) == json.loads(json.dumps(model.config()))
    for k, v in model.effective_weights().items():
        np.testing.assert_array_equal(np.ravel(data[k]), np.ravel(np.asarray(v, np.float64)))

    inputs = np.asarray(jax.random.normal(jax.random.PRNGKey(5), (30, model.n_in)))
    states, outputs = _run_equations(data, text["equations"], inputs, suffix == ".mat")
    traj = rl.simulate(model, inputs)
    np.testing.assert_allclose(states, traj.states, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outputs, traj.outputs, rtol=1e-5, atol=1e-6)


def test_export_refuses_what_it_cannot_describe(tmp_path):
    model = _models()["gru"]
    with pytest.raises(ValueError, match=r"\.npz or \.mat"):
        rl.export(model, tmp_path / "net.pt")
    custom = rl.VanillaRNN(3, 8, 2, key=jax.random.PRNGKey(0), activation=jax.numpy.sin)
    with pytest.raises(ValueError, match="named activation"):
        rl.export(custom, tmp_path / "net.npz")
    system = rl.FunctionModel(step=lambda h, u: -h, state_size=2, n_in=1)
    with pytest.raises(TypeError, match="FunctionModel"):
        rl.export(system, tmp_path / "net.npz")
    assert not list(tmp_path.iterdir())

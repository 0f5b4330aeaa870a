"""Networks from weight files (`rnnlab.from_file`): outputs and Jacobians equal numpy
re-implementations of trainRNNbrain's and PsychRNN's update rules; Dale's law and masks become
constraints and are checked; pickles are refused without being unpickled."""

import json
import pickle
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.io

import rnnlab as rl
from rnnlab.interop import PickleRefused, read_arrays

N, N_IN, N_OUT, N_EXC, T = 10, 3, 2, 8, 12


def _relu(x):
    return np.maximum(x, 0.0)


def _fd_jacobian(f, x, eps=1e-6):
    """Central finite differences of f at x (float64)."""
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = eps
        cols.append((f(x + e) - f(x - e)) / (2 * eps))
    return np.stack(cols, axis=1)


# ------------------------------------------------------------------------------ trainRNNbrain
# rate form: y <- y + (dt / tau) (-y + f(W_rec y + W_inp u + bias_rec)), out = W_out y


def _trb_weights(rng, dale=True):
    w = rng.normal(size=(N, N)) / np.sqrt(N)
    if dale:
        w = np.abs(w)
        w[:, N_EXC:] *= -1
    np.fill_diagonal(w, 0.0)
    w_in = np.abs(rng.normal(size=(N, N_IN))) if dale else rng.normal(size=(N, N_IN))
    w_out = np.abs(rng.normal(size=(N_OUT, N))) if dale else rng.normal(size=(N_OUT, N))
    return {"W_rec": w, "W_inp": w_in, "W_out": w_out, "bias_rec": 0.3 * rng.normal(size=N),
            "y_init": 0.1 * np.abs(rng.normal(size=N))}


def _trb_rhs(p, f, y, u):
    return -y + f(p["W_rec"] @ y + p["W_inp"] @ u + p["bias_rec"])


def _check_trainrnnbrain(model, p, f, dt, tau, rng):
    us = rng.normal(size=(T, N_IN))
    traj = rl.simulate(model, us)
    y = p["y_init"].copy()
    states = []
    for t in range(T):
        y = y + dt / tau * _trb_rhs(p, f, y, us[t])
        states.append(y.copy())
    states = np.array(states)
    np.testing.assert_allclose(traj.states, states, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(traj.outputs, states @ p["W_out"].T, rtol=1e-5, atol=1e-6)
    # Jacobian of the vector field dy/dt = rhs / tau at a random point
    y0, u0 = rng.normal(size=N), rng.normal(size=N_IN)
    ref = _fd_jacobian(lambda y: _trb_rhs(p, f, y, u0) / tau, y0)
    np.testing.assert_allclose(model.jacobian(jnp.asarray(y0, jnp.float32),
                                              jnp.asarray(u0, jnp.float32)),
                               ref, rtol=1e-4, atol=1e-5)


def test_trainrnnbrain_npz_with_json_config(tmp_path):
    rng = np.random.default_rng(0)
    p = _trb_weights(rng)
    np.savez(tmp_path / "net.npz", **p, dale_mask=np.r_[np.ones(N_EXC), -np.ones(N - N_EXC)],
             recurrent_mask=1 - np.eye(N))
    (tmp_path / "config.json").write_text(json.dumps(
        {"N": N, "dt": 1, "tau": 10, "activation": "relu", "constrained": True,
         "sigma_rec": 0.03, "sigma_inp": 0.02}))
    m = rl.from_file(tmp_path / "net.npz", config=tmp_path / "config.json")
    assert isinstance(m, rl.CTRNN) and m.form == "rate" and m.dale and m.n_excitatory == N_EXC
    assert m.nonnegative_inputs and m.nonnegative_outputs
    assert not bool(jnp.any(jnp.diag(m.w_rec_mask)))  # no autapses, as its recurrent_mask
    # noise: a sqrt(2/a) s_rec inside the bracket is sqrt(2 a) s_rec; input noise sqrt(2/a) s_in
    np.testing.assert_allclose(float(m.noise_std), 0.03, rtol=1e-6)
    np.testing.assert_allclose(float(m.input_noise_std), np.sqrt(2 / 0.1) * 0.02, rtol=1e-6)
    _check_trainrnnbrain(m, p, _relu, 1.0, 10.0, rng)


def test_trainrnnbrain_torch_state_dict_as_safetensors(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    rng = np.random.default_rng(1)
    p = _trb_weights(rng, dale=False)

    class RNN(torch.nn.Module):  # RNN_torch's layer names
        def __init__(self):
            super().__init__()
            self.input_layer = torch.nn.Linear(N_IN, N, bias=False)
            self.recurrent_layer = torch.nn.Linear(N, N, bias=True)
            self.output_layer = torch.nn.Linear(N, N_OUT, bias=False)

    net = RNN()
    with torch.no_grad():
        net.input_layer.weight.copy_(torch.tensor(p["W_inp"]))
        net.recurrent_layer.weight.copy_(torch.tensor(p["W_rec"]))
        net.recurrent_layer.bias.copy_(torch.tensor(p["bias_rec"]))
        net.output_layer.weight.copy_(torch.tensor(p["W_out"]))
    save_file(net.state_dict(), str(tmp_path / "net.safetensors"))
    p = {k: net.state_dict()[n].double().numpy() for k, n in (
        ("W_inp", "input_layer.weight"), ("W_rec", "recurrent_layer.weight"),
        ("bias_rec", "recurrent_layer.bias"), ("W_out", "output_layer.weight"))}
    p["y_init"] = np.zeros(N)
    m = rl.from_file(tmp_path / "net.safetensors", format="trainRNNbrain", dt=2.0, tau=10.0,
                     activation="tanh")
    assert not m.dale
    _check_trainrnnbrain(m, p, np.tanh, 2.0, 10.0, rng)


@pytest.mark.parametrize("gamma,act,slope", [(0.1, "tanh", 2.0), (0.0, "relu", 1.5)])
def test_trainrnnbrain_json_params_with_cubic_leak_and_slope(tmp_path, gamma, act, slope):
    # newer trainRNNbrain saves its parameters as JSON lists, with activation_args (a slope
    # inside the activation) and a cubic leak: y' = (-y + f(slope (W y + W_inp u + b))
    # - gamma y^3) / tau
    rng = np.random.default_rng(11)
    p = _trb_weights(rng, dale=False)
    params = {"N": N, "dt": 1.0, "tau": 10.0, "gamma": gamma, "W_rec": p["W_rec"].tolist(),
              "W_inp": p["W_inp"].tolist(), "W_out": p["W_out"].tolist(),
              "bias": p["bias_rec"].tolist(), "y_init": p["y_init"].tolist(),
              "activation_args": {"name": act, "slope": slope}}
    (tmp_path / "params.json").write_text(json.dumps(params))
    m = rl.from_file(tmp_path / "params.json")
    assert isinstance(m, rl.FunctionModel if gamma else rl.CTRNN)
    f = {"tanh": np.tanh, "relu": _relu}[act]

    def rhs(y, u):
        return (-y + f(slope * (p["W_rec"] @ y + p["W_inp"] @ u + p["bias_rec"]))
                - gamma * y ** 3)

    us = rng.normal(size=(T, N_IN))
    y, states = p["y_init"].copy(), []
    for t in range(T):
        y = y + 0.1 * rhs(y, us[t])
        states.append(y.copy())
    traj = rl.simulate(m, us)
    np.testing.assert_allclose(traj.states, np.array(states), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(traj.outputs, np.array(states) @ p["W_out"].T, rtol=1e-5,
                               atol=1e-6)
    y0, u0 = rng.normal(size=N), rng.normal(size=N_IN)
    np.testing.assert_allclose(
        m.jacobian(jnp.asarray(y0, jnp.float32), jnp.asarray(u0, jnp.float32)),
        _fd_jacobian(lambda y: rhs(y, u0) / 10.0, y0), rtol=1e-4, atol=1e-5)


def test_trainrnnbrain_softplus_is_its_own():
    # trainRNNbrain's softplus is log(1 + exp(5 x)), not rnnlab's log(1 + exp(x))
    from rnnlab.interop._files import _trainrnnbrain_softplus

    x = np.linspace(-2, 2, 9)
    np.testing.assert_allclose(_trainrnnbrain_softplus(jnp.asarray(x)), np.log1p(np.exp(5 * x)),
                               rtol=1e-5)


def test_dale_and_mask_violations_are_refused(tmp_path):
    rng = np.random.default_rng(2)
    p = _trb_weights(rng)
    signs = np.r_[np.ones(N_EXC), -np.ones(N - N_EXC)]
    bad = dict(p)
    bad["W_rec"] = p["W_rec"].copy()
    bad["W_rec"][0, N_EXC + 1] = 0.5  # an inhibitory unit with an excitatory synapse
    np.savez(tmp_path / "bad.npz", **bad, dale_mask=signs)
    with pytest.raises(ValueError, match=r"W_rec violates its Dale signs \(dale_mask\).*"
                                         r"W_rec\[0, 9\] = 0\.5.*unit 9 is inhibitory"):
        rl.from_file(tmp_path / "bad.npz", dt=1, tau=10)
    # constrained=True without a mask: each column must have one sign
    np.savez(tmp_path / "bad2.npz", **bad)
    with pytest.raises(ValueError, match="W_rec violates Dale's law: column 9"):
        rl.from_file(tmp_path / "bad2.npz", config={"constrained": True, "dt": 1, "tau": 10})
    # inhibitory units first: refused with what to do
    np.savez(tmp_path / "order.npz", **p, dale_mask=signs[::-1])
    with pytest.raises(ValueError, match="violates its Dale signs|not the first"):
        rl.from_file(tmp_path / "order.npz", dt=1, tau=10)
    # a weight where the mask is 0
    mask = np.ones((N, N))
    mask[3, 4] = 0
    np.savez(tmp_path / "mask.npz", **p, recurrent_mask=mask)
    with pytest.raises(ValueError, match=r"W_rec has 1 non-zero entries where recurrent_mask is 0"):
        rl.from_file(tmp_path / "mask.npz", dt=1, tau=10)
    # negative input weights in a constrained network
    neg = dict(p)
    neg["W_inp"] = p["W_inp"].copy()
    neg["W_inp"][2, 1] = -0.1
    np.savez(tmp_path / "neg.npz", **neg, dale_mask=signs)
    with pytest.raises(ValueError, match="W_inp has 1 negative entries"):
        rl.from_file(tmp_path / "neg.npz", dt=1, tau=10)
    # and a network that obeys its mask keeps it as a constraint
    p2 = dict(p)
    p2["W_rec"] = p["W_rec"] * mask
    np.savez(tmp_path / "ok.npz", **p2, recurrent_mask=mask, dale_mask=signs)
    m = rl.from_file(tmp_path / "ok.npz", dt=1, tau=10)
    assert not bool(m.w_rec_mask[3, 4])
    w = np.asarray(m.effective_weights()["w_rec"])
    assert np.all(w[:, :N_EXC] >= 0) and np.all(w[:, N_EXC:] <= 0) and w[3, 4] == 0


def test_missing_time_constants_and_unknown_format_are_named(tmp_path):
    rng = np.random.default_rng(3)
    np.savez(tmp_path / "net.npz", **_trb_weights(rng))
    with pytest.raises(ValueError, match="pass dt= and tau="):
        rl.from_file(tmp_path / "net.npz")
    with pytest.raises(ValueError, match="format='keras' is not known"):
        rl.from_file(tmp_path / "net.npz", format="keras", dt=1, tau=10)
    np.savez(tmp_path / "odd.npz", A=np.eye(2))
    with pytest.raises(ValueError, match="cannot tell the file's naming"):
        rl.from_file(tmp_path / "odd.npz")
    with pytest.raises(TypeError, match="unknown options"):
        rl.from_file(tmp_path / "net.npz", dt=1, tau=10, rec_noise=0.1)
    with pytest.raises(FileNotFoundError):
        rl.from_file(tmp_path / "nothing.npz")


# ------------------------------------------------------------------------------ PsychRNN
# x <- (1 - a) x + a (relu(x) W_rec_eff^T + u W_in_eff^T + b_rec), out = relu(x) W_out_eff^T + b_out


def _psy_weights(rng, dale):
    n_in = N_IN
    p = {"W_rec": rng.normal(size=(N, N)) / np.sqrt(N), "W_in": rng.normal(size=(N, n_in)),
         "W_out": rng.normal(size=(N_OUT, N)), "b_rec": 0.2 * rng.normal(size=N),
         "b_out": rng.normal(size=N_OUT), "init_state": 0.1 + 0.01 * rng.normal(size=(1, N)),
         "rec_connectivity": (rng.random((N, N)) < 0.8).astype(float),
         "input_connectivity": np.ones((N, n_in)), "output_connectivity": np.ones((N_OUT, N))}
    vec = np.ones(N)
    if dale:
        vec[N_EXC:] = -1
    p["Dale_rec"] = np.diag(vec)
    p["Dale_out"] = np.diag(np.maximum(vec, 0) if dale else vec)
    return p


def _psy_effective(p, dale):
    if dale:
        return (np.abs(p["W_rec"]) * p["rec_connectivity"] @ p["Dale_rec"],
                np.abs(p["W_in"]) * p["input_connectivity"],
                np.abs(p["W_out"]) * p["output_connectivity"] @ p["Dale_out"])
    return (p["W_rec"] * p["rec_connectivity"], p["W_in"] * p["input_connectivity"],
            p["W_out"] * p["output_connectivity"])


@pytest.mark.parametrize("dale", [True, False])
def test_psychrnn_npz_and_mat(tmp_path, dale):
    rng = np.random.default_rng(4 + dale)
    p = _psy_weights(rng, dale)
    np.savez(tmp_path / "w.npz", **p)
    scipy.io.savemat(tmp_path / "w.mat", p)  # vectors come back as [1, n]
    alpha = 0.2
    w_rec, w_in, w_out = _psy_effective(p, dale)
    us = rng.normal(size=(T, N_IN))
    x = p["init_state"].ravel().copy()
    states = []
    for t in range(T):
        x = (1 - alpha) * x + alpha * (_relu(x) @ w_rec.T + us[t] @ w_in.T + p["b_rec"])
        states.append(x.copy())
    states = np.array(states)
    outputs = _relu(states) @ w_out.T + p["b_out"]
    x0, u0 = rng.normal(size=N), rng.normal(size=N_IN)
    # the map's Jacobian per unit time: (step(x) - x) / dt, with dt = 100 alpha (tau = 100)
    ref_jac = _fd_jacobian(
        lambda x: (-x + _relu(x) @ w_rec.T + u0 @ w_in.T + p["b_rec"]) / 100.0, x0)
    scipy.io.savemat(tmp_path / "s.mat", {"net": p})  # one MATLAB struct of the weights
    for name in ("w.npz", "w.mat", "s.mat"):
        cfg = {"alpha": alpha, "rec_noise": 0.05, **({"dale_ratio": 0.8} if dale else {})}
        m = rl.from_file(tmp_path / name, config=cfg)
        assert m.form == "potential" and m.dale == dale and m.dt == pytest.approx(20.0)
        assert float(m.noise_std) == pytest.approx(0.05)
        if dale:
            assert m.readout_from == "excitatory" and m.n_excitatory == N_EXC
        traj = rl.simulate(m, us)
        np.testing.assert_allclose(traj.states, states, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(traj.outputs, outputs, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(m.jacobian(jnp.asarray(x0, jnp.float32),
                                              jnp.asarray(u0, jnp.float32)),
                                   ref_jac, rtol=1e-4, atol=1e-6)
        # the connectivity is a constraint: masked entries are exactly 0
        np.testing.assert_array_equal(np.asarray(m.w_rec_mask), p["rec_connectivity"] != 0)


def test_psychrnn_bad_dale_matrices_are_refused(tmp_path):
    rng = np.random.default_rng(6)
    p = _psy_weights(rng, True)
    p["Dale_rec"] = p["Dale_rec"] + 0.5 * np.eye(N, k=1)
    np.savez(tmp_path / "a.npz", **p)
    with pytest.raises(ValueError, match="Dale_rec"):
        rl.from_file(tmp_path / "a.npz", config={"alpha": 0.1})
    p = _psy_weights(rng, True)
    p["Dale_out"] = p["Dale_rec"].copy()
    np.savez(tmp_path / "b.npz", **p)
    with pytest.raises(ValueError, match="Dale_out reads the inhibitory units"):
        rl.from_file(tmp_path / "b.npz", config={"alpha": 0.1})
    p = _psy_weights(rng, True)
    np.savez(tmp_path / "c.npz", **p)
    with pytest.raises(ValueError, match="dale_ratio=0.5"):
        rl.from_file(tmp_path / "c.npz", config={"alpha": 0.1, "dale_ratio": 0.5})


# ------------------------------------------------------------------------------ rnnlab


def test_rnnlab_own_files(tmp_path):
    net = rl.CTRNN(N_IN, N, N_OUT, key=jax.random.PRNGKey(0), dale=True, autapses=False,
                   form="rate", dt=5.0, tau=50.0)
    rl.save(tmp_path / "m.safetensors", net)
    us = jax.random.normal(jax.random.PRNGKey(1), (T, N_IN))
    ref = rl.simulate(net, us).outputs
    back = rl.from_file(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(rl.simulate(back, us).outputs, ref)
    # effective weights + configuration as JSON text (npz and mat)
    w = {k: np.asarray(v) for k, v in net.effective_weights().items()}
    cfg = json.dumps(net.config())
    masks = {"w_rec_mask": np.asarray(net.w_rec_mask, float)}
    np.savez(tmp_path / "m.npz", **w, **masks, config=np.array(cfg))
    scipy.io.savemat(tmp_path / "m.mat", {**w, **masks, "config": cfg})
    for name in ("m.npz", "m.mat"):
        m = rl.from_file(tmp_path / name)
        assert m.dale and m.n_excitatory == net.n_excitatory and m.form == "rate"
        np.testing.assert_allclose(rl.simulate(m, us).outputs, ref, rtol=1e-6, atol=1e-7)
    # a Dale violation in the effective weights is named
    w_bad = dict(w)
    w_bad["w_rec"] = w["w_rec"].copy()
    w_bad["w_rec"][1, 0] = -0.3
    np.savez(tmp_path / "bad.npz", **w_bad, config=np.array(cfg))
    with pytest.raises(ValueError, match=r"w_rec violates its Dale signs.*w_rec\[1, 0\]"):
        rl.from_file(tmp_path / "bad.npz")


def test_rnnlab_gated_and_vanilla_in_export_layout(tmp_path):
    # the layout rnnlab.export writes: effective weights, vectors as columns in .mat, the
    # class in 'model' and the configuration as JSON text in 'config'
    us = jax.random.normal(jax.random.PRNGKey(2), (T, N_IN))
    for cls in (rl.GRU, rl.LSTM, rl.VanillaRNN):
        net = cls(N_IN, 6, N_OUT, key=jax.random.PRNGKey(5))
        w = {k: np.asarray(v, np.float64) for k, v in net.effective_weights().items()}
        contents = {**w, "h0": np.asarray(net.initial_state(), np.float64),
                    "model": cls.__name__, "config": json.dumps(net.config())}
        scipy.io.savemat(tmp_path / "g.mat", contents, oned_as="column")
        m = rl.from_file(tmp_path / "g.mat", format="rnnlab")
        assert type(m) is cls
        np.testing.assert_allclose(rl.simulate(m, us).outputs, rl.simulate(net, us).outputs,
                                   rtol=1e-6, atol=1e-7)


def test_rnnlab_export_round_trip(tmp_path):
    export = getattr(rl.interop, "export", None)
    if export is None:  # rl.export comes with the PyTorch/export half of the interop package
        pytest.skip("rnnlab.interop.export is not in this tree")
    net = rl.CTRNN(N_IN, N, N_OUT, key=jax.random.PRNGKey(8), tau=np.linspace(50, 150, N),
                   dale=True, form="potential")
    us = jax.random.normal(jax.random.PRNGKey(9), (T, N_IN))
    for name in ("e.npz", "e.mat"):
        export(net, tmp_path / name)
        m = rl.from_file(tmp_path / name)
        assert m.dale and m.tau_per_unit
        np.testing.assert_allclose(rl.simulate(m, us).outputs, rl.simulate(net, us).outputs,
                                   rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------------------ pickle


class _Tripwire:
    """Unpickling this creates a file: the proof that a loader ran the pickle's code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.mark.parametrize("name,protocol", [("model.pt", None), ("model.pth", None),
                                           ("weights.pkl", None), ("weights", None),
                                           ("old.pkl", 0)])
def test_pickles_are_never_unpickled(tmp_path, name, protocol):
    marker = tmp_path / "unpickled"
    (tmp_path / name).write_bytes(pickle.dumps(_Tripwire(marker), protocol=protocol))
    with pytest.raises(PickleRefused) as e:
        rl.from_file(tmp_path / name)
    assert not marker.exists()
    msg = str(e.value)
    assert str(tmp_path / name) in msg and "never unpickles" in msg
    assert "import torch, safetensors.torch" in msg
    assert "safetensors.torch.save_file(" in msg and "weights_only=True" in msg


def test_the_printed_conversion_works(tmp_path):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    p = _trb_weights(rng, dale=False)
    state = {"input_layer.weight": torch.tensor(p["W_inp"]),
             "recurrent_layer.weight": torch.tensor(p["W_rec"]),
             "recurrent_layer.bias": torch.tensor(p["bias_rec"]),
             "output_layer.weight": torch.tensor(p["W_out"])}
    torch.save(state, tmp_path / "net.pt")  # torch's zip format, a pickle inside
    with pytest.raises(PickleRefused) as e:
        read_arrays(tmp_path / "net.pt")
    lines = [ln.strip() for ln in str(e.value).splitlines() if ln.startswith("    ")]
    assert len(lines) == 2
    exec("\n".join(lines), {})  # the user's two lines, run in their (trusted) environment
    m = rl.from_file(tmp_path / "net.safetensors", dt=1, tau=10, activation="tanh")
    p["y_init"] = np.zeros(N)
    _check_trainrnnbrain(m, p, np.tanh, 1.0, 10.0, rng)


def test_the_content_decides_not_the_suffix(tmp_path):
    rng = np.random.default_rng(8)
    with open(tmp_path / "weights.bin", "wb") as f:  # an npz under a pickle's suffix
        np.savez(f, **_trb_weights(rng))
    m = rl.from_file(tmp_path / "weights.bin", dt=1, tau=10)
    assert m.n_hidden == N


def test_npz_with_objects_is_refused(tmp_path):
    np.savez(tmp_path / "o.npz", W_rec=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="never unpickles"):
        rl.from_file(tmp_path / "o.npz")

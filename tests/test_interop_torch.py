"""rl.from_torch / rl.to_torch: PyTorch networks in and out of rnnlab, compared with the torch
modules themselves (float64 where the weights allow: they are float32 values)."""

import functools
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnlab as rl
from rnnlab.analysis._linear import to_float64

torch = pytest.importorskip("torch")
nn = torch.nn

FIXTURES = Path(__file__).parent / "fixtures"


def _f32_values(module):
    """Round the module's parameters to float32 values, then compute in float64: rnnlab holds
    float32 weights, so both sides then use identical numbers."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.float().double() if p.dtype == torch.float64 else p)
    return module.double()


def _simulate64(model, x):
    """rnnlab's trajectory in float64 (weights cast exactly), x [B, T, n_in]."""
    with jax.enable_x64(True):
        m = to_float64(model)
        traj = rl.simulate(m, jnp.asarray(x, jnp.float64),
                           initial_state=jnp.asarray(m.initial_state(), jnp.float64))
        return np.array(traj.states), np.array(traj.outputs)


def _jacobian64(model, h, u):
    """rnnlab's Jacobian of one step of the map in float64 (I + J for maps, I + dt J for CT)."""
    with jax.enable_x64(True):
        m = to_float64(model)
        j = np.asarray(m.jacobian(jnp.asarray(h, jnp.float64), jnp.asarray(u, jnp.float64)))
    scale = model.dt if model.is_continuous else 1.0
    return np.eye(len(h)) + scale * j


def _torch_jacobian(step, h, u):
    return torch.autograd.functional.jacobian(
        lambda s: step(s, torch.from_numpy(u)), torch.from_numpy(h)).numpy()


# ------------------------------------------------------------------ nn.RNN / GRU / LSTM


@pytest.mark.parametrize("kind,nonlinearity,batch_first", [
    ("RNN", "tanh", True), ("RNN", "relu", False), ("GRU", None, True), ("GRU", None, False),
    ("LSTM", None, True),
])
def test_torch_layers_outputs_and_jacobians(kind, nonlinearity, batch_first):
    n_in, n_hidden, n_out = 3, 8, 2
    torch.manual_seed(1)
    args = {"nonlinearity": nonlinearity} if nonlinearity else {}
    layer = _f32_values(getattr(nn, kind)(n_in, n_hidden, batch_first=batch_first, **args))
    readout = _f32_values(nn.Linear(n_hidden, n_out))
    x = np.random.default_rng(2).normal(size=(4, 15, n_in))
    x_t = torch.from_numpy(x if batch_first else x.transpose(1, 0, 2))
    with torch.no_grad():
        out, _ = layer(x_t)
        out = out.numpy() if batch_first else out.numpy().transpose(1, 0, 2)
        y = readout(torch.from_numpy(out)).numpy()

    model = rl.from_torch(layer)  # outputs = the hidden state, as the module returns it
    # nn.RNN's two biases become VanillaRNN's one, b_ih + b_hh rounded to float32
    tol = dict(rtol=1e-7, atol=1e-7) if kind == "RNN" else dict(rtol=1e-12, atol=1e-12)
    states, outputs = _simulate64(model, x)
    np.testing.assert_allclose(outputs, out, **tol)
    model_ro = rl.from_torch(layer, readout=readout)
    _, outputs_ro = _simulate64(model_ro, x)
    np.testing.assert_allclose(outputs_ro, y, **tol)

    # the Jacobian of one step of the module (torch autograd) against rnnlab's
    n = n_hidden
    h = states[0, 7]
    u = x[0, 8]

    def step(s, ut):
        if kind == "LSTM":
            _, (hh, cc) = layer(ut[None, None] if batch_first else ut[None, None],
                                (s[None, None, :n], s[None, None, n:]))
            return torch.cat([hh[0, 0], cc[0, 0]])
        _, hh = layer(ut[None, None], s[None, None])
        return hh[0, 0]

    np.testing.assert_allclose(_jacobian64(model, h, u), _torch_jacobian(step, h, u),
                               rtol=1e-10 if kind != "RNN" else 1e-6, atol=1e-12)


@pytest.mark.parametrize("kind", ["RNNCell", "GRUCell", "LSTMCell"])
def test_torch_cells_step(kind):
    """One call of a cell is one step of the imported model (and a cell without biases)."""
    torch.manual_seed(3)
    cell = _f32_values(getattr(nn, kind)(3, 8, bias=kind != "GRUCell"))
    model = rl.from_torch(cell)
    rng = np.random.default_rng(3)
    h = rng.normal(size=model.state_size)
    u = rng.normal(size=3)
    with torch.no_grad():
        if kind == "LSTMCell":
            hh, cc = cell(torch.from_numpy(u)[None], (torch.from_numpy(h[None, :8]),
                                                      torch.from_numpy(h[None, 8:])))
            ref = np.concatenate([hh[0].numpy(), cc[0].numpy()])
        else:
            ref = cell(torch.from_numpy(u)[None], torch.from_numpy(h)[None])[0].numpy()
    with jax.enable_x64(True):
        ours = np.asarray(to_float64(model).step(jnp.asarray(h), jnp.asarray(u)))
    np.testing.assert_allclose(ours, ref, rtol=1e-7 if kind == "RNNCell" else 1e-12,
                               atol=1e-7 if kind == "RNNCell" else 1e-12)


def test_torch_activations_match_rnnlabs():
    """to_torch writes each named activation with torch functions: the same numbers."""
    from rnnlab.interop._torch import _torch_activations

    z = np.linspace(-6, 6, 97)
    for name, fn in _torch_activations().items():
        with jax.enable_x64(True):
            ours = np.asarray(rl.models.ACTIVATIONS[name](jnp.asarray(z)))
        np.testing.assert_allclose(fn(torch.from_numpy(z)).numpy(), ours, rtol=1e-12,
                                   atol=1e-12, err_msg=name)


def test_layer_checks():
    with pytest.raises(ValueError, match="num_layers=2"):
        rl.from_torch(nn.GRU(2, 4, num_layers=2))
    with pytest.raises(ValueError, match="bidirectional"):
        rl.from_torch(nn.RNN(2, 4, bidirectional=True))
    with pytest.raises(TypeError, match="nn.Linear"):
        rl.from_torch(nn.GRU(2, 4), readout=np.eye(4))
    with pytest.raises(TypeError, match="does not know Sequential"):
        rl.from_torch(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        rl.from_torch(np.eye(3))


def test_missing_torch_gives_the_install_line(monkeypatch):
    from rnnlab.interop import _torch as it

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"pip install 'rnnlab\[torch\]'"):
        it.from_torch(object())


# ------------------------------------------------------------------ trainRNNbrain and pyrnn


class TrainRNNbrainLike(nn.Module):
    """trainRNNbrain's RNN_torch update rule (its parameter names; written from its equations,
    states [N, T, batch]): s' = s + alpha (-s + f(W_rec s + W_inp (u + n_in) + bias) + n_rec),
    n_rec = sqrt(2 / alpha) sigma_rec xi, n_in = sqrt(2 / alpha) sigma_inp xi';
    f(z) = relu(slope z); outputs W_out s over all states, the first being y_init."""

    def __init__(self, n, n_in, n_out, *, slope=1.0, dale=True):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.N, self.dt, self.tau = n, 1.0, 10.0
        self.alpha = torch.tensor(self.dt / self.tau)
        self.sigma_rec, self.sigma_inp = torch.tensor(0.03), torch.tensor(0.02)
        self.gamma = 0.0
        self.activation_args = {"name": "relu", "slope": slope}
        self.bias_init_amp = torch.tensor(0.1)
        n_e = int(0.8 * n)
        sign = torch.cat([torch.ones(n_e), -torch.ones(n - n_e)])
        w = torch.rand(n, n, generator=g) / n
        self.dale_mask = sign if dale else None
        self.recurrent_mask = torch.ones(n, n) - torch.eye(n)
        self.input_mask = (torch.rand(n, n_in, generator=g) > 0.2).float()
        self.output_mask = torch.ones(n_out, n)
        self.W_rec = nn.Parameter(w * (sign[None, :] if dale else 1.0) * self.recurrent_mask)
        self.W_inp = nn.Parameter(torch.rand(n, n_in, generator=g) * self.input_mask)
        self.W_out = nn.Parameter(torch.rand(n_out, n, generator=g))
        self.bias = nn.Parameter(0.1 * torch.rand(n, generator=g))
        self.y_init = 0.1 * torch.rand(n, generator=g)

    def forward(self, u, w_noise=True, generator=None):  # u [n_in, T, batch]
        T, batch = u.shape[1], u.shape[2]
        rec = torch.zeros(self.N, T, batch, dtype=u.dtype)
        inp = torch.zeros(u.shape[0], T, batch, dtype=u.dtype)
        if w_noise:
            rec = torch.sqrt(2 / self.alpha) * self.sigma_rec * torch.randn(
                self.N, T, batch, generator=generator, dtype=u.dtype)
            inp = torch.sqrt(2 / self.alpha) * self.sigma_inp * torch.randn(
                u.shape[0], T, batch, generator=generator, dtype=u.dtype)
        slope = self.activation_args["slope"]
        s = self.y_init.to(u.dtype)[:, None].expand(-1, batch)
        states = [s]
        for t in range(1, T):
            z = self.W_rec @ s + self.W_inp @ (u[:, t - 1] + inp[:, t - 1]) + self.bias[:, None]
            s = s + self.alpha * (-s + torch.relu(slope * z) + rec[:, t - 1]
                                  - self.gamma * s**3)
            states.append(s)
        states = torch.stack(states, 1)
        return states, torch.einsum("oj,jtk->otk", self.W_out, states)


def _noise_like_module(n, n_in, T, batch, seed):
    g = torch.Generator().manual_seed(seed)
    xi_rec = torch.randn(n, T, batch, generator=g, dtype=torch.float64).numpy()
    xi_in = torch.randn(n_in, T, batch, generator=g, dtype=torch.float64).numpy()
    return xi_in, xi_rec


@pytest.mark.parametrize("slope,gamma", [(1.0, 0.0), (1.7, 0.0), (1.0, 0.1)])
def test_trainrnnbrain_ctrnn_outputs_noise_and_jacobian(slope, gamma):
    n, n_in, n_out, T, batch = 10, 3, 2, 25, 2
    module = TrainRNNbrainLike(n, n_in, n_out, slope=slope)
    module.gamma = gamma
    module = _f32_values(module)
    module.y_init = module.y_init.float().double()
    module.alpha = torch.tensor(module.dt / module.tau, dtype=torch.float64)
    # a slope is folded into the float32 weights (rounded): then float32 agreement only
    tol = dict(rtol=1e-11, atol=1e-12) if slope == 1.0 else dict(rtol=1e-6, atol=1e-7)
    u = np.random.default_rng(4).normal(size=(n_in, T, batch))
    with torch.no_grad():
        s_t, y_t = module(torch.from_numpy(u), w_noise=False)
    model = rl.from_torch(module)
    if gamma:  # the cubic leak: a FunctionModel of its vector field
        assert isinstance(model, rl.FunctionModel) and model.dt == 1.0
    else:
        assert model.form == "rate" and model.dale and not model.autapses
        assert model.n_excitatory == 8
    x = u.transpose(2, 1, 0)[:, :-1]  # rnnlab [batch, T - 1, n_in]
    states, outputs = _simulate64(model, x)
    np.testing.assert_allclose(states, s_t.numpy().transpose(2, 1, 0)[:, 1:], **tol)
    np.testing.assert_allclose(outputs, y_t.numpy().transpose(2, 1, 0)[:, 1:], **tol)

    h, ut = states[0, 10], x[0, 11]

    def step(s, uu):
        z = module.W_rec @ s + module.W_inp @ uu + module.bias
        return s + module.alpha * (-s + torch.relu(slope * z) - gamma * s**3)

    np.testing.assert_allclose(_jacobian64(model, h, ut), _torch_jacobian(step, h, ut),
                               rtol=1e-10 if slope == 1.0 else 1e-6, atol=1e-12)
    if gamma:
        return

    # noise: the module's draws, given to rnnlab's step, give the module's noisy trajectory
    with torch.no_grad():
        s_noisy, _ = module(torch.from_numpy(u), generator=torch.Generator().manual_seed(9))
    xi_in, xi_rec = _noise_like_module(n, n_in, T, batch, 9)
    with jax.enable_x64(True):
        m = to_float64(model)
        w = m._stepping_weights()
        for b in range(batch):
            terms = m._input_terms(w, jnp.asarray(x[b]), (jnp.asarray(xi_in[:, :-1, b].T),
                                                          jnp.asarray(xi_rec[:, :-1, b].T)))
            ours = jax.lax.scan(lambda h, t: (lambda s: (s, s))(m._advance(w, h, t)),
                                m.initial_state(), terms)[1]
            # (the noise levels are float32 data in rnnlab: float32 agreement)
            np.testing.assert_allclose(ours, s_noisy.numpy()[:, 1:, b].T, rtol=1e-6, atol=1e-8)



def test_trainrnnbrain_constraints_are_checked_not_trusted():
    module = TrainRNNbrainLike(10, 3, 2)
    with torch.no_grad():
        module.W_rec[0, 9] = 0.5  # an inhibitory column made excitatory
    with pytest.raises(ValueError, match="Dale"):
        rl.from_torch(module)
    assert not rl.from_torch(module, dale=False).dale
    module = TrainRNNbrainLike(10, 3, 2)
    with torch.no_grad():
        module.W_inp[0, 0] = -0.5  # its Dale networks keep W_inp >= 0
    with pytest.raises(ValueError, match="negative"):
        rl.from_torch(module)
    module = TrainRNNbrainLike(10, 3, 2)
    with torch.no_grad():
        module.W_rec[3, 3] = 0.2  # an autapse, masked by recurrent_mask
    with pytest.raises(ValueError, match="non-zero"):
        rl.from_torch(module)
    module = TrainRNNbrainLike(10, 3, 2)
    module.gamma = 0.1
    i, j = (module.input_mask == 0).nonzero()[0]
    with torch.no_grad():
        module.W_inp[i, j] = 0.5  # masked: the cubic model's constraints are checked too
    with pytest.raises(ValueError, match="w_in has 1 non-zero"):
        rl.from_torch(module)


class OldTrainRNNbrainLike(nn.Module):
    """trainRNNbrain's earlier RNN_torch layout: three nn.Linear layers (``recurrent_layer``
    with an optional bias, ``input_layer``, ``output_layer``), an ``activation`` callable and,
    in the earliest versions, ``dale_mask = sign(W_rec)`` (a matrix)."""

    def __init__(self, n, n_in, n_out):
        super().__init__()
        g = torch.Generator().manual_seed(4)
        self.N, self.dt, self.tau = n, 2.0, 10.0
        self.alpha = torch.tensor(self.dt / self.tau, dtype=torch.float64)
        self.sigma_rec, self.sigma_inp = torch.tensor(0.0), torch.tensor(0.0)
        self.activation = lambda x: torch.maximum(x, torch.tensor(0.0))
        self.recurrent_layer = nn.Linear(n, n, bias=True)
        self.input_layer = nn.Linear(n_in, n, bias=False)
        self.output_layer = nn.Linear(n, n_out, bias=False)
        n_e = int(0.8 * n)
        sign = torch.cat([torch.ones(n_e), -torch.ones(n - n_e)])
        with torch.no_grad():
            w = torch.rand(n, n, generator=g) / n * sign[None, :]
            w.fill_diagonal_(0.0)
            self.recurrent_layer.weight.copy_(w)
            self.input_layer.weight.copy_(torch.rand(n, n_in, generator=g))
            self.output_layer.weight.copy_(torch.rand(n_out, n, generator=g))
        self.dale_mask = torch.sign(w)
        self.recurrent_mask = torch.ones(n, n) - torch.eye(n)
        self.y_init = torch.zeros(n)

    def forward(self, u):  # u [n_in, T, batch], no noise
        s = self.y_init.to(u.dtype)[None, :].expand(u.shape[2], -1)
        states = [s]
        for t in range(u.shape[1] - 1):
            z = self.recurrent_layer(s) + self.input_layer(u[:, t].T)
            s = (1 - self.alpha) * s + self.alpha * self.activation(z)
            states.append(s)
        states = torch.stack(states, 1)  # [batch, T, N]
        return states, self.output_layer(states)


def test_trainrnnbrain_earlier_layout():
    module = _f32_values(OldTrainRNNbrainLike(10, 3, 2))
    u = np.random.default_rng(7).normal(size=(3, 20, 2))
    with torch.no_grad():
        s_t, y_t = module(torch.from_numpy(u))
    model = rl.from_torch(module)
    assert model.form == "rate" and model.dale and not model.autapses and model.dt == 2.0
    states, outputs = _simulate64(model, u.transpose(2, 1, 0)[:, :-1])
    np.testing.assert_allclose(states, s_t.numpy()[:, 1:], rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(outputs, y_t.numpy()[:, 1:], rtol=1e-11, atol=1e-12)


class PyrnnLike(nn.Module):
    """pyrnn's RNN: h' = tanh(w_rec(h) + w_in(u)), output w_out(h) (three nn.Linear)."""

    activation = nn.Tanh()

    def __init__(self, n_in, n, n_out):
        super().__init__()
        self.w_in = nn.Linear(n_in, n, bias=False)
        self.w_rec = nn.Linear(n, n, bias=True)
        self.w_out = nn.Linear(n, n_out, bias=False)

    def forward(self, x):  # [batch, T, n_in]
        h = torch.zeros(x.shape[0], self.w_rec.in_features, dtype=x.dtype)
        out = []
        for t in range(x.shape[1]):
            h = self.activation(self.w_rec(h) + self.w_in(x[:, t]))
            out.append(self.w_out(h))
        return torch.stack(out, 1), h


def test_pyrnn_rnn():
    torch.manual_seed(5)
    module = _f32_values(PyrnnLike(3, 8, 2))
    x = np.random.default_rng(6).normal(size=(3, 12, 3))
    with torch.no_grad():
        y, h_last = module(torch.from_numpy(x))
    model = rl.from_torch(module)
    assert isinstance(model, rl.VanillaRNN)
    states, outputs = _simulate64(model, x)
    np.testing.assert_allclose(outputs, y.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(states[:, -1], h_last.numpy(), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ export and round trips


@functools.cache
def _models():
    k = jax.random.PRNGKey
    ctrnn = rl.CTRNN(3, 8, 2, key=k(0), tau=np.linspace(20, 80, 8), noise_std=0.1,
                     initial_state=np.linspace(-0.3, 0.3, 8))
    dale = rl.CTRNN(3, 10, 2, key=k(1), dale=True, form="rate", autapses=False,
                    readout="excitatory")
    vanilla = rl.VanillaRNN(3, 8, 2, key=k(2), activation="relu")
    return {"ctrnn": ctrnn, "dale_rate": dale, "vanilla": vanilla,
            "gru": rl.GRU(3, 8, 2, key=k(3)), "lstm": rl.LSTM(3, 8, 2, key=k(4))}


@pytest.mark.parametrize("name", ["ctrnn", "dale_rate", "vanilla", "gru", "lstm"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_to_torch_same_outputs_and_round_trip(name, batch_first):
    model = _models()[name]
    module = rl.to_torch(model, batch_first=batch_first)
    x = np.array(jax.random.normal(jax.random.PRNGKey(7), (3, 20, 3)))
    with torch.no_grad():
        xin = torch.from_numpy(x if batch_first else x.transpose(1, 0, 2).copy()).float()
        y, s = module(xin)
        y1, s1 = module(xin[0] if batch_first else xin[:, 0])  # one unbatched trial
    y, s = y.numpy(), s.numpy()
    if not batch_first:
        y, s = y.transpose(1, 0, 2), s.transpose(1, 0, 2)
    traj = rl.simulate(model, x)
    np.testing.assert_allclose(y, traj.outputs, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(s, traj.states, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(y1.numpy(), traj.outputs[0], rtol=2e-5, atol=2e-6)
    # the exact round trip
    assert rl.from_torch(module) is model
    # trained further in torch: from_torch reads the new weights, same outputs as the module
    # (scaled, so that zeros and signs, the constraints, still hold)
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(1.01)
        y2 = module(xin)[0].numpy()
    if not batch_first:
        y2 = y2.transpose(1, 0, 2)
    back = rl.from_torch(module)
    assert back is not model and type(back) is type(model)
    np.testing.assert_allclose(rl.simulate(back, x).outputs, y2, rtol=2e-5, atol=2e-6)
    if name == "dale_rate":  # constraints are checked, not trusted
        with torch.no_grad():
            module.W_rec.add_(0.01)
        with pytest.raises(ValueError, match="constraints"):
            rl.from_torch(module)


def test_torch_import_round_trip_is_exact():
    """torch -> rnnlab -> torch -> rnnlab: the weights come back bit for bit."""
    torch.manual_seed(8)
    gru = nn.GRU(3, 8, batch_first=True)
    model = rl.from_torch(gru)
    module = rl.to_torch(model)
    for ours, theirs in (("weight_ih_l0", "weight_ih_l0"), ("bias_hh_l0", "bias_hh_l0")):
        torch.testing.assert_close(getattr(module.layer, ours), getattr(gru, theirs),
                                   rtol=0, atol=0)
    again = rl.from_torch(module)
    for k, v in model.effective_weights().items():
        np.testing.assert_array_equal(again.effective_weights()[k], v)


def test_noisy_ctrnn_module_noise_level():
    """The exported module's recurrent noise has the rnnlab variance: per step, the noisy minus
    the noise-free state has std sqrt(2 alpha) noise_std."""
    model = rl.CTRNN(3, 8, 2, key=jax.random.PRNGKey(0), dt=10.0, tau=40.0, noise_std=0.2)
    module = rl.to_torch(model)
    x = torch.zeros(64, 1, 3)
    with torch.no_grad():
        _, s_free = module(x)
        _, s_noisy = module(x, noise=True, generator=torch.Generator().manual_seed(0))
    d = (s_noisy - s_free).numpy().ravel()
    expected = np.sqrt(2 * 0.25) * 0.2
    assert abs(d.std() / expected - 1) < 0.15


# ------------------------------------------------------------------ a network trained in torch


def test_flipflop_gru_trained_in_torch_has_eight_stable_corners():
    """A 24-unit nn.GRU trained in PyTorch on the 3-bit flip-flop (fixture made by
    fixtures/make_torch_flipflop_gru.py, a state dict in safetensors): imported, its zero-input
    map has 8 stable fixed points whose readouts sit at the 8 corners of the output cube."""
    from safetensors.torch import load_file

    state = load_file(str(FIXTURES / "torch_flipflop_gru24.safetensors"))
    gru = nn.GRU(3, 24, batch_first=True)
    readout = nn.Linear(24, 3)
    gru.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("gru.")})
    readout.load_state_dict({k[8:]: v for k, v in state.items() if k.startswith("readout.")})
    model = rl.from_torch(gru, readout=readout)

    rng = np.random.default_rng(0)
    pulses = (rng.random((32, 60, 3)) < 0.05) * rng.choice([-1.0, 1.0], (32, 60, 3))
    pulses[:, 0] = rng.choice([-1.0, 1.0], (32, 3))
    traj = rl.simulate(model, pulses.astype(np.float32))
    starts = rl.analysis.sample_states(traj, 128, key=jax.random.PRNGKey(0))
    fps = rl.find_fixed_points(model, np.zeros(3), starts)
    stable = np.asarray([s == "stable" for s in fps.stability])
    assert stable.sum() == 8
    corners = np.asarray(jax.vmap(model.readout)(jnp.asarray(fps.states[stable])))
    assert np.all(np.abs(corners) > 0.7)
    assert len({tuple(np.sign(c).astype(int)) for c in corners}) == 8

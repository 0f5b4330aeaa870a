"""VanillaRNN, GRU, LSTM: simulation against numpy references (and PyTorch's cells), gradients
against finite differences, constraints, noise, save/load, argument errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest


import rnnlab as rl


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# ------------------------------------------------------------------ independent numpy references


def np_vanilla(w, inputs, h0):
    h = np.array(h0, np.float64)
    out = []
    for u in inputs:
        h = np.tanh(w["w_rec"] @ h + w["w_in"] @ u + w["b_rec"])
        out.append(h.copy())
    states = np.array(out)
    return states, states @ w["w_out"].T + w["b_out"]


def np_gru(w, inputs, h0):
    """torch.nn.GRU's equations, gate order (r, z, n)."""
    n = w["w_rec"].shape[1]
    W_ir, W_iz, W_in_ = np.split(w["w_in"], 3)
    W_hr, W_hz, W_hn = np.split(w["w_rec"], 3)
    b_ir, b_iz, b_in_ = np.split(w["b_in"], 3)
    b_hr, b_hz, b_hn = np.split(w["b_rec"], 3)
    h = np.array(h0, np.float64)
    out = []
    for u in inputs:
        r = sigmoid(W_ir @ u + b_ir + W_hr @ h + b_hr)
        z = sigmoid(W_iz @ u + b_iz + W_hz @ h + b_hz)
        cand = np.tanh(W_in_ @ u + b_in_ + r * (W_hn @ h + b_hn))
        h = (1 - z) * cand + z * h
        out.append(h.copy())
    states = np.array(out)
    assert states.shape[1] == n
    return states, states @ w["w_out"].T + w["b_out"]


def np_lstm(w, inputs, s0):
    """torch.nn.LSTM's equations, gate order (i, f, g, o); state (h, c)."""
    n = w["w_rec"].shape[1]
    h, c = np.array(s0[:n], np.float64), np.array(s0[n:], np.float64)
    out = []
    for u in inputs:
        pre = w["w_in"] @ u + w["b_in"] + w["w_rec"] @ h + w["b_rec"]
        i, f, g, o = np.split(pre, 4)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        out.append(np.concatenate([h, c]))
    states = np.array(out)
    return states, states[:, :n] @ w["w_out"].T + w["b_out"]


def random_gated(rng, n_gates, n_in, n, n_out, scale=0.6):
    return {
        "w_in": rng.normal(size=(n_gates * n, n_in)) * scale,
        "w_rec": rng.normal(size=(n_gates * n, n)) * scale,
        "b_in": rng.normal(size=(n_gates * n,)) * 0.3,
        "b_rec": rng.normal(size=(n_gates * n,)) * 0.3,
        "w_out": rng.normal(size=(n_out, n)),
        "b_out": rng.normal(size=(n_out,)),
    }


def random_vanilla(rng, n_in, n, n_out, g=1.2):
    return {
        "w_rec": rng.normal(size=(n, n)) * g / np.sqrt(n),
        "w_in": rng.normal(size=(n, n_in)),
        "w_out": rng.normal(size=(n_out, n)),
        "b_rec": rng.normal(size=(n,)) * 0.1,
        "b_out": rng.normal(size=(n_out,)),
    }


def build(kind, rng, n_in=3, n=12, n_out=2, **kwargs):
    if kind == "vanilla":
        w = random_vanilla(rng, n_in, n, n_out)
        model = rl.VanillaRNN.from_weights(
            w["w_rec"], w["w_in"], w["w_out"], w["b_rec"], w["b_out"], **kwargs)
        return model, w, np_vanilla
    n_gates, cls, ref = {"gru": (3, rl.GRU, np_gru), "lstm": (4, rl.LSTM, np_lstm)}[kind]
    w = random_gated(rng, n_gates, n_in, n, n_out)
    model = cls.from_weights(
        w["w_in"], w["w_rec"], w["w_out"], w["b_in"], w["b_rec"], w["b_out"], **kwargs)
    return model, w, ref


KINDS = ["vanilla", "gru", "lstm"]


@pytest.mark.parametrize("kind", KINDS)
def test_from_weights_simulation_matches_numpy(kind):
    rng = np.random.default_rng(1)
    model, w, ref = build(kind, rng)
    inputs = rng.normal(size=(40, 3))
    s0 = rng.normal(size=(model.state_size,)) * 0.5
    traj = rl.simulate(model, jnp.asarray(inputs, jnp.float32), initial_state=s0)
    states, outs = ref(w, inputs, s0)
    np.testing.assert_allclose(np.asarray(traj.states), states, atol=2e-5)
    np.testing.assert_allclose(np.asarray(traj.outputs), outs, atol=1e-4)
    n = model.n_hidden
    np.testing.assert_allclose(np.asarray(traj.rates), states[:, :n], atol=2e-5)
    # `step` one at a time is the same map as the scanned `unroll`.
    s = jnp.asarray(s0, jnp.float32)
    for t in range(5):
        s = model.step(s, jnp.asarray(inputs[t], jnp.float32))
        np.testing.assert_allclose(np.asarray(s), states[t], atol=2e-5)
    # vector_field of a discrete map is step(h) - h.
    u = jnp.asarray(inputs[0], jnp.float32)
    np.testing.assert_allclose(
        np.asarray(model.vector_field(jnp.asarray(s0, jnp.float32), u)),
        states[0] - s0, atol=2e-5)
    assert model.is_continuous is False


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_matches_pytorch_cells(kind):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    n_in, n, T = 3, 7, 15
    net = (torch.nn.GRU if kind == "gru" else torch.nn.LSTM)(n_in, n, batch_first=True)
    lin = torch.nn.Linear(n, 2)
    p = {k: v.detach().numpy().astype(np.float64) for k, v in net.named_parameters()}
    cls = rl.GRU if kind == "gru" else rl.LSTM
    model = cls.from_weights(p["weight_ih_l0"], p["weight_hh_l0"], lin.weight.detach().numpy(),
                             p["bias_ih_l0"], p["bias_hh_l0"], lin.bias.detach().numpy())
    x = torch.randn(1, T, n_in)
    with torch.no_grad():
        hs, _ = net(x)
        y = lin(hs)
    traj = rl.simulate(model, jnp.asarray(x[0].numpy()))
    np.testing.assert_allclose(np.asarray(traj.rates), hs[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(np.asarray(traj.outputs), y[0].numpy(), atol=1e-5)


def _to64(model):
    return jax.tree.map(
        lambda x: x.astype(jnp.float64) if eqx.is_inexact_array(x) else x, model)


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_match_finite_differences(kind):
    rng = np.random.default_rng(2)
    with jax.enable_x64(True):
        model, _, _ = build(kind, rng, trainable=(
            ("w_rec", "w_in", "w_out", "b_rec", "b_out", "h0") if kind == "vanilla"
            else ("w_rec", "w_in", "b_rec", "b_in", "w_out", "b_out", "h0")))
        model = _to64(model)
        inputs = jnp.asarray(rng.normal(size=(12, 3)))
        target = jnp.asarray(rng.normal(size=(12, 2)))

        @eqx.filter_jit
        def loss(m):
            states = m.unroll(inputs, m.initial_state())
            return jnp.mean((m.readout_all(states) - target) ** 2)

        params, static = eqx.partition(model, model.trainable_filter())
        grads = jax.grad(lambda p: loss(eqx.combine(p, static)))(params)
        leaves, treedef = jax.tree.flatten(params)
        g_leaves = jax.tree.leaves(grads)
        assert len(leaves) == 7 if kind != "vanilla" else len(leaves) == 6
        eps = 1e-6
        for leaf, g in zip(leaves, g_leaves):
            direction = jnp.asarray(rng.normal(size=leaf.shape))
            # a random direction in this leaf only: the directional derivative <g, d>
            plus = [lf + eps * direction if lf is leaf else lf for lf in leaves]
            minus = [lf - eps * direction if lf is leaf else lf for lf in leaves]
            fd = (loss(eqx.combine(jax.tree.unflatten(treedef, plus), static))
                  - loss(eqx.combine(jax.tree.unflatten(treedef, minus), static))) / (2 * eps)
            np.testing.assert_allclose(float(jnp.sum(g * direction)), float(fd), rtol=1e-6,
                                       atol=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_masks_autapses_and_frozen_leaves(kind):
    rng = np.random.default_rng(3)
    n_in, n, n_out = 2, 6, 2
    rec_mask = rng.random((n, n)) < 0.5
    in_mask = rng.random((n, n_in)) < 0.7
    cls = {"vanilla": rl.VanillaRNN, "gru": rl.GRU, "lstm": rl.LSTM}[kind]
    trainable = ["w_rec", "w_out"]
    model = cls(n_in, n, n_out, key=jax.random.PRNGKey(0), w_rec_mask=rec_mask,
                w_in_mask=in_mask, autapses=False, trainable=trainable)
    w = model.effective_weights()
    blocks = 1 if kind == "vanilla" else model.n_gates
    rec_allowed = np.tile(rec_mask & ~np.eye(n, dtype=bool), (blocks, 1))
    assert np.all(np.asarray(w["w_rec"])[~rec_allowed] == 0)
    assert np.all(np.asarray(w["w_in"])[~np.tile(in_mask, (blocks, 1))] == 0)

    inputs = jnp.asarray(rng.normal(size=(10, n_in)), jnp.float32)

    def loss(m):
        return jnp.sum(m.readout_all(m.unroll(inputs, m.initial_state())) ** 2)

    grads = eqx.filter_grad(loss)(model)
    # masked entries get no gradient, frozen leaves get none at all
    assert np.all(np.asarray(grads.w_rec)[~rec_allowed] == 0)
    assert np.any(np.asarray(grads.w_rec)[rec_allowed] != 0)
    assert np.all(np.asarray(grads.w_in) == 0)
    spec = model.trainable_filter()
    assert spec.w_rec is True and spec.w_out is True and spec.w_in is False
    # an optimiser step over everything still leaves masked entries exactly zero
    stepped = eqx.apply_updates(model, jax.tree.map(lambda g: -10.0 * g, grads))
    assert np.all(np.asarray(stepped.effective_weights()["w_rec"])[~rec_allowed] == 0)


def test_from_weights_rejects_masked_entries_and_bad_shapes():
    rng = np.random.default_rng(0)
    w = random_vanilla(rng, 2, 4, 1)
    with pytest.raises(ValueError, match="w_rec"):
        rl.VanillaRNN.from_weights(w["w_rec"], w["w_in"], w["w_out"], autapses=False)
    with pytest.raises(ValueError, match="w_in"):
        rl.VanillaRNN.from_weights(w["w_rec"], w["w_in"][:3], w["w_out"])
    g = random_gated(rng, 3, 2, 4, 1)
    with pytest.raises(ValueError, match="w_rec"):
        rl.GRU.from_weights(g["w_in"], g["w_rec"][:5], g["w_out"])
    with pytest.raises(ValueError, match="b_in"):
        rl.GRU.from_weights(g["w_in"], g["w_rec"], g["w_out"], b_in=np.zeros(3))
    with pytest.raises(ValueError, match="w_rec"):
        rl.LSTM.from_weights(g["w_in"], g["w_rec"], g["w_out"])  # 3 gate blocks, not 4
    with pytest.raises(ValueError, match="trainable"):
        rl.GRU(2, 4, 1, key=jax.random.PRNGKey(0), trainable=["w_hh"])
    with pytest.raises(ValueError, match="w_rec_mask"):
        rl.LSTM(2, 4, 1, key=jax.random.PRNGKey(0), w_rec_mask=np.ones((3, 3)))
    with pytest.raises(ValueError, match="initial_state"):
        rl.LSTM(2, 4, 1, key=jax.random.PRNGKey(0), initial_state=np.zeros(4))  # needs 2H
    with pytest.raises(ValueError, match="n_hidden"):
        rl.VanillaRNN(2, 0, 1, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="activation"):
        rl.GRU(2, 4, 1, key=jax.random.PRNGKey(0), activation="nope")


def test_lstm_state_is_h_then_c():
    m = rl.LSTM(2, 5, 1, key=jax.random.PRNGKey(0), initial_state=np.arange(10.0))
    assert m.state_size == 10
    s = m.initial_state()
    assert s.shape == (10,)
    np.testing.assert_array_equal(np.asarray(m.rates(s)), np.arange(5.0))
    # forget-gate bias: +1 on the f block of b_in only (at initialisation)
    m0 = rl.LSTM(2, 5, 1, key=jax.random.PRNGKey(0), forget_bias=0.0)
    diff = np.asarray(m.b_in - m0.b_in)
    np.testing.assert_allclose(diff, np.r_[np.zeros(5), np.ones(5), np.zeros(10)], atol=1e-6)


def test_noise_statistics_and_determinism():
    n = 1500
    # W = 0 and linear units: h[t+1] = b + noise_std * xi exactly
    model = rl.VanillaRNN.from_weights(np.zeros((n, n)), np.zeros((n, 1)), np.zeros((1, n)),
                                       np.full(n, 0.5), activation="linear", noise_std=0.3)
    s = model.step(jnp.zeros(n), jnp.zeros(1), key=jax.random.PRNGKey(1))
    assert abs(float(jnp.mean(s)) - 0.5) < 0.03
    assert abs(float(jnp.std(s)) - 0.3) < 0.02
    np.testing.assert_array_equal(
        np.asarray(model.step(jnp.zeros(n), jnp.zeros(1))), np.full(n, 0.5, np.float32))
    gru = rl.GRU(2, 8, 1, key=jax.random.PRNGKey(0), noise_std=0.1)
    x = jnp.ones((20, 2))
    a = rl.simulate(gru, x, key=jax.random.PRNGKey(3)).states
    b = rl.simulate(gru, x, key=jax.random.PRNGKey(3)).states
    c = rl.simulate(gru, x).states
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert float(jnp.max(jnp.abs(a - c))) > 1e-3


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(kind, tmp_path):
    rng = np.random.default_rng(4)
    model, _, _ = build(kind, rng)
    model = eqx.tree_at(lambda m: m.h0, model,
                        jnp.asarray(rng.normal(size=model.h0.shape), jnp.float32))
    path = tmp_path / f"{kind}.safetensors"
    rl.save(path, model)
    loaded = rl.load(path)
    assert type(loaded) is type(model)
    assert loaded.config() == model.config()
    x = jnp.asarray(rng.normal(size=(2, 15, 3)), jnp.float32)
    np.testing.assert_array_equal(np.asarray(rl.simulate(loaded, x).outputs),
                                  np.asarray(rl.simulate(model, x).outputs))


@pytest.mark.parametrize(
    "kind", [pytest.param("gru", marks=pytest.mark.slow),  # default: test_models_fixed_points
             pytest.param("vanilla", marks=pytest.mark.slow),
             pytest.param("lstm", marks=pytest.mark.slow)])
def test_trains_on_flipflop(kind):
    """A short BPTT run through `rl.train` learns the 2-bit flip-flop."""
    task = rl.tasks.make("flipflop", n_bits=2, n_steps=60)
    cls = {"vanilla": rl.VanillaRNN, "gru": rl.GRU, "lstm": rl.LSTM}[kind]
    model = cls(task.n_in, 24, task.n_out, key=jax.random.PRNGKey(0), dt=task.dt)
    result = rl.train(model, task, key=jax.random.PRNGKey(1), steps=400, batch_size=32,
                      learning_rate=1e-2, eval_every=50, target_accuracy=0.97, progress=False)
    assert result.history[-1]["accuracy"] >= 0.97


@pytest.mark.parametrize("kind", KINDS)
def test_jacobians_match_autodiff(kind):
    """Analytic Jacobians (where a model has them) agree with jacfwd of the vector field."""
    rng = np.random.default_rng(6)
    model, _, _ = build(kind, rng)
    s = jnp.asarray(rng.normal(size=model.state_size) * 0.5, jnp.float32)
    u = jnp.asarray(rng.normal(size=3), jnp.float32)
    np.testing.assert_allclose(np.asarray(model.jacobian(s, u)),
                               np.asarray(jax.jacfwd(model.vector_field)(s, u)), atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(model.input_jacobian(s, u)),
        np.asarray(jax.jacfwd(model.vector_field, argnums=1)(s, u)), atol=1e-5)

"""The model contract (issue 13, item 2): one step per model used by `step`, `unroll`,
`rl.simulate` and training, so that the same key gives the same noise everywhere; noise levels
as data; `effective_weights` on every model.

(That `rl.train` reproduces release e8a0820 bit for bit, noisy CT-RNN included, is
tests/test_train_reference.py.)
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnlab as rl
from rnnlab._random import normal as fast_normal
from rnnlab.models import AbstractNetwork, AbstractRNN
from rnnlab.training import batch_loss

N_IN, N, N_OUT, B, T = 2, 6, 1, 4, 12

# every model class, with both noises on
CASES = {
    "ctrnn": (rl.CTRNN, {}),
    "ctrnn_rate": (rl.CTRNN, {"form": "rate"}),
    "ctrnn_dale": (rl.CTRNN, {"dale": True, "autapses": False}),
    "vanilla": (rl.VanillaRNN, {}),
    "gru": (rl.GRU, {}),
    "lstm": (rl.LSTM, {}),
    "esn": (rl.EchoStateNetwork, {}),
}
# simulate and the differentiated training forward pass are the same function compiled in two
# programs; they agree bit for bit except the echo-state network, whose closed-loop weight
# product XLA schedules differently inside the gradient program (last-bit differences)
EXACT = {"ctrnn", "ctrnn_rate", "ctrnn_dale", "vanilla", "gru", "lstm"}


def _model(case, noise_std=0.2, input_noise_std=0.1, seed=0):
    cls, kw = CASES[case]
    return cls(N_IN, N, N_OUT, key=jax.random.PRNGKey(seed), noise_std=noise_std,
               input_noise_std=input_noise_std, **kw)


def _inputs():
    return jax.random.normal(jax.random.PRNGKey(9), (B, T, N_IN))


def _training_forward(model, inputs, key):
    """The states of training's forward pass: the model's batched unroll evaluated inside
    ``value_and_grad`` of a jitted step, on the trainable partition (as `make_train_step`)."""
    params, static = eqx.partition(model, model.trainable_filter())

    @jax.jit
    def forward(p, inputs, key):
        def objective(p):
            m = eqx.combine(p, static)
            states = m.unroll_batch(inputs, m.initial_state(), key=key)
            return jnp.mean(m.readout_all(states) ** 2), states

        (_, states), _ = jax.value_and_grad(objective, has_aux=True)(p)
        return states

    return np.asarray(forward(params, inputs, key))


# bit for bit as users run it: the training program and the simulation fuse differently, and
# under the suite's compile flags (tests/conftest.py) they differ in the last bit of float32
@pytest.mark.default_xla
@pytest.mark.parametrize("case", sorted(CASES))
def test_simulate_draws_the_noise_of_the_training_forward_pass(case):
    model, x, key = _model(case), _inputs(), jax.random.PRNGKey(3)
    trained = _training_forward(model, x, key)
    simulated = np.asarray(rl.simulate(model, x, key=key).states)
    if case in EXACT:
        np.testing.assert_array_equal(simulated, trained)
    else:
        np.testing.assert_allclose(simulated, trained, rtol=0, atol=1e-6)
    # the noise matters far beyond that tolerance: noise-free or another key is elsewhere
    quiet = np.asarray(rl.simulate(model, x).states)
    other = np.asarray(rl.simulate(model, x, key=jax.random.PRNGKey(4)).states)
    assert np.abs(quiet - trained).max() > 0.05
    assert np.abs(other - trained).max() > 0.05


@pytest.mark.parametrize("case", ["ctrnn", "gru"])
def test_one_noisy_trial_is_a_batch_of_one(case):
    # `simulate`'s own handling of an unbatched trial (the same for every model: two model
    # kinds stand for all; each call compiles, and this was repeated for all seven)
    model, x, key = _model(case), _inputs(), jax.random.PRNGKey(3)
    one = np.asarray(rl.simulate(model, x[0], key=key).states)
    np.testing.assert_array_equal(one, np.asarray(rl.simulate(model, x[:1], key=key).states)[0])


@pytest.mark.parametrize("case", ["ctrnn", "gru"])
def test_simulate_scores_like_batch_loss(case):
    """Through the training module itself: `batch_loss` on a trial, and the task loss of
    `simulate`'s outputs on the same trial with the same key, are one number."""
    task = rl.tasks.make("flipflop", n_bits=2)
    cls, kw = CASES[case]
    model = cls(task.n_in, N, task.n_out, key=jax.random.PRNGKey(1), noise_std=0.3,
                input_noise_std=0.2, **kw)
    trial = task.sample_batch(jax.random.PRNGKey(2), 8)
    key = jax.random.PRNGKey(5)
    _, parts = jax.jit(batch_loss, static_argnums=1)(model, task, trial, key)
    mine = task.loss(rl.simulate(model, trial.inputs, key=key).outputs, trial)
    np.testing.assert_allclose(float(mine), float(parts["task_loss"]), rtol=1e-6)
    quiet = task.loss(rl.simulate(model, trial.inputs).outputs, trial)
    assert abs(float(quiet) - float(parts["task_loss"])) > 1e-3


@pytest.mark.parametrize("case", sorted(CASES))
def test_step_is_the_first_step_of_a_trial(case):
    model, x, key = _model(case), _inputs(), jax.random.PRNGKey(3)
    h = model.initial_state() + 0.3
    one = np.asarray(model.step(h, x[0, 0], key=key))
    # same draws; op by op against compiled, so equal to float rounding
    first = np.asarray(model.unroll(x[0, :1], h, key=key))[0]
    np.testing.assert_allclose(one, first, rtol=0, atol=1e-6)
    assert np.abs(one - np.asarray(model.step(h, x[0, 0]))).max() > 0.01
    # a trial scans `step`'s update: without noise, stepping by hand gives the trial
    states, s = [], h
    for t in range(T):
        s = model.step(s, x[0, t])
        states.append(s)
    np.testing.assert_allclose(np.stack(states), model.unroll(x[0], h), rtol=0, atol=1e-6)


@pytest.mark.parametrize("case", sorted(CASES))
def test_unroll_is_a_trial_of_the_training_batch(case):
    """The CT-RNN draws a batch's noise at once (trial 0 is `unroll` with the same key); the
    other models give trial b the key ``split(key, batch)[b]``."""
    model, x, key = _model(case), _inputs(), jax.random.PRNGKey(3)
    batch = np.asarray(model.unroll_batch(x, model.initial_state(), key=key))
    if isinstance(model, rl.CTRNN):
        mine = model.unroll(x[0], model.initial_state(), key=key)
        np.testing.assert_allclose(mine, batch[0], rtol=0, atol=1e-5)
    else:
        keys = jax.random.split(key, B)
        for b in range(B):
            mine = model.unroll(x[b], model.initial_state(), key=keys[b])
            np.testing.assert_allclose(mine, batch[b], rtol=0, atol=1e-6)


def _zero_weights(model, **values):
    return eqx.tree_at(lambda m: tuple(getattr(m, k) for k in values), model,
                       tuple(jnp.asarray(v, jnp.float32) for v in values.values()))


@pytest.mark.parametrize("form", ["potential", "rate"])
def test_ctrnn_noise_is_the_documented_draw(form):
    """With W_rec = 0, b = 0, linear units and W_in = [I; 0], the Euler step is
    x' = (1 - alpha) x + alpha sigma_in xi_in (first n_in units) + sqrt(2 alpha) sigma xi_rec:
    the noise `simulate` applied can be read off its states and must be
    ``rnnlab._random.normal(k, [B, T, .])`` with ``k_in, k_rec = split(key)``."""
    sigma, sigma_in, tau, dt = 0.3, 0.2, 100.0, 10.0
    alpha = dt / tau
    w_in = np.zeros((N, N_IN))
    w_in[:N_IN] = np.eye(N_IN)
    model = rl.CTRNN.from_weights(np.zeros((N, N)), w_in, np.zeros((N_OUT, N)),
                                  activation="linear", dt=dt, tau=tau, noise_std=sigma,
                                  input_noise_std=sigma_in, form=form)
    key = jax.random.PRNGKey(11)
    x = np.asarray(rl.simulate(model, jnp.zeros((B, T, N_IN)), key=key).states, np.float64)
    prev = np.concatenate([np.zeros((B, 1, N)), x[:, :-1]], axis=1)
    increment = x - (1 - alpha) * prev
    k_in, k_rec = jax.random.split(key)
    xi_in = np.asarray(fast_normal(k_in, (B, T, N_IN)))
    xi_rec = np.asarray(fast_normal(k_rec, (B, T, N)))
    expected = np.sqrt(2 * alpha) * sigma * xi_rec
    expected[..., :N_IN] += alpha * sigma_in * xi_in
    np.testing.assert_allclose(increment, expected, rtol=0, atol=1e-5)


def test_discrete_noise_is_the_documented_draw():
    """VanillaRNN with W = 0, b = 0, linear units: h[t+1] = sigma xi_rec exactly, xi_rec
    ``jax.random.normal(k_rec, [T, N])`` with ``k_in, k_rec = split(split(key, B)[b])``."""
    sigma = 0.3
    model = rl.VanillaRNN.from_weights(np.zeros((N, N)), np.zeros((N, N_IN)),
                                       np.zeros((N_OUT, N)), activation="linear",
                                       noise_std=sigma, input_noise_std=0.5)
    key = jax.random.PRNGKey(12)
    h = np.asarray(rl.simulate(model, jnp.zeros((B, T, N_IN)), key=key).states)
    for b, kb in enumerate(jax.random.split(key, B)):
        k_rec = jax.random.split(kb)[1]
        np.testing.assert_allclose(h[b], sigma * np.asarray(jax.random.normal(k_rec, (T, N))),
                                   rtol=1e-6, atol=0)


# ---------------------------------------------------------------------------- noise as data


@pytest.mark.parametrize("case", sorted(CASES))
def test_noise_levels_are_untrained_data(case):
    model = _model(case)
    assert eqx.is_array(model.noise_std) and eqx.is_array(model.input_noise_std)
    assert model.noise_std.shape == () and float(model.noise_std) == np.float32(0.2)
    filt = model.trainable_filter()
    assert filt.noise_std is False and filt.input_noise_std is False
    assert any(jax.tree.leaves(filt))  # something is trained
    # a gradient step never sees them
    params = eqx.filter(model, filt)
    assert params.noise_std is None and params.input_noise_std is None
    assert model.config()["noise_std"] == 0.2 and model.config()["input_noise_std"] == 0.1


@pytest.mark.parametrize("case", sorted(CASES))
def test_save_load_keeps_the_noise_levels(case, tmp_path):
    from rnnlab.io import read_safetensors

    model = _model(case, noise_std=0.07, input_noise_std=0.03)
    rl.save(tmp_path / "m.safetensors", model)
    tensors, meta = read_safetensors(tmp_path / "m.safetensors")
    # the levels travel in the configuration, the files keep the layout of earlier releases
    assert ".noise_std" not in tensors and meta["config"]["noise_std"] == 0.07
    loaded = rl.load(tmp_path / "m.safetensors")
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(model), strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b)) and a.dtype == b.dtype
    x, key = _inputs(), jax.random.PRNGKey(3)
    np.testing.assert_array_equal(rl.simulate(loaded, x, key=key).states,
                                  rl.simulate(model, x, key=key).states)


def test_a_file_of_the_previous_release_loads_with_its_noise():
    from pathlib import Path

    ref = Path(__file__).parent / "fixtures" / "train_reference" / "ctrnn_noise0.1.safetensors"
    model = rl.load(ref)
    assert float(model.noise_std) == np.float32(0.1)
    assert float(model.input_noise_std) == np.float32(0.05)


def test_networks_differing_in_noise_stack_and_compile_once():
    """Noise is data: models that differ only in their noise levels have one structure, a
    jitted function traces once for both, and a vmapped stack runs each with its own noise."""
    models = [_model("gru", noise_std=s, input_noise_std=s / 2) for s in (0.0, 0.1, 0.4)]
    parts = [eqx.partition(m, eqx.is_array) for m in models]
    assert len({jax.tree.structure(p[0]) for p in parts}) == 1
    assert len({jax.tree.structure(p[1]) for p in parts}) == 1

    traces = []

    @eqx.filter_jit
    def run(m, x, key):
        traces.append(1)
        return m.unroll_batch(x, m.initial_state(), key=key)

    x, key = _inputs(), jax.random.PRNGKey(3)
    alone = [np.asarray(run(m, x, key)) for m in models]
    assert len(traces) == 1
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *[p[0] for p in parts])
    together = jax.vmap(lambda a: eqx.combine(a, parts[0][1]).unroll_batch(
        x, models[0].initial_state(), key=key))(stacked)
    for i in range(3):
        np.testing.assert_allclose(together[i], alone[i], rtol=0, atol=1e-6)
    # a level of 0 is no noise, traced or not
    np.testing.assert_allclose(alone[0], rl.simulate(models[0], x).states, rtol=0, atol=1e-6)
    assert np.abs(alone[2] - alone[1]).max() > 0.05


# ---------------------------------------------------------------------------- the contract


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_model_is_a_network_with_effective_weights(case):
    model = _model(case)
    assert isinstance(model, AbstractNetwork)
    w = model.effective_weights()
    assert {"w_rec", "w_in", "w_out"} <= set(w)
    assert w["w_out"].shape == (N_OUT, N)
    # the readout is the effective w_out applied to the rates
    s = jax.random.normal(jax.random.PRNGKey(0), (model.state_size,))
    expected = w["w_out"] @ model.rates(s) + w.get("b_out", 0.0)
    np.testing.assert_allclose(model.readout(s), expected, rtol=1e-6, atol=1e-6)


class _Linear(AbstractRNN):
    """A model outside the rnnlab classes, written against AbstractRNN only."""

    a: jax.Array
    w_out: jax.Array
    n_in: int = eqx.field(static=True, default=1)
    n_hidden: int = eqx.field(static=True, default=2)
    n_out: int = eqx.field(static=True, default=1)

    def step(self, state, input, *, key=None):
        return self.a @ state + input

    def readout(self, state):
        return self.w_out @ state

    def vector_field(self, state, input):
        return self.step(state, input) - state

    def rates(self, state):
        return state

    def initial_state(self):
        return jnp.zeros(2)

    def config(self):
        return {}


def test_effective_weights_default_for_any_model():
    model = _Linear(jnp.eye(2) * 0.5, jnp.ones((1, 2)))
    w = model.effective_weights()
    assert set(w) == {"a", "w_out"}
    assert w["a"] is model.a

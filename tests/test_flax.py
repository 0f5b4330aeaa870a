"""rnnlab.flax: the ctrnn-jax-compatible Flax Linen CTRNNCell, CTRNN.from_flax and to_flax."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnlab as rl

flax_linen = pytest.importorskip("flax.linen")
rflax = pytest.importorskip("rnnlab.flax")
nn = flax_linen
CTRNNCell = rflax.CTRNNCell

SPLIT = {"params": False, "noise_stream": True}


def _rnn(n_hidden, n_out, alpha, noise_const, **kwargs):
    cell = CTRNNCell(hidden_features=n_hidden, output_features=n_out,
                     alpha=jnp.asarray(alpha, jnp.float32),
                     noise_const=jnp.float32(noise_const), **kwargs)
    return nn.RNN(cell, split_rngs=SPLIT)


def _random_params(rnn, n_in, key):
    """Parameters with non-zero biases (the default bias init is zeros)."""
    variables = rnn.init(key, jnp.ones((1, 4, n_in)))
    leaves, treedef = jax.tree.flatten(variables)
    keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
    leaves = [x + 0.3 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
    return jax.tree.unflatten(treedef, leaves)


def test_cell_reproduces_ctrnn_jax_published_values():
    """ctrnn-jax's own test (tests/test_model.py): a 2-unit cell, alpha 0.1, init key 0, five
    steps of input 1. Its numbers were drawn with JAX's former Threefry layout."""
    rnn = _rnn(2, 1, 0.1, 0.0)
    with jax.threefry_partitionable(False):
        variables = rnn.init(jax.random.PRNGKey(0), jnp.ones([1, 5, 1]))
        z, rates = rnn.apply(variables, jnp.ones([1, 5, 1]),
                             rngs={"noise_stream": jax.random.PRNGKey(0)})
    np.testing.assert_allclose(
        z[0, :, 0], [0.09670737, 0.08286397, 0.06787399, 0.05202901, 0.03562872], rtol=1e-6)
    np.testing.assert_allclose(
        rates[0],
        [[0.7410722, 0.70247406], [0.7206758, 0.63767034], [0.7004661, 0.56828207],
         [0.68048954, 0.49551427], [0.6607816, 0.42060047]], rtol=1e-6)
    # the same network in rnnlab (its carry starts at ones, ctrnn-jax's carry_init)
    model = rl.CTRNN.from_flax(variables, alpha=0.1)
    traj = rl.simulate(model, np.ones((5, 1)))
    np.testing.assert_allclose(traj.outputs, z[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(traj.rates, rates[0], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("alpha", [0.2, np.linspace(0.05, 0.5, 8)])
def test_from_flax_equals_the_cell_in_nn_rnn(alpha):
    n_in, n_hidden, n_out = 3, 8, 2
    rnn = _rnn(n_hidden, n_out, alpha, 0.0)
    variables = _random_params(rnn, n_in, jax.random.PRNGKey(1))
    x = jax.random.normal(jax.random.PRNGKey(2), (4, 30, n_in))
    z, rates = rnn.apply(variables, x, rngs={"noise_stream": jax.random.PRNGKey(3)})
    # any nesting of the parameters is accepted
    for params in (variables, variables["params"], variables["params"]["cell"]):
        model = rl.CTRNN.from_flax(params, alpha=alpha, dt=5.0)
        np.testing.assert_array_equal(np.asarray(model.alpha), np.float32(alpha))
        traj = rl.simulate(model, x)
        np.testing.assert_allclose(traj.outputs, z, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(traj.rates, rates, rtol=1e-5, atol=1e-6)
    w = model.effective_weights()
    cell = variables["params"]["cell"]
    np.testing.assert_array_equal(w["w_rec"], cell["recurrent_kernel"]["kernel"].T)
    np.testing.assert_array_equal(w["w_in"], cell["input_kernel"]["kernel"].T)
    np.testing.assert_array_equal(w["b_out"], cell["output_kernel"]["bias"])


def test_noise_conventions_agree_for_the_same_draws():
    """ctrnn-jax adds alpha * noise_const * xi to the state, rnnlab sqrt(2 alpha) * noise_std *
    xi: with noise_std = noise_const * sqrt(alpha / 2), the draws the Flax cell made give
    rnnlab's trajectory exactly."""
    n_in, n_hidden, n_out, alpha, nc = 2, 5, 1, 0.25, 0.7
    noisy = _rnn(n_hidden, n_out, alpha, nc)
    variables = _random_params(noisy, n_in, jax.random.PRNGKey(4))
    cell_vars = {"params": variables["params"]["cell"]}
    clean = CTRNNCell(hidden_features=n_hidden, output_features=n_out, alpha=alpha,
                      noise_const=0.0)
    u = jax.random.normal(jax.random.PRNGKey(5), (12, n_in))

    @jax.jit
    def cell_step(h, ut, key):
        new = noisy.cell.apply(cell_vars, h, ut, rngs={"noise_stream": key})[0]
        free = clean.apply(cell_vars, h, ut, rngs={"noise_stream": key})[0]
        return new, (new - free) / (alpha * nc)  # the standard normal the cell drew

    keys = jax.random.split(jax.random.PRNGKey(6), len(u))
    x_flax, xi = jax.lax.scan(lambda h, a: cell_step(h, *a), jnp.ones(n_hidden), (u, keys))
    x_all = jax.lax.scan(lambda h, a: (lambda n: (n, n))(cell_step(h, *a)[0]),
                         jnp.ones(n_hidden), (u, keys))[1]
    assert 0.5 < float(jnp.std(xi)) < 1.6

    model = rl.CTRNN.from_flax(variables, alpha=alpha, noise_const=nc)
    np.testing.assert_allclose(float(model.noise_std), nc * np.sqrt(alpha / 2), rtol=1e-7)
    w = model._stepping_weights()
    terms = model._input_terms(w, u, (None, xi))
    _, ours = jax.lax.scan(lambda h, t: (lambda n: (n, n))(model._advance(w, h, t)),
                           model.initial_state(), terms)
    np.testing.assert_allclose(ours, x_all, rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(ours[-1], x_flax, rtol=1e-4, atol=2e-5)
    # the conversion functions are inverse of each other
    back = rflax.noise_const_from_std(rflax.noise_std_from_const(nc, alpha), alpha)
    np.testing.assert_allclose(back, nc, rtol=1e-15)


@pytest.mark.parametrize("per_unit_tau", [False, True])
def test_round_trip_rnnlab_flax_rnnlab(per_unit_tau):
    tau = np.linspace(30.0, 120.0, 8) if per_unit_tau else 70.0
    model = rl.CTRNN(3, 8, 2, key=jax.random.PRNGKey(7), tau=tau, dt=10.0, noise_std=0.05,
                     initial_state=np.linspace(-0.5, 0.5, 8))
    model = eqx.tree_at(lambda m: m.b_rec, model, jnp.linspace(-0.2, 0.3, 8))
    f = rflax.to_flax(model)
    assert f.cell is f.rnn.cell
    x = jax.random.normal(jax.random.PRNGKey(8), (2, 25, 3))

    back = rl.CTRNN.from_flax(f.variables, alpha=f.cell.alpha, noise_const=f.cell.noise_const,
                              dt=model.dt, initial_state=np.asarray(model.h0))
    for k, v in model.effective_weights().items():
        np.testing.assert_array_equal(back.effective_weights()[k], v, err_msg=k)
    np.testing.assert_array_equal(back.alpha, model.alpha)
    np.testing.assert_array_equal(back.initial_state(), model.initial_state())
    np.testing.assert_allclose(float(back.noise_std), float(model.noise_std), rtol=1e-6)
    np.testing.assert_array_equal(rl.simulate(back, x).outputs, rl.simulate(model, x).outputs)

    # the Flax network itself gives the model's outputs (noise-free twin: noise_const 0)
    quiet = rflax.to_flax(eqx.tree_at(lambda m: m.noise_std, model, jnp.float32(0.0)))
    z, rates = quiet.rnn.apply(quiet.variables, x, rngs={"noise_stream": jax.random.PRNGKey(0)})
    traj = rl.simulate(model, x)
    np.testing.assert_allclose(z, traj.outputs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rates, traj.rates, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_a_ctrnn_jax_training_step_runs():
    """ctrnn-jax's training pattern (init, apply with a noise stream, jax.grad of an MSE,
    an Optax update) runs on rnnlab's cell and lowers the loss."""
    optax = pytest.importorskip("optax")
    rnn = _rnn(8, 1, 0.1, 0.05)
    x = jnp.ones((4, 20, 1))
    y = jnp.broadcast_to(jnp.sin(jnp.arange(20) / 3.0)[None, :, None], (4, 20, 1))
    params = rnn.init(jax.random.PRNGKey(0), x)["params"]
    opt = optax.adam(1e-2)
    state = opt.init(params)

    def loss_fn(p, key):
        z, _ = rnn.apply({"params": p}, x, rngs={"noise_stream": key})
        return jnp.mean((z - y) ** 2)

    @jax.jit
    def train_step(p, s, key):
        loss, g = jax.value_and_grad(loss_fn)(p, key)
        updates, s = opt.update(g, s)
        return optax.apply_updates(p, updates), s, loss

    losses = []
    for i in range(30):
        params, state, loss = train_step(params, state, jax.random.PRNGKey(i))
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]


def test_errors_say_what_is_wrong():
    model = rl.CTRNN(3, 8, 2, key=jax.random.PRNGKey(0), form="rate")
    with pytest.raises(ValueError, match="rate form"):
        rflax.to_flax(model)
    noisy_in = rl.CTRNN(3, 8, 2, key=jax.random.PRNGKey(0), input_noise_std=0.1)
    with pytest.raises(ValueError, match="input noise"):
        rflax.to_flax(noisy_in)
    with pytest.raises(TypeError, match="CTRNN"):
        rflax.to_flax(rl.GRU(3, 8, 2, key=jax.random.PRNGKey(0)))
    with pytest.raises(ValueError, match="recurrent_kernel"):
        rl.CTRNN.from_flax({"params": {"Dense_0": {"kernel": np.ones((2, 2))}}}, alpha=0.1)
    params = rflax.to_flax(rl.CTRNN(3, 8, 2, key=jax.random.PRNGKey(0))).variables
    with pytest.raises(ValueError, match="alpha"):
        rl.CTRNN.from_flax(params, alpha=1.5)
    with pytest.raises(ValueError, match="per-unit"):
        rl.CTRNN.from_flax(params, alpha=np.linspace(0.1, 0.4, 8), noise_const=0.1)

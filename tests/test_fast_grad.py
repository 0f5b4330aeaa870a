"""The fast CT-RNN training path equals plain autodiff through `lax.scan`.

Truths used: an independent Euler loop written here from the documented equations (fed the
identical noise: `rnnlab._random.normal` with the documented key split), and the model's own
per-trial `unroll`. The generator itself is tested in test_random.py.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rnnlab as rl
from rnnlab._random import normal
from rnnlab.models._ctrnn_fast import ctrnn_unroll_batch, plain_unroll_batch
from rnnlab.training import batch_loss, make_train_step

N_IN, N, N_OUT, B, T = 3, 12, 2, 4, 15
ALL_TRAINABLE = ("w_rec", "w_in", "w_out", "b_rec", "b_out", "tau", "h0")


def to64(model):
    return jax.tree.map(
        lambda x: x.astype(jnp.float64) if eqx.is_inexact_array(x) else x, model
    )


def reference_states(model, inputs, key):
    """Independent Euler loop: x <- (1-a) x + a drive + sqrt(2a) sigma xi (noise [B, T, .])."""
    w = model.effective_weights()
    alpha, f = model.alpha, model.activation
    u = inputs
    xi = jnp.zeros(u.shape[:2] + (model.n_hidden,), u.dtype)
    if key is not None:
        k_in, k_rec = jax.random.split(key)
        if model.input_noise_std > 0:
            noise_in = normal(k_in, u.shape, jnp.float32).astype(u.dtype)
            u = u + model.input_noise_std * noise_in
        if model.noise_std > 0:
            xi = normal(k_rec, xi.shape, jnp.float32).astype(u.dtype)

    def body(x, inp):
        u_t, xi_t = inp
        if model.form == "potential":
            drive = f(x) @ w["w_rec"].T + u_t @ w["w_in"].T + w["b_rec"]
        else:
            drive = f(x @ w["w_rec"].T + u_t @ w["w_in"].T + w["b_rec"])
        new = (1 - alpha) * x + alpha * drive + jnp.sqrt(2 * alpha) * model.noise_std * xi_t
        return new, new

    # noise is drawn batch-major [B, T, .]; the loop runs over time
    h0 = jnp.broadcast_to(model.initial_state(), (inputs.shape[0], model.n_hidden))
    xs = (jnp.swapaxes(u, 0, 1), jnp.swapaxes(xi, 0, 1))
    return jnp.swapaxes(jax.lax.scan(body, h0, xs)[1], 0, 1)


def loss_with(unroll, params, static, inputs, targets, key):
    m = eqx.combine(params, static)
    states = unroll(m, inputs, key)
    out = m.readout_all(states)
    return jnp.mean((out - targets) ** 2) + 0.1 * jnp.mean(m.rates_all(states) ** 2)


def fast(m, inputs, key):
    return m.unroll_batch(inputs, m.initial_state(), key=key)


def max_rel_diff(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb) and la
    return max(
        float(jnp.max(jnp.abs(x - y)) / (jnp.max(jnp.abs(y)) + 1e-30)) for x, y in zip(la, lb)
    )


def make(key, **kw):
    kw.setdefault("trainable", ALL_TRAINABLE)
    kw.setdefault("tau", np.linspace(30.0, 120.0, N))
    return rl.CTRNN(N_IN, N, N_OUT, key=key, dt=10.0, **kw)


OPTIONS = {
    "plain": {},
    # tanh under Dale's law is an explicit opt-in (these check gradients, not the rule)
    "dale_exc_readout": {"dale": True, "readout": "excitatory", "allow_negative_rates": True},
    "no_autapses": {"autapses": False},
    "masks": {
        "w_rec_mask": np.random.default_rng(0).random((N, N)) < 0.5,
        "w_in_mask": np.random.default_rng(1).random((N, N_IN)) < 0.7,
        "w_out_mask": np.random.default_rng(2).random((N_OUT, N)) < 0.7,
    },
    "nonneg_io": {"nonnegative_inputs": True, "nonnegative_outputs": True},
    "noise": {"noise_std": 0.3, "input_noise_std": 0.2},
    "scalar_tau_no_bias": {"tau": 50.0, "use_bias": False},
    "frozen_w_in_tau": {"trainable": ("w_rec", "w_out", "b_rec", "h0")},
    "dale_noise_all": {"dale": True, "autapses": False, "noise_std": 0.2,
                       "input_noise_std": 0.1, "nonnegative_inputs": True,
                       "allow_negative_rates": True},
}
ACTIVATIONS = ["tanh", "relu", "softplus", "sigmoid", "retanh", "leaky_relu", "linear"]


def _compare(form, activation, options):
    key = jax.random.PRNGKey(hash((form, activation, tuple(options))) % 1000)
    k_m, k_u, k_y, k_h, k_n = jax.random.split(key, 5)
    with jax.enable_x64(True):
        model = to64(make(k_m, form=form, activation=activation, **options))
        # a non-zero trainable h0, so its gradient is exercised from a generic point
        model = eqx.tree_at(lambda m: m.h0, model, 0.3 * jax.random.normal(k_h, (N,)))
        inputs = jax.random.normal(k_u, (B, T, N_IN), jnp.float64)
        targets = jax.random.normal(k_y, (B, T, N_OUT), jnp.float64)
        params, static = eqx.partition(model, model.trainable_filter())
        l_fast, g_fast = jax.value_and_grad(loss_with, argnums=1)(
            fast, params, static, inputs, targets, k_n
        )
        l_ref, g_ref = jax.value_and_grad(loss_with, argnums=1)(
            reference_states, params, static, inputs, targets, k_n
        )
        assert abs(float(l_fast) - float(l_ref)) <= 1e-12 * abs(float(l_ref))
        assert max_rel_diff(g_fast, g_ref) < 1e-10
        # the gradient is not trivially zero for any trained leaf
        assert all(float(jnp.max(jnp.abs(g))) > 0 for g in jax.tree.leaves(g_fast))


@pytest.mark.parametrize("form", ["potential", "rate"])
@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_gradients_equal_autodiff_for_every_option(form, option):
    _compare(form, "tanh", OPTIONS[option])


@pytest.mark.parametrize("form", ["potential", "rate"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradients_equal_autodiff_for_every_activation(form, activation):
    _compare(form, activation, {"noise_std": 0.1})


def test_noise_free_matches_the_models_own_per_trial_unroll():
    """Without noise, the batched path equals vmapping the model's lead-written `unroll`."""
    for form in ("potential", "rate"):
        with jax.enable_x64(True):
            model = to64(make(jax.random.PRNGKey(4), form=form, dale=True, autapses=False))
            inputs = jax.random.normal(jax.random.PRNGKey(5), (B, T, N_IN), jnp.float64)
            targets = jax.random.normal(jax.random.PRNGKey(6), (B, T, N_OUT), jnp.float64)
            params, static = eqx.partition(model, model.trainable_filter())

            def per_trial(m, u, key):
                return jax.vmap(lambda x: m.unroll(x, m.initial_state()))(u)

            s_fast = fast(model, inputs, None)
            s_ref = per_trial(model, inputs, None)
            assert float(jnp.max(jnp.abs(s_fast - s_ref))) < 1e-12
            g_fast = jax.grad(loss_with, argnums=1)(fast, params, static, inputs, targets, None)
            g_ref = jax.grad(loss_with, argnums=1)(
                per_trial, params, static, inputs, targets, None
            )
            assert max_rel_diff(g_fast, g_ref) < 1e-10


def test_float32_gradients_match_plain_scan():
    model = make(jax.random.PRNGKey(7), noise_std=0.1, dale=True)
    inputs = jax.random.normal(jax.random.PRNGKey(8), (8, 40, N_IN))
    targets = jax.random.normal(jax.random.PRNGKey(9), (8, 40, N_OUT))
    params, static = eqx.partition(model, model.trainable_filter())
    key = jax.random.PRNGKey(10)

    def plain(m, u, k):
        return plain_unroll_batch(m, u, m.initial_state(), key=k)

    g_fast = jax.jit(jax.grad(loss_with, argnums=1), static_argnums=0)(
        fast, params, static, inputs, targets, key
    )
    g_plain = jax.jit(jax.grad(loss_with, argnums=1), static_argnums=0)(
        plain, params, static, inputs, targets, key
    )
    assert max_rel_diff(g_fast, g_plain) < 1e-4


def test_batch_loss_uses_the_fast_path_and_equals_plain_autodiff():
    task = rl.tasks.make("flipflop", n_steps=30)
    model = rl.CTRNN(task.n_in, 16, task.n_out, key=jax.random.PRNGKey(0), dt=task.dt,
                     noise_std=0.1)
    trial = task.sample_batch(jax.random.PRNGKey(1), 8)
    key = jax.random.PRNGKey(2)
    params, static = eqx.partition(model, model.trainable_filter())

    def via_batch_loss(p):
        return batch_loss(eqx.combine(p, static), task, trial, key, 0.01, 0.001)[0]

    def via_plain(p):
        m = eqx.combine(p, static)
        states = plain_unroll_batch(m, trial.inputs, m.initial_state(), key=key)
        out = task.loss(m.readout_all(states), trial)
        w = m.effective_weights()
        wpen = sum(jnp.mean(w[k] ** 2) for k in ("w_rec", "w_in", "w_out"))
        return out + 0.01 * jnp.mean(m.rates_all(states) ** 2) + 0.001 * wpen

    jaxpr = str(jax.make_jaxpr(jax.grad(via_batch_loss))(params))
    assert "custom_vjp" in jaxpr
    assert max_rel_diff(jax.grad(via_batch_loss)(params), jax.grad(via_plain)(params)) < 1e-4


def test_per_batch_initial_state_and_shape_errors():
    model = make(jax.random.PRNGKey(0))
    inputs = jnp.ones((B, T, N_IN))
    h0 = jax.random.normal(jax.random.PRNGKey(1), (B, N))
    s = ctrnn_unroll_batch(model, inputs, h0)
    ref = jax.vmap(lambda u, h: model.unroll(u, h))(inputs, h0)
    np.testing.assert_allclose(np.asarray(s), np.asarray(ref), atol=1e-5)
    with pytest.raises(ValueError, match="inputs"):
        ctrnn_unroll_batch(model, jnp.ones((T, N_IN)), model.initial_state())
    with pytest.raises(ValueError, match="initial_state"):
        ctrnn_unroll_batch(model, inputs, jnp.ones((B + 1, N)))


def test_default_unroll_batch_for_other_models_is_vmapped_unroll():
    model = rl.VanillaRNN(N_IN, N, N_OUT, key=jax.random.PRNGKey(0), noise_std=0.1)
    inputs = jax.random.normal(jax.random.PRNGKey(1), (B, T, N_IN))
    key = jax.random.PRNGKey(2)
    got = model.unroll_batch(inputs, model.initial_state(), key=key)
    keys = jax.random.split(key, B)
    want = jax.vmap(lambda u, k: model.unroll(u, model.initial_state(), key=k))(inputs, keys)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_train_step_compiles_once():
    task = rl.tasks.make("flipflop", n_steps=20)
    model = rl.CTRNN(task.n_in, 8, task.n_out, key=jax.random.PRNGKey(0), dt=task.dt,
                     noise_std=0.05)
    params, static = eqx.partition(model, model.trainable_filter())
    opt = optax.adam(1e-2)
    step = jax.jit(make_train_step(static, task, opt, batch_size=4))
    state = opt.init(params)
    for i in range(3):
        params, state, loss = step(params, state, jax.random.PRNGKey(i))
    assert np.isfinite(float(loss))
    assert step._cache_size() == 1


SHARDED_SCRIPT = r"""
import jax
jax.config.update("jax_num_cpu_devices", 2)
jax.config.update("jax_enable_x64", True)
import equinox as eqx, jax.numpy as jnp, numpy as np
import rnnlab as rl
from rnnlab.models._ctrnn_fast import batch_sharding, plain_unroll_batch
assert len(jax.devices()) == 2 and batch_sharding(6) is not None and batch_sharding(5) is None
for form in ("potential", "rate"):
    m = rl.CTRNN(3, 12, 2, key=jax.random.PRNGKey(0), dt=10.0, form=form, noise_std=0.2,
                 input_noise_std=0.1, tau=np.linspace(30.0, 120.0, 12),
                 trainable=("w_rec", "w_in", "w_out", "b_rec", "b_out", "tau"))
    m = jax.tree.map(lambda x: x.astype(jnp.float64) if eqx.is_inexact_array(x) else x, m)
    u = jax.random.normal(jax.random.PRNGKey(1), (6, 15, 3), jnp.float64)
    y = jax.random.normal(jax.random.PRNGKey(2), (6, 15, 2), jnp.float64)
    p, s = eqx.partition(m, m.trainable_filter())
    key = jax.random.PRNGKey(3)

    def loss(p, unroll):
        mm = eqx.combine(p, s)
        st = unroll(mm, u, mm.initial_state(), key=key)
        return jnp.mean((mm.readout_all(st) - y) ** 2) + 0.1 * jnp.mean(mm.rates_all(st) ** 2)

    fast = jax.jit(jax.grad(lambda p: loss(p, lambda mm, *a, **k: mm.unroll_batch(*a, **k))))
    hlo = fast.lower(p).compile().as_text()
    assert "all-reduce" in hlo, "the batch was not split over the devices"
    g_fast = fast(p)
    g_ref = jax.jit(jax.grad(lambda p: loss(p, plain_unroll_batch)))(p)
    for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_ref)):
        err = float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
        assert err < 1e-10, (form, err)
print("OK")
"""


def test_batch_split_over_several_cpu_devices_gives_the_same_gradients():
    """With the CPU cores exposed as 2 JAX devices, the fast path splits the batch over them
    (an all-reduce appears in the compiled step) and the gradients still equal plain autodiff.
    Run in a fresh process: the device count is fixed when JAX starts."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", SHARDED_SCRIPT], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-3000:]

"""rl.lfads.LFADS and its loss terms against truths: closed-form KLs, scipy's densities, an
independent numpy GRU, coordinated dropout's gradient masks, and file round trips."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as ss

import rnnlab as rl
from rnnlab.lfads._loss import Scales, cd_masks, elbo_loss, recon_nll
from rnnlab.lfads._model import lagged_inputs
from rnnlab.lfads._modules import ClippedGRUCell, run_gru_group
from rnnlab.lfads._priors import ar1_kl_sample, ar1_log_prob, gaussian_kl

SMALL = dict(ic_enc_dim=6, ci_enc_dim=5, con_dim=4, co_dim=2, ic_dim=3, gen_dim=7, fac_dim=3)


def test_gaussian_kl_closed_form():
    rng = np.random.default_rng(0)
    m0, m1 = rng.normal(size=4), rng.normal(size=4)
    s0, lv1 = rng.uniform(0.2, 2.0, 4), rng.normal(size=4)
    S0, S1 = np.diag(s0**2), np.diag(np.exp(lv1))
    S1i = np.linalg.inv(S1)
    want = 0.5 * (np.trace(S1i @ S0) + (m1 - m0) @ S1i @ (m1 - m0) - 4
                  + np.log(np.linalg.det(S1) / np.linalg.det(S0)))
    got = gaussian_kl(jnp.asarray(m0), jnp.asarray(s0), jnp.asarray(m1), jnp.asarray(lv1))
    np.testing.assert_allclose(float(got), want, rtol=1e-5)


def _ar1_cov(T, tau, nvar):
    alpha = np.exp(-1.0 / tau)
    pvar = nvar / (1 - alpha**2)
    lags = np.abs(np.arange(T)[:, None] - np.arange(T)[None, :])
    return pvar * alpha**lags


def test_ar1_log_prob_matches_multivariate_normal():
    T, taus, nvars = 9, np.array([3.0, 12.0]), np.array([0.1, 0.7])
    u = np.random.default_rng(1).normal(size=(T, 2))
    want = sum(ss.multivariate_normal(np.zeros(T), _ar1_cov(T, taus[d], nvars[d])).logpdf(
        u[:, d]) for d in range(2))
    got = ar1_log_prob(jnp.asarray(u), jnp.log(jnp.asarray(taus)), jnp.log(jnp.asarray(nvars)))
    np.testing.assert_allclose(float(got), want, rtol=1e-5)


def test_ar1_kl_sample_is_unbiased_for_the_analytic_kl():
    # KL(N(m, diag s^2) || N(0, C_ar1)) in closed form vs the mean of the one-sample estimator
    T, tau, nvar = 6, 4.0, 0.3
    rng = np.random.default_rng(2)
    m, s = rng.normal(0, 0.5, (T, 1)), rng.uniform(0.3, 0.8, (T, 1))
    C = _ar1_cov(T, tau, nvar)
    Ci = np.linalg.inv(C)
    want = 0.5 * (np.trace(Ci @ np.diag(s[:, 0] ** 2)) + m[:, 0] @ Ci @ m[:, 0] - T
                  + np.linalg.slogdet(C)[1] - np.sum(np.log(s**2)))
    eps = jax.random.normal(jax.random.PRNGKey(0), (20000, T, 1))
    u = m + s * eps
    est = jax.vmap(ar1_kl_sample, in_axes=(0, None, None, None, None))(
        u, jnp.asarray(m), jnp.asarray(s), jnp.log(jnp.array([tau])), jnp.log(jnp.array([nvar])))
    se = float(jnp.std(est)) / np.sqrt(est.shape[0])
    assert abs(float(jnp.mean(est)) - want) < 4 * se + 1e-3


def test_reconstruction_heads_match_scipy():
    rng = np.random.default_rng(3)
    k = rng.poisson(3.0, (5, 4)).astype(np.float32)
    lr = rng.normal(0.5, 0.5, (5, 4, 1)).astype(np.float32)
    np.testing.assert_allclose(recon_nll("poisson", jnp.asarray(k), jnp.asarray(lr)),
                               -ss.poisson.logpmf(k, np.exp(lr[..., 0])), rtol=2e-5, atol=1e-5)
    x = rng.normal(size=(5, 4)).astype(np.float32)
    p = rng.normal(0, 0.5, (5, 4, 2)).astype(np.float32)
    np.testing.assert_allclose(
        recon_nll("gaussian", jnp.asarray(x), jnp.asarray(p)),
        -ss.norm.logpdf(x, p[..., 0], np.exp(0.5 * p[..., 1])), rtol=2e-5, atol=1e-5)
    y = rng.gamma(2.0, 1.0, (5, 4)).astype(np.float32)
    np.testing.assert_allclose(
        recon_nll("gamma", jnp.asarray(y), jnp.asarray(p)),
        -ss.gamma.logpdf(y, np.exp(p[..., 0]), scale=np.exp(-p[..., 1])), rtol=2e-4, atol=1e-4)
    # zero-inflated Gamma: P(0) = 1 - q, else q * Gamma(x - loc)
    z = np.where(rng.uniform(size=(5, 4)) < 0.4, 0.0, y + 0.1).astype(np.float32)
    p3 = rng.normal(0, 1.0, (5, 4, 3)).astype(np.float32)
    scale = np.stack([np.full(4, 3.0), np.full(4, 2.0)]).astype(np.float32)
    sig = 1 / (1 + np.exp(-p3))
    a, b, q = sig[..., 0] * 3.0, sig[..., 1] * 2.0, sig[..., 2]
    want = np.where(z == 0, -np.log(1 - q),
                    -np.log(q) - ss.gamma.logpdf(np.where(z == 0, 1.0, z - 0.1), a, scale=1 / b))
    got = recon_nll("zero_inflated_gamma", jnp.asarray(z), jnp.asarray(p3), jnp.asarray(scale),
                    0.1)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-4)


def test_gru_cell_matches_numpy_equations():
    cell = ClippedGRUCell(3, 4, key=jax.random.PRNGKey(0), clip_value=0.5)
    rng = np.random.default_rng(4)
    x, h = rng.normal(size=3), rng.uniform(-0.5, 0.5, 4)
    Wi, Wh, b = (np.asarray(a, np.float64) for a in (cell.weight_ih, cell.weight_hh,
                                                      cell.bias_ih))
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    xa = Wi @ x + b
    z = sig(xa[:4] + Wh[:4] @ h)
    r = sig(xa[4:8] + Wh[4:8] @ h)
    n = np.tanh(xa[8:] + Wh[8:] @ (r * h))
    want = np.clip(z * h + (1 - z) * n, -0.5, 0.5)
    np.testing.assert_allclose(cell(jnp.asarray(x, jnp.float32), jnp.asarray(h, jnp.float32)),
                               want, rtol=1e-5, atol=1e-6)


def test_gru_loop_gradients_equal_autodiff_of_the_cell():
    """The encoders' loop has a hand-written backward pass (with its own batching rule):
    its gradients equal automatic differentiation through the cell step by step, for one
    trial, for trials under vmap, and for an ensemble of cells under vmap; cells of two
    sizes, two of them running backward in time; clipping is active (states reach the clip
    value)."""
    ks = jax.random.split(jax.random.PRNGKey(0), 8)
    cells = [ClippedGRUCell(5, 6, key=ks[0], clip_value=0.7, is_encoder=True),
             ClippedGRUCell(5, 4, key=ks[1]),
             ClippedGRUCell(5, 6, key=ks[5], clip_value=0.7, is_encoder=True),
             ClippedGRUCell(5, 6, key=ks[6])]
    reverse = (False, True, True, False)
    xs = 3.0 * jax.random.normal(ks[2], (3, 9, 5))
    h0s = [0.3 * jax.random.normal(ks[4], (6,)), jnp.zeros(4),
           0.3 * jax.random.normal(ks[7], (6,)), jnp.zeros(6)]

    def by_steps(cells, x, h0s, reverse=reverse):
        out = []
        for c, rev, h in zip(cells, reverse, h0s):
            states = []
            for t in range(x.shape[0]):
                h = c(x[x.shape[0] - 1 - t] if rev else x[t], h)
                states.append(h)
            out.append(jnp.stack(states))
        return out

    def looped(cells, x, h0s, reverse=reverse):
        return [s for s, _ in run_gru_group(cells, x, h0s, reverse)]

    def loss(run, batched):
        def f(cells, xs, h0s):
            if batched:
                outs = jax.vmap(lambda x: run(cells, x, h0s))(xs)
            else:
                outs = run(cells, xs[0], h0s)
            return sum(jnp.sum(jnp.sin((i + 1.3) * o)) for i, o in enumerate(outs))
        return f

    states = looped(cells, xs[0], h0s)
    assert float(jnp.max(jnp.abs(states[0]))) == pytest.approx(0.7)
    np.testing.assert_allclose(states[1], by_steps(cells, xs[0], h0s)[1], rtol=1e-5, atol=1e-6)
    for batched in (False, True):
        want, got = (eqx.filter_jit(jax.grad(loss(run, batched), argnums=(0, 1, 2)))(
            cells, xs, h0s) for run in (by_steps, looped))
        for w, g in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)

    # an ensemble: the cells' weights batched
    two = jax.tree.map(lambda a: jnp.stack([a, 1.5 * a]), cells[0])

    def ens(run):
        return lambda c: jnp.sum(jnp.sin(jax.vmap(
            lambda ci: run([ci], xs[0], [h0s[0]], (True,))[0])(c)))
    want, got = (eqx.filter_jit(jax.grad(ens(run)))(two) for run in (by_steps, looped))
    for w, g in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("sample", [True, False])
def test_decoder_gradients_equal_autodiff_of_its_loop(sample):
    """The controller/generator loop's hand-written backward pass equals automatic
    differentiation of the same loop (for one trial and for trials under vmap), with both
    GRUs' clipping active; every input gets its cotangent (masks and noise included)."""
    from rnnlab.lfads._loops import _decoder_forward, decoder

    C, G, F, co, E, T = 4, 6, 3, 2, 2, 7
    ks = iter(jax.random.split(jax.random.PRNGKey(1), 20))

    def rnd(*shape, scale=1.0):
        return scale * jax.random.normal(next(ks), shape)

    weights = (rnd(3 * C, F), (rnd(2 * C, C), rnd(C, C)), rnd(2 * co, C), rnd(2 * co),
               rnd(3 * G, co + E), rnd(3 * G, scale=2.0),
               (rnd(2 * G, G, scale=2.0), rnd(G, G, scale=2.0)), rnd(F, G))
    xs = (rnd(3, T, 3 * C, scale=2.0), 1.0 + 0.2 * rnd(3, T, F), rnd(3, T, co),
          rnd(3, T, E), 1.0 + 0.2 * rnd(3, T, G))
    init = (0.3 * rnd(G), 0.3 * rnd(C), rnd(F))
    static = (0.6, 0.8, co, sample)

    def loss(run, batched):
        def f(w, xs, init):
            if batched:
                outs = jax.vmap(lambda *x: run(static, w, x, init))(*xs)
            else:
                outs = run(static, w, tuple(x[0] for x in xs), init)
            return sum(jnp.sum(jnp.sin((i + 1.3) * o)) for i, o in enumerate(outs))
        return f

    plain = lambda *a: _decoder_forward(*a)[0]  # noqa: E731
    states = decoder(static, weights, tuple(x[0] for x in xs), init)
    assert float(jnp.max(jnp.abs(states[0]))) == pytest.approx(0.8)
    assert float(jnp.max(jnp.abs(states[1]))) == pytest.approx(0.6)
    for batched in (False, True):
        want, got = (jax.jit(jax.grad(loss(run, batched), argnums=(0, 1, 2)))(weights, xs, init)
                     for run in (plain, decoder))
        for w, g in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
            np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-4)  # float32, chaotic


def test_model_shapes_and_options():
    key = jax.random.PRNGKey(0)
    m = rl.lfads.LFADS(5, key=key, ext_input_dim=2, n_heldout=3, reconstruction="gaussian",
                       **SMALL)
    x = jnp.ones((8, 5))
    out = m(x, n_time=10, ext_input=jnp.zeros((10, 2)), key=key, sample_posteriors=True,
            dropout=True)
    assert out.output_params.shape == (10, 8, 2)
    assert out.factors.shape == (10, 3) and out.gen_states.shape == (10, 7)
    assert out.co_means.shape == (10, 2) and out.gen_inputs.shape == (10, 4)
    assert out.ic_mean.shape == (3,) and out.gen_init.shape == (7,)
    # factor readout rows have unit norm
    np.testing.assert_allclose(jnp.linalg.norm(m.fac_linear.effective_weight(), axis=1), 1.0,
                               rtol=1e-6)
    # no controller: the generator runs without inputs
    m0 = rl.lfads.LFADS(5, key=key, **{**SMALL, "con_dim": 0})
    assert not m0.use_con and m0.ci_enc is None
    out0 = m0(x)
    assert out0.co_means.shape == (8, 0) and out0.output_params.shape == (8, 5, 1)
    # the means pass is deterministic; the same key gives the same sample
    np.testing.assert_array_equal(m(x, n_time=10, ext_input=jnp.zeros((10, 2))).factors,
                                  m(x, n_time=10, ext_input=jnp.zeros((10, 2))).factors)


def test_controller_input_lag_and_forward_bins():
    T, E, lag, n_time = 6, 2, 2, 8
    fwd = np.arange(T * E, dtype=np.float32).reshape(T, E) + 1
    bwd = -fwd
    ci = np.asarray(lagged_inputs(jnp.asarray(fwd), jnp.asarray(bwd), lag, n_time))
    assert ci.shape == (n_time, 2 * E)
    for t in range(n_time):
        want_f = fwd[t - lag] if 0 <= t - lag < T and t < T else 0.0
        want_b = bwd[t + lag] if t + lag < T else 0.0
        np.testing.assert_array_equal(ci[t, :E], want_f)
        np.testing.assert_array_equal(ci[t, E:], want_b)


def test_model_argument_errors():
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="reconstruction must be one of"):
        rl.lfads.LFADS(3, key=key, reconstruction="binomial")
    with pytest.raises(ValueError, match="gen_dim must be a positive integer"):
        rl.lfads.LFADS(3, key=key, gen_dim=0)
    with pytest.raises(ValueError, match="dropout_rate must be in"):
        rl.lfads.LFADS(3, key=key, dropout_rate=1.0)
    with pytest.raises(TypeError, match="key must be one JAX PRNG key"):
        rl.lfads.LFADS(3, key=0)
    m = rl.lfads.LFADS(3, key=key, ext_input_dim=1, **SMALL)
    with pytest.raises(ValueError, match="ext_input"):
        m(jnp.ones((4, 3)))


def test_coordinated_dropout_masks_what_it_claims():
    m = rl.lfads.LFADS(6, key=jax.random.PRNGKey(0), n_heldout=2, dropout_rate=0.0, **SMALL)
    rng = np.random.default_rng(5)
    recon = jnp.asarray(rng.poisson(2.0, (16, 9, 8)), jnp.float32)
    encod = recon[:, :7, :6]  # two forward bins, two held-out neurons
    key = jax.random.PRNGKey(3)
    kw = dict(scales=Scales(), kl_ramp=jnp.float32(1.0), l2_ramp=jnp.float32(1.0),
              cd_rate=0.4, cd_pass_rate=0.0, train=True)

    def loss(e, r):
        return elbo_loss(m, e, r, None, key, **kw)[0]

    # compiled: run eagerly, the gradient dispatches and compiles hundreds of small programs
    g_enc, g_rec = jax.jit(jax.grad(loss, argnums=(0, 1)))(encod, recon)
    keep, grad = cd_masks(jax.random.split(key)[0], encod.shape, 0.4, 0.0)
    keep, grad = np.asarray(keep), np.asarray(grad)
    assert abs(1 - keep.mean() - 0.4) < 0.05  # the rate it claims
    # the encoder never saw the dropped entries: no gradient flows to them
    assert np.all(np.asarray(g_enc)[~keep] == 0) and np.all(np.asarray(g_enc)[keep] != 0)
    # the reconstruction gradient flows only through the dropped entries ...
    g = np.asarray(g_rec)
    assert np.all(g[:, :7, :6][keep] == 0) and np.all(g[:, :7, :6][~keep] != 0)
    # ... and always through forward bins and held-out neurons
    assert np.all(g[:, 7:, :] != 0) and np.all(g[:, :, 6:] != 0)
    # cd_pass_rate = 1: every entry gets its gradient
    kw["cd_pass_rate"] = 1.0
    g1 = np.asarray(jax.jit(jax.grad(loss, argnums=1))(encod, recon))
    assert np.all(g1 != 0)


def test_dropout_masks_drop_at_the_rate_and_keep_the_mean():
    from rnnlab.lfads._model import keep_masks

    a, b = keep_masks(jax.random.PRNGKey(0), 0.3, [(400, 500), (3, 7)])
    assert a.shape == (400, 500) and b.shape == (3, 7)
    a = np.asarray(a)
    assert set(np.unique(a)) == {0.0, np.float32(1 / 0.7)}
    # 200,000 draws: the dropped fraction within 4 standard errors of 0.3, the mean of 1
    assert abs(np.mean(a == 0) - 0.3) < 4 * np.sqrt(0.3 * 0.7 / a.size)
    assert abs(a.mean() - 1.0) < 4 * np.sqrt(0.3 / 0.7 / a.size)
    # the masks of one draw come from different bits
    c, d = keep_masks(jax.random.PRNGKey(1), 0.05, [(1000,), (1000,)])
    assert not np.array_equal(np.asarray(c), np.asarray(d))


def test_step_random_numbers_are_jax_randoms_bit_for_bit():
    """The training step's fused threefry gives jax.random's bits, Bernoulli and normal draws
    (JAX's default counter layout), for one key, typed keys and keys under vmap."""
    from rnnlab.lfads._random import bernoulli, normal, random_bits

    with jax.threefry_partitionable(True):
        for key in (jax.random.PRNGKey(0), jax.random.PRNGKey(2**31 + 5), jax.random.key(7)):
            for shape in ((1,), (7,), (4089,), (3, 5, 2)):
                np.testing.assert_array_equal(random_bits(key, shape),
                                              jax.random.bits(key, shape, jnp.uint32))
                for p in (0.7, 0.05):
                    np.testing.assert_array_equal(bernoulli(key, p, shape),
                                                  jax.random.bernoulli(key, p, shape))
                np.testing.assert_array_equal(normal(key, shape), jax.random.normal(key, shape))
        keys = jax.random.split(jax.random.PRNGKey(3), 4)
        np.testing.assert_array_equal(
            jax.vmap(lambda k: random_bits(k, (100,)))(keys),
            jax.vmap(lambda k: jax.random.bits(k, (100,), jnp.uint32))(keys))


def test_save_load_round_trip(tmp_path):
    m = rl.lfads.LFADS(5, key=jax.random.PRNGKey(2), reconstruction="zig", n_heldout=1,
                       cell_clip=None, **SMALL)
    rl.lfads.save(tmp_path / "m.safetensors", m)
    back = rl.lfads.load(tmp_path / "m.safetensors")
    assert back.config() == m.config() and back.cell_clip is None
    x = jnp.asarray(np.random.default_rng(0).poisson(1.0, (7, 5)), jnp.float32)
    a, b = m(x), back(x)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    raw = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "bad.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="bad.safetensors"):
        rl.lfads.load(tmp_path / "bad.safetensors")
    with pytest.raises(TypeError, match="LFADS"):
        rl.lfads.save(tmp_path / "x.safetensors", rl.GRU(1, 2, 1, key=jax.random.PRNGKey(0)))

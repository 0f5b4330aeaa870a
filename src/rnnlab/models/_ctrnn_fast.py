"""The fast batched CT-RNN unroll used for training.

Three things make it fast on a CPU (and help on a GPU):

1. Everything that does not depend on the previous state leaves the time loop: the input
   projection ``u W_in^T + b`` (with input noise) is one matrix product over all (time x batch)
   rows, the recurrent noise is drawn for the whole batch at once, and the readout is applied to
   all states afterwards by the caller.
2. The reverse pass is written by hand (`jax.custom_vjp`): the backward scan carries only the
   state cotangent ([batch, hidden]) and does one [batch, hidden] x [hidden, hidden] product per
   step; the recurrent weight gradient is formed afterwards as a single product over all
   (time x batch) rows, and the per-step activation derivatives are computed in one vectorised
   pass over all states instead of inside the loop.
3. Gaussian noise comes from `normal`, which returns exactly the numbers of
   ``jax.random.normal`` (threefry, the default partitionable layout) but evaluates the threefry
   rounds as plain fused integer array operations, several times faster on a CPU.

The results equal plain autodiff through ``lax.scan`` to float rounding (the tests compare both
on every model option).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

# ------------------------------------------------------------------------------ noise

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _rotl(x: Array, r: int) -> Array:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _threefry2x32(k0: Array, k1: Array, x0: Array, x1: Array) -> tuple[Array, Array]:
    """Threefry-2x32 with 20 rounds (Salmon et al. 2011), as JAX's ``threefry_2x32``."""
    k2 = k0 ^ k1 ^ np.uint32(0x1BD11BDA)
    ks = (k0, k1, k2)
    x0 = x0 + k0
    x1 = x1 + k1
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = x0 + x1
            x1 = _rotl(x1, r)
            x1 = x1 ^ x0
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x0, x1


def _raw_key(key) -> Array | None:
    """The two uint32 words of a threefry key (raw or typed), or None for other PRNGs."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if "threefry" not in str(jax.random.key_impl(key)):
            return None
        return jax.random.key_data(key)
    if key.shape != (2,) or key.dtype != jnp.uint32:
        return None
    if jax.config.jax_default_prng_impl != "threefry2x32":
        return None
    return key


def normal(key: PRNGKeyArray, shape: tuple[int, ...], dtype=jnp.float32) -> Array:
    """Standard normal samples, equal to ``jax.random.normal(key, shape, dtype)``.

    For threefry keys under JAX's default (``jax_threefry_partitionable=True``) the numbers are
    bit-for-bit those of ``jax.random.normal``; the threefry rounds are evaluated as fused
    elementwise integer operations (about 3-4x faster on a CPU than the library's lowering). For
    other PRNG implementations, 64-bit dtypes or more than 2^32 samples it calls
    ``jax.random.normal``.
    """
    raw = _raw_key(key)
    size = int(np.prod(shape))
    dtype = jnp.dtype(dtype)
    if (
        raw is None
        or dtype != jnp.float32
        or size >= 2**32
        or not jax.config.jax_threefry_partitionable
    ):
        return jax.random.normal(key, shape, dtype)
    counts = jax.lax.iota(jnp.uint32, size).reshape(shape)
    b0, b1 = _threefry2x32(raw[0], raw[1], jnp.zeros_like(counts), counts)
    bits = b0 ^ b1
    # as jax.random.uniform(lo=nextafter(-1, 0), hi=1) then sqrt(2) erfinv
    one = np.array(1.0, np.float32).view(np.uint32)
    floats = jax.lax.bitcast_convert_type((bits >> np.uint32(9)) | one, jnp.float32) - 1.0
    lo = np.nextafter(np.float32(-1.0), np.float32(0.0))
    u = jnp.maximum(lo, floats * (np.float32(1.0) - lo) + lo)
    return np.float32(np.sqrt(2)) * jax.lax.erf_inv(u)


# ------------------------------------------------------------------------------ scans


def _act_and_slope(act, x: Array) -> tuple[Array, Array]:
    """f(x) and f'(x) elementwise (forward-mode through the activation)."""
    return jax.jvp(act, (x,), (jnp.ones_like(x),))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _potential_scan(act, wa_t, decay, z, x0):
    """x[t+1] = decay * x[t] + f(x[t]) @ wa_t + z[t]; returns x[1..T] as [T, B, N]."""

    def body(x, zt):
        new = decay * x + act(x) @ wa_t + zt
        return new, new

    _, xs = jax.lax.scan(body, x0, z)
    return xs


def _potential_fwd(act, wa_t, decay, z, x0):
    xs = _potential_scan(act, wa_t, decay, z, x0)
    return xs, (wa_t, decay, x0, xs)


def _potential_bwd(act, res, g):
    wa_t, decay, x0, xs = res
    states = jnp.concatenate([x0[None], xs], axis=0)  # [T+1, B, N]
    f_all, df_all = _act_and_slope(act, states)
    wa = wa_t.T

    # lam[t] = dL/dxs[t] in total: g[t] + decay * lam[t+1] + f'(xs[t]) * (lam[t+1] @ wa)
    def body(lam_next, inp):
        g_t, df_t = inp
        lam = g_t + decay * lam_next + df_t * (lam_next @ wa)
        return lam, lam

    _, lam = jax.lax.scan(body, jnp.zeros_like(x0), (g, df_all[1:]), reverse=True)
    n = x0.shape[-1]
    f_prev = f_all[:-1].reshape(-1, n)
    d_wa_t = f_prev.T @ lam.reshape(-1, n)
    d_decay = jnp.sum(lam * states[:-1], axis=(0, 1))
    d_x0 = decay * lam[0] + df_all[0] * (lam[0] @ wa)
    return d_wa_t, d_decay, lam, d_x0


_potential_scan.defvjp(_potential_fwd, _potential_bwd)


def _rate_forward(act, w_t, alpha, decay, p, a, r0):
    def body(r, inp):
        p_t, a_t = inp
        v = r @ w_t + p_t
        new = decay * r + alpha * act(v) + a_t
        return new, (new, v)

    _, (rs, vs) = jax.lax.scan(body, r0, (p, a))
    return rs, vs


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _rate_scan(act, w_t, alpha, decay, p, a, r0):
    """r[t+1] = decay * r[t] + alpha * f(r[t] @ w_t + p[t]) + a[t]; returns r[1..T]."""
    return _rate_forward(act, w_t, alpha, decay, p, a, r0)[0]


def _rate_fwd(act, w_t, alpha, decay, p, a, r0):
    rs, vs = _rate_forward(act, w_t, alpha, decay, p, a, r0)
    return rs, (w_t, alpha, decay, r0, rs, vs)


def _rate_bwd(act, res, g):
    w_t, alpha, decay, r0, rs, vs = res
    f_v, df_v = _act_and_slope(act, vs)
    w = w_t.T
    # cotangent of v[t+1] is alpha * lam[t+1] * f'(v[t+1]); shift f'(v) so step t sees t+1
    df_next = jnp.concatenate([df_v[1:], jnp.zeros_like(df_v[:1])], axis=0)

    def body(lam_next, inp):
        g_t, df_t = inp
        lam = g_t + decay * lam_next + (alpha * lam_next * df_t) @ w
        return lam, lam

    _, lam = jax.lax.scan(body, jnp.zeros_like(r0), (g, df_next), reverse=True)
    mu = alpha * lam * df_v  # dL/dv[t]
    n = r0.shape[-1]
    r_prev = jnp.concatenate([r0[None], rs[:-1]], axis=0)
    d_w_t = r_prev.reshape(-1, n).T @ mu.reshape(-1, n)
    d_alpha = jnp.sum(lam * f_v, axis=(0, 1))
    d_decay = jnp.sum(lam * r_prev, axis=(0, 1))
    d_r0 = decay * lam[0] + mu[0] @ w
    return d_w_t, d_alpha, d_decay, mu, lam, d_r0


_rate_scan.defvjp(_rate_fwd, _rate_bwd)


# ------------------------------------------------------------------------------ public entry


def _noise_terms(model, inputs_tm, key, noise_std, input_noise_std):
    """Noisy inputs [T, B, n_in] and the unscaled recurrent noise [T, B, N] (or None)."""
    xi_rec = None
    if key is None:
        return inputs_tm, None
    k_in, k_rec = jax.random.split(key)
    # float32 draws (cast afterwards), so the noise stream does not depend on x64 mode
    dtype = inputs_tm.dtype
    if _nonzero(input_noise_std):
        inputs_tm = inputs_tm + input_noise_std * normal(k_in, inputs_tm.shape).astype(dtype)
    if _nonzero(noise_std):
        t, b = inputs_tm.shape[:2]
        xi_rec = normal(k_rec, (t, b, model.n_hidden)).astype(dtype)
    return inputs_tm, xi_rec


def _nonzero(value) -> bool:
    # a traced per-network level (ensembles) always counts as present
    return not isinstance(value, (int, float)) or value > 0


def _prepare(model, inputs, initial_state, key, noise_std, input_noise_std):
    if noise_std is None:
        noise_std = model.noise_std
    if input_noise_std is None:
        input_noise_std = model.input_noise_std
    inputs = jnp.asarray(inputs)
    if inputs.ndim != 3 or inputs.shape[-1] != model.n_in:
        raise ValueError(
            f"inputs must have shape [batch, time, {model.n_in}], got {inputs.shape}"
        )
    batch = inputs.shape[0]
    h0 = jnp.asarray(initial_state, inputs.dtype)
    if h0.shape == (model.n_hidden,):
        h0 = jnp.broadcast_to(h0, (batch, model.n_hidden))
    elif h0.shape != (batch, model.n_hidden):
        raise ValueError(
            f"initial_state must have shape [{model.n_hidden}] or [{batch}, {model.n_hidden}], "
            f"got {h0.shape}"
        )
    u = jnp.swapaxes(inputs, 0, 1)  # time-major [T, B, n_in]
    u, xi_rec = _noise_terms(model, u, key, noise_std, input_noise_std)
    w = model.effective_weights()
    alpha = model.alpha.astype(inputs.dtype)
    add = None
    if xi_rec is not None:
        add = (jnp.sqrt(2.0 * alpha) * noise_std) * xi_rec
    # 2-D products: autodiff of a 3-D `u @ W.T` contracts over two axes, which XLA's CPU
    # backend runs several times slower than the same product on flattened rows
    t_len = u.shape[0]
    proj = (u.reshape(-1, model.n_in) @ w["w_in"].T + w["b_rec"]).reshape(
        t_len, batch, model.n_hidden
    )
    return w, alpha, proj, add, h0


def ctrnn_unroll_batch(
    model,
    inputs: Float[Array, "batch time n_in"],
    initial_state: Float[Array, "... n_hidden"],
    *,
    key: PRNGKeyArray | None = None,
    noise_std=None,
    input_noise_std=None,
) -> Float[Array, "batch time n_hidden"]:
    """Run a `CTRNN` over a batch of trials with the fast hand-written reverse pass.

    The equations are those of `CTRNN.step` (Euler, ``sqrt(2 alpha)``-scaled recurrent noise,
    additive input noise). The noise for the whole batch is drawn from ``key`` at once:
    ``k_in, k_rec = split(key)``, input noise ``normal(k_in, [T, B, n_in])`` and recurrent noise
    ``normal(k_rec, [T, B, n_hidden])`` (time-major), so the stream differs from unrolling the
    trials one by one with split keys.

    Args:
        model: a `CTRNN`.
        inputs: [B, T, n_in].
        initial_state: [n_hidden] (shared) or [B, n_hidden].
        key: noise key; None runs noise-free.
        noise_std, input_noise_std: override the model's (static) noise levels; may be traced
            scalars (used by ensembles whose members differ in noise).

    Returns: states [B, T, n_hidden]; ``states[:, t]`` is the state after ``inputs[:, t]``.
    """
    if noise_std is None:
        noise_std = model.noise_std
    w, alpha, proj, add, h0 = _prepare(
        model, inputs, initial_state, key, noise_std, input_noise_std
    )
    decay = 1.0 - alpha
    w_t = w["w_rec"].T
    if model.form == "potential":
        z = alpha * proj if add is None else alpha * proj + add
        xs = _potential_scan(model.activation, alpha[None, :] * w_t, decay, z, h0)
    else:
        a = jnp.zeros_like(proj) if add is None else add
        xs = _rate_scan(model.activation, w_t, alpha, decay, proj, a, h0)
    return jnp.swapaxes(xs, 0, 1)


def plain_unroll_batch(
    model,
    inputs: Float[Array, "batch time n_in"],
    initial_state: Float[Array, "... n_hidden"],
    *,
    key: PRNGKeyArray | None = None,
    noise_std=None,
    input_noise_std=None,
) -> Float[Array, "batch time n_hidden"]:
    """The same computation as `ctrnn_unroll_batch` (same noise from the same key), written as
    a plain ``lax.scan`` of `CTRNN` Euler steps and differentiated by JAX's autodiff.

    The reference the fast path is tested and benchmarked against.
    """
    if noise_std is None:
        noise_std = model.noise_std
    w, alpha, proj, add, h0 = _prepare(
        model, inputs, initial_state, key, noise_std, input_noise_std
    )
    if add is None:
        add = jnp.zeros_like(proj)

    def body(x, inp):
        p, a = inp
        drive = jax.vmap(lambda xb, pb: model._drive(w, xb, pb))(x, p)
        new = (1.0 - alpha) * x + alpha * drive + a
        return new, new

    _, xs = jax.lax.scan(body, h0, (proj, add))
    return jnp.swapaxes(xs, 0, 1)

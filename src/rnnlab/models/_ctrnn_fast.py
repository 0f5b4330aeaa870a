"""The fast batched CT-RNN unroll used for training.

Four things make it fast on a CPU (and help on a GPU):

1. Everything that does not depend on the previous state leaves the time loop: the input
   projection ``u W_in^T + b`` (with input noise) is one matrix product over all (time x batch)
   rows, the recurrent noise is drawn for the whole batch at once, and the readout is applied to
   all states afterwards by the caller.
2. The reverse pass is written by hand (`jax.custom_vjp`): the backward scan carries only the
   state cotangent ([batch, hidden]) and does one [batch, hidden] x [hidden, hidden] product per
   step; no per-step residuals besides the states are stored. The activation slope is
   recomputed from the stored state (potential form) or pre-activation (rate form) inside the
   reverse loop, and the recurrent weight gradient is accumulated there ([hidden, batch] x
   [batch, hidden] per step, in cache).
3. Gaussian noise comes from `rnnlab._random.normal` (Threefry-2x32-13 bits and an exact
   Box-Muller transform with a polynomial cosine), about 4x cheaper than ``jax.random.normal``
   on a CPU; see that module for the generator and its statistical tests.
4. With several CPU devices the batch is split over them (`batch_sharding`): XLA runs one
   device's time loop on one core.

The results equal plain autodiff through ``lax.scan`` to float rounding (the tests compare both
on every model option).
"""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray


# ------------------------------------------------------------------------------ row products

_SMALL = 8  # contractions this short run as fused multiply-adds instead of library GEMMs


def _mm(a: Array, b: Array) -> Array:
    """a @ b for 2-D arrays; a short contraction becomes a fused broadcast multiply-add."""
    k = a.shape[1]
    if k > _SMALL:
        return a @ b
    out = a[:, 0:1] * b[0]
    for i in range(1, k):
        out = out + a[:, i : i + 1] * b[i]
    return out


def _row_sum(g: Array) -> Array:
    """Sum over rows in two stages (a single long reduction is slower on XLA's CPU backend)."""
    rows = g.shape[0]
    for block in (256, 128, 64, 32, 16):
        if rows % block == 0 and rows > block:
            return jnp.sum(jnp.sum(g.reshape(rows // block, block, -1), axis=1), axis=0)
    return jnp.sum(g, axis=0)


@jax.custom_vjp
def affine_rows(x: Array, w_t: Array, b: Array) -> Array:
    """``x @ w_t + b`` for x [rows, k], w_t [k, m], b [m], with products shaped for speed.

    The network's input projection (k = n_in, often 1-10) and readout (m = n_out) are
    skinny products over all (batch x time) rows; a library GEMM handles those poorly on a CPU,
    so short contractions run as fused multiply-adds. Gradients are the exact ones.
    """
    return _mm(x, w_t) + b


def _affine_fwd(x, w_t, b):
    return affine_rows(x, w_t, b), (x, w_t)


def _affine_bwd(res, g):
    x, w_t = res
    return _mm(g, w_t.T), x.T @ g, _row_sum(g)


affine_rows.defvjp(_affine_fwd, _affine_bwd)


# ------------------------------------------------------------------------------ scans
#
# All arrays are batch-major, [B, T, N], as the loss consumes them: a time-major scan output
# swapped to batch-major makes XLA's CPU backend assign a transposed layout that downstream
# reductions (the loss, a rate penalty) then run over 20x slower. So the time loops are
# `fori_loop`s that read and write one time slice of a [B, T, N] buffer in place.


def potential_euler(act, wa_t: Array, decay: Array, x: Array, z: Array) -> Array:
    """One Euler step of the potential form, for a state [N] or a batch [B, N]:
    ``x' = decay * x + f(x) @ (alpha W_rec^T) + z`` with ``z = alpha (W_in u + b) + noise``.

    The one definition of the step: `CTRNN.step`, `CTRNN.unroll` and the training loop below
    all call it (its reverse pass, `_potential_bwd`, is its derivative written by hand).
    """
    return decay * x + act(x) @ wa_t + z


def rate_euler(
    act, w_t: Array, alpha: Array, decay: Array, r: Array, p: Array, a: Array
) -> tuple[Array, Array]:
    """One Euler step of the rate form, for a state [N] or a batch [B, N]: with the
    pre-activation ``v = r @ W_rec^T + p`` (``p = W_in u + b``), ``r' = decay * r +
    alpha * f(v) + a`` (``a`` the noise). Returns ``(r', v)``. Used as `potential_euler`."""
    v = r @ w_t + p
    return decay * r + alpha * act(v) + a, v


def _act_and_slope(act, x: Array) -> tuple[Array, Array]:
    """f(x) and f'(x) elementwise (forward-mode through the activation)."""
    return jax.jvp(act, (x,), (jnp.ones_like(x),))


def _slice(buf: Array, t) -> Array:
    return jax.lax.dynamic_index_in_dim(buf, t, axis=1, keepdims=False)


def _put(buf: Array, value: Array, t) -> Array:
    return jax.lax.dynamic_update_index_in_dim(buf, value, t, axis=1)


def _shift_in(first: Array, seq: Array) -> Array:
    """[first, seq[:, 0], ..., seq[:, T-2]]: the value entering each step."""
    return jnp.concatenate([first[:, None], seq[:, :-1]], axis=1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _potential_scan(act, wa_t, decay, z, x0):
    """x[t+1] = decay * x[t] + f(x[t]) @ wa_t + z[t]; z [B, T, N]; returns x[1..T] [B, T, N]."""

    def body(t, carry):
        x, buf = carry  # buf holds z[:, t:] and the states written so far
        new = potential_euler(act, wa_t, decay, x, _slice(buf, t))
        return new, _put(buf, new, t)

    return jax.lax.fori_loop(0, z.shape[1], body, (x0, z))[1]


def _potential_fwd(act, wa_t, decay, z, x0):
    xs = _potential_scan(act, wa_t, decay, z, x0)
    return xs, (wa_t, decay, x0, xs)


def _potential_bwd(act, res, g):
    wa_t, decay, x0, xs = res
    n_steps = xs.shape[1]
    f0, df0 = _act_and_slope(act, x0)
    wa = wa_t.T

    # lam[t] = dL/dxs[t] in total = g[t] + decay * lam[t+1] + f'(xs[t]) * (lam[t+1] @ wa).
    # f(xs[t]) and f'(xs[t]) are recomputed in the loop from the stored state (in cache, no
    # [B, T, N] buffers of rates or slopes), and the recurrent weight gradient
    # sum_t f(x_in[t])^T lam[t] is accumulated there too: f(xs[t]) is the input of step t + 1,
    # whose cotangent lam[t+1] is the carry. Measured on a CPU this beats a separate
    # rates pass, a shifted copy and one big [N, T*B] x [T*B, N] product afterwards.
    def body(i, carry):
        lam_next, d_wa_t, buf = carry  # buf holds g[:, :t+1] and lam[:, t+1:]
        t = n_steps - 1 - i
        f_t, df_t = _act_and_slope(act, _slice(xs, t))
        lam = _slice(buf, t) + decay * lam_next + df_t * (lam_next @ wa)
        # an explicit transposed copy (kept by the barrier, in cache) makes the product a plain
        # [N, B] x [B, N] GEMM, faster on XLA's CPU backend than its transposed-operand dot
        f_t_t = jax.lax.optimization_barrier(jnp.transpose(f_t))
        d_wa_t = d_wa_t + f_t_t @ lam_next
        return lam, d_wa_t, _put(buf, lam, t)

    init = (jnp.zeros_like(x0), jnp.zeros_like(wa_t), g)
    lam0, d_wa_t, lam = jax.lax.fori_loop(0, n_steps, body, init)
    d_wa_t = d_wa_t + f0.T @ lam0
    d_decay = jnp.sum(lam * _shift_in(x0, xs), axis=(0, 1))  # dropped unless tau is trained
    d_x0 = decay * lam0 + df0 * (lam0 @ wa)
    return d_wa_t, d_decay, lam, d_x0


_potential_scan.defvjp(_potential_fwd, _potential_bwd)


def _rate_forward(act, w_t, alpha, decay, p, a, r0):
    """r[t+1] = decay * r[t] + alpha * f(v[t]) + a[t], v[t] = r[t] @ w_t + p[t]."""

    def body(t, carry):
        r, r_buf, v_buf = carry  # r_buf holds a[:, t:], v_buf holds p[:, t:]
        new, v = rate_euler(act, w_t, alpha, decay, r, _slice(v_buf, t), _slice(r_buf, t))
        return new, _put(r_buf, new, t), _put(v_buf, v, t)

    _, rs, vs = jax.lax.fori_loop(0, p.shape[1], body, (r0, a, p))
    return rs, vs


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _rate_scan(act, w_t, alpha, decay, p, a, r0):
    """The rate-form Euler loop; p, a [B, T, N]; returns r[1..T] [B, T, N]."""
    return _rate_forward(act, w_t, alpha, decay, p, a, r0)[0]


def _rate_fwd(act, w_t, alpha, decay, p, a, r0):
    rs, vs = _rate_forward(act, w_t, alpha, decay, p, a, r0)
    return rs, (w_t, alpha, decay, r0, rs, vs)


def _rate_bwd(act, res, g):
    w_t, alpha, decay, r0, rs, vs = res
    n_steps = rs.shape[1]
    w = w_t.T

    # lam[t] = g[t] + decay * lam[t+1] + mu[t+1] @ w, with mu[t] = alpha lam[t] f'(v[t]) = dL/dv[t].
    # As in the potential form, the slope is recomputed in the loop and the weight gradient
    # sum_t r_in[t]^T mu[t] accumulated there: rs[t] is the input of step t + 1.
    def body(i, carry):
        lam_next, mu_next, d_w_t, lam_buf, mu_buf = carry
        t = n_steps - 1 - i
        lam = _slice(lam_buf, t) + decay * lam_next + mu_next @ w
        mu = alpha * lam * _act_and_slope(act, _slice(vs, t))[1]
        r_t_t = jax.lax.optimization_barrier(jnp.transpose(_slice(rs, t)))  # see potential form
        d_w_t = d_w_t + r_t_t @ mu_next
        return lam, mu, d_w_t, _put(lam_buf, lam, t), _put(mu_buf, mu, t)

    zeros = jnp.zeros_like(r0)
    init = (zeros, zeros, jnp.zeros_like(w_t), g, jnp.zeros_like(g))
    lam0, mu0, d_w_t, lam, mu = jax.lax.fori_loop(0, n_steps, body, init)
    d_w_t = d_w_t + r0.T @ mu0
    # dropped unless tau is trained
    d_alpha = jnp.sum(lam * act(vs), axis=(0, 1))
    d_decay = jnp.sum(lam * _shift_in(r0, rs), axis=(0, 1))
    d_r0 = decay * lam0 + mu0 @ w
    return d_w_t, d_alpha, d_decay, mu, lam, d_r0


_rate_scan.defvjp(_rate_fwd, _rate_bwd)


# ------------------------------------------------------------------------------ public entry


def batch_sharding(batch: int):
    """A sharding that splits the batch axis over this process's CPU devices, or None.

    XLA's CPU backend runs one device's program on one core, apart from large matrix products
    and elementwise loops: the time loop's per-step [batch, hidden] x [hidden, hidden] products
    run on one core whatever the thread pool. Exposing the cores as JAX devices (before JAX
    first runs: ``jax.config.update("jax_num_cpu_devices", os.cpu_count())``, or
    ``XLA_FLAGS=--xla_force_host_platform_device_count=N``) lets the batch be split over them:
    each device runs the loops for its share of the trials, and the weight gradients are
    summed across devices. With one CPU device (JAX's default), or on GPU/TPU, this returns
    None and nothing changes. Results equal the one-device run up to float summation order.
    """
    if jax.default_backend() != "cpu":
        return None
    devices = jax.local_devices()
    n = len(devices)
    while n > 1 and batch % n:
        n -= 1
    if n < 2:
        return None
    mesh = jax.sharding.Mesh(np.array(devices[:n]), ("batch",))
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))


def _shard(x: Array, sharding) -> Array:
    return x if sharding is None else jax.lax.with_sharding_constraint(x, sharding)


def _with_levels(model, noise_std, input_noise_std):
    """``model`` with its noise levels replaced where given (scalars, possibly traced)."""
    for name, level in (("noise_std", noise_std), ("input_noise_std", input_noise_std)):
        if level is not None:
            value = jnp.asarray(level, getattr(model, name).dtype)
            model = eqx.tree_at(lambda m, name=name: getattr(m, name), model, value)
    return model


def _prepare(model, inputs, initial_state, key, sharding=None):
    """Checked inputs and initial states [B, N], the stepping weights and the
    state-independent terms of every step (noise included), from the model's own step."""
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
    inputs, h0 = _shard(inputs, sharding), _shard(h0, sharding)
    w = model._stepping_weights(inputs.dtype)
    noise = model._draw_noise(key, inputs.shape[:2], inputs.dtype)
    # 2-D products over flattened rows (autodiff of a 3-D `u @ W.T` contracts over two axes,
    # which XLA's CPU backend runs several times slower)
    return w, model._input_terms(w, inputs, noise, rows=True), h0


def ctrnn_unroll_batch(
    model,
    inputs: ArrayLike,  # [batch, time, n_in], checked here
    initial_state: ArrayLike,  # [n_hidden] or [batch, n_hidden], checked here
    *,
    key: PRNGKeyArray | None = None,
    noise_std=None,
    input_noise_std=None,
) -> Float[Array, "batch time n_hidden"]:
    """Run a `CTRNN` over a batch of trials with the fast hand-written reverse pass.

    The step is `CTRNN.step`'s (its `_input_terms` and `potential_euler` / `rate_euler`); the
    noise of the whole batch is drawn from ``key`` at once by `CTRNN._draw_noise`:
    ``k_in, k_rec = split(key)``, input noise ``normal(k_in, [B, T, n_in])`` and recurrent noise
    ``normal(k_rec, [B, T, n_hidden])`` with `rnnlab._random.normal` (float32 draws; a faster
    generator than ``jax.random.normal``, not the same numbers). Trial 0 therefore sees the
    noise `CTRNN.unroll` draws from ``key``, and `rnnlab.simulate` runs this function.

    Args:
        model: a `CTRNN`.
        inputs: [B, T, n_in].
        initial_state: [n_hidden] (shared) or [B, n_hidden].
        key: noise key; None runs noise-free.
        noise_std, input_noise_std: replace the model's noise levels (scalars, may be traced);
            the model's own levels are data already, so ensembles need not pass them.

    With several CPU devices (see `batch_sharding`) the batch is split over them, one core
    each; the numbers are the same.

    Returns: states [B, T, n_hidden]; ``states[:, t]`` is the state after ``inputs[:, t]``.
    """
    model = _with_levels(model, noise_std, input_noise_std)
    sharding = batch_sharding(jnp.shape(inputs)[0]) if jnp.ndim(inputs) == 3 else None
    w, terms, h0 = _prepare(model, inputs, initial_state, key, sharding)
    if model.form == "potential":
        xs = _potential_scan(model.activation, w["w_step"], w["decay"], terms, h0)
    else:
        p, a = terms
        xs = _rate_scan(model.activation, w["w_step"], w["alpha"], w["decay"], p, a, h0)
    return _shard(xs, sharding)


def plain_unroll_batch(
    model,
    inputs: Float[ArrayLike, "batch time n_in"],
    initial_state: Float[ArrayLike, "... n_hidden"],
    *,
    key: PRNGKeyArray | None = None,
    noise_std=None,
    input_noise_std=None,
) -> Float[Array, "batch time n_hidden"]:
    """The same computation as `ctrnn_unroll_batch` (same noise from the same key), written as
    a plain ``lax.scan`` of the model's step and differentiated by JAX's autodiff.

    The reference the fast path's reverse pass is tested and benchmarked against.
    """
    model = _with_levels(model, noise_std, input_noise_std)
    w, terms, h0 = _prepare(model, inputs, initial_state, key)

    def body(x, xs):
        new = model._advance(w, x, xs)
        return new, new

    time_major = jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), terms)
    _, xs = jax.lax.scan(body, h0, time_major)
    return jnp.swapaxes(xs, 0, 1)

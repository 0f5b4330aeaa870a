"""The two numerical stages of the fixed-point search (private).

Stage 1 (`adam_stage`) is the FixedPointFinder algorithm (Golub & Sussillo 2018): Adam on
``q = 1/2 |F|^2`` with an adaptive learning rate and adaptive gradient-norm clipping, run for all
candidates at once in one compiled loop. Stage 2 (`lm_stage`) is a Levenberg-Marquardt /
Newton iteration in float64 that polishes the candidates to machine precision.

Both work on the *map-scaled* residual ``r = s F`` (``s = dt`` for continuous-time models, 1 for
maps): for a CT-RNN this is the residual of the Euler map, exactly the objective
FixedPointFinder minimises for the same network, so its defaults (``tol_q``, Adam's epsilon)
keep their meaning. Roots are the same for any ``s``.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial import cKDTree
from threadpoolctl import threadpool_limits

# FixedPointFinder's published defaults (FixedPointFinder.py, AdaptiveLearningRate.py,
# AdaptiveGradNormClip.py).
FPF_DEFAULTS = {
    "tol_q": 1e-12,
    "tol_dq": 1e-20,
    "max_iters": 5000,
    "lr_init": 1.0,
    "lr_min": 1e-3,
    "lr_patience": 5,  # min_steps_per_increase = min_steps_per_decrease
    "lr_decrease": 0.95,
    "lr_increase": 1.0 / 0.95,
    "adam_eps": 0.01,
    "adam_b1": 0.9,
    "adam_b2": 0.999,
    "clip_window": 128,
    "clip_percentile": 95.0,
}


CLIP_EVERY = 16


def _residual(model, x, u, scale):
    return scale * model.vector_field(x, u)


# ------------------------------------------------------------------------------ stage 1: Adam


class AdamState(eqx.Module):
    x: jax.Array
    m: jax.Array
    v: jax.Array
    lr: jax.Array
    q_log: jax.Array  # the last lr_patience + 1 values of q, newest last
    last_update: jax.Array
    norms: jax.Array  # ring buffer of gradient norms
    clip: jax.Array  # current clipping level (refreshed every CLIP_EVERY iterations)
    q: jax.Array
    dq: jax.Array
    n_iter: jax.Array
    done: jax.Array


def adam_init(x, hp):
    dtype = x.dtype
    n = hp["lr_patience"] + 1
    return AdamState(
        x=x,
        m=jnp.zeros_like(x),
        v=jnp.zeros_like(x),
        lr=jnp.asarray(hp["lr_init"], dtype),
        q_log=jnp.full((n,), jnp.inf, dtype),
        last_update=jnp.asarray(0, jnp.int32),
        norms=jnp.full((hp["clip_window"],), jnp.nan, dtype),
        clip=jnp.asarray(jnp.inf, dtype),
        q=jnp.asarray(jnp.inf, dtype),
        dq=jnp.asarray(jnp.inf, dtype),
        n_iter=jnp.asarray(0, jnp.int32),
        done=jnp.asarray(False),
    )


def _adam_one(model, u, scale, s: AdamState, hp, q_stop) -> AdamState:
    """One FixedPointFinder iteration for one candidate (a no-op once it is done)."""

    def q_fn(x):
        r = _residual(model, x, u, scale)
        return 0.5 * jnp.sum(r * r)

    q, g = jax.value_and_grad(q_fn)(s.x)
    dq = jnp.abs(q - s.q)
    it = s.n_iter
    # Stop test at the current point (FixedPointFinder: after the first iterations, stop when
    # dq < tol_dq * lr or q < tol_q); q_stop is the hand-off / slow-point level.
    done = ((it > 1) & (dq < hp["tol_dq"] * s.lr)) | (q < hp["tol_q"]) | (q < q_stop)
    done = done | (it >= hp["max_iters"]) | ~jnp.isfinite(q)

    # Adaptive gradient-norm clipping: the 95th percentile of the recent norms.
    gnorm = jnp.linalg.norm(g)
    g = g * jnp.minimum(1.0, s.clip / jnp.maximum(gnorm, 1e-30))

    # Adam (TF defaults, FixedPointFinder's epsilon 0.01), bias-corrected.
    t = (it + 1).astype(s.x.dtype)
    m = hp["adam_b1"] * s.m + (1 - hp["adam_b1"]) * g
    v = hp["adam_b2"] * s.v + (1 - hp["adam_b2"]) * g * g
    mhat = m / (1 - hp["adam_b1"] ** t)
    vhat = v / (1 - hp["adam_b2"] ** t)
    x = s.x - s.lr * mhat / (jnp.sqrt(vhat) + hp["adam_eps"])

    # Adaptive learning rate (AdaptiveLearningRate.update with this iteration's q).
    q_log = jnp.concatenate([s.q_log[1:], q[None]])
    step = it + 1
    may = step >= s.last_update + hp["lr_patience"]
    inc = may & jnp.all(q_log[1:] < q_log[:-1])
    dec = may & ~inc & jnp.all(q_log[-1] > q_log[:-1])
    lr = jnp.where(inc, s.lr * hp["lr_increase"], jnp.where(dec, s.lr * hp["lr_decrease"], s.lr))
    lr = jnp.maximum(lr, hp["lr_min"])
    last_update = jnp.where(inc | dec, step, s.last_update)
    norms = s.norms.at[it % hp["clip_window"]].set(gnorm)

    new = AdamState(x, m, v, lr, q_log, last_update, norms, s.clip, q, dq, step, done)
    # A finished candidate keeps its state (and the q measured at it).
    keep = jax.tree.map(lambda a, b: jnp.where(done, a, b), s, new)
    return eqx.tree_at(lambda st: (st.q, st.dq, st.done), keep, (q, dq, done))


@eqx.filter_jit
def _adam_chunk(model, us, scale, state, hp, q_stop, n_steps):
    def cond(c):
        i, st = c
        return (i < n_steps) & ~jnp.all(st.done)

    def refresh_clip(st):
        def one(norms):
            have = jnp.any(jnp.isfinite(norms))
            return jnp.where(have, jnp.nanpercentile(norms, hp["clip_percentile"]), jnp.inf)

        return eqx.tree_at(lambda s: s.clip, st, jax.vmap(one)(st.norms))

    def body(c):
        i, st = c
        # The percentile over each candidate's window is the costliest part of an iteration;
        # refreshing it every CLIP_EVERY iterations (not every one) changes nothing measurable.
        st = jax.lax.cond(i % CLIP_EVERY == 0, refresh_clip, lambda s: s, st)
        st = jax.vmap(lambda u, s: _adam_one(model, u, scale, s, hp, q_stop))(us, st)
        return i + 1, st

    _, state = jax.lax.while_loop(cond, body, (jnp.asarray(0), state))
    return state


def _bucket(n: int) -> int:
    """Padded batch size: 8, 32, 128, then powers of 2 (few distinct shapes, so few
    compilations across calls and across the shrinking set of unfinished candidates)."""
    n = max(n, 1)
    if n <= 128:
        return 8 if n <= 8 else 32 if n <= 32 else 128
    return 1 << math.ceil(math.log2(n))


def _take(tree, idx):
    return jax.tree.map(lambda a: a[idx], tree)


def _put(tree, idx, values):
    def put(a, b):
        a = np.array(a)
        a[idx] = b
        return a

    return jax.tree.map(put, tree, values)


def run_compacted(chunk_fn, us, state, n_total, *, chunk):
    """Run ``chunk_fn`` on the unfinished candidates, ``chunk`` iterations at a time, compacting
    them into padded buckets between chunks so stragglers do not drag the whole batch.

    The bookkeeping is done on host numpy copies: indexing device arrays eagerly would compile
    one small XLA program per new shape (hundreds, measured: most of a cold call's time)."""
    us = np.asarray(us)
    state = jax.tree.map(np.asarray, jax.device_get(state))
    k = us.shape[0]
    active = np.arange(k)
    while active.size:
        size = _bucket(active.size)
        idx = np.concatenate([active, np.full(size - active.size, active[0])])
        sub = jax.device_get(chunk_fn(us[idx], _take(state, idx), chunk))
        sub = _take(sub, np.arange(active.size))
        state = _put(state, active, sub)
        if n_total is not None and np.all(np.asarray(state.n_iter)[active] >= n_total):
            break
        active = np.nonzero(~np.asarray(state.done))[0]
    return state


@eqx.filter_jit
def _adam_start(xs, hp):
    return jax.vmap(lambda x: adam_init(x, hp))(xs)


ADAM_BLOCK = 128


def adam_stage(model, xs, us, scale, hp, q_stop, *, chunk=500):
    """Stage 1 for all candidates. Returns the final AdamState (batched).

    Candidates run in blocks of ``ADAM_BLOCK`` (one compiled shape), each block until its own
    candidates are done: a few slow candidates then keep only their block iterating, not the
    whole batch (measured: 40% less stage-1 time on 1024 trajectory candidates)."""
    state = jax.tree.map(np.asarray, jax.device_get(_adam_start(xs, hp)))
    us = np.asarray(us)

    def chunk_fn(u, st, n):
        return _adam_chunk(model, u, scale, st, hp, q_stop, n)

    k = us.shape[0]
    blocks = []
    for start in range(0, k, ADAM_BLOCK):
        idx = np.arange(start, min(start + ADAM_BLOCK, k))
        blocks.append(run_compacted(chunk_fn, us[idx], _take(state, idx), None, chunk=chunk))
    return jax.tree.map(lambda *parts: np.concatenate(parts), *blocks)


# ------------------------------------------------------------------ stage 2: Levenberg-Marquardt


class LMState(eqx.Module):
    x: jax.Array  # the best point so far (smallest residual)
    r: jax.Array  # map-scaled residual at x
    z: jax.Array  # the current iterate (may be worse than x: non-monotone Newton)
    rz: jax.Array  # residual at z
    theta: jax.Array  # damping factor: mu = theta * |r|^2
    speed: jax.Array  # |F| (vector-field units) at x
    since_gain: jax.Array  # iterations since the best residual last shrank by 10%
    cap: jax.Array  # this candidate's iteration cap
    n_iter: jax.Array
    done: jax.Array
    converged: jax.Array


def lm_init(model, x, u, scale, cap):
    r = _residual(model, x, u, scale)
    speed = jnp.linalg.norm(r) / scale
    return LMState(
        x=x, r=r, z=x, rz=r, theta=jnp.asarray(1.0, x.dtype), speed=speed,
        since_gain=jnp.asarray(0, jnp.int32), cap=cap, n_iter=jnp.asarray(0, jnp.int32),
        done=jnp.asarray(False), converged=jnp.asarray(False),
    )


def _finish(s: LMState, z, rz, theta, scale, tol, max_iters, patience):
    nz = jnp.sum(rz * rz)
    best = jnp.sum(s.r * s.r)
    better = nz < best
    x = jnp.where(better, z, s.x)
    r = jnp.where(better, rz, s.r)
    gain = nz < 0.81 * best  # |r| shrank by 10%
    since_gain = jnp.where(gain, 0, s.since_gain + 1)
    speed = jnp.linalg.norm(r) / scale
    it = s.n_iter + 1
    converged = speed <= tol
    done = converged | (since_gain >= patience) | (it >= s.cap) | (theta > 1e30)
    new = LMState(x, r, z, rz, theta, speed, since_gain, s.cap, it, done, converged)
    return jax.tree.map(lambda a, b: jnp.where(s.done, a, b), s, new)


_BACKTRACK = (0.5, 0.25, 0.125, 0.0625)


def _newton_one(model, u, scale, s: LMState, tol, max_iters, patience=10) -> LMState:
    """One Newton step with the model's analytic Jacobian, safeguarded by backtracking.

    The full step is taken unless it is non-finite or multiplies |r| by more than 10 (plain
    Newton finds more roots from trajectory candidates than monotone damped variants);
    otherwise the best of the step fractions 1/2 ... 1/16 that lowers |r|. The best point seen
    is kept; a candidate stops when |F| <= tol, when its best residual has not shrunk by 10%
    for ``patience`` iterations, or after its iteration cap.
    """
    jac = scale * model.jacobian(s.z, u)
    rr = jnp.sum(s.rz * s.rz)
    dn = -jnp.linalg.solve(jac, s.rz)
    finite = jnp.all(jnp.isfinite(dn))
    dn = jnp.where(finite, dn, 0.0)
    ts = jnp.asarray((1.0,) + _BACKTRACK, s.z.dtype)
    zs = s.z[None, :] + ts[:, None] * dn[None, :]
    rs = jax.vmap(lambda z: _residual(model, z, u, scale))(zs)
    ns = jnp.sum(rs * rs, axis=1)
    ns = jnp.where(jnp.isfinite(ns) & finite, ns, jnp.inf)
    full_ok = ns[0] < 100.0 * rr
    j = jnp.argmin(ns[1:]) + 1
    part_ok = ns[j] < rr
    pick = jnp.where(full_ok, 0, jnp.where(part_ok, j, -1))
    z = jnp.where(pick >= 0, zs[pick], s.z)
    rz = jnp.where(pick >= 0, rs[pick], s.rz)
    theta = jnp.where(pick >= 0, s.theta, jnp.inf)  # no move possible: stop
    return _finish(s, z, rz, theta, scale, tol, max_iters, patience)


def _lm_one(model, u, scale, s: LMState, tol, max_iters, patience=10) -> LMState:
    """One Levenberg-Marquardt step on 1/2 |r|^2 with damping ``theta |r|^2``
    (Yamashita-Fukushima: quadratic convergence even on continua of roots; at a local minimum
    of q that is not a root it settles on that slow point)."""
    jac = scale * model.jacobian(s.z, u)
    rr = jnp.sum(s.rz * s.rz)
    eye = jnp.eye(s.z.shape[0], dtype=jac.dtype)
    dx = -jnp.linalg.solve(jac.T @ jac + (s.theta * rr + 1e-300) * eye, jac.T @ s.rz)
    z_lm = s.z + dx
    r_lm = _residual(model, z_lm, u, scale)
    n_lm = jnp.sum(r_lm * r_lm)
    ok = jnp.isfinite(n_lm) & (n_lm < rr)
    z = jnp.where(ok, z_lm, s.z)
    rz = jnp.where(ok, r_lm, s.rz)
    theta = jnp.where(ok, jnp.maximum(s.theta * 0.1, 1e-12), s.theta * 10.0)
    return _finish(s, z, rz, theta, scale, tol, max_iters, patience)


@eqx.filter_jit
def _polish_chunk(model, us, scale, state, tol, max_iters, n_steps, method):
    step_fn = _newton_one if method == "newton" else _lm_one

    def cond(c):
        i, st = c
        return (i < n_steps) & ~jnp.all(st.done)

    def body(c):
        i, st = c
        st = jax.vmap(lambda u, s: step_fn(model, u, scale, s, tol, max_iters))(us, st)
        return i + 1, st

    _, state = jax.lax.while_loop(cond, body, (jnp.asarray(0), state))
    return state


@eqx.filter_jit
def _lm_start(model, xs, us, scale, tol, caps):
    st = jax.vmap(lambda x, u, c: lm_init(model, x, u, scale, c))(xs, us, caps)
    return eqx.tree_at(lambda s: (s.done, s.converged), st,
                       (st.speed <= tol, st.speed <= tol))


def lm_stage(model, xs, us, scale, tol, caps, lm_allowed, *, chunk=3):
    """Stage 2 for all candidates (call under float64): Newton with backtracking (at most
    ``caps[i]`` iterations), then Levenberg-Marquardt from the best point for the candidates
    with ``lm_allowed[i]`` that Newton left unconverged. Returns the final LMState (n_iter
    counts both passes)."""
    caps = np.asarray(caps, np.int32)
    state = _lm_start(model, xs, us, scale, tol, caps)

    def newton_fn(u, st, n):
        return _polish_chunk(model, u, scale, st, tol, None, n, "newton")

    state = run_compacted(newton_fn, us, state, None, chunk=chunk)
    left = ~np.asarray(state.converged) & np.asarray(lm_allowed, bool)
    if left.any():
        idx = np.nonzero(left)[0]
        sub = _take(state, idx)
        used = sub.n_iter
        sub = LMState(sub.x, sub.r, sub.x, sub.r, np.ones_like(sub.theta), sub.speed,
                      np.zeros_like(sub.since_gain), sub.cap, np.zeros_like(sub.n_iter),
                      np.zeros_like(sub.done), sub.converged)

        def lm_fn(u, st, n):
            return _polish_chunk(model, u, scale, st, tol, None, n, "lm")

        sub = run_compacted(lm_fn, us[idx], sub, None, chunk=chunk)
        sub = eqx.tree_at(lambda s: s.n_iter, sub, np.asarray(sub.n_iter) + used)
        state = _put(state, idx, sub)
    return state


# ----------------------------------------------- stage 2, host-driven (the default, faster)
#
# The same Newton-then-Levenberg-Marquardt rules as `lm_stage`, but the loop runs on the host:
# one small jitted call evaluates the map-scaled residuals and analytic Jacobians of the active
# candidates (padded to a few bucket sizes, so a handful of cheap compilations), and numpy
# solves the batched linear systems (LAPACK, one thread: measured 2x faster than XLA's batched
# solve here, and no compilation of a solver loop per batch shape). Between iterations the
# candidates that have reached a root's neighbourhood are merged: a candidate whose last
# Newton step was shorter than ``merge_tol`` and that lies within ``merge_tol`` of a converged
# point or of another such candidate shares that point's result instead of iterating on.


_BLOCK = 256


def _pad_bucket(n: int) -> int:
    """Padded row count of one residual/Jacobian call: 16, 64 or 256 (larger batches go in
    blocks of 256), so at most three compilations per function and little padding."""
    size = 16
    while size < n and size < _BLOCK:
        size *= 4
    return size


@eqx.filter_jit
def _res_jac(model, xs, us, scale):
    def one(x, u):
        return scale * model.vector_field(x, u), scale * model.jacobian(x, u)

    return jax.vmap(one)(xs, us)


@eqx.filter_jit
def _res(model, xs, us, scale):
    return jax.vmap(lambda x, u: scale * model.vector_field(x, u))(xs, us)


def _padded_call(fn, model, xs, us, scale):
    """``fn`` on the rows of (xs, us), in padded blocks; returns writable numpy arrays.
    Residual-only calls are cheap and always padded to one block (one compilation)."""
    n = xs.shape[0]
    outs = []
    for start in range(0, n, _BLOCK):
        xb, ub = xs[start:start + _BLOCK], us[start:start + _BLOCK]
        m = xb.shape[0]
        size = _BLOCK if fn is _res else _pad_bucket(m)
        if size > m:
            xb = np.concatenate([xb, np.repeat(xb[:1], size - m, axis=0)])
            ub = np.concatenate([ub, np.repeat(ub[:1], size - m, axis=0)])
        out = fn(model, jnp.asarray(xb), jnp.asarray(ub), scale)
        outs.append(jax.tree.map(lambda a: np.asarray(a)[:m], out))
    if isinstance(outs[0], tuple):
        return tuple(np.concatenate(parts) for parts in zip(*outs))
    return np.concatenate(outs)


def _newton_directions(model, zs, rs, us, scale, lm_damping=None):
    """Newton steps ``-J^{-1} r`` (or, with ``lm_damping`` [B], Levenberg-Marquardt steps
    ``-(J^T J + damping I)^{-1} J^T r``) at the rows of zs, block by block (the Jacobians
    of one block at a time are in memory)."""
    out = np.empty_like(rs)
    with threadpool_limits(1, user_api="blas"):
        _directions_blocks(model, zs, rs, us, scale, lm_damping, out)
    return out


def _directions_blocks(model, zs, rs, us, scale, lm_damping, out):
    for start in range(0, zs.shape[0], _BLOCK):
        sl = slice(start, start + _BLOCK)
        _, jac = _padded_call(_res_jac, model, zs[sl], us[sl], scale)
        if lm_damping is None:
            out[sl] = _solve(jac, -rs[sl])
        else:
            jt = np.swapaxes(jac, 1, 2)
            a = jt @ jac
            idx = np.arange(a.shape[-1])
            a[:, idx, idx] += lm_damping[sl][:, None]
            out[sl] = _solve(a, -np.einsum("bij,bj->bi", jt, rs[sl]))


def _solve(a, b):
    """Batched ``a x = b`` (b [B, N]); rows with a singular matrix get NaN."""
    with threadpool_limits(1, user_api="blas"):
        try:
            return np.linalg.solve(a, b[..., None])[..., 0]
        except np.linalg.LinAlgError:
            out = np.full_like(b, np.nan)
            for i in range(a.shape[0]):
                try:
                    out[i] = np.linalg.solve(a[i], b[i])
                except np.linalg.LinAlgError:
                    pass
            return out


class HostResult(eqx.Module):
    x: np.ndarray
    speed: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray


def polish(model, xs, us, scale, tol, caps, lm_allowed, *, merge_tol, basin_radius,
           patience=10):
    """Stage 2 on the host (call under float64 with a float64 ``model``): safeguarded Newton
    (the rules of `_newton_one`) from every start, at most ``caps[i]`` iterations, merging
    candidates that reach the same root; then Levenberg-Marquardt (the rules of `_lm_one`)
    for the unconverged candidates with ``lm_allowed[i]``. Returns a `HostResult`."""
    xs = np.array(xs, np.float64)
    us = np.asarray(us, np.float64)
    k = xs.shape[0]
    caps = np.asarray(caps, np.int64)
    x = xs.copy()
    r = _padded_call(_res, model, x, us, scale)
    best = np.sum(r * r, axis=1)
    best = np.where(np.isfinite(best), best, np.inf)
    z, rz = x.copy(), r.copy()
    since = np.zeros(k, np.int64)
    n_iter = np.zeros(k, np.int64)
    conv = np.sqrt(best) / scale <= tol
    done = conv.copy()
    owner = np.arange(k)
    step = np.full(k, np.inf)  # length of the last accepted Newton step
    fracs = np.asarray(_BACKTRACK)

    def finish(act, znew, rznew, moved):
        nonlocal best
        nz = np.sum(rznew * rznew, axis=1)
        nz = np.where(np.isfinite(nz), nz, np.inf)
        better = nz < best[act]
        gain = nz < 0.81 * best[act]
        z[act], rz[act] = znew, rznew
        x[act] = np.where(better[:, None], znew, x[act])
        r[act] = np.where(better[:, None], rznew, r[act])
        best[act] = np.where(better, nz, best[act])
        since[act] = np.where(gain, 0, since[act] + 1)
        n_iter[act] += 1
        conv[act] = np.sqrt(best[act]) / scale <= tol
        done[act] = conv[act] | (since[act] >= patience) | (n_iter[act] >= caps[act]) | ~moved

    # --- Newton
    while True:
        act = np.nonzero(~done)[0]
        if act.size == 0:
            break
        dn = _newton_directions(model, z[act], rz[act], us[act], scale)
        finite = np.all(np.isfinite(dn), axis=1)
        dn = np.where(finite[:, None], dn, 0.0)
        rr = np.sum(rz[act] ** 2, axis=1)
        zf = z[act] + dn
        rf = _padded_call(_res, model, zf, us[act], scale)
        nf = np.sum(rf * rf, axis=1)
        nf = np.where(np.isfinite(nf) & finite, nf, np.inf)
        full_ok = finite & (nf < 100.0 * rr)
        znew, rznew = z[act].copy(), rz[act].copy()
        znew[full_ok], rznew[full_ok] = zf[full_ok], rf[full_ok]
        moved = full_ok.copy()
        bt = np.nonzero(~full_ok & finite)[0]
        if bt.size:
            zb = z[act][bt][None] + fracs[:, None, None] * dn[bt][None]  # [4, b, N]
            ub = np.broadcast_to(us[act][bt][None], (len(fracs),) + us[act][bt].shape)
            rb = _padded_call(_res, model, zb.reshape(-1, zb.shape[-1]),
                              ub.reshape(-1, ub.shape[-1]), scale).reshape(zb.shape)
            nb = np.sum(rb * rb, axis=2)
            nb = np.where(np.isfinite(nb), nb, np.inf)
            j = np.argmin(nb, axis=0)
            cols = np.arange(bt.size)
            ok = nb[j, cols] < rr[bt]
            znew[bt[ok]] = zb[j[ok], cols[ok]]
            rznew[bt[ok]] = rb[j[ok], cols[ok]]
            moved[bt[ok]] = True
        step[act] = np.where(full_ok, np.linalg.norm(dn, axis=1), np.inf)
        zprev = z[act].copy()
        finish(act, znew, rznew, moved)
        # A candidate whose full Newton step took it to within ``basin_radius / 10`` of a
        # root already found and ten times closer to it than it was is in that root's
        # quadratic basin: it takes that root's result (saves its last iterations).
        anchors = np.nonzero(conv & (owner == np.arange(k)))[0]
        pos = np.nonzero(~done[act] & full_ok)[0]
        if anchors.size and pos.size:
            cand = act[pos]
            d_after, j = cKDTree(x[anchors]).query(z[cand])
            d_before = np.linalg.norm(zprev[pos] - x[anchors[j]], axis=1)
            hit = (d_after <= 0.1 * basin_radius) & (d_after <= 0.1 * d_before)
            owner[cand[hit]] = anchors[j[hit]]
            done[cand[hit]] = True
        # Merge candidates in a root's neighbourhood (short last step) that sit within
        # merge_tol of a converged point or of one another: they share one result.
        near = np.nonzero(~done & (step <= merge_tol) & (owner == np.arange(k)))[0]
        if near.size:
            anchors = np.nonzero(conv & (owner == np.arange(k)))[0]
            order = np.concatenate([anchors, near[np.argsort(best[near], kind="stable")]])
            from ._fixed_points import unique_indices  # noqa: PLC0415 (circular at import)

            _, own = unique_indices(x, order, merge_tol)
            merged = near[own[near] != near]
            owner[merged] = own[merged]
            done[merged] = True
    # --- Levenberg-Marquardt from the best point for what Newton left
    left = np.nonzero(~conv & np.asarray(lm_allowed, bool) & (owner == np.arange(k)))[0]
    if left.size:
        z[left], rz[left] = x[left], r[left]
        theta = np.ones(k)
        since[left] = 0
        used = n_iter[left].copy()
        n_iter[left] = 0
        done[:] = True
        done[left] = False
        while True:
            act = np.nonzero(~done)[0]
            if act.size == 0:
                break
            rr = np.sum(rz[act] ** 2, axis=1)
            dx = _newton_directions(model, z[act], rz[act], us[act], scale,
                                    lm_damping=theta[act] * rr + 1e-300)
            zl = z[act] + np.where(np.isfinite(dx), dx, 0.0)
            rl = _padded_call(_res, model, zl, us[act], scale)
            nl = np.sum(rl * rl, axis=1)
            ok = np.all(np.isfinite(dx), axis=1) & np.isfinite(nl) & (nl < rr)
            znew = np.where(ok[:, None], zl, z[act])
            rznew = np.where(ok[:, None], rl, rz[act])
            theta[act] = np.where(ok, np.maximum(theta[act] * 0.1, 1e-12), theta[act] * 10.0)
            finish(act, znew, rznew, theta[act] <= 1e30)
        n_iter[left] += used
    # Merged candidates take their owner's result (owners are never merged themselves).
    root = owner.copy()
    while np.any(owner[root] != root):
        root = owner[root]
    speed = np.sqrt(best) / scale
    return HostResult(x=x[root], speed=speed[root], converged=conv[root], n_iter=n_iter)


def refine(model, xs, us, scale, n_steps=2):
    """Up to ``n_steps`` plain Newton steps from each row of xs (float64 model), keeping a
    step only where it lowers |r|: brings points accepted at ``|F| <= tol`` to round-off
    (one quadratic step) for the cost of a few solves on the unique points only."""
    x = np.array(xs, np.float64)
    us = np.asarray(us, np.float64)
    if x.shape[0] == 0:
        return x
    r = _padded_call(_res, model, x, us, scale)
    nr = np.sum(r * r, axis=1)
    for _ in range(n_steps):
        dn = _newton_directions(model, x, r, us, scale)
        dn = np.where(np.all(np.isfinite(dn), axis=1, keepdims=True), dn, 0.0)
        z = x + dn
        rz = _padded_call(_res, model, z, us, scale)
        nz = np.sum(rz * rz, axis=1)
        better = np.isfinite(nz) & (nz < nr)
        if not better.any():
            break
        x[better], r[better], nr[better] = z[better], rz[better], nz[better]
    return x

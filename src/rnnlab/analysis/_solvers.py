"""The two numerical stages of the fixed-point search (private).

Stage 1 (`adam_stage`) is the FixedPointFinder algorithm (Golub & Sussillo 2018): Adam on
``q = 1/2 |F|^2`` with an adaptive learning rate and adaptive gradient-norm clipping, run for all
candidates in fixed-size blocks of one compiled loop. Stage 2 (`polish`) is a safeguarded
Newton / Levenberg-Marquardt iteration in float64, driven from the host, that polishes the
candidates to machine precision and assigns most of them to roots already found (chord
capture) instead of iterating each one.

Both work on the *map-scaled* residual ``r = s F`` (``s = dt`` for continuous-time models, 1 for
maps): for a CT-RNN this is the residual of the Euler map, exactly the objective
FixedPointFinder minimises for the same network, so its defaults (``tol_q``, Adam's epsilon)
keep their meaning. Roots are the same for any ``s``.
"""

import functools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial import cKDTree

from .._blas import one_blas_thread

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

# Why an iteration stopped (per start; `HostResult.reason`, `descent_reasons`).
STOP_CONVERGED = 0  # reached its stopping level (|F| <= tol in stage 2)
STOP_STALLED = 1  # no more progress before its iteration cap
STOP_MAX_ITERS = 2  # its iteration cap
STOP_CAPTURED = 3  # stage 2: assigned to a root found from another start (chord iteration)

CLIP_EVERY = 16



def n_workers() -> int:
    """Threads for independent dense linear algebra (solves, eigenproblems): the cores this
    process may use, at most 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def parallel_rows(fn, n: int, *, min_rows: int = 2) -> None:
    """Call ``fn(rows)`` on a split of ``range(n)`` across `n_workers` threads (one call in
    this thread when that is one, or when n < 2 * min_rows). ``fn`` writes its own results.
    Safe to call from several threads at once (`analyze_run` searches in two): they share
    the pool; ``fn`` must not itself call `parallel_rows`."""
    global _POOL
    workers = min(n_workers(), n // max(min_rows, 1))
    if workers <= 1:
        fn(np.arange(n))
        return
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=n_workers())
    parts = np.array_split(np.arange(n), workers)
    for f in [_POOL.submit(fn, rows) for rows in parts]:
        f.result()


def _residual(model, x, u, scale):
    return scale * model.vector_field(x, u)


# ------------------------------------------------------------------------------ stage 1: Adam


class AdamState(eqx.Module):
    # numpy arrays when built on the host (`_adam_init_host`), JAX arrays once on device
    x: jax.Array | np.ndarray
    m: jax.Array | np.ndarray
    v: jax.Array | np.ndarray
    lr: jax.Array | np.ndarray
    q_log: jax.Array | np.ndarray  # the last lr_patience + 1 values of q, newest last
    last_update: jax.Array | np.ndarray
    norms: jax.Array | np.ndarray  # ring buffer of gradient norms
    clip: jax.Array | np.ndarray  # current clipping level (refreshed every CLIP_EVERY iterations)
    q: jax.Array | np.ndarray
    dq: jax.Array | np.ndarray
    n_iter: jax.Array | np.ndarray
    done: jax.Array | np.ndarray


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


def _adam_init_host(xs, hp):
    """The initial Adam state of a batch of candidates [K, N], built in numpy (no compilation
    per batch size)."""
    k = xs.shape[0]
    dt = xs.dtype
    return AdamState(
        x=np.array(xs),
        m=np.zeros_like(xs),
        v=np.zeros_like(xs),
        lr=np.full(k, hp["lr_init"], dt),
        q_log=np.full((k, hp["lr_patience"] + 1), np.inf, dt),
        last_update=np.zeros(k, np.int32),
        norms=np.full((k, hp["clip_window"]), np.nan, dt),
        clip=np.full(k, np.inf, dt),
        q=np.full(k, np.inf, dt),
        dq=np.full(k, np.inf, dt),
        n_iter=np.zeros(k, np.int32),
        done=np.zeros(k, bool),
    )


ADAM_BLOCK = 128


def adam_stage(model, xs, us, scale, hp, q_stop, *, chunk=128):
    """Stage 1 for all candidates (float32). Returns the final AdamState (batched, numpy).

    Candidates run in blocks of one fixed size (``ADAM_BLOCK``, or 8 / 32 for fewer
    candidates), ``chunk`` iterations at a time; between chunks the unfinished candidates are
    repacked into as few blocks as possible. So a few slow candidates keep one block
    iterating, not the whole batch, and every call with the same number of candidates runs
    one compiled program (the stopping level ``q_stop`` and the chunk length are traced
    values, not compile-time constants). The bookkeeping is done on host numpy copies:
    indexing device arrays eagerly would compile one small XLA program per new shape."""
    xs = np.asarray(xs, np.float32)
    us = np.asarray(us, np.float32)
    k = xs.shape[0]
    size = min(ADAM_BLOCK, _bucket(k))
    state = _adam_init_host(xs, hp)
    q_stop = np.asarray(q_stop, np.float32)
    n_steps = np.asarray(chunk, np.int32)
    active = np.arange(k)
    while active.size:
        n_blocks = -(-active.size // size)
        idx = np.concatenate([active, np.full(n_blocks * size - active.size, active[-1])])
        # All blocks are dispatched before any result is read: JAX runs them asynchronously,
        # so independent blocks can use more than one core.
        outs = [
            _adam_chunk(model, us[sl], scale, _take(state, sl), hp, q_stop, n_steps)
            for sl in np.split(idx, n_blocks)
        ]
        outs = jax.device_get(outs)
        sub = jax.tree.map(lambda *parts: np.concatenate(parts)[:active.size], *outs)
        state = _put(state, active, sub)
        active = np.nonzero(~np.asarray(state.done))[0]
    return state


def descent_reasons(state: AdamState, hp, q_stop) -> np.ndarray:
    """Why each candidate's stage 1 stopped (``STOP_*``), from its final `AdamState`."""
    q = np.asarray(state.q)
    level = (q < np.float32(hp["tol_q"])) | (q < np.asarray(q_stop, np.float32))
    capped = np.asarray(state.n_iter) >= hp["max_iters"]
    return np.where(level, STOP_CONVERGED,
                    np.where(capped, STOP_MAX_ITERS, STOP_STALLED)).astype(np.int8)


# ------------------------------------------------------------- stage 2: Newton / LM, host-driven
#
# The loop runs on the host: one small jitted call evaluates the map-scaled residuals and
# analytic Jacobians of the active candidates (padded to a few bucket sizes, so a handful of
# cheap compilations), and numpy solves the batched linear systems (LAPACK, one thread:
# measured 2x faster than XLA's batched solve here, and no compilation of a solver loop per
# batch shape).
#
# Most starts end at a root that another start has already reached, so the expensive part
# (one LU solve per start and iteration) is avoided for them: every root found is factored
# once, and a start is *captured* by a root when the chord iteration with that root's
# Jacobian (z <- z - J(x*)^-1 F(z), one triangular solve per start and step) contracts
# (each step at most half the previous one) and brings it within ``merge_tol`` of the root.
# A contracting chord iteration converges to a root of F, so a captured start is one whose
# own iteration would end at that root; no start is ever assigned without that check.
# Starts are activated in waves (a spread-out subset of the unexplained starts, lowest
# residual first), so that roots are known before most starts would need Newton steps.

_BLOCK = 256


# Rows per call: residuals in blocks of 256, Jacobians in blocks of 64 (measured: 64 rows of
# 128 x 128 Jacobians, 8 MB, run 5x faster per row than 256 rows, which leave the cache).
# Each function is compiled for its one block shape only; short batches are padded.
_JAC_BLOCK = 64


# Plain `jax.jit` on the model's (hashable) static part and its arrays: the host loop makes
# hundreds of these small calls, and `eqx.filter_jit`'s per-call dispatch (~0.5 ms, measured)
# cost as much as the work.
@functools.partial(jax.jit, static_argnums=0)
def _res_jac(static, params, xs, us, scale):
    model = eqx.combine(params, static)

    def one(x, u):
        return scale * model.vector_field(x, u), scale * model.jacobian(x, u)

    return jax.vmap(one)(xs, us)


@functools.partial(jax.jit, static_argnums=0)
def _res(static, params, xs, us, scale):
    model = eqx.combine(params, static)
    return jax.vmap(lambda x, u: scale * model.vector_field(x, u))(xs, us)


def _padded_call(fn, model, xs, us, scale):
    """``fn`` (a jitted function of (model, xs, us, scale)) on the rows of (xs, us), in blocks
    of one padded size (one compilation per function); returns writable numpy arrays."""
    n = xs.shape[0]
    size = _BLOCK if fn is _res else _JAC_BLOCK
    params, static = eqx.partition(model, eqx.is_array)
    outs = []
    for start in range(0, n, size):
        xb, ub = xs[start:start + size], us[start:start + size]
        m = xb.shape[0]
        if size > m:
            xb = np.concatenate([xb, np.repeat(xb[:1], size - m, axis=0)])
            ub = np.concatenate([ub, np.repeat(ub[:1], size - m, axis=0)])
        out = fn(static, params, xb, ub, scale)
        outs.append(jax.tree.map(lambda a: np.asarray(a)[:m], out))
    if isinstance(outs[0], tuple):
        return tuple(np.concatenate(parts) for parts in zip(*outs))
    return np.concatenate(outs)


def _newton_directions(model, zs, rs, us, scale, lm_damping=None):
    """Newton steps ``-J^{-1} r`` (or, with ``lm_damping`` [B], Levenberg-Marquardt steps
    ``-(J^T J + damping I)^{-1} J^T r``) at the rows of zs, block by block (the Jacobians
    of one block at a time are in memory)."""
    out = np.empty_like(rs)
    with one_blas_thread():
        _directions_blocks(model, zs, rs, us, scale, lm_damping, out)
    return out


def _directions_blocks(model, zs, rs, us, scale, lm_damping, out):
    for start in range(0, zs.shape[0], _BLOCK):
        sl = slice(start, start + _BLOCK)
        _, jac = _padded_call(_res_jac, model, zs[sl], us[sl], scale)
        res, dst = rs[sl], out[sl]
        damp = None if lm_damping is None else lm_damping[sl]

        def run(rows, jac=jac, res=res, dst=dst, damp=damp):
            if damp is None:
                dst[rows] = _solve(jac[rows], -res[rows])
            else:
                jt = np.swapaxes(jac[rows], 1, 2)
                a = jt @ jac[rows]
                idx = np.arange(a.shape[-1])
                a[:, idx, idx] += damp[rows][:, None]
                dst[rows] = _solve(a, -np.einsum("bij,bj->bi", jt, res[rows]))

        parallel_rows(run, jac.shape[0], min_rows=8)


def _solve(a, b):
    """Batched ``a x = b`` (b [B, N]); rows with a singular matrix get NaN."""
    with one_blas_thread():
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
    reason: np.ndarray  # STOP_* per start


_BACKTRACK = (0.5, 0.25, 0.125, 0.0625)
_WAVE_MIN = 16  # the first wave's least size (see polish)


def greedy_cover(points, order, radius):
    """Greedy cover: walk ``order`` and keep a point unless it lies within ``radius`` of one
    already kept. Returns the kept indices (vectorised: one distance pass per kept point, so
    cheap for a coarse radius, where the k-d tree pair lists of `unique_indices` would be
    quadratic)."""
    order = np.asarray(order, dtype=int)
    left = order.copy()
    kept = []
    while left.size:
        i = left[0]
        kept.append(i)
        d = np.linalg.norm(points[left] - points[i], axis=1)
        left = left[~(d <= radius)]
        left = left[left != i]
    return np.asarray(kept, dtype=int)


class _RootBank:
    """The roots found so far (start indices whose point converged and owns its result), with
    the inverses of their map-scaled Jacobians, grouped by input; `capture` tests starts
    against them by chord iteration (at most ``max_steps`` steps, each at most ``rho`` times
    the previous one, ending within ``merge_tol`` of the root)."""

    def __init__(self, model, us, gid, scale, merge_tol, rho=0.5, max_steps=8):
        self.model, self.us, self.gid, self.scale = model, us, gid, scale
        self.merge_tol, self.rho, self.max_steps = merge_tol, rho, max_steps
        self.idx = np.zeros(0, dtype=int)  # start index of each root
        self._x = np.zeros((0, 0))
        self.inv = np.zeros((0, 0, 0))
        self.usable = np.zeros(0, bool)

    def __len__(self):
        return int(self.idx.size)

    def add(self, new_idx, x):
        new_idx = np.setdiff1d(np.asarray(new_idx, dtype=int), self.idx)
        if new_idx.size == 0:
            return
        _, jac = _padded_call(_res_jac, self.model, x[new_idx], self.us[new_idx], self.scale)
        usable = np.zeros(new_idx.size, bool)
        inv = np.zeros_like(jac)
        # singular Jacobians (continua of roots) are expected: their floating-point warnings
        # are silenced (np.errstate, per thread: the analysis searches in two threads)
        with one_blas_thread(), np.errstate(all="ignore"):
            for j in range(new_idx.size):
                if not np.all(np.isfinite(jac[j])):
                    continue
                # The explicit inverse (not the LU factors): a chord step is then one matrix
                # product over all the starts near this root (GEMM, ~5x faster than the
                # triangular solves); its accuracy only affects how fast the chord contracts.
                try:
                    inv[j] = np.linalg.inv(jac[j])
                except np.linalg.LinAlgError:
                    continue
                # Nearly singular (a line or ring of roots; 1-norm condition number above
                # 1e12): the chord step is meaningless there.
                cond = np.abs(inv[j]).sum(axis=0).max() * np.abs(jac[j]).sum(axis=0).max()
                usable[j] = bool(np.isfinite(cond) and cond < 1e12)
        self.idx = np.concatenate([self.idx, new_idx])
        self.usable = np.concatenate([self.usable, usable])
        self.inv = inv if len(self.inv) == 0 else np.concatenate([self.inv, inv])
        self._x = x[self.idx].copy()

    def capture(self, cand, z):
        """Chord iteration from ``z[cand]`` towards the nearest usable root of the same input.
        Returns (captured mask over cand, the root's start index for each captured one)."""
        m = cand.size
        owner = np.full(m, -1)
        if m == 0 or not self.usable.any():
            return owner >= 0, owner
        nearest = np.full(m, -1)
        for g in np.unique(self.gid[cand]):
            sel = np.nonzero(self.gid[cand] == g)[0]
            roots = np.nonzero(self.usable & (self.gid[self.idx] == g))[0]
            if roots.size == 0:
                continue
            # a start whose state is not finite (it diverged) has no nearest root
            sel = sel[np.all(np.isfinite(z[cand[sel]]), axis=1)]
            if sel.size == 0:
                continue
            _, j = cKDTree(self._x[roots]).query(z[cand[sel]])
            nearest[sel] = roots[np.asarray(j)]
        alive = nearest >= 0
        zc = z[cand].copy()
        prev = np.full(m, np.inf)
        won = np.zeros(m, bool)
        for _ in range(self.max_steps):
            act = np.nonzero(alive & ~won)[0]
            if act.size == 0:
                break
            f = _padded_call(_res, self.model, zc[act], self.us[cand[act]], self.scale)
            step = np.empty_like(f)
            with one_blas_thread():
                for j in np.unique(nearest[act]):
                    rows = nearest[act] == j
                    step[rows] = -f[rows] @ self.inv[j].T
            s = np.linalg.norm(step, axis=1)
            ok = np.isfinite(s) & (s <= self.rho * prev[act])
            alive[act[~ok]] = False
            a2 = act[ok]
            zc[a2] += step[ok]
            prev[a2] = s[ok]
            dist = np.linalg.norm(zc[a2] - self._x[nearest[a2]], axis=1)
            won[a2] = dist <= self.merge_tol
        owner[won] = self.idx[nearest[won]]
        return won, owner


def polish(model, xs, us, scale, tol, caps, lm_allowed, *, merge_tol, wave_radius,
           newton_patience=4, lm_patience=3):
    """Stage 2 on the host (call under float64 with a float64 ``model``).

    Every start ends either at its own polished point or captured by a root found from another
    start (see the comment above). A start's own iteration is safeguarded Newton (the full step
    unless it is non-finite or multiplies |r| by more than 10, else the best of the fractions
    1/2 ... 1/16 that lowers |r|; at most ``caps[i]`` iterations, stopping when |F| <= tol or
    when the best |r| has not shrunk by 10% for ``newton_patience`` iterations), then
    Levenberg-Marquardt with damping ``theta |r|^2`` from its best point where
    ``lm_allowed[i]`` and Newton did not converge (stopping after ``lm_patience`` iterations
    without a 10% gain, or at the cap).

    Returns a `HostResult` (``n_iter`` counts each start's own iterations; a captured start
    reports its root's point, speed and flag; ``reason`` says why each start stopped, a
    ``STOP_*`` code)."""
    xs = np.array(xs, np.float64)
    us = np.asarray(us, np.float64)
    k = xs.shape[0]
    caps = np.asarray(caps, np.int64)
    lm_allowed = np.asarray(lm_allowed, bool)
    gid = np.unique(us, axis=0, return_inverse=True)[1].reshape(-1)
    x = xs.copy()
    r = _padded_call(_res, model, x, us, scale)
    best = np.sum(r * r, axis=1)
    best = np.where(np.isfinite(best), best, np.inf)
    z, rz = x.copy(), r.copy()
    since = np.zeros(k, np.int64)
    n_iter = np.zeros(k, np.int64)
    conv = np.sqrt(best) / scale <= tol
    reason = np.where(conv, STOP_CONVERGED, STOP_STALLED).astype(np.int8)
    done = conv.copy()
    activated = conv.copy()
    owner = np.arange(k)
    bank = _RootBank(model, us, gid, scale, merge_tol)
    fracs = np.asarray(_BACKTRACK)
    wave_min = _WAVE_MIN
    pat = newton_patience

    def finish(act, znew, rznew, moved):
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
        capped = n_iter[act] >= caps[act]
        done[act] = conv[act] | (since[act] >= pat) | capped | ~moved
        reason[act] = np.where(conv[act], STOP_CONVERGED,
                               np.where(capped, STOP_MAX_ITERS, STOP_STALLED))

    def bank_new_roots():
        bank.add(np.nonzero(conv & (owner == np.arange(k)))[0], x)

    def capture(cand):
        if cand.size == 0 or len(bank) == 0:
            return
        won, own = bank.capture(cand, z)
        owner[cand[won]] = own[won]
        done[cand[won]] = True
        reason[cand[won]] = STOP_CAPTURED
        activated[cand[won]] = True

    # --- Newton, in waves
    while True:
        act = np.nonzero(activated & ~done)[0]
        if act.size == 0:
            bank_new_roots()
            capture(np.nonzero(~activated)[0])
            wait = np.nonzero(~activated)[0]
            if wait.size == 0:
                break
            order = wait[np.argsort(best[wait], kind="stable")]
            wave = greedy_cover(x, order, wave_radius)
            if wave.size < wave_min:
                # Where no roots are found (slow points along an approximate line attractor,
                # ghosts of chaotic networks) a spread-out cover is a handful of starts and
                # stays one; waves of one start each cost one host round per Newton step
                # (measured: 5558 rounds of 1 row, 24 s, on a 64-unit context-dependent
                # decision network). So waves at least double.
                rest = order[~np.isin(order, wave)]
                wave = np.concatenate([wave, rest[:wave_min - wave.size]])
            activated[wave] = True
            wave_min *= 2
            continue
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
        finish(act, znew, rznew, moved)
        bank_new_roots()
        capture(act[~done[act]])
    # --- Levenberg-Marquardt from the best point for what Newton left
    left = np.nonzero(~conv & lm_allowed & (owner == np.arange(k)))[0]
    if left.size:
        z[left], rz[left] = x[left], r[left]
        theta = np.ones(k)
        pat = lm_patience
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
    # Captured starts take their root's result (roots are never captured themselves).
    root = owner.copy()
    while np.any(owner[root] != root):
        root = owner[root]
    speed = np.sqrt(best) / scale
    return HostResult(x=x[root], speed=speed[root], converged=conv[root], n_iter=n_iter,
                      reason=reason)


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

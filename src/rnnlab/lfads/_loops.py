"""The recurrent loops of LFADS with hand-written backward passes.

Automatic differentiation of a ``lax.scan`` stores every intermediate of every step and, in
the loop back in time, accumulates the gradients of the loop's weights step by step (and,
under `jax.vmap`, trial by trial). On a CPU with small matrices those per-step products and
buffers dominate a training step. Here each loop's backward pass is written out: the loop
back in time carries only the cotangents of the recurrent state, saves the cotangents of
each step's pre-activations, and every weight gradient is one product over all steps and
trials after it.

The loops are written for one trial (time first) and any extra leading batch axes after
time. Under `jax.vmap` over trials (how the model is batched), their batching rules run the
batch inside the loop, time first; the residuals of such a batched forward pass are handed
to the backward pass as they are (time first, marked unbatched), and the backward rule
recognises them by their rank. Batched weights (an ensemble of models) go trial by trial.

- `gru_group`: several clipped GRUs (the encoders) side by side.
- `decoder`: the controller GRU, the inferred inputs, the generator GRU and the factors,
  step by step (each step's controller sees the previous step's factors).
"""

import functools
import itertools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.custom_batching
import jax.numpy as jnp

# ------------------------------------------------------------------------------ one GRU step


def gru_step(xa: jax.Array, h: jax.Array, w_zr: jax.Array, w_n: jax.Array, clip: float
             ) -> tuple[jax.Array, tuple[jax.Array, jax.Array, jax.Array]]:
    """lfads-torch's clipped GRU step from the input part ``xa`` [..., 3H] (``W_ih x + b``)
    and the state ``h`` [..., H]: (the new state, its gates (z, r, n))."""
    H = h.shape[-1]
    hzr = h @ w_zr.T
    z = jax.nn.sigmoid(xa[..., :H] + hzr[..., :H])
    r = jax.nn.sigmoid(xa[..., H : 2 * H] + hzr[..., H:])
    n = jnp.tanh(xa[..., 2 * H :] + (r * h) @ w_n.T)
    h = z * h + (1.0 - z) * n
    if math.isfinite(clip):
        h = jnp.clip(h, -clip, clip)
    return h, (z, r, n)


def gru_step_backward(dh: jax.Array, h: jax.Array, gates: tuple, w_zr: jax.Array,
                      w_n: jax.Array, clip: float) -> tuple[jax.Array, jax.Array]:
    """The cotangents of (``xa``, ``h``) of `gru_step` from ``dh``, that of the new state,
    with ``h`` the state the step started from and ``gates`` the step's gates."""
    z, r, n = gates
    if math.isfinite(clip):  # no gradient where the state was clipped
        hu = z * h + (1.0 - z) * n
        dh = jnp.where((hu >= -clip) & (hu <= clip), dh, 0.0)
    dn = dh * (1.0 - z) * (1.0 - n * n)
    d_rh = dn @ w_n
    dzr = jnp.concatenate([dh * (h - n) * z * (1.0 - z), d_rh * h * r * (1.0 - r)], axis=-1)
    return jnp.concatenate([dzr, dn], axis=-1), dh * z + d_rh * r + dzr @ w_zr


def _outer(a: jax.Array, b: jax.Array) -> jax.Array:
    """sum over all leading axes of a[..., i] b[..., j]: [I, J]."""
    n = math.prod(a.shape[:-1])  # (not -1: zero-size inputs)
    return a.reshape(n, a.shape[-1]).T @ b.reshape(n, b.shape[-1])


def _gru_weight_grads(d_xa: jax.Array, prev: jax.Array, r: jax.Array
                      ) -> tuple[jax.Array, jax.Array]:
    """The gradients of a GRU's (w_zr, w_n) from its steps' input-part cotangents ``d_xa``
    [T, ..., 3H], the states the steps started from ``prev`` and the reset gates ``r``."""
    H = prev.shape[-1]
    return _outer(d_xa[..., : 2 * H], prev), _outer(d_xa[..., 2 * H :], r * prev)


def _with_ones(x: jax.Array) -> jax.Array:
    """``x`` [..., n] with a column of ones appended: [..., n + 1]."""
    return jnp.concatenate([x, jnp.ones((*x.shape[:-1], 1), x.dtype)], axis=-1)


def _shift(first: jax.Array, seq: jax.Array) -> jax.Array:
    """[first, seq[0], ..., seq[-2]]: the state each step started from."""
    return jnp.concatenate([first[None], seq[:-1]])


# ------------------------------------------------------------------------------ the machinery


def looped(forward: Callable, backward: Callable) -> Callable:
    """A function ``f(static, weights, xs, init) -> outs`` with the backward pass
    ``backward`` and the batching rules described in the module docstring.

    ``forward(static, weights, xs, init) -> (outs, res)``: ``xs`` and ``outs`` time first,
    ``res`` whatever the backward pass needs, its first entry ``outs``.
    ``backward(static, res, g_outs) -> (d_weights, d_xs, d_init)``, with any batch axes of
    ``res`` and ``g_outs`` after time and the weight gradients summed over them."""

    @functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
    def f(static, weights, xs, init):
        return forward(static, weights, xs, init)[0]

    @functools.lru_cache(maxsize=None)
    def fwd_rule(static):
        @jax.custom_batching.custom_vmap
        def fwd(weights, xs, init):
            return forward(static, weights, xs, init)

        @fwd.def_vmap
        def rule(axis_size, in_batched, weights, xs, init):
            w_b, x_b, i_b = in_batched
            if any(jax.tree.leaves(w_b)):
                out = jax.vmap(functools.partial(forward, static),
                               in_axes=_axes((w_b, x_b, i_b)))(weights, xs, init)
                return out, jax.tree.map(lambda _: True, out)
            xs = jax.tree.map(lambda x, b: jnp.swapaxes(x, 0, 1) if b else jnp.broadcast_to(
                x[:, None], (x.shape[0], axis_size, *x.shape[1:])), xs, x_b)
            init = jax.tree.map(lambda h, b: h if b else jnp.broadcast_to(
                h, (axis_size, *h.shape)), init, i_b)
            outs, res = forward(static, weights, xs, init)
            out = (jax.tree.map(lambda o: jnp.swapaxes(o, 0, 1), outs), res)
            return out, (jax.tree.map(lambda _: True, outs), jax.tree.map(lambda _: False, res))

        return fwd

    @functools.lru_cache(maxsize=None)
    def bwd_rule(static):
        @jax.custom_batching.custom_vmap
        def bwd(res, g_outs):
            return backward(static, res, g_outs)

        @bwd.def_vmap
        def rule(axis_size, in_batched, res, g_outs):
            r_b, g_b = in_batched
            g_leaves, gb_leaves = jax.tree.leaves(g_outs), jax.tree.leaves(g_b)
            o_leaves = jax.tree.leaves(res[0])
            time_first = not any(jax.tree.leaves(r_b)) and any(
                b and g.ndim == o.ndim for g, b, o in zip(g_leaves, gb_leaves, o_leaves))
            if not time_first:
                out = jax.vmap(functools.partial(backward, static),
                               in_axes=_axes((r_b, g_b)))(res, g_outs)
                return out, jax.tree.map(lambda _: True, out)
            # the residuals of a batched forward pass: time first, then the trials
            g_outs = jax.tree.map(lambda g, b, o: jnp.swapaxes(g, 0, 1) if b else
                                  jnp.broadcast_to(g[:, None], o.shape), g_outs, g_b, res[0])
            d_w, d_xs, d_init = backward(static, res, g_outs)
            out = (d_w, jax.tree.map(lambda d: jnp.swapaxes(d, 0, 1), d_xs), d_init)
            return out, (jax.tree.map(lambda _: False, d_w), jax.tree.map(lambda _: True, d_xs),
                         jax.tree.map(lambda _: True, d_init))

        return bwd

    f.defvjp(lambda static, weights, xs, init: fwd_rule(static)(weights, xs, init),
             lambda static, res, g_outs: bwd_rule(static)(res, g_outs))
    return f


def _axes(flags: Any) -> Any:
    return jax.tree.map(lambda b: 0 if b else None, flags)


# ------------------------------------------------------------------------------ encoders


def _group_forward(static, weights, x, h0s):
    clips, reverse = static
    T = x.shape[0]
    # every direction's input part (W_ih x + b) in one product, the bias as a weight on a
    # column of ones; the reversed directions read it back to front
    x1 = _with_ones(x)
    w1 = jnp.concatenate([jnp.concatenate([w_ih, b_ih[:, None]], axis=1)
                          for w_ih, b_ih, _ in weights])
    xa = x1 @ w1.T
    ends = list(itertools.accumulate(w[0].shape[0] for w in weights))

    def body(hs, t):
        rows = {False: xa[t], True: xa[T - 1 - t]}
        new, gates = zip(*(gru_step(rows[rev][..., e - 3 * h.shape[-1] : e], h, w_zr, w_n, clip)
                           for clip, rev, (_, _, (w_zr, w_n)), e, h
                           in zip(clips, reverse, weights, ends, hs)))
        return list(new), (list(new), list(gates))

    _, (states, gates) = jax.lax.scan(body, list(h0s), jnp.arange(T))
    return states, (states, weights, x, h0s, gates)


def _group_backward(static, res, g_states):
    clips, reverse = static
    states, weights, x, h0s, gates = res
    prevs = [_shift(h0, s) for h0, s in zip(h0s, states)]
    # the cells of each time direction present: (reversed?, their indices)
    groups = [(rev, idx) for rev in (False, True)
              if (idx := [i for i, r in enumerate(reverse) if r == rev])]

    def body(dhs, inp):
        g_t, prev_t, gate_t = inp
        d_xa, d_prev = zip(*(gru_step_backward(dh + g, h, gt, w_zr, w_n, clip)
                             for clip, (_, _, (w_zr, w_n)), dh, g, h, gt
                             in zip(clips, weights, dhs, g_t, prev_t, gate_t)))
        # each time direction's input-part cotangents side by side (one product each below)
        return list(d_prev), [jnp.concatenate([d_xa[i] for i in idx], axis=-1)
                              for _, idx in groups]

    d_h0s, d_groups = jax.lax.scan(body, [jnp.zeros_like(h) for h in h0s],
                                   (g_states, prevs, gates), reverse=True)
    x1 = _with_ones(x)
    d_w, d_x = [None] * len(h0s), jnp.zeros_like(x)
    for (rev, idx), d in zip(groups, d_groups):
        # the input weights and biases of a time direction's cells: one product (the
        # bias's gradient a column of it, not a separate reduction)
        d_ih = _outer(d, x1[::-1] if rev else x1)
        start = 0
        for i in idx:
            w_ih = weights[i][0]
            di = d[..., start : start + w_ih.shape[0]]
            dw = d_ih[start : start + w_ih.shape[0]]
            d_w[i] = (dw[:, :-1], dw[:, -1], _gru_weight_grads(di, prevs[i], gates[i][1]))
            dx = di @ w_ih
            d_x = d_x + (dx[::-1] if rev else dx)
            start += w_ih.shape[0]
    return d_w, d_x, d_h0s


_gru_group = looped(_group_forward, _group_backward)


def gru_group(clips: tuple, reverse: tuple, weights: list, x: jax.Array, h0s: list) -> list:
    """The states [T, H] of clipped GRUs run side by side in one loop over the same inputs
    ``x`` [T, n_in], each forward in time or (``reverse``) backward, from its weights
    ``weights`` (w_ih [3H, n_in], b_ih [3H], (w_zr [2H, H], w_n [H, H])) and initial state
    ``h0s`` [H]; a reversed cell's states in its own order (the first after x[-1])."""
    return _gru_group((tuple(clips), tuple(bool(r) for r in reverse)), list(weights), x,
                      list(h0s))


# ------------------------------------------------------------------------------ decoder


def _decoder_forward(static, weights, xs, init):
    con_clip, gen_clip, co, sample = static
    w_cf, (w_czr, w_cn), w_co, b_co, w_gx, b_g, (w_gzr, w_gn), w_fac = weights

    def body(carry, x):
        g, c, f = carry
        ci, fkeep, noise, ext, gkeep = x
        c, c_gates = gru_step(ci + (f * fkeep) @ w_cf.T, c, w_czr, w_cn, con_clip)
        p = c @ w_co.T + b_co
        m, s = p[..., :co], jnp.exp(0.5 * p[..., co:])
        u = m + s * noise if sample else m
        g, g_gates = gru_step(jnp.concatenate([u, ext], axis=-1) @ w_gx.T + b_g, g, w_gzr,
                              w_gn, gen_clip)
        f = (g * gkeep) @ w_fac.T
        return (g, c, f), ((g, c, m, s, u, f), (c_gates, g_gates))

    _, (outs, gates) = jax.lax.scan(body, tuple(init), tuple(xs))
    return outs, (outs, weights, xs, init, gates)


def _decoder_backward(static, res, g_outs):
    con_clip, gen_clip, co, sample = static
    outs, weights, xs, init, (c_gates, g_gates) = res
    w_cf, (w_czr, w_cn), w_co, b_co, w_gx, _, (w_gzr, w_gn), w_fac = weights
    g_states, c_states, _, s_all, u_all, f_all = outs
    _, fkeep, noise, ext, gkeep = xs
    g_prev, c_prev, f_prev = (_shift(h0, h) for h0, h in zip(init, (g_states, c_states, f_all)))

    def body(carry, x):
        dg, dc, df = carry
        (Gg, Gc, Gm, Gs, Gu, Gf), (gp, cp, fp, g, s, fk, nz, gk), (cg, gg) = x
        df = df + Gf
        d_gk = df @ w_fac  # the cotangent of the dropped-out state
        d_xg, dg_prev = gru_step_backward(dg + Gg + d_gk * gk, gp, gg, w_gzr, w_gn, gen_clip)
        d_ue = d_xg @ w_gx
        du = Gu + d_ue[..., :co]
        ds = Gs + du * nz if sample else Gs
        dp = jnp.concatenate([Gm + du, ds * 0.5 * s], axis=-1)
        d_xc, dc_prev = gru_step_backward(dc + Gc + dp @ w_co, cp, cg, w_czr, w_cn, con_clip)
        d_fk = d_xc @ w_cf
        out = (d_xc, d_xg, dp, df, d_fk * fp, du * s if sample else jnp.zeros_like(nz),
               d_gk * g, d_ue[..., co:])
        return (dg_prev, dc_prev, d_fk * fk), out

    inp = (tuple(g_outs), (g_prev, c_prev, f_prev, g_states, s_all, fkeep, noise, gkeep),
           (c_gates, g_gates))
    d_init, (d_xc, d_xg, dp, df, d_fkeep, d_noise, d_gkeep, d_ext) = jax.lax.scan(
        body, tuple(jnp.zeros_like(h) for h in init), inp, reverse=True)
    # products over all steps and trials; the few-column ones (the generator's input weights
    # and bias, co_linear's bias) as extra columns of larger ones (a lone matrix-vector
    # product or reduction is slower than the columns it adds)
    C, G = c_prev.shape[-1], g_prev.shape[-1]
    d_co = _outer(dp, _with_ones(c_states))
    ue1 = _with_ones(jnp.concatenate([u_all, ext], axis=-1))
    d_gzr = _outer(d_xg[..., : 2 * G], jnp.concatenate([g_prev, ue1], axis=-1))
    d_gn = _outer(d_xg[..., 2 * G :], jnp.concatenate([g_gates[1] * g_prev, ue1], axis=-1))
    d_g = jnp.concatenate([d_gzr[:, G:], d_gn[:, G:]])
    d_w = (_outer(d_xc, f_prev * fkeep), _gru_weight_grads(d_xc, c_prev, c_gates[1]),
           d_co[:, :C], d_co[:, C], d_g[:, :-1], d_g[:, -1], (d_gzr[:, :G], d_gn[:, :G]),
           _outer(df, g_states * gkeep))
    return d_w, (d_xc, d_fkeep, d_noise, d_ext, d_gkeep), d_init


_decoder = looped(_decoder_forward, _decoder_backward)


def decoder(static: tuple, weights: tuple, xs: tuple, init: tuple) -> tuple:
    """The controller-driven generator of LFADS, step by step (one trial, time first).

    ``static`` (controller clip, generator clip, co_dim, sample the inferred inputs);
    ``weights`` (w_cf [3C, F]: the controller's input weights on the factors, (w_zr, w_n)
    of the controller, co_linear's weight [2co, C] and bias [2co], the generator's input
    weights [3G, co + E] (inferred inputs, then external inputs) and bias [3G], (w_zr, w_n)
    of the generator, the factor readout [F, G]); ``xs`` per step (the controller's input
    part from the encoders [T, 3C], the factors' dropout mask [T, F], the inferred inputs'
    noise [T, co], the external inputs (dropped out) [T, E], the generator state's dropout
    mask [T, G]); ``init`` (generator state, controller state, factors).

    Returns (generator states [T, G], controller states [T, C], inferred-input means and
    standard deviations [T, co], inferred inputs (sampled or the means) [T, co], factors
    [T, F]). The step::

        c_t = GRU_con(ci_t + W_cf (f_{t-1} * fkeep_t), c_{t-1})
        mean_t, logvar_t = co_linear(c_t);  std_t = exp(logvar_t / 2)
        u_t = mean_t + std_t * noise_t  (or mean_t without sampling)
        g_t = GRU_gen(W_g [u_t, ext_t] + b_g, g_{t-1});  f_t = W_fac (g_t * gkeep_t)
    """
    return _decoder(tuple(static), tuple(weights), tuple(xs), tuple(init))

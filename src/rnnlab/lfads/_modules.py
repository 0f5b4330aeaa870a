"""The building blocks of LFADS: lfads-torch's clipped GRU cell, a bidirectional GRU over a
sequence, and the variance-scaled linear maps (unbatched; the model vmaps over trials)."""

import functools
import math
from typing import Any

import equinox as eqx
import jax
import jax.custom_batching
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray


def variance_scaled(key: PRNGKeyArray, shape: tuple[int, int], scale_dim: int) -> Array:
    """Normal weights with standard deviation 1/sqrt(scale_dim) (lfads-torch's initialiser)."""
    return jax.random.normal(key, shape) / math.sqrt(scale_dim)


class Linear(eqx.Module):
    """``y = weight @ x (+ bias)``; ``weight`` [out, in] ~ N(0, 1/in), ``bias`` zeros.

    With ``normalized=True`` each row of ``weight`` is scaled to unit norm when applied
    (lfads-torch's ``KernelNormalizedLinear``, the factor readout of the original LFADS)."""

    weight: Array
    bias: Array | None
    normalized: bool = eqx.field(static=True)

    def __init__(self, n_in: int, n_out: int, *, key: PRNGKeyArray, bias: bool = True,
                 normalized: bool = False):
        self.weight = variance_scaled(key, (n_out, n_in), n_in)
        self.bias = jnp.zeros(n_out) if bias else None
        self.normalized = normalized

    def effective_weight(self) -> Array:
        if not self.normalized:
            return self.weight
        return self.weight / jnp.linalg.norm(self.weight, axis=1, keepdims=True)

    def __call__(self, x: Float[Array, "... n_in"]) -> Float[Array, "... n_out"]:
        y = x @ self.effective_weight().T
        return y if self.bias is None else y + self.bias


class ClippedGRUCell(eqx.Module):
    """lfads-torch's GRU cell (the TF LFADS form: the reset gate multiplies the state before
    the recurrent candidate weights; no recurrent bias), its state clipped to
    ``[-clip, clip]``::

        z, r = sigmoid(W_ih[z,r] x + b[z,r] + W_hh[z,r] h)
        n = tanh(W_ih[n] x + b[n] + W_hh[n] (r * h))
        h' = clip(z * h + (1 - z) * n)

    ``weight_ih`` [3H, in], ``weight_hh`` [3H, H], gate blocks (z, r, n); ``bias_ih`` [3H]
    starts at 1 for the gates and 0 for the candidate (the state is kept at first).
    Weights ~ N(0, 1/fan) with fan = in (input) and H (recurrent), or in + H for encoders.
    """

    weight_ih: Array
    weight_hh: Array
    bias_ih: Array
    hidden_size: int = eqx.field(static=True)
    clip_value: float = eqx.field(static=True)

    def __init__(self, input_size: int, hidden_size: int, *, key: PRNGKeyArray,
                 clip_value: float = math.inf, is_encoder: bool = False):
        k1, k2 = jax.random.split(key)
        ih = input_size + hidden_size if is_encoder else input_size
        hh = input_size + hidden_size if is_encoder else hidden_size
        self.weight_ih = variance_scaled(k1, (3 * hidden_size, input_size), max(ih, 1))
        self.weight_hh = variance_scaled(k2, (3 * hidden_size, hidden_size), hh)
        self.bias_ih = jnp.concatenate([jnp.ones(2 * hidden_size), jnp.zeros(hidden_size)])
        self.hidden_size = hidden_size
        self.clip_value = float(clip_value)

    def input_part(self, x: Float[Array, "*T n_in"]) -> Float[Array, "*T G"]:
        """``W_ih x + b`` [..., 3H]: the part of a step that does not depend on the state
        (computed for every step at once, outside the recurrence)."""
        return x @ self.weight_ih.T + self.bias_ih

    def split_hh(self) -> tuple[Array, Array]:
        """The recurrent weights of the gates [2H, H] and of the candidate [H, H] (split once
        outside a loop, so that gradients accumulate without per-step padding)."""
        H = self.hidden_size
        return self.weight_hh[: 2 * H], self.weight_hh[2 * H :]

    def step_pre(self, xa: Float[Array, " G"], h: Float[Array, " H"],
                 hh: tuple[Array, Array] | None = None) -> Float[Array, " H"]:
        """One step from the precomputed input part ``xa`` [3H] (see `input_part`) and the
        split recurrent weights ``hh`` (see `split_hh`; default: split here)."""
        H = self.hidden_size
        w_zr, w_n = self.split_hh() if hh is None else hh
        hzr = w_zr @ h
        z = jax.nn.sigmoid(xa[:H] + hzr[:H])
        r = jax.nn.sigmoid(xa[H : 2 * H] + hzr[H:])
        n = jnp.tanh(xa[2 * H :] + w_n @ (r * h))
        h = z * h + (1.0 - z) * n
        if math.isfinite(self.clip_value):
            h = jnp.clip(h, -self.clip_value, self.clip_value)
        return h

    def __call__(self, x: Float[Array, " n_in"], h: Float[Array, " H"]) -> Float[Array, " H"]:
        return self.step_pre(self.input_part(x), h)


def run_gru(cell: ClippedGRUCell, inputs: Float[Array, "T n_in"],
            h0: Float[Array, " H"]) -> tuple[Float[Array, "T H"], Float[Array, " H"]]:
    """Unroll ``cell`` over ``inputs`` from ``h0``: (all states [T, H], last state [H])."""

    def body(h, x):
        h = cell(x, h)
        return h, h

    last, states = jax.lax.scan(body, h0, inputs)
    return states, last


def run_gru_group(cells: list, inputs: list, h0s: list) -> list:
    """Unroll several cells over sequences of the same length in one loop (one loop instead
    of one per cell: shorter compilation, larger fused steps), their input parts computed
    for all steps before the loop; returns each cell's (states [T, H], last state [H]).

    Differentiable through a hand-written backward pass (`_gru_scan`): the loop back in time
    carries only the states' cotangents, and the recurrent weights' gradients are computed
    after it, for all steps (and, under `jax.vmap`, all trials) in one product each."""
    pre = [c.input_part(x) for c, x in zip(cells, inputs)]
    hhs = [c.split_hh() for c in cells]
    clips = tuple(c.clip_value for c in cells)
    states = _gru_scan(clips, [w[0] for w in hhs], [w[1] for w in hhs], pre, list(h0s))
    return [(s, s[-1]) for s in states]


def _gru_forward(clips, w_zrs, w_ns, xas, h0s):
    """The clipped GRUs' loop over the leading (time) axis of ``xas`` [T, *batch, 3H] from
    ``h0s`` [*batch, H]: (the states, and the gates z, r and candidates n, per step)."""

    def body(hs, xa_t):
        out_h, out_g = [], []
        for clip, w_zr, w_n, xa, h in zip(clips, w_zrs, w_ns, xa_t, hs):
            H = h.shape[-1]
            hzr = h @ w_zr.T
            z = jax.nn.sigmoid(xa[..., :H] + hzr[..., :H])
            r = jax.nn.sigmoid(xa[..., H : 2 * H] + hzr[..., H:])
            n = jnp.tanh(xa[..., 2 * H :] + (r * h) @ w_n.T)
            h = z * h + (1.0 - z) * n
            if math.isfinite(clip):
                h = jnp.clip(h, -clip, clip)
            out_h.append(h)
            out_g.append((z, r, n))
        return out_h, (out_h, out_g)

    _, (states, gates) = jax.lax.scan(body, h0s, xas)
    return states, gates


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _gru_scan(clips, w_zrs, w_ns, xas, h0s):
    """The states [T, *batch, H] of the cells (see `_gru_forward`)."""
    return _gru_forward(clips, w_zrs, w_ns, xas, h0s)[0]


def _gru_backward(clips, res, g_states):
    """The cotangents of (w_zrs, w_ns, xas, h0s) from those of the states ``g_states``, for
    residuals ``res`` (the weights, h0s, states and gates) with any batch axes after time:
    the loop back in time carries the states' cotangents only; the recurrent weights'
    gradients are then one product each over all steps and trials."""
    w_zrs, w_ns, h0s, states, gates = res
    # the state each step started from
    prevs = [jnp.concatenate([h0[None], s[:-1]]) for h0, s in zip(h0s, states)]

    def body(dhs, inp):
        g_t, prev_t, gate_t = inp
        new_dh, d_pre = [], []
        for clip, w_zr, w_n, dh, g, h, (z, r, n) in zip(clips, w_zrs, w_ns, dhs, g_t, prev_t,
                                                          gate_t):
            dh = dh + g
            if math.isfinite(clip):  # no gradient where the state was clipped
                hu = z * h + (1.0 - z) * n
                dh = jnp.where((hu >= -clip) & (hu <= clip), dh, 0.0)
            dn = dh * (1.0 - z) * (1.0 - n * n)
            d_rh = dn @ w_n
            dzr = jnp.concatenate([dh * (h - n) * z * (1.0 - z), d_rh * h * r * (1.0 - r)],
                                  axis=-1)
            new_dh.append(dh * z + d_rh * r + dzr @ w_zr)
            d_pre.append(jnp.concatenate([dzr, dn], axis=-1))
        return new_dh, d_pre

    d_h0s, d_xas = jax.lax.scan(body, [jnp.zeros_like(h) for h in h0s],
                                (g_states, prevs, gates), reverse=True)
    d_wzr, d_wn = [], []
    for d_xa, prev, (_, r, _) in zip(d_xas, prevs, gates):
        H = prev.shape[-1]
        d_xa2, prev2 = d_xa.reshape(-1, 3 * H), prev.reshape(-1, H)
        d_wzr.append(d_xa2[:, : 2 * H].T @ prev2)
        d_wn.append(d_xa2[:, 2 * H :].T @ (r.reshape(-1, H) * prev2))
    return d_wzr, d_wn, d_xas, d_h0s


# Under `jax.vmap` over trials (how the model is batched), the forward and backward passes
# run the batch inside their loops, time first, through the batching rules below: the
# weights' gradients are then single products over steps and trials, not one per trial
# summed afterwards. The residuals of a batched forward pass are handed to the backward one
# as they are (time first, marked unbatched); the backward rule recognises them by their
# rank. Batched weights (an ensemble of models) go trial by trial.


def _batch_axes(flags):
    return jax.tree.map(lambda b: 0 if b else None, flags)


@functools.lru_cache(maxsize=None)
def _gru_fwd_rule(clips: tuple) -> Any:
    @jax.custom_batching.custom_vmap
    def fwd(w_zrs, w_ns, xas, h0s):
        states, gates = _gru_forward(clips, w_zrs, w_ns, xas, h0s)
        return states, (w_zrs, w_ns, h0s, states, gates)

    @fwd.def_vmap
    def rule(axis_size, in_batched, w_zrs, w_ns, xas, h0s):
        if any(jax.tree.leaves(in_batched[:2])):
            def plain(*args):
                states, gates = _gru_forward(clips, *args)
                return states, (args[0], args[1], args[3], states, gates)

            out = jax.vmap(plain, in_axes=tuple(_batch_axes(list(in_batched))))(
                w_zrs, w_ns, xas, h0s)
            return out, jax.tree.map(lambda _: True, out)
        xas = [jnp.swapaxes(x, 0, 1) if b else jnp.broadcast_to(
            x[:, None], (x.shape[0], axis_size, *x.shape[1:]))
            for x, b in zip(xas, in_batched[2])]
        h0s = [h if b else jnp.broadcast_to(h, (axis_size, *h.shape))
               for h, b in zip(h0s, in_batched[3])]
        states, gates = _gru_forward(clips, w_zrs, w_ns, xas, h0s)
        res = (w_zrs, w_ns, h0s, states, gates)
        out = ([jnp.swapaxes(s, 0, 1) for s in states], res)
        return out, ([True] * len(states), jax.tree.map(lambda _: False, res))

    return fwd


@functools.lru_cache(maxsize=None)
def _gru_bwd_rule(clips: tuple) -> Any:
    @jax.custom_batching.custom_vmap
    def bwd(res, g_states):
        return _gru_backward(clips, res, g_states)

    @bwd.def_vmap
    def rule(axis_size, in_batched, res, g_states):
        res_b, g_b = in_batched
        states = res[3]
        g_ref = next(g for g, b in zip(g_states, g_b) if b) if any(g_b) else None
        if any(jax.tree.leaves(res_b)) or g_ref is None or states[0].ndim != g_ref.ndim:
            out = jax.vmap(functools.partial(_gru_backward, clips),
                           in_axes=(_batch_axes(res_b), _batch_axes(g_b)))(res, g_states)
            return out, jax.tree.map(lambda _: True, out)
        # residuals of a batched forward pass: time first, then the trials
        g_states = [jnp.swapaxes(g, 0, 1) if b else jnp.broadcast_to(g[:, None], s.shape)
                    for g, b, s in zip(g_states, g_b, states)]
        d_wzr, d_wn, d_xas, d_h0s = _gru_backward(clips, res, g_states)
        out = (d_wzr, d_wn, [jnp.swapaxes(d, 0, 1) for d in d_xas], d_h0s)
        return out, ([False] * len(d_wzr), [False] * len(d_wn), [True] * len(d_xas),
                     [True] * len(d_h0s))

    return bwd


def _gru_scan_fwd(clips, w_zrs, w_ns, xas, h0s):
    return _gru_fwd_rule(clips)(w_zrs, w_ns, xas, h0s)


def _gru_scan_bwd(clips, res, g_states):
    return _gru_bwd_rule(clips)(res, g_states)


_gru_scan.defvjp(_gru_scan_fwd, _gru_scan_bwd)


class BidirectionalGRU(eqx.Module):
    """A forward and a backward `ClippedGRUCell` over the same sequence, each from its own
    learned initial state (``h0`` [2, H])."""

    fwd: ClippedGRUCell
    bwd: ClippedGRUCell
    h0: Array

    def __init__(self, input_size: int, hidden_size: int, *, key: PRNGKeyArray,
                 clip_value: float = math.inf):
        k1, k2 = jax.random.split(key)
        self.fwd = ClippedGRUCell(input_size, hidden_size, key=k1, clip_value=clip_value,
                                  is_encoder=True)
        self.bwd = ClippedGRUCell(input_size, hidden_size, key=k2, clip_value=clip_value,
                                  is_encoder=True)
        self.h0 = jnp.zeros((2, hidden_size))

    def __call__(self, inputs: Float[Array, "T n_in"]
                 ) -> tuple[Float[Array, "T D"], Float[Array, " D"]]:
        """(outputs [T, 2H]: forward states then the backward ones aligned to the same
        steps, final states [2H]: the forward's last and the backward's last)."""
        out_f, last_f = run_gru(self.fwd, inputs, self.h0[0])
        out_b, last_b = run_gru(self.bwd, inputs[::-1], self.h0[1])
        outputs = jnp.concatenate([out_f, out_b[::-1]], axis=-1)
        return outputs, jnp.concatenate([last_f, last_b])

"""FORCE learning (Sussillo & Abbott 2009): recursive least squares on an echo-state readout."""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._validate import positive_int, positive_number
from ..models._esn import EchoStateNetwork


class ForceResult(eqx.Module):
    """What `train_force` returns.

    Fields:
        model: the network with its trained readout ``w_out`` (everything else unchanged).
        P: [N, N], the RLS estimate of the inverse correlation matrix of the rates after the
            last update; pass it back as ``P=`` to continue training where this run stopped.
        errors: [passes, T, n_out], the error ``z - f`` at every step *before* that step's
            update (the a-priori error of Sussillo & Abbott 2009, Fig. 1).
        outputs: [passes, T, n_out], the outputs z during training (before each update).
        final_state: [N], the reservoir state after the last step.
    """

    model: EchoStateNetwork
    P: Float[Array, "n_hidden n_hidden"]
    errors: Float[Array, "passes time n_out"]
    outputs: Float[Array, "passes time n_out"]
    final_state: Float[Array, " n_hidden"]

    @property
    def pass_rmse(self) -> Float[Array, " passes"]:
        """Root-mean-square training error of each pass (over steps and outputs)."""
        return jnp.sqrt(jnp.mean(self.errors**2, axis=(1, 2)))


def _rls_update(r, e, w_out, P):
    """One RLS step: k = P r, c = 1 / (1 + r^T P r), P -= c k k^T, W_out -= c e k^T."""
    k = P @ r
    c = 1.0 / (1.0 + r @ k)
    P = P - c * jnp.outer(k, k)
    w_out = w_out - c * jnp.outer(e, k)
    return w_out, P


@eqx.filter_jit
def _force_jit(model, targets, inputs, P, a0, noise, update_every, carry_state):
    w = model.effective_weights()
    proj = inputs @ w["w_in"].T + w["b_rec"]
    n_steps = targets.shape[0]
    steps = jnp.arange(n_steps)

    def time_body(carry, xs):
        a, w_out, P = carry
        p, f, t, xi = xs
        a = model.euler(w, w_out, a, p) + xi
        r = model.activation(a)
        z = w_out @ r
        e = z - f
        w_out, P = jax.lax.cond(
            t % update_every == 0,
            lambda args: _rls_update(r, e, *args),
            lambda args: args,
            (w_out, P),
        )
        return (a, w_out, P), (e, z)

    def pass_body(carry, xi_pass):
        a, w_out, P = carry
        start = a if carry_state else a0
        (a, w_out, P), (errs, outs) = jax.lax.scan(
            time_body, (start, w_out, P), (proj, targets, steps, xi_pass)
        )
        return (a, w_out, P), (errs, outs)

    (a, w_out, P), (errors, outputs) = jax.lax.scan(
        pass_body, (a0, w["w_out"], P), noise
    )
    new_model = eqx.tree_at(lambda m: m.w_out, model, w_out.astype(model.w_out.dtype))
    return ForceResult(new_model, P, errors, outputs, a)


def _warn_if_silent(esn, inputs, a0, key) -> None:
    """Warn when the reservoir can never leave a = 0 (nothing to learn from)."""
    noisy = key is not None and (esn.noise_std > 0 or esn.input_noise_std > 0)
    if noisy or np.any(np.asarray(a0)) or np.any(np.asarray(inputs)):
        return
    if np.any(np.asarray(esn.effective_weights()["b_rec"])):
        return
    if float(esn.activation(jnp.zeros(()))) != 0.0:
        return
    warnings.warn(
        "train_force: the reservoir starts at a = 0 with no input, no bias and no noise, so "
        "it stays at its fixed point a = 0, the rates are 0 and FORCE cannot change the "
        "readout; start it elsewhere (EchoStateNetwork(..., initial_state='random') or "
        "initial_state=...), give inputs, or pass a key with noise_std > 0",
        stacklevel=3,
    )


def train_force(
    esn: EchoStateNetwork,
    targets: ArrayLike,  # [time, n_out]; the shapes are checked here (a clear ValueError)
    *,
    inputs: ArrayLike | None = None,  # [time, n_in]
    alpha: float = 1.0,
    passes: int = 1,
    update_every: int | float = 1,  # an integer; a float gets positive_int()'s ValueError
    P: ArrayLike | None = None,  # [n_hidden, n_hidden]
    initial_state: ArrayLike | None = None,  # [n_hidden]
    carry_state: bool = False,
    key: PRNGKeyArray | None = None,
) -> ForceResult:
    r"""Train the readout of an echo-state network with FORCE learning (recursive least squares).

    The network runs with its output fed back (``z = W_out f(a)`` computed with the readout as
    it is being learned) and, at every ``update_every``-th step ``t`` of a pass
    (``t = 0, k, 2k, ...``), the readout is updated from the rates ``r = f(a[t])`` and the error
    ``e = z - f[t]`` (Sussillo & Abbott 2009)::

        k = P r,   c = 1 / (1 + r^T P r),   P <- P - c k k^T,   W_out <- W_out - c e k^T

    with ``P`` starting at ``I / alpha``. The whole loop (``passes`` passes over the ``T``
    steps) is one compiled ``lax.scan``. Each pass starts from ``initial_state`` (default
    ``esn.initial_state()``) unless ``carry_state=True``, when it continues from the state the
    previous pass ended in (one long continuous run, as in the paper).

    After training, ``result.model`` is an ordinary closed-loop model: ``rnnlab.simulate``
    runs it free, and its ``vector_field`` / ``closed_loop_weights()`` are what fixed-point
    analysis and eigenvalue plots use.

    Args:
        esn: the `EchoStateNetwork` to train (only ``w_out`` changes).
        targets: [T, n_out], the target output f at each step.
        inputs: [T, n_in] inputs; zeros when omitted.
        alpha: regulariser / inverse learning rate; ``P0 = I / alpha``. Default 1.
        passes: number of passes over the targets. Default 1.
        update_every: RLS update every this many steps (1: every step). Default 1.
        P: an initial inverse correlation matrix [N, N] (e.g. a previous ``result.P``);
            overrides ``alpha``.
        initial_state: [N], where each pass starts.
        carry_state: continue each pass from where the previous one ended.
        key: PRNG key for the reservoir and input noise (``esn.noise_std``,
            ``esn.input_noise_std``); without it training is noise-free.

    Returns: a `ForceResult` (model, P, errors, outputs, final_state).
    """
    if not isinstance(esn, EchoStateNetwork):
        raise TypeError(
            f"esn must be an rnnlab.EchoStateNetwork, got {type(esn).__name__}; FORCE trains "
            "the readout of an echo-state network"
        )
    targets = jnp.asarray(targets)
    if not jnp.issubdtype(targets.dtype, jnp.floating):
        targets = targets.astype(jnp.float32)
    if targets.ndim == 1 and esn.n_out == 1:
        targets = targets[:, None]
    if targets.ndim != 2 or targets.shape[1] != esn.n_out or targets.shape[0] < 1:
        raise ValueError(
            f"targets must have shape [T, n_out={esn.n_out}] with T >= 1, got {targets.shape}"
        )
    if not bool(jnp.all(jnp.isfinite(targets))):
        raise ValueError("targets contains NaN or inf")
    n_steps = targets.shape[0]
    dtype = targets.dtype
    if inputs is None:
        inputs = jnp.zeros((n_steps, esn.n_in), dtype)
    else:
        inputs = jnp.asarray(inputs, dtype)
        if inputs.shape != (n_steps, esn.n_in):
            raise ValueError(
                f"inputs must have shape (T={n_steps}, n_in={esn.n_in}) like targets, got "
                f"{inputs.shape}"
            )
    passes = positive_int("passes", passes)
    update_every = positive_int("update_every", update_every)
    n = esn.n_hidden
    if P is None:
        alpha = positive_number("alpha", alpha)  # P0 = I / alpha
        P = jnp.eye(n, dtype=dtype) / alpha
    else:
        P = jnp.asarray(P, dtype)
        if P.shape != (n, n):
            raise ValueError(f"P must have shape ({n}, {n}), got {P.shape}")
    if initial_state is None:
        a0 = esn.initial_state().astype(dtype)
    else:
        a0 = jnp.asarray(initial_state, dtype)
        if a0.shape != (n,):
            raise ValueError(f"initial_state must have shape ({n},), got {a0.shape}")
    _warn_if_silent(esn, inputs, a0, key)
    # Noise for every pass and step, drawn up front (additive on the state; input noise enters
    # through the projection).
    noise = jnp.zeros((int(passes), n_steps, n), dtype)
    if key is not None:
        k_in, k_rec = jax.random.split(key)
        if esn.noise_std > 0:
            noise = np.sqrt(2.0 * esn.alpha) * esn.noise_std * jax.random.normal(
                k_rec, noise.shape, dtype)
        if esn.input_noise_std > 0:
            xi_in = esn.input_noise_std * jax.random.normal(
                k_in, (int(passes), n_steps, esn.n_in), dtype)
            w_in = esn.effective_weights()["w_in"].astype(dtype)
            noise = noise + esn.alpha * (xi_in @ w_in.T)
    return _force_jit(esn, targets, inputs, P, a0, noise, int(update_every), bool(carry_state))

"""Reconstruction heads of LFADS (lfads-torch's ``recons``): the distribution of the observed
data given the factors, its negative log-likelihood per entry and its mean.

The readout gives ``n_params`` numbers per neuron and step:

- ``"poisson"``: the log-rate (counts; the default). NLL exact: ``rate - k log rate + lgamma(k+1)``.
- ``"gaussian"``: mean and log-variance (continuous data).
- ``"gamma"``: log-shape and log-rate (positive data).
- ``"zero_inflated_gamma"``: shape, rate and the probability of a non-zero value, through
  sigmoids scaled per neuron by a learned ``zig_scale`` [2, neurons] (calcium imaging;
  non-zero values are shifted by ``gamma_loc``).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln
from jaxtyping import Array, Float

from ._priors import LOG_2PI, ar1_kl_sample, gaussian_kl
from ._random import bernoulli

N_PARAMS = {"poisson": 1, "gaussian": 2, "gamma": 2, "zero_inflated_gamma": 3}
ALIASES = {"zig": "zero_inflated_gamma", "normal": "gaussian"}


def gamma_nll(x: Array, alpha: Array, beta: Array) -> Array:
    """-log Gamma(x; shape alpha, rate beta), elementwise."""
    return -(alpha * jnp.log(beta) + (alpha - 1.0) * jnp.log(x) - beta * x - gammaln(alpha))


def zig_params(params: Array, zig_scale: Array) -> tuple[Array, Array, Array]:
    """(alpha, beta, q) of the zero-inflated Gamma from the readout's [..., neurons, 3]."""
    sig = jnp.maximum(jax.nn.sigmoid(params), 1e-5)
    return sig[..., 0] * zig_scale[0], sig[..., 1] * zig_scale[1], sig[..., 2]


def recon_nll(
    kind: str,
    data: Float[Array, "*batch"],
    params: Array,
    zig_scale: Array | None = None,
    gamma_loc: float = 0.0,
) -> Float[Array, "*batch"]:
    """Negative log-likelihood of ``data`` [..., neurons] per entry under the head ``kind``
    with readout parameters ``params`` [..., neurons, n_params]."""
    if kind == "poisson":
        lograte = params[..., 0]
        return jnp.exp(lograte) - data * lograte + gammaln(data + 1.0)
    if kind == "gaussian":
        mean, logvar = params[..., 0], params[..., 1]
        return 0.5 * (LOG_2PI + logvar + (data - mean) ** 2 * jnp.exp(-logvar))
    if kind == "gamma":
        return gamma_nll(data, jnp.exp(params[..., 0]), jnp.exp(params[..., 1]))
    if kind == "zero_inflated_gamma":
        alpha, beta, q = zig_params(params, zig_scale)
        zero = data == 0
        shifted = jnp.where(zero, 1.0, data - gamma_loc)
        return jnp.where(zero, -jnp.log1p(-q), gamma_nll(shifted, alpha, beta) - jnp.log(q))
    raise ValueError(f"unknown reconstruction {kind!r}")


def recon_means(kind: str, params: Array, zig_scale: Array | None = None,
                gamma_loc: float = 0.0) -> Array:
    """The mean of the head's distribution (the rates, for ``"poisson"``)."""
    if kind == "poisson":
        return jnp.exp(params[..., 0])
    if kind == "gaussian":
        return params[..., 0]
    if kind == "gamma":
        return jnp.exp(params[..., 0] - params[..., 1])
    if kind == "zero_inflated_gamma":
        alpha, beta, q = zig_params(params, zig_scale)
        return q * (alpha / beta + gamma_loc)
    raise ValueError(f"unknown reconstruction {kind!r}")


# ------------------------------------------------------------------------------ the ELBO


class Scales(NamedTuple):
    """The weights of the loss terms (lfads-torch's names); the defaults are `fit`'s. The
    ramps multiply the KL and L2 terms (0 -> 1 over their warm-up, see `ramp`)."""

    kl_ic_scale: float = 1.0
    kl_co_scale: float = 0.05
    l2_ic_enc_scale: float = 0.0
    l2_ci_enc_scale: float = 0.0
    l2_gen_scale: float = 0.0
    l2_con_scale: float = 0.0


def ramp(epoch: Array, start: int, increase: int) -> Array:
    """lfads-torch's warm-up coefficient: (epoch + 1 - start) / (increase + 1) in [0, 1]."""
    return jnp.clip((epoch + 1.0 - start) / (increase + 1.0), 0.0, 1.0)


def l2_penalty(model, scales: Scales) -> Array:
    """lfads-torch's L2 cost: sum_k scale_k * 0.5 * |W_k|^2 over the recurrent kernels with a
    positive scale, divided by the number of their entries."""
    total, size = 0.0, 0
    for name, mats in model.recurrent_kernels().items():
        scale = getattr(scales, f"l2_{name}_scale")
        if scale > 0:
            for w in mats:
                total = total + scale * 0.5 * jnp.sum(w**2)
                size += w.size
    return jnp.asarray(total) / (size + 1e-8)


def cd_masks(key: Array, shape: tuple[int, ...], cd_rate: float, cd_pass_rate: float
             ) -> tuple[Array, Array]:
    """Coordinated dropout's masks for encoder input of ``shape``: (keep [input entries the
    encoder sees], grad [entries whose reconstruction gets a gradient: the dropped ones, and
    a ``cd_pass_rate`` fraction of the kept ones])."""
    k1, k2 = jax.random.split(key)
    keep = bernoulli(k1, 1.0 - cd_rate, shape)
    if cd_pass_rate == 0.0:  # (no draw for nothing)
        return keep, ~keep
    passed = bernoulli(k2, cd_pass_rate, shape)
    return keep, jnp.logical_or(~keep, passed)


def elbo_loss(
    model,
    encod: Float[Array, "B T_enc N"],
    recon: Float[Array, "B T N_recon"],
    ext: Array | None,
    key: Array,
    *,
    scales: Scales,
    kl_ramp: Array,
    l2_ramp: Array,
    cd_rate: float = 0.0,
    cd_pass_rate: float = 0.0,
    train: bool = True,
) -> tuple[Array, dict[str, Array]]:
    """The negative ELBO of a batch and its parts: reconstruction NLL (summed over time and
    neurons, averaged over trials) + ``l2_ramp`` * L2 + ``kl_ramp`` * (``kl_ic_scale`` KL of
    the initial condition + ``kl_co_scale`` KL of the inferred inputs), per trial.

    ``train``: dropout on and coordinated dropout (``cd_rate`` of the encoder's input entries
    zeroed and the rest scaled by 1/(1 - cd_rate); the reconstruction loss keeps its value
    but its gradient flows only through the zeroed entries, and a ``cd_pass_rate`` fraction
    of the others; the forward-prediction bins and held-out neurons always pass). The
    posteriors are sampled in training and evaluation alike (lfads-torch's
    ``variational=True``)."""
    B, T = recon.shape[:2]
    k_cd, k_model = jax.random.split(key)
    grad_mask = None
    if train and cd_rate > 0:
        keep, grad = cd_masks(k_cd, encod.shape, cd_rate, cd_pass_rate)
        encod = jnp.where(keep, encod / (1.0 - cd_rate), 0.0)
        pad = ((0, 0), (0, T - encod.shape[1]), (0, recon.shape[2] - encod.shape[2]))
        grad_mask = jnp.pad(grad, pad, constant_values=True)
    keys = jax.random.split(k_model, B)

    def one(x, e, k):
        return model(x, n_time=T, ext_input=e, key=k, sample_posteriors=True, dropout=train)

    out = jax.vmap(one)(encod, ext, keys)
    nll = recon_nll(model.reconstruction, recon, out.output_params, model.zig_scale,
                    model.gamma_loc)
    if grad_mask is not None:
        nll = jnp.where(grad_mask, nll, jax.lax.stop_gradient(nll))
    rec = jnp.sum(nll) / B
    prior_mean = model.ic_prior_mean if model.learn_ic_prior else jax.lax.stop_gradient(
        model.ic_prior_mean)
    prior_logvar = jax.lax.stop_gradient(model.ic_prior_logvar)
    kl_ic = jnp.mean(gaussian_kl(out.ic_mean, out.ic_std, prior_mean, prior_logvar))
    if model.use_con:
        co = model.co_dim
        kl_co = jnp.mean(jax.vmap(ar1_kl_sample, in_axes=(0, 0, 0, None, None))(
            out.gen_inputs[..., :co], out.co_means, out.co_stds, model.co_prior_logtaus,
            model.co_prior_lognvars))
    else:
        kl_co = jnp.zeros(())
    l2 = l2_penalty(model, scales)
    kl = scales.kl_ic_scale * kl_ic + scales.kl_co_scale * kl_co
    loss = rec + l2_ramp * l2 + kl_ramp * kl
    return loss, {"recon": rec, "kl_ic": kl_ic, "kl_co": kl_co, "l2": l2}

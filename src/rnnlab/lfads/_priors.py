"""The priors of LFADS and their log-densities / KL terms.

- The initial condition: a diagonal Gaussian prior N(mean, exp(logvar)) (mean learned or fixed,
  variance fixed, as lfads-torch's ``MultivariateNormal``); the KL from the diagonal Gaussian
  posterior is analytic.
- The inferred inputs: per dimension an AR(1) process (lfads-torch's
  ``AutoregressiveMultivariateNormal``)::

      u_1 ~ N(0, pvar),  u_t = alpha u_{t-1} + e_t,  e_t ~ N(0, nvar),
      alpha = exp(-1 / tau),  pvar = nvar / (1 - alpha^2)  (the stationary variance)

  with ``log tau`` and ``log nvar`` learned; its KL from the posterior is estimated by the
  sample that drove the generator (log q(u) - log p(u)), as in lfads-torch.
"""

import math

import jax.numpy as jnp
from jaxtyping import Array, Float

LOG_2PI = math.log(2.0 * math.pi)


def gaussian_kl(
    post_mean: Float[Array, "*batch d"],
    post_std: Float[Array, "*batch d"],
    prior_mean: Float[Array, " d"],
    prior_logvar: Float[Array, " d"],
) -> Float[Array, "*batch"]:
    """KL( N(post_mean, post_std^2) || N(prior_mean, exp(prior_logvar)) ), both diagonal,
    summed over the last axis."""
    post_var = post_std**2
    prior_var = jnp.exp(prior_logvar)
    kl = 0.5 * (prior_logvar - jnp.log(post_var)
                + (post_var + (post_mean - prior_mean) ** 2) / prior_var - 1.0)
    return jnp.sum(kl, axis=-1)


def gaussian_log_prob(
    x: Float[Array, "*batch"], mean: Float[Array, "*batch"], std: Float[Array, "*batch"]
) -> Array:
    """Sum of the elementwise log-densities of N(mean, std^2) at ``x`` (a scalar)."""
    z = (x - mean) / std
    return jnp.sum(-0.5 * z**2 - jnp.log(std) - 0.5 * LOG_2PI)


def ar1_log_prob(
    u: Float[Array, "T d"], logtaus: Float[Array, " d"], lognvars: Float[Array, " d"]
) -> Array:
    """log p(u) of the sequence ``u`` [time, dims] under independent AR(1) priors per
    dimension (see the module docstring), summed over time and dimensions (a scalar)."""
    alphas = jnp.exp(-1.0 / jnp.exp(logtaus))
    logpvars = lognvars - jnp.log1p(-(alphas**2))
    first = gaussian_log_prob(u[0], jnp.zeros_like(u[0]), jnp.exp(0.5 * logpvars))
    rest = gaussian_log_prob(u[1:], alphas * u[:-1],
                             jnp.broadcast_to(jnp.exp(0.5 * lognvars), u[1:].shape))
    return first + rest


def ar1_kl_sample(
    u: Float[Array, "T d"],
    post_mean: Float[Array, "T d"],
    post_std: Float[Array, "T d"],
    logtaus: Float[Array, " d"],
    lognvars: Float[Array, " d"],
) -> Array:
    """One-sample estimate of KL(q || AR(1) prior) at the sample ``u`` drawn from the diagonal
    Gaussian posterior q = N(post_mean, post_std^2): log q(u) - log p(u)."""
    return gaussian_log_prob(u, post_mean, post_std) - ar1_log_prob(u, logtaus, lognvars)

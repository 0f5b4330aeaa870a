"""A fast counter-based Gaussian generator for the noise of training runs.

``jax.random.normal`` (threefry-2x32 with 20 rounds, one 32-bit word per sample, then
``sqrt(2) erfinv(2u - 1)``) costs about 11 ns of CPU time per sample on this project's 2-core
CPU (5 ns with the Threefry rounds written as fused integer array operations): at (hidden 100,
batch 128, T 200) the recurrent noise took a fifth of a training step. `normal` here draws
samples from the same family of generator, with less work per sample:

* **Bits**: Threefry-2x32 with **13 rounds** (Salmon, Moraes, Dror & Shaw 2011, "Parallel random
  numbers: as easy as 1, 2, 3", SC11: Threefry-2x32-13 is the smallest round count of that
  family that passes all of TestU01's BigCrush; JAX and Random123 default to 20 for a safety
  margin). The counter is the sample's flat index, the 2-word key is derived from the JAX key
  with ``jax.random.bits(key, (2,))`` (so any PRNG implementation's key works and distinct keys
  give independent streams).
* **Gaussian transform**: Box-Muller, exact: for independent ``u`` uniform on (0, 1] and
  ``theta`` uniform on the circle, ``sqrt(-2 log u) cos(theta)`` is a standard normal. Each
  sample uses both words of its own Threefry call: 24 bits of the first for ``u``
  (``u >= 2^-24``, so ``|z| <= 5.77``; the normal's mass beyond is 8e-9), the second for the
  angle (1 sign bit, 24 bits for ``a`` uniform on [-pi/2, pi/2), ``cos(theta) = sign cos(a)``).
  ``cos(a)`` is its Taylor polynomial of degree 12 (truncation error below 7e-9, under
  float32 rounding), much cheaper on XLA's CPU backend than ``jnp.cos`` with its general range
  reduction. The sine branch of the pair is not used: each sample depending on one counter
  only means that a consumer fusing the generator (the noise term of a time step, say) never
  evaluates a Threefry call twice, which XLA would do for the two outputs of a pair.

The result is reproducible (same key and shape, same numbers, on any backend up to the last
bit of the float transcendental ``log``) and about 4x cheaper than ``jax.random.normal`` on a
CPU (2.7 ns of CPU time per sample). It is *not* the same stream as ``jax.random.normal``.
Compiled and op-by-op evaluation may differ in the last bit of a sample (fused
multiply-adds). The statistical tests in ``tests/test_random.py`` check moments, the
Kolmogorov-Smirnov distance to the normal, independence between neighbouring samples, time
steps and keys, and the Threefry rounds against Random123's known-answer vectors.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = 0x1BD11BDA
ROUNDS = 13


def _rotl(x: Array, r: int) -> Array:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def threefry2x32(
    k0: Array, k1: Array, x0: Array, x1: Array, rounds: int = ROUNDS
) -> tuple[Array, Array]:
    """Threefry-2x32 with ``rounds`` rounds (Salmon et al. 2011), as Random123's
    ``threefry2x32_R``: the key is injected before the first round and after every fourth.

    With ``rounds=20`` this is JAX's ``threefry_2x32`` (the tests check it bit for bit).
    All arguments are uint32 arrays (broadcastable); returns the two output words.
    """
    k2 = k0 ^ k1 ^ np.uint32(_PARITY)
    ks = (k0, k1, k2)
    x0 = x0 + k0
    x1 = x1 + k1
    for i in range(rounds):
        x0 = x0 + x1
        x1 = _rotl(x1, _ROTATIONS[(i // 4) % 2][i % 4])
        x1 = x1 ^ x0
        if i % 4 == 3:
            j = i // 4 + 1
            x0 = x0 + ks[j % 3]
            x1 = x1 + ks[(j + 1) % 3] + np.uint32(j)
    return x0, x1


def seed_words(key: PRNGKeyArray) -> tuple[Array, Array]:
    """Two uint32 words derived from a JAX key (raw uint32[2] or typed, any implementation)."""
    if not (jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or key.dtype == jnp.uint32):
        raise TypeError(f"key must be a JAX PRNG key, got an array of dtype {key.dtype}")
    words = jax.random.bits(key, (2,), jnp.uint32)
    return words[0], words[1]


# Taylor coefficients of cos on [-pi/2, pi/2] (degree 12), highest degree first
_COS = tuple(np.float32((-1) ** k / math.factorial(2 * k)) for k in range(6, -1, -1))


def _horner(coeffs, x2: Array) -> Array:
    acc = coeffs[0]
    for c in coeffs[1:]:
        acc = acc * x2 + c
    return acc


def gaussian_from_words(b0: Array, b1: Array) -> Array:
    """One float32 standard normal per pair of uint32 random words (Box-Muller, cosine branch).

    ``z = sqrt(-2 log u) * cos(theta)``: ``u = 1 - (b0 >> 8) / 2^24`` uniform on [2^-24, 1],
    ``theta`` uniform on the circle from ``b1``: its low bit a sign, its top 24 bits an angle
    ``a`` uniform on [-pi/2, pi/2), and ``cos(theta) = sign * cos(a)``.
    """
    u = np.float32(1.0) - (b0 >> np.uint32(8)).astype(jnp.float32) * np.float32(2.0**-24)
    radius = jnp.sqrt(np.float32(-2.0) * jnp.log(u))
    frac = (b1 >> np.uint32(8)).astype(jnp.float32) * np.float32(2.0**-24)
    a = (frac - np.float32(0.5)) * np.float32(math.pi)
    cos_a = _horner(_COS, a * a)
    signed = jnp.where((b1 & np.uint32(1)) == 1, -radius, radius)
    return signed * cos_a


def normal(
    key: PRNGKeyArray, shape: tuple[int, ...], dtype=jnp.float32
) -> Float[Array, "..."]:
    """Standard normal samples of ``shape`` from Threefry-2x32-13 bits and Box-Muller.

    Args:
        key: a JAX PRNG key (raw or typed, any implementation).
        shape: output shape (fewer than 2^32 samples).
        dtype: a floating dtype; samples are computed in float32 and cast.

    Returns: an array of ``shape`` and ``dtype``. Same key and shape, same numbers. The
    sample at flattened index ``i`` is ``sample_at(*seed_words(key), i)``.
    """
    shape = tuple(int(s) for s in shape)
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    size = math.prod(shape)
    if size >= 2**32:
        raise ValueError(f"normal draws fewer than 2^32 samples at once, got shape {shape}")
    if size == 0:
        return jnp.zeros(shape, dtype)
    k0, k1 = seed_words(key)
    counter = jax.lax.iota(jnp.uint32, size).reshape(shape)
    return sample_at(k0, k1, counter).astype(dtype)


def sample_at(k0: Array, k1: Array, counter: Array) -> Array:
    """The standard normal numbered ``counter`` (uint32 array) in the stream of seed words
    (k0, k1): ``normal(key, shape).ravel()[i] == sample_at(*seed_words(key), i)``.

    Each sample depends on its own counter only, so any slice of a stream (one time step of a
    [batch, time, hidden] noise array, say) can be generated where it is used.
    """
    hi = jnp.zeros_like(counter)
    b0, b1 = threefry2x32(k0, k1, hi, counter)
    return gaussian_from_words(b0, b1)

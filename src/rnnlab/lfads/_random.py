"""The random numbers of a training step, bit for bit those of `jax.random` (threefry2x32,
the counter layout JAX uses by default, ``jax_threefry_partitionable``), written out so that
XLA fuses the hash's 20 rounds into the elementwise code that uses them.

On a CPU, JAX lowers threefry as a loop of five steps over the whole array (short compile
times), each step reading and writing the counters and keys in memory; for the ~0.7 million
random words of an LFADS training step that loop cost more than the hash itself.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _rotate_left(x: jax.Array, d: int) -> jax.Array:
    return (x << np.uint32(d)) | (x >> np.uint32(32 - d))


def threefry2x32(k1: jax.Array, k2: jax.Array, x1: jax.Array, x2: jax.Array
                 ) -> tuple[jax.Array, jax.Array]:
    """The Threefry-2x32 hash (20 rounds) of the counter pairs (``x1``, ``x2``) under the key
    (``k1``, ``k2``), all uint32, as `jax.random`'s threefry2x32 primitive computes it."""
    ks = (k1, k2, k1 ^ k2 ^ np.uint32(0x1BD11BDA))
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x1 = x1 + x2
            x2 = _rotate_left(x2, r) ^ x1
        x1 = x1 + ks[(i + 1) % 3]
        x2 = x2 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x1, x2


def random_bits(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """uint32 random bits of ``shape``: ``jax.random.bits(key, shape, jnp.uint32)`` with
    JAX's default ``jax_threefry_partitionable=True``, whatever that setting is."""
    size = math.prod(shape)
    if size >= 2**32:
        raise ValueError(f"shape {shape} asks for more than 2**32 random words")
    k = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    lo = jax.lax.iota(jnp.uint32, size).reshape(shape)
    b1, b2 = threefry2x32(k[0], k[1], jnp.zeros(shape, jnp.uint32), lo)
    return b1 ^ b2


def bernoulli(key: jax.Array, p: float, shape: tuple[int, ...]) -> jax.Array:
    """``jax.random.bernoulli(key, p, shape)`` (float32 uniforms, the default), bit for
    bit under JAX's default ``jax_threefry_partitionable=True``."""
    return _uniform(key, shape) < np.float32(p)


def _uniform(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """float32 in [0, 1): the top 23 bits as the mantissa of a float in [1, 2), minus 1
    (`jax.random.uniform`'s construction)."""
    mantissa = (random_bits(key, shape) >> np.uint32(9)) | np.uint32(0x3F800000)
    return jax.lax.bitcast_convert_type(mantissa, jnp.float32) - np.float32(1.0)


def normal(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """``jax.random.normal(key, shape)`` (float32), bit for bit under JAX's default
    ``jax_threefry_partitionable=True``: an inverse error function of uniforms."""
    lo, hi = np.nextafter(np.float32(-1.0), np.float32(0.0)), np.float32(1.0)
    u = jnp.maximum(lo, _uniform(key, shape) * (hi - lo) + lo)
    return np.float32(np.sqrt(2)) * jax.lax.erf_inv(u)

"""The fast Gaussian generator of training noise (`rnnlab._random`).

Truths used: Random123's published known-answer vectors for Threefry-2x32 (13 and 20 rounds),
JAX's own threefry_2x32, the standard normal's moments and CDF (scipy), and independence
(correlations and a chi-square test of joint histograms between neighbours, time steps and keys).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from rnnlab._random import normal, sample_at, seed_words, threefry2x32

# Random123 tests/kat_vectors: (rounds, counter, key, expected output)
KAT = [
    (13, (0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x9D1C5EC6, 0x8BD50731)),
    (13, (0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0xFD36D048, 0x2D17272C)),
    (13, (0x243F6A88, 0x85A308D3), (0x13198A2E, 0x03707344), (0xBA3E4725, 0xF27D669E)),
    (20, (0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
    (20, (0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    (20, (0x243F6A88, 0x85A308D3), (0x13198A2E, 0x03707344), (0xC4923A9C, 0x483DF7A0)),
]


@pytest.mark.parametrize("rounds, ctr, key, want", KAT)
def test_threefry_known_answers(rounds, ctr, key, want):
    u = [jnp.asarray(v, jnp.uint32) for v in (*key, *ctr)]
    got = threefry2x32(*u, rounds=rounds)
    assert (int(got[0]), int(got[1])) == want


def test_threefry20_equals_jax():
    from jax.extend.random import threefry_2x32

    key = jnp.asarray([0x12345678, 0x9ABCDEF0], jnp.uint32)
    count = jnp.arange(1000, dtype=jnp.uint32)
    want = np.asarray(threefry_2x32(key, count))
    # JAX splits an even-length count into two halves as the two counter words
    x0, x1 = count[:500], count[500:]
    got = threefry2x32(key[0], key[1], x0, x1, rounds=20)
    np.testing.assert_array_equal(np.concatenate([np.asarray(g) for g in got]), want)


SAMPLES = np.asarray(normal(jax.random.PRNGKey(0), (1_000_000,)), np.float64)


def test_moments_match_the_standard_normal():
    x, n = SAMPLES, SAMPLES.size
    # tolerances: 5 standard errors of each estimate under N(0, 1)
    assert abs(x.mean()) < 5 / np.sqrt(n)
    assert abs(x.var() - 1.0) < 5 * np.sqrt(2 / n)
    assert abs(stats.skew(x)) < 5 * np.sqrt(6 / n)
    assert abs(stats.kurtosis(x)) < 5 * np.sqrt(24 / n)  # excess kurtosis 0
    # tails: P(|z| > 3) = 0.0026998
    p3 = np.mean(np.abs(x) > 3)
    assert abs(p3 - 0.0026998) < 5 * np.sqrt(0.0027 / n)
    assert np.max(np.abs(x)) < 5.8  # u >= 2^-24


def test_kolmogorov_smirnov_against_the_normal():
    for seed in range(4):
        x = np.asarray(normal(jax.random.PRNGKey(seed), (200_000,)), np.float64)
        assert stats.kstest(x, "norm").pvalue > 1e-4
    assert stats.kstest(SAMPLES, "norm").statistic < 2e-3


def test_kolmogorov_smirnov_catches_a_wrong_distribution():
    """The KS check above has power: a 2% scale error fails it."""
    assert stats.kstest(SAMPLES * 1.02, "norm").pvalue < 1e-6


def _chi2_independence(a, b, bins=8):
    """p-value of a chi-square test that a and b (samples of N(0, 1)) are independent."""
    edges = stats.norm.ppf(np.linspace(0, 1, bins + 1))
    table = np.histogram2d(a, b, bins=[edges, edges])[0]
    return stats.chi2_contingency(table)[1]


def test_independence_between_neighbours_time_steps_and_keys():
    b, t, n = 64, 100, 50
    x = np.asarray(normal(jax.random.PRNGKey(1), (b, t, n)), np.float64)
    pairs = {
        "neighbouring units": (x[:, :, :-1], x[:, :, 1:]),
        "consecutive time steps": (x[:, :-1], x[:, 1:]),
        "trials": (x[:-1], x[1:]),
    }
    k = jax.random.split(jax.random.PRNGKey(2), 3)
    y = [np.asarray(normal(kk, (b, t, n)), np.float64) for kk in k]
    pairs["split keys"] = (y[0], y[1])
    folded = [np.asarray(normal(jax.random.fold_in(k[2], i), (b * t * n,))) for i in (0, 1)]
    pairs["fold_in neighbours"] = tuple(folded)
    pairs["typed key vs raw key"] = (
        np.asarray(normal(jax.random.key(7), (b * t * n,))),
        np.asarray(normal(jax.random.PRNGKey(8), (b * t * n,))),
    )
    for name, (p, q) in pairs.items():
        p, q = np.ravel(p), np.ravel(q)
        r = np.corrcoef(p, q)[0, 1]
        assert abs(r) < 5 / np.sqrt(p.size), name
        assert _chi2_independence(p, q) > 1e-4, name
        # squares too (a dependence in magnitude, e.g. a shared radius)
        r2 = np.corrcoef(p**2, q**2)[0, 1]
        assert abs(r2) < 5 / np.sqrt(p.size), name


def test_independence_checks_have_power():
    """Each check above fails on a weakly dependent pair of the same size."""
    x, y = SAMPLES[:320_000], SAMPLES[320_000:640_000]
    weak = 0.03 * x + np.sqrt(1 - 0.03**2) * y  # correlation 0.03
    assert abs(np.corrcoef(x, weak)[0, 1]) > 5 / np.sqrt(x.size)
    same_size = np.abs(y) * np.sign(x)  # uncorrelated, shares only the sign
    assert _chi2_independence(x, same_size) < 1e-6
    shared_radius = np.abs(x) * np.sign(y)  # uncorrelated, shares the magnitude
    assert abs(np.corrcoef(x, shared_radius)[0, 1]) < 5 / np.sqrt(x.size)
    assert abs(np.corrcoef(x**2, shared_radius**2)[0, 1]) > 0.5


def test_reproducible_and_sliceable():
    key = jax.random.PRNGKey(3)
    a = normal(key, (4, 30, 7))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(normal(key, (4, 30, 7))))
    jitted = jax.jit(normal, static_argnums=1)(key, (4, 30, 7))
    # compiled (fused) and op-by-op evaluation may round the float transform differently
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(a), rtol=1e-6, atol=1e-6)
    # any element is reachable from its flat index (noise generated where it is used)
    idx = jnp.arange(4 * 30 * 7, dtype=jnp.uint32).reshape(4, 30, 7)[:, 11]
    sliced = jax.jit(lambda k, i: sample_at(*seed_words(k), i))(key, idx)
    np.testing.assert_array_equal(np.asarray(sliced), np.asarray(jitted[:, 11]))
    assert a.dtype == jnp.float32
    assert not np.array_equal(np.asarray(a), np.asarray(normal(jax.random.PRNGKey(4), a.shape)))
    assert normal(key, (0, 3)).shape == (0, 3)
    with jax.enable_x64(True):
        b = normal(key, (4, 30, 7), jnp.float64)
        assert b.dtype == jnp.float64
        np.testing.assert_array_equal(np.asarray(b), np.asarray(a, np.float64))


def test_works_under_vmap_and_with_other_prng_implementations():
    keys = jax.random.split(jax.random.PRNGKey(5), 3)
    batched = jax.vmap(lambda k: normal(k, (10,)))(keys)
    for i in range(3):
        np.testing.assert_array_equal(np.asarray(batched[i]), np.asarray(normal(keys[i], (10,))))
    x = np.asarray(normal(jax.random.key(0, impl="rbg"), (100_000,)), np.float64)
    assert stats.kstest(x, "norm").pvalue > 1e-4


def test_bad_arguments():
    with pytest.raises(TypeError, match="dtype"):
        normal(jax.random.PRNGKey(0), (3,), jnp.int32)
    with pytest.raises(TypeError, match="key"):
        normal(jnp.zeros(2), (3,))
    with pytest.raises(ValueError, match="2\\^32"):
        normal(jax.random.PRNGKey(0), (2**16, 2**16))

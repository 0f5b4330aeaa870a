"""rl.lfads.metrics against independent computations (scipy.stats, scipy.linalg) and
analytic answers."""

import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from rnnlab.lfads import Dataset, metrics


def _nlb_bps(rates, spikes):
    # the NLB definition written out with scipy's Poisson log-pmf
    ll_model = scipy.stats.poisson.logpmf(spikes, rates).sum()
    null = spikes.mean(axis=(0, 1), keepdims=True) * np.ones_like(spikes)
    ll_null = scipy.stats.poisson.logpmf(spikes, null).sum()
    return (ll_model - ll_null) / (np.log(2) * spikes.sum())


def test_bits_per_spike_is_the_nlb_formula_and_zero_for_the_mean():
    rng = np.random.default_rng(0)
    true = rng.gamma(2.0, 0.5, (5, 8, 4))
    spikes = rng.poisson(true).astype(float)
    rates = true * rng.uniform(0.8, 1.2, true.shape)
    assert metrics.bits_per_spike(rates, spikes) == pytest.approx(_nlb_bps(rates, spikes),
                                                                  rel=1e-10)
    mean = np.broadcast_to(spikes.mean(axis=(0, 1), keepdims=True), spikes.shape)
    assert metrics.bits_per_spike(mean, spikes) == pytest.approx(0.0, abs=1e-12)
    assert metrics.bits_per_spike(true, spikes) > 0
    # NaN bins are skipped (NLB masks them)
    s2 = spikes.copy()
    s2[0, 0, :] = np.nan
    keep = ~np.isnan(s2)
    ll = scipy.stats.poisson.logpmf(s2[keep], rates[keep]).sum()
    null = np.broadcast_to(np.nanmean(s2, axis=(0, 1), keepdims=True), s2.shape)[keep]
    expected = (ll - scipy.stats.poisson.logpmf(s2[keep], null).sum()) / np.log(2) / s2[keep].sum()
    assert metrics.bits_per_spike(rates, s2) == pytest.approx(expected, rel=1e-10)


def test_co_bps_and_fp_bps_score_the_right_neurons_and_bins():
    rng = np.random.default_rng(1)
    x = rng.poisson(1.5, (20, 10, 6))
    d = Dataset.from_arrays(x, heldout_neurons=2, n_forward=3)
    rates = rng.uniform(0.5, 3.0, (len(d.valid_inds), 10, 6))
    held = d.heldout_valid
    assert metrics.co_bps(rates, d) == pytest.approx(_nlb_bps(rates[:, :7, 4:], held[:, :7]))
    assert metrics.fp_bps(rates, d) == pytest.approx(
        _nlb_bps(rates[:, 7:], d.recon_data("valid")[:, 7:]))
    with pytest.raises(ValueError, match="rates must be"):
        metrics.co_bps(rates[:, :, :4], d)
    with pytest.raises(ValueError, match="held-out"):
        metrics.co_bps(rates, Dataset.from_arrays(x))


def _lstsq_r2(source, target):
    # independent: scipy's least squares with a column of ones, R^2 pooled over channels
    x = np.c_[source.reshape(-1, source.shape[-1]), np.ones(source[..., 0].size)]
    y = target.reshape(-1, target.shape[-1])
    coef, *_ = scipy.linalg.lstsq(x, y)
    res = ((y - x @ coef) ** 2).sum()
    return 1 - res / ((y - y.mean(0)) ** 2).sum()


def test_r2_metrics_against_scipy_least_squares():
    rng = np.random.default_rng(2)
    true = rng.normal(size=(30, 12, 3))
    inferred = np.tanh(true @ rng.normal(size=(3, 5))) + 0.3 * rng.normal(size=(30, 12, 5))
    assert metrics.state_r2(true, inferred) == pytest.approx(_lstsq_r2(true, inferred))
    assert metrics.input_r2(true, inferred) == pytest.approx(_lstsq_r2(inferred, true))
    # one channel, in-sample: R^2 of the best line is Pearson's r squared
    a, b = true[..., :1], inferred[..., :1]
    r = scipy.stats.pearsonr(a.ravel(), b.ravel())[0]
    assert metrics.input_r2(a, b) == pytest.approx(r**2)
    # rate R^2: no map; per channel and their two averages
    per = [1 - ((true[..., i] - inferred[..., i]) ** 2).sum()
           / ((true[..., i] - true[..., i].mean()) ** 2).sum() for i in range(3)]
    assert metrics.rate_r2(true, inferred[..., :3], multioutput="uniform_average") \
        == pytest.approx(np.mean(per))
    assert metrics.rate_r2(true, true) == 1.0
    # held-out scoring: fit on train, score on valid
    tv, iv = true[:10], inferred[:10]
    w, b0 = metrics.linear_map(true[10:], inferred[10:])
    pred = tv @ w + b0
    expected = 1 - ((iv - pred) ** 2).sum() / ((iv - iv.mean(axis=(0, 1))) ** 2).sum()
    assert metrics.state_r2(true[10:], inferred[10:], tv, iv) == pytest.approx(expected)


def test_state_r2_is_one_for_an_invertible_linear_image_of_the_truth():
    rng = np.random.default_rng(3)
    true = rng.normal(size=(40, 10, 4))
    a = rng.normal(size=(4, 4))
    assert abs(np.linalg.det(a)) > 0.1
    inferred = true @ a + rng.normal(size=4)
    assert metrics.state_r2(true[:30], inferred[:30], true[30:], inferred[30:]) \
        == pytest.approx(1.0, abs=1e-10)
    # an inferred dimension the truth cannot explain costs its share of the variance
    extra = np.concatenate([inferred, rng.normal(size=(40, 10, 1)) * 3.0], -1)
    assert metrics.state_r2(true, extra) < 0.9


def test_cycle_consistency_analytic():
    rng = np.random.default_rng(4)
    lat = rng.normal(size=(50, 10, 2)) * np.array([1.0, 2.0])  # variances 1 and 4
    w_full = rng.normal(size=(2, 8))
    rates = np.exp(lat @ w_full * 0.3 + 0.1)
    assert metrics.cycle_consistency(lat, rates) == pytest.approx(1.0, abs=1e-9)
    # log-rates that only read the first latent: the second (4/5 of the variance) is lost
    w_one = np.zeros((2, 8))
    w_one[0] = rng.normal(size=8)
    rates = np.exp(lat @ w_one * 0.3)
    v = lat.reshape(-1, 2).var(0)
    assert metrics.cycle_consistency(lat, rates) == pytest.approx(v[0] / v.sum(), abs=1e-6)


def _loo_smooth_loop(x, width):
    t = x.shape[1]
    out = np.zeros_like(x, dtype=float)
    for i in range(t):
        w = np.array([0.0 if j == i else np.exp(-0.5 * ((i - j) / width) ** 2)
                      for j in range(t)])
        out[:, i] = np.tensordot(w / w.sum(), x, axes=([0], [1]))
    return out


def test_smoothing_width_maximises_validation_likelihood():
    rng = np.random.default_rng(5)
    t = np.arange(20)
    rate = 1.0 + 0.8 * np.sin(2 * np.pi * t / 20)[None, :, None] * np.ones((1, 1, 5))
    x = rng.poisson(np.broadcast_to(rate, (60, 20, 5)))
    d = Dataset.from_arrays(x)
    widths = [0.5, 1.0, 2.0, 3.0, 5.0, 8.0]
    base = metrics.smoothing_baseline(d, widths=widths)
    brute = {}
    for w in widths:
        r = np.maximum(_loo_smooth_loop(d.valid.astype(float), w), 1e-9)
        brute[w] = scipy.stats.poisson.logpmf(d.valid, r).sum()
    assert base.width == max(brute, key=brute.get)
    assert base.scores == pytest.approx(brute)
    # a slow rate: a wide kernel wins, and the smoothed rates beat the raw counts
    assert base.width >= 2.0
    truth = np.broadcast_to(rate, d.valid.shape)
    assert metrics.rate_r2(truth, base.rates_valid) > metrics.rate_r2(truth, d.valid)


def test_pca_baseline_full_rank_is_the_smoothing_and_predicts_held_out():
    rng = np.random.default_rng(6)
    lat = np.cumsum(rng.normal(size=(40, 15, 2)), axis=1) * 0.3
    rates = np.exp(lat @ rng.normal(size=(2, 8)) * 0.5)
    x = rng.poisson(rates)
    d = Dataset.from_arrays(x, heldout_neurons=2, truth={"rates": rates})
    smooth = metrics.smoothing_baseline(d)
    full = metrics.pca_baseline(d, n_components=6)
    assert np.allclose(full.rates_train[..., :6], smooth.rates_train[..., :6])
    chosen = metrics.pca_baseline(d)
    assert 1 <= chosen.n_components <= 6 and chosen.latents_valid.shape[-1] == chosen.n_components
    # held-out neurons from a GLM on the held-in rates beat their mean rate (co-bps > 0)
    assert metrics.co_bps(smooth.rates_valid, d) > 0


def test_figure_data_truths():
    from rnnlab.figdata._lfads import LFADSFit, factors_data, inputs_data, raster_data

    rng = np.random.default_rng(7)
    states = rng.normal(size=(20, 12, 3))
    inputs = rng.normal(size=(20, 12, 1))
    rates = np.exp(states @ rng.normal(size=(3, 6)) * 0.3)
    d = Dataset.from_arrays(rng.poisson(rates), heldout_neurons=2, bin_size=0.02,
                            truth={"rates": rates, "states": states, "inputs": inputs})
    nv = len(d.valid_inds)
    inferred_inputs = inputs[d.valid_inds] * -2.0 + 0.5  # an affine image of the truth
    factors = rng.normal(size=(nv, 12, 5)) * np.array([3.0, 2.0, 1.0, 0.5, 0.1])
    fit = LFADSFit(None, d, rates[d.valid_inds], factors, inferred_inputs, {})
    got = inputs_data(fit)
    assert got.r2 == pytest.approx(1.0) and np.allclose(got.mapped, got.true)
    f = factors_data(fit, n_components=2)
    ev = np.linalg.eigvalsh(np.cov(factors.reshape(-1, 5).T))[::-1]
    assert np.allclose(f.explained, ev[:2] / ev.sum())
    assert np.allclose(f.color, inputs[d.valid_inds][..., 0].mean(1))
    r = raster_data(fit, trial=1)
    # counts in spikes per bin, rates in spikes/s; held-in neurons first, each group sorted
    assert np.array_equal(r.counts, d.recon_data("valid")[1][:, r.order])
    assert np.allclose(r.inferred_rates, rates[d.valid_inds][1][:, r.order] / 0.02)
    assert sorted(r.order[:4]) == [0, 1, 2, 3] and sorted(r.order[4:]) == [4, 5]
    with pytest.raises(ValueError, match="trial"):
        raster_data(fit, trial=nv)

"""How much of the truth an inference recovered, and the baselines to compare it with.

Usable on any rates, not only LFADS': every function takes numpy arrays [trials, time, ...]
(or [samples, channels]) and returns plain floats.

- `rate_r2`: R^2 of inferred rates against the true rates (no fitted map).
- `state_r2`: CtDB's state R^2: a linear map (least squares with intercept) from the true
  latents to the inferred ones, fitted on training trials and scored on validation trials.
- `input_r2`: the best linear map from the inferred inputs to the true inputs.
- `bits_per_spike`, `co_bps`, `fp_bps`: the Neural Latents Benchmark's definitions.
- `cycle_consistency`: CtDB's: a linear readout from the latents to the log-rates, inverted
  through an SVD-thresholded pseudo-inverse, must give the latents back.
- `smoothing_baseline`, `pca_baseline`: Gaussian-kernel smoothing of each trial with its
  width chosen on the validation split, and smoothing followed by PCA; held-out neurons are
  predicted from the smoothed held-in ones by a Poisson GLM fitted on the training trials
  (the NLB smoothing baseline).

R^2 defaults to ``"variance_weighted"`` (1 - total squared error / total variance about
each channel's mean, CtDB's choice); ``"uniform_average"`` is the mean of the per-channel
R^2 (the tutorial's "mean rate R^2").
"""

import dataclasses
from typing import Literal

import numpy as np
import scipy.optimize
from scipy.special import gammaln

from .._validate import ArrayInput, integer, positive_number
from ._data import Dataset

__all__ = [
    "Baseline",
    "bits_per_spike",
    "co_bps",
    "cycle_consistency",
    "evaluate",
    "evaluate_baselines",
    "fp_bps",
    "gaussian_smooth",
    "input_r2",
    "linear_map",
    "pca_baseline",
    "poisson_nll",
    "r2_score",
    "rate_r2",
    "smoothing_baseline",
    "state_r2",
]

Multioutput = Literal["variance_weighted", "uniform_average", "raw_values"]
DEFAULT_WIDTHS = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
RATE_FLOOR = 1e-9  # what NLB puts in place of a zero rate


def _flat(name: str, x: ArrayInput) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim < 2:
        raise ValueError(f"{name} must be [samples, channels] or [trials, time, channels], "
                         f"got shape {a.shape}")
    return a.reshape(-1, a.shape[-1])


def _same_shape(na: str, a: np.ndarray, nb: str, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{na} and {nb} must have the same shape, got {a.shape} and {b.shape}")


def r2_score(true: ArrayInput, pred: ArrayInput, *,
             multioutput: Multioutput = "variance_weighted") -> float | np.ndarray:
    """Coefficient of determination of ``pred`` for ``true`` (same shape, [..., channels]).

    Per channel: 1 - sum (true - pred)^2 / sum (true - mean(true))^2.
    ``"variance_weighted"``: 1 - total error / total variance; ``"uniform_average"``: mean of
    the per-channel values (channels with no variance left out); ``"raw_values"``: the array.
    """
    t, p = _flat("true", true), _flat("pred", pred)
    _same_shape("true", t, "pred", p)
    ss_res = ((t - p) ** 2).sum(0)
    ss_tot = ((t - t.mean(0)) ** 2).sum(0)
    if multioutput == "variance_weighted":
        return float(1.0 - ss_res.sum() / ss_tot.sum()) if ss_tot.sum() > 0 else float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), np.nan)
    if multioutput == "raw_values":
        return per
    if multioutput == "uniform_average":
        return float(np.nanmean(per)) if np.isfinite(per).any() else float("nan")
    raise ValueError("multioutput must be 'variance_weighted', 'uniform_average' or "
                     f"'raw_values', got {multioutput!r}")


def rate_r2(true_rates: ArrayInput, rates: ArrayInput, *,
            multioutput: Multioutput = "variance_weighted") -> float | np.ndarray:
    """R^2 of ``rates`` against ``true_rates`` (same shape, same units), no map fitted."""
    return r2_score(true_rates, rates, multioutput=multioutput)


def linear_map(source: ArrayInput, target: ArrayInput) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares ``(W, b)`` with ``target ~ source @ W + b`` ([..., d_s] -> [..., d_t])."""
    x, y = _flat("source", source), _flat("target", target)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"source and target must have as many samples, got {x.shape[0]} "
                         f"and {y.shape[0]}")
    xm, ym = x.mean(0), y.mean(0)
    w, *_ = np.linalg.lstsq(x - xm, y - ym, rcond=None)
    return w, ym - xm @ w


def _mapped_r2(source_train, target_train, source_valid, target_valid, multioutput):
    if (source_valid is None) != (target_valid is None):
        raise ValueError("give both validation arrays (the true and the inferred ones for "
                         "the validation trials) or neither (then the fit is scored on the "
                         "training arrays)")
    w, b = linear_map(source_train, target_train)
    if source_valid is None:
        source_valid, target_valid = source_train, target_train
    x = _flat("source_valid", source_valid)
    return r2_score(_flat("target_valid", target_valid), x @ w + b, multioutput=multioutput)


def state_r2(true_train: ArrayInput, inferred_train: ArrayInput,
             true_valid: ArrayInput | None = None, inferred_valid: ArrayInput | None = None,
             *, multioutput: Multioutput = "variance_weighted") -> float | np.ndarray:
    """CtDB's state R^2: the least-squares affine map from the true latents to the inferred
    ones, fitted on the training arrays, scored (R^2 of the inferred latents) on the
    validation arrays (on the training arrays when none are given). 1 when the inferred
    latents are an affine image of the truth; it penalises inferred dimensions the truth
    cannot explain."""
    return _mapped_r2(true_train, inferred_train, true_valid, inferred_valid, multioutput)


def input_r2(true_train: ArrayInput, inferred_train: ArrayInput,
             true_valid: ArrayInput | None = None, inferred_valid: ArrayInput | None = None,
             *, multioutput: Multioutput = "variance_weighted") -> float | np.ndarray:
    """Inferred-input R^2: the best affine map from the inferred inputs to the true ones,
    fitted on the training arrays, scored on the validation arrays (or the training ones)."""
    return _mapped_r2(inferred_train, true_train, inferred_valid, true_valid, multioutput)


def poisson_nll(rates: ArrayInput, spikes: ArrayInput) -> float:
    """Total Poisson negative log-likelihood sum(r - n log r + log n!) of ``spikes`` under
    ``rates`` (expected counts per bin, same shape); bins where ``spikes`` is NaN are
    skipped, zero rates count as 1e-9 (as NLB does)."""
    r = np.asarray(rates, dtype=np.float64)
    n = np.asarray(spikes, dtype=np.float64)
    _same_shape("rates", r, "spikes", n)
    keep = ~np.isnan(n)
    r, n = r[keep], n[keep]
    if np.isnan(r).any():
        raise ValueError("rates hold NaN where spikes are given")
    if (r < 0).any():
        raise ValueError("rates must be non-negative (expected counts per bin)")
    r = np.where(r == 0, RATE_FLOOR, r)
    return float(np.sum(r - n * np.log(r) + gammaln(n + 1.0)))


def bits_per_spike(rates: ArrayInput, spikes: ArrayInput) -> float:
    """The Neural Latents Benchmark's bits per spike: (NLL of each neuron's mean rate - NLL
    of ``rates``) / (total spikes x log 2), for ``spikes`` and ``rates`` [trials, time,
    neurons]. 0 for the null model (each neuron's mean count), positive when better."""
    n = np.asarray(spikes, dtype=np.float64)
    r = np.asarray(rates, dtype=np.float64)
    _same_shape("rates", r, "spikes", n)
    if n.ndim != 3:
        raise ValueError(f"spikes must be [trials, time, neurons], got shape {n.shape}")
    null = np.broadcast_to(np.nanmean(n, axis=(0, 1), keepdims=True), n.shape)
    total = np.nansum(n)
    if total <= 0:
        raise ValueError("spikes hold no spikes: bits per spike is undefined")
    return (poisson_nll(null, n) - poisson_nll(r, n)) / total / np.log(2.0)


def _split_rates(name, rates, dataset: Dataset, split: str) -> np.ndarray:
    r = np.asarray(rates, dtype=np.float64)
    want = (len(dataset.inds(split)), dataset.n_time, dataset.n_recon)
    if r.shape != want:
        raise ValueError(f"{name} must be the {split} split's rates for every reconstructed "
                         f"neuron [trials, time, neurons + heldout] = {want}, got {r.shape}")
    return r


def co_bps(rates: ArrayInput, dataset: Dataset, split: str = "valid") -> float:
    """Co-smoothing bits per spike: `bits_per_spike` of the held-out neurons over the observed
    bins (the first ``dataset.n_obs``). ``rates``: [trials, time, neurons + n_heldout] for the
    split, the held-in then the held-out neurons (as ``dataset.recon_data(split)``)."""
    if dataset.n_heldout == 0:
        raise ValueError("dataset has no held-out neurons: co-bps needs them "
                         "(Dataset.from_arrays(..., heldout_neurons=k))")
    r = _split_rates("rates", rates, dataset, split)
    obs, n_in = dataset.n_obs, dataset.n_neurons
    return bits_per_spike(r[:, :obs, n_in:], getattr(dataset, f"heldout_{split}")[:, :obs])


def fp_bps(rates: ArrayInput, dataset: Dataset, split: str = "valid") -> float:
    """Forward-prediction bits per spike: `bits_per_spike` of all neurons over the last
    ``dataset.n_forward`` bins (NLB's fp-bps)."""
    if dataset.n_forward == 0:
        raise ValueError("dataset has no forward-prediction bins (n_forward=0)")
    r = _split_rates("rates", rates, dataset, split)
    return bits_per_spike(r[:, dataset.n_obs:], dataset.recon_data(split)[:, dataset.n_obs:])


def cycle_consistency(latents_train: ArrayInput, rates_train: ArrayInput,
                      latents_valid: ArrayInput | None = None,
                      rates_valid: ArrayInput | None = None, *,
                      variance_threshold: float = 0.01) -> float:
    """CtDB's cycle consistency: fit an affine readout log(rates) ~ latents @ W + b on the
    training arrays; map the validation latents to log-rates and back through W's
    pseudo-inverse truncated to the singular values that hold ``1 - variance_threshold`` of
    W's squared singular values; R^2 (variance-weighted) of the latents recovered. 1 when
    no latent direction is lost in the rates. (CtDB moves both sides into PCA coordinates
    first; the latents are centred on their training mean here as there, and R^2 and the
    truncated pseudo-inverse do not change under the rotations.)"""
    threshold = positive_number("variance_threshold", variance_threshold)
    lat = _flat("latents_train", latents_train)
    rates = _flat("rates_train", rates_train)
    if (rates <= 0).any():
        raise ValueError("rates_train must be positive (the readout is fitted to log-rates)")
    # CtDB moves the latents to their training PCA coordinates first: the centring matters
    # (the pseudo-inverse returns centred latents), the rotation does not change the result
    centre = lat.mean(0)
    lat = lat - centre
    w, b = linear_map(lat, np.log(rates))
    lat_v = lat if latents_valid is None else _flat("latents_valid", latents_valid) - centre
    logr = lat_v @ w + b
    u, s, vt = np.linalg.svd(w.T, full_matrices=False)  # W.T: [neurons, latents]
    cum = np.cumsum(s**2) / np.sum(s**2)
    k = min(int(np.searchsorted(cum, 1.0 - threshold)) + 1, s.size)
    pinv = vt[:k].T @ np.diag(1.0 / s[:k]) @ u[:, :k].T  # [latents, neurons]
    recovered = (logr - b) @ pinv.T
    del rates_valid  # the validation latents' own readout is what is inverted, as in CtDB
    return r2_score(lat_v, recovered)


# ----------------------------------------------------------------------------- baselines


def gaussian_smooth(spikes: ArrayInput, width: float, *,
                    exclude_center: bool = False) -> np.ndarray:
    """Smooth [trials, time, neurons] along time with a Gaussian kernel of standard deviation
    ``width`` bins, renormalised at the trial's edges (each output is a weighted mean of the
    trial's bins). ``exclude_center`` leaves each bin out of its own estimate (a
    leave-one-out rate, what the width is chosen by)."""
    width = positive_number("width", width)
    x = np.asarray(spikes, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"spikes must be [trials, time, neurons], got shape {x.shape}")
    t = np.arange(x.shape[1])
    k = np.exp(-0.5 * ((t[:, None] - t[None, :]) / width) ** 2)
    if exclude_center:
        np.fill_diagonal(k, 0.0)
    k /= np.maximum(k.sum(1, keepdims=True), 1e-300)
    return np.einsum("ts,bsn->btn", k, x)


@dataclasses.dataclass(frozen=True, eq=False)
class Baseline:
    """A baseline's rates and latents for both splits.

    Fields: ``name``; ``rates_train``/``rates_valid`` [trials, time, neurons + n_heldout]
    (expected counts per bin, held-in then held-out, as ``Dataset.recon_data``);
    ``latents_train``/``latents_valid`` [trials, time, d] (the smoothed held-in rates, or
    their PCA scores); ``width`` (bins) and ``n_components`` (None for plain smoothing)
    chosen; ``scores``: the validation log-likelihood (nats) of each candidate, by width
    or by number of components.
    """

    name: str
    rates_train: np.ndarray
    rates_valid: np.ndarray
    latents_train: np.ndarray
    latents_valid: np.ndarray
    width: float
    n_components: int | None
    scores: dict[float, float]


def _widths(widths, n_time):
    if widths is None:
        widths = [w for w in DEFAULT_WIDTHS if w <= max(n_time / 2, 0.5)]
    widths = [positive_number("widths", w) for w in np.atleast_1d(np.asarray(widths))]
    if not widths:
        raise ValueError("widths must hold at least one width (bins)")
    return widths


def choose_width(dataset: Dataset, widths: ArrayInput | None = None) -> tuple[float, dict]:
    """The kernel width (bins) whose leave-one-out smoothed rates give the validation split's
    held-in spikes the largest Poisson log-likelihood (rates floored at 1e-9), and each
    width's log-likelihood."""
    scores = {}
    for w in _widths(widths, dataset.n_time):
        r = np.maximum(gaussian_smooth(dataset.valid, w, exclude_center=True), RATE_FLOOR)
        scores[float(w)] = -poisson_nll(r, dataset.valid)
    return max(scores, key=scores.get), scores


def _fit_poisson_glm(x: np.ndarray, y: np.ndarray, alpha: float = 1e-2):
    """log E[y] = x @ w + b per output column, L2 penalty alpha/2 |w|^2 per sample; L-BFGS."""
    n, d = x.shape
    m = y.shape[1]
    xm, xs = x.mean(0), x.std(0) + 1e-8
    z = (x - xm) / xs

    def loss(theta):
        w = theta[: d * m].reshape(d, m)
        b = theta[d * m:]
        eta = np.clip(z @ w + b, -30, 30)
        mu = np.exp(eta)
        f = (mu - y * eta).sum() / n + 0.5 * alpha * (w**2).sum()
        g = (mu - y) / n
        return f, np.concatenate([(z.T @ g + alpha * w).ravel(), g.sum(0)])

    b0 = np.log(np.maximum(y.mean(0), RATE_FLOOR))
    theta0 = np.concatenate([np.zeros(d * m), b0])
    res = scipy.optimize.minimize(loss, theta0, jac=True, method="L-BFGS-B")
    w = res.x[: d * m].reshape(d, m) / xs[:, None]
    b = res.x[d * m:] - xm @ w
    return lambda xx: np.exp(np.clip(xx @ w + b, -30, 30))


def _with_heldout(dataset: Dataset, heldin_train, heldin_valid):
    """Append held-out rates predicted from the held-in ones by a Poisson GLM fitted on the
    training trials (observed bins)."""
    if dataset.n_heldout == 0:
        return heldin_train, heldin_valid
    obs = dataset.n_obs
    x = heldin_train[:, :obs].reshape(-1, heldin_train.shape[-1])
    y = dataset.heldout_train[:, :obs].reshape(-1, dataset.n_heldout).astype(np.float64)
    predict = _fit_poisson_glm(x, y)

    def full(h):
        out = predict(h.reshape(-1, h.shape[-1])).reshape(*h.shape[:2], dataset.n_heldout)
        return np.concatenate([h, out], -1)

    return full(heldin_train), full(heldin_valid)


def _check_dataset(dataset):
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be an rl.lfads.Dataset, got {type(dataset).__name__}")


def smoothing_baseline(dataset: Dataset, *, widths: ArrayInput | None = None) -> Baseline:
    """Gaussian-kernel smoothing of each trial's held-in spikes, the width (bins, from
    ``widths``; default 0.5 to 16 bins, at most half a trial) chosen by `choose_width` on the
    validation split; held-out neurons predicted by a Poisson GLM from the smoothed held-in
    rates (fitted on the training trials). The smoothing sees every bin of a trial, the
    forward-prediction bins included: score it on co-bps and rate R^2, not fp-bps."""
    _check_dataset(dataset)
    width, scores = choose_width(dataset, widths)
    s_tr = gaussian_smooth(dataset.train, width)
    s_va = gaussian_smooth(dataset.valid, width)
    r_tr, r_va = _with_heldout(dataset, s_tr, s_va)
    return Baseline("smoothing", r_tr, r_va, s_tr, s_va, width, None, scores)


def pca_baseline(dataset: Dataset, *, n_components: int | None = None,
                 widths: ArrayInput | None = None, max_components: int = 10) -> Baseline:
    """Smoothing (width chosen as in `smoothing_baseline`) followed by PCA: the smoothed
    held-in rates of the training trials define the principal axes; rates are the
    reconstruction from the first ``n_components`` (floored at 1e-9), latents the scores.
    ``n_components`` defaults to the number (1 to ``max_components``) whose reconstruction of
    the leave-one-out smoothed validation rates gives the validation spikes the largest
    Poisson log-likelihood. Held-out neurons as in `smoothing_baseline`."""
    _check_dataset(dataset)
    width, _ = choose_width(dataset, widths)
    s_tr = gaussian_smooth(dataset.train, width)
    s_va = gaussian_smooth(dataset.valid, width)
    n = dataset.n_neurons
    flat = s_tr.reshape(-1, n)
    mean = flat.mean(0)
    _, _, vt = np.linalg.svd(flat - mean, full_matrices=False)

    def project(s, k):
        z = (s.reshape(-1, n) - mean) @ vt[:k].T
        rec = np.maximum(z @ vt[:k] + mean, RATE_FLOOR)
        return z.reshape(*s.shape[:2], k), rec.reshape(s.shape)

    if n_components is None:
        loo = gaussian_smooth(dataset.valid, width, exclude_center=True)
        ks = range(1, min(integer("max_components", max_components, 1), vt.shape[0]) + 1)
        scores = {float(k): -poisson_nll(project(loo, k)[1], dataset.valid) for k in ks}
        n_components = int(max(scores, key=scores.get))
    else:
        n_components = integer("n_components", n_components, 1)
        if n_components > vt.shape[0]:
            raise ValueError(f"n_components must be at most {vt.shape[0]} (the held-in "
                             f"neurons), got {n_components}")
        scores = {}
    z_tr, h_tr = project(s_tr, n_components)
    z_va, h_va = project(s_va, n_components)
    r_tr, r_va = _with_heldout(dataset, h_tr, h_va)
    return Baseline("smoothing+pca", r_tr, r_va, z_tr, z_va, width, n_components, scores)


# ---------------------------------------------------------------------------- everything


def evaluate(dataset: Dataset, rates_train: ArrayInput, rates_valid: ArrayInput, *,
             latents_train: ArrayInput | None = None, latents_valid: ArrayInput | None = None,
             inputs_train: ArrayInput | None = None,
             inputs_valid: ArrayInput | None = None) -> dict[str, float]:
    """Every metric that ``dataset`` allows for one inference, scored on the validation split
    (maps fitted on the training split). ``rates_*``: [trials, time, neurons + n_heldout]
    expected counts per bin; ``latents_*``: inferred latents (LFADS' factors);
    ``inputs_*``: inferred inputs.

    Returns a dict with, when their ingredients exist: ``bits_per_spike`` (held-in neurons,
    observed bins), ``co_bps``, ``fp_bps``, ``rate_r2`` (variance-weighted) and
    ``rate_r2_mean`` (mean over neurons) against ``truth["rates"]``, ``state_r2`` (true
    ``truth["states"]`` -> latents), ``input_r2`` (inferred -> ``truth["inputs"]``) and
    ``cycle_consistency`` (latents <-> rates).
    """
    _check_dataset(dataset)
    r_tr = _split_rates("rates_train", rates_train, dataset, "train")
    r_va = _split_rates("rates_valid", rates_valid, dataset, "valid")
    obs, n_in = dataset.n_obs, dataset.n_neurons
    out = {"bits_per_spike": bits_per_spike(r_va[:, :obs, :n_in], dataset.valid[:, :obs])}
    if dataset.n_heldout:
        out["co_bps"] = co_bps(r_va, dataset)
    if dataset.n_forward:
        out["fp_bps"] = fp_bps(r_va, dataset)
    truth = dataset.truth or {}
    if "rates" in truth:
        true = dataset.truth_split("rates", "valid")
        out["rate_r2"] = rate_r2(true, r_va)
        out["rate_r2_mean"] = rate_r2(true, r_va, multioutput="uniform_average")
    if latents_train is not None and latents_valid is not None:
        if "states" in truth:
            out["state_r2"] = state_r2(dataset.truth_split("states", "train"), latents_train,
                                       dataset.truth_split("states", "valid"), latents_valid)
        out["cycle_consistency"] = cycle_consistency(
            latents_train, np.maximum(r_tr, RATE_FLOOR), latents_valid,
            np.maximum(r_va, RATE_FLOOR))
    if inputs_train is not None and inputs_valid is not None and "inputs" in truth \
            and np.asarray(inputs_train).shape[-1] > 0:
        out["input_r2"] = input_r2(dataset.truth_split("inputs", "train"), inputs_train,
                                   dataset.truth_split("inputs", "valid"), inputs_valid)
    return {k: float(v) for k, v in out.items()}


def evaluate_baselines(dataset: Dataset, *, widths: ArrayInput | None = None
                       ) -> dict[str, dict[str, float]]:
    """`evaluate` for `smoothing_baseline` and `pca_baseline` on ``dataset``, each with the
    width (bins) and number of components chosen. The smoothing sees the forward bins, so
    their fp-bps is left out."""
    out = {}
    for base in (smoothing_baseline(dataset, widths=widths),
                 pca_baseline(dataset, widths=widths)):
        scores = evaluate(dataset, base.rates_train, base.rates_valid,
                          latents_train=base.latents_train, latents_valid=base.latents_valid)
        scores.pop("fp_bps", None)
        scores["width"] = float(base.width)
        if base.n_components is not None:
            scores["n_components"] = float(base.n_components)
        out[base.name] = scores
    return out

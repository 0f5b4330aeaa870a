"""Posterior sampling of a fitted LFADS model: rates, factors, generator states, inferred
inputs and initial conditions averaged over samples of the posteriors (lfads-torch's
``predict_step`` with ``sample_posteriors=True``, averaged)."""

import dataclasses
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._validate import positive_int
from ..training._train import check_key
from ._fit import _Split, check_split, split_data
from ._model import LFADS


@dataclasses.dataclass(frozen=True)
class Posterior:
    """What `posterior_means` returns (numpy arrays, trials first).

    Attributes:
        rates: [trials, time, neurons (+ held-out)] the reconstruction head's mean (firing
            rate per bin for Poisson), averaged over the samples.
        factors: [trials, time, fac_dim]; gen_states: [trials, time, gen_dim];
        gen_init: [trials, gen_dim] the generator's initial state;
        inferred_inputs: [trials, time, co_dim] the posterior means of the inferred inputs
            (co_dim 0 without a controller);
        ic_mean, ic_std: [trials, ic_dim] the initial condition's posterior;
        trial_inds: [trials] the index of each trial in the data set (its order), when known.
        n_samples: the posterior samples averaged.
    """

    rates: np.ndarray
    factors: np.ndarray
    gen_states: np.ndarray
    gen_init: np.ndarray
    inferred_inputs: np.ndarray
    ic_mean: np.ndarray
    ic_std: np.ndarray
    trial_inds: np.ndarray | None
    n_samples: int


def _sample_mean(model, encod, ext, key, n_time, n_samples):
    def one_sample(k):
        keys = jax.random.split(k, encod.shape[0])

        def one(x, e, kk):
            out = model(x, n_time=n_time, ext_input=e, key=kk, sample_posteriors=True)
            return (model.means(out.output_params), out.factors, out.gen_states, out.gen_init,
                    out.co_means, out.ic_mean, out.ic_std)

        return jax.vmap(one)(encod, ext, keys)

    def body(acc, k):
        out = one_sample(k)
        return jax.tree.map(lambda a, b: a + b / n_samples, acc, out), None

    zeros = jax.tree.map(jnp.zeros_like, jax.eval_shape(one_sample, key))
    total, _ = jax.lax.scan(body, zeros, jax.random.split(key, n_samples))
    return total


_sample_mean_jit = eqx.filter_jit(_sample_mean)
# each part draws its own samples (a trial gets the same ones whichever parts are asked for)
PART_SEEDS = {"all": 0, "train": 0, "valid": 1}


def posterior_means(
    model: LFADS,
    data: Any,  # an rnnlab.lfads.Dataset or an array [trials, time, neurons], checked here
    *,
    key: Any,  # one JAX PRNG key, checked here
    n_samples: int = 50,
    split: str = "all",
    batch_size: int = 256,
) -> Posterior:
    """Average ``n_samples`` passes of ``model`` with the initial condition and inferred
    inputs sampled from their posteriors (no dropout), per trial.

    Args:
        model: a fitted `LFADS`.
        data: an array [trials, time, n_neurons] (all its trials, in order) or an
            `rnnlab.lfads.Dataset`: with ``split="all"`` its training and validation trials
            in the data set's order (by ``train_inds``/``valid_inds``), or ``"train"`` /
            ``"valid"``. The encoder sees the observed neurons up to the forward-prediction
            bins; the rates cover every bin and the held-out neurons.
        key: PRNG key of the samples.
        n_samples: posterior samples to average (lfads-torch's posterior sampling).
        batch_size: trials per compiled call (memory only; results do not depend on it
            beyond floating-point rounding).

    Returns: a `Posterior`.
    """
    if not isinstance(model, LFADS):
        raise TypeError(f"model must be an rnnlab.lfads.LFADS, got {type(model).__name__}")
    key = check_key(key)
    n_samples = positive_int("n_samples", n_samples)
    batch_size = positive_int("batch_size", batch_size)
    if split not in ("all", "train", "valid"):
        raise ValueError(f"split must be 'all', 'train' or 'valid', got {split!r}")
    if hasattr(data, "train") and hasattr(data, "valid"):
        train, valid, ti, vi = split_data(data)
        parts = {"train": (train, ti), "valid": (valid, vi)}
        chosen = ["train", "valid"] if split == "all" else [split]
    else:
        if split != "all":
            raise ValueError("split applies to a Dataset; an array is used whole")
        arr = np.asarray(data, dtype=np.float32)
        if arr.ndim != 3:
            raise ValueError(f"data must be an array [trials, time, neurons], got shape "
                             f"{arr.shape}")
        parts = {"all": (_Split(arr, arr, None), np.arange(arr.shape[0]))}
        chosen = ["all"]
    results, inds = [], []
    for name in chosen:
        s, idx = parts[name]
        if s.encod.shape[2] != model.n_neurons:
            raise ValueError(f"data has {s.encod.shape[2]} neurons but the model was built "
                             f"with n_neurons={model.n_neurons}")
        if name != "all":
            check_split(model, s, f"the {name} data")
        elif model.ext_input_dim:
            raise ValueError("the model takes external inputs: pass a Dataset with them")
        T = s.recon.shape[1]
        outs = []
        for i, start in enumerate(range(0, s.encod.shape[0], batch_size)):
            sl = slice(start, start + batch_size)
            ext = None if s.ext is None else jnp.asarray(s.ext[sl])
            k = jax.random.fold_in(jax.random.fold_in(key, PART_SEEDS[name]), i)
            outs.append(jax.device_get(_sample_mean_jit(
                model, jnp.asarray(s.encod[sl]), ext, k, T, n_samples)))
        results.append([np.concatenate([o[j] for o in outs]) for j in range(7)])
        inds.append(idx)
    arrays = [np.concatenate([r[j] for r in results]) for j in range(7)]
    trial_inds = None if any(i is None for i in inds) else np.concatenate(inds)
    if trial_inds is not None and len(chosen) > 1 and \
            np.array_equal(np.sort(trial_inds), np.arange(len(trial_inds))):
        order = np.argsort(trial_inds)
        arrays = [a[order] for a in arrays]
        trial_inds = trial_inds[order]
    return Posterior(*arrays, trial_inds=trial_inds, n_samples=n_samples)

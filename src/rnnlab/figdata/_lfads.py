"""What the LFADS figures show, computed once for matplotlib (`rnnlab.plot`) and the report:
one trial's spikes with the true and inferred rates, the inferred factors (and the true
states) in their principal components, the inferred inputs mapped onto the true ones."""

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._validate import integer
from ..lfads import Dataset
from ..lfads.metrics import linear_map, r2_score


@dataclasses.dataclass(frozen=True, eq=False)
class LFADSFit:
    """An LFADS fit folder (``rnnlab lfads fit`` then ``rnnlab lfads evaluate``) as figures
    read it: the data (``dataset``), the validation split's posterior means (``rates``
    [trials, time, neurons + held-out], ``factors`` [trials, time, fac_dim],
    ``inferred_inputs`` [trials, time, co_dim]) and the scores (``evaluation``, the dict of
    evaluation.json)."""

    path: Path | None
    dataset: Dataset
    rates: np.ndarray
    factors: np.ndarray
    inferred_inputs: np.ndarray
    evaluation: dict[str, Any]


def load_lfads_fit(folder: str | os.PathLike) -> LFADSFit:
    """Read an evaluated fit folder: data.h5, posterior.safetensors, evaluation.json."""
    from ..io import read_safetensors
    from ..lfads import read_hdf5

    p = Path(folder)
    needed = {"data.h5": "rnnlab lfads fit", "posterior.safetensors": "rnnlab lfads evaluate",
              "evaluation.json": "rnnlab lfads evaluate"}
    for name, cmd in needed.items():
        if not (p / name).is_file():
            raise FileNotFoundError(f"{p / name} is missing: run `{cmd} ...` on {p} first")
    tensors, _ = read_safetensors(p / "posterior.safetensors", kind="lfads_posterior")
    dataset = read_hdf5(p / "data.h5")
    if not np.array_equal(tensors["valid_inds"], dataset.valid_inds):
        raise ValueError(f"{p}: posterior.safetensors is not for this data.h5 (another "
                         "validation split); rerun `rnnlab lfads evaluate`")
    evaluation = json.loads((p / "evaluation.json").read_text(encoding="utf-8"))
    return LFADSFit(p, dataset, tensors["rates"], tensors["factors"],
                    tensors["inferred_inputs"], evaluation)


@dataclasses.dataclass(frozen=True)
class RasterData:
    """One validation trial: ``counts`` [time, neurons], ``true_rates`` (None without truth)
    and ``inferred_rates`` [time, neurons] in spikes per second when the bin size is known
    (``units``), the neurons ordered by their mean inferred rate; ``time`` [time] in seconds
    or bins; ``n_heldin`` (neurons at or after it are held out, shown after the held-in ones);
    ``n_obs`` (bins after it are forward-predicted)."""

    trial: int
    time: np.ndarray
    time_label: str
    counts: np.ndarray
    true_rates: np.ndarray | None
    inferred_rates: np.ndarray
    units: str
    n_heldin: int
    n_obs: int
    order: np.ndarray


def raster_data(fit: LFADSFit, trial: int = 0) -> RasterData:
    """`RasterData` of validation trial number ``trial`` (0-based within the split)."""
    d = fit.dataset
    trial = integer("trial", trial, 0)
    if trial >= len(d.valid_inds):
        raise ValueError(f"trial must be below the {len(d.valid_inds)} validation trials, "
                         f"got {trial}")
    scale = 1.0 / d.bin_size if d.bin_size else 1.0
    units = "spikes/s" if d.bin_size else "spikes/bin"
    counts = d.recon_data("valid")[trial].astype(np.float64)
    inferred = fit.rates[trial] * scale
    true = d.truth_split("rates", "valid")[trial] * scale if d.truth and "rates" in d.truth \
        else None
    order = np.concatenate([np.argsort(-inferred[:, :d.n_neurons].mean(0)),
                            d.n_neurons + np.argsort(-inferred[:, d.n_neurons:].mean(0))])
    time = np.arange(d.n_time) * (d.bin_size or 1.0)
    return RasterData(trial, time, "time (s)" if d.bin_size else "time (bins)",
                      counts[:, order], None if true is None else true[:, order],
                      inferred[:, order], units, d.n_neurons, d.n_obs, order)


@dataclasses.dataclass(frozen=True)
class FactorsData:
    """Validation trials in principal components: ``factors`` [trials, time, k] (the inferred
    factors' PCs) and ``states`` [trials, time, k] (the true latent states' PCs, None without
    truth), ``explained`` (variance fraction of each factor PC), ``color`` [trials] (the
    mean true input of each trial, None without it) and its ``color_label``."""

    factors: np.ndarray
    explained: np.ndarray
    states: np.ndarray | None
    color: np.ndarray | None
    color_label: str


def _pcs(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
    centred = flat - flat.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(k, vt.shape[0])
    var = s**2
    return (centred @ vt[:k].T).reshape(*x.shape[:2], k), var[:k] / var.sum()


def factors_data(fit: LFADSFit, n_components: int = 3) -> FactorsData:
    """`FactorsData` with ``n_components`` principal components."""
    k = integer("n_components", n_components, 1)
    d = fit.dataset
    z, explained = _pcs(fit.factors, k)
    states = _pcs(d.truth_split("states", "valid"), k)[0] if d.truth and "states" in d.truth \
        else None
    color, label = None, ""
    if d.truth and "inputs" in d.truth:
        color = d.truth_split("inputs", "valid")[..., 0].mean(1)
        label = "mean true input"
    return FactorsData(z, explained, states, color, label)


@dataclasses.dataclass(frozen=True)
class InputsData:
    """Inferred inputs against the true ones, validation trials: ``true`` [trials, time,
    n_in], ``mapped`` [trials, time, n_in] (the inferred inputs through the best affine map
    onto the true ones, fitted on these trials) and its ``r2`` (variance-weighted)."""

    true: np.ndarray
    mapped: np.ndarray
    r2: float


def inputs_data(fit: LFADSFit) -> InputsData | None:
    """`InputsData`, or None when the fit has no inferred inputs or the data no true ones."""
    d = fit.dataset
    if fit.inferred_inputs.shape[-1] == 0 or not d.truth or "inputs" not in d.truth:
        return None
    true = d.truth_split("inputs", "valid").astype(np.float64)
    w, b = linear_map(fit.inferred_inputs, true)
    mapped = (fit.inferred_inputs.reshape(-1, fit.inferred_inputs.shape[-1]) @ w + b)
    mapped = mapped.reshape(true.shape)
    return InputsData(true, mapped, float(r2_score(true, mapped)))

"""Datasets on disk: lfads-torch's HDF5 layout (h5py) and NWB (pynwb).

HDF5, as lfads-torch's ``BasicDataModule`` reads it (every dataset at the file's root):

- ``train_encod_data``/``valid_encod_data`` [trials, time - n_forward, neurons]: what the
  encoder sees; ``train_recon_data``/``valid_recon_data`` [trials, time, neurons +
  n_heldout]: what is reconstructed (held-in then held-out neurons). Held-out neurons and
  forward bins are read back from the difference of the two shapes.
- ``train_inds``/``valid_inds`` [trials] int64.
- ``train_ext_input``/``valid_ext_input`` [trials, time, ext_dim] (optional).
- ``train_truth``/``valid_truth`` [trials, time, neurons + n_heldout] with the scalar
  ``conversion_factor`` (1.0: rnnlab's truth rates are expected counts per bin; lfads-torch
  divides the truth by it). Other truths go to ``{split}_truth_{name}`` (rnnlab's; lfads-torch
  ignores them); ``bin_size`` (seconds) when the dataset knows it.

NWB (for archiving simulated data): the counts of all trials, the training then the
validation split, as one TimeSeries ``spike_counts`` [trials * time, neurons + n_heldout] in the
acquisition group; a trials table with ``start_time``/``stop_time``, ``trial_index`` and
``split``; external inputs as ``ext_input``; each truth as a TimeSeries ``truth_{name}``
[n_total * time, ...] in the processing module ``truth``. The layout numbers (held-in neurons,
forward bins, time bins) are kept as JSON in ``spike_counts``'s comments.

Both writers are atomic: a temporary file in the same folder, renamed over the target.
"""

import json
import os
from pathlib import Path

import numpy as np

from ..io._safe import FileFormatError, atomic_write_with
from ._data import Dataset

__all__ = ["read_hdf5", "read_nwb", "write_hdf5", "write_nwb"]


def _check(dataset):
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be an rl.lfads.Dataset, got {type(dataset).__name__}")


def _open_for_reading(path, what):
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p} does not exist (an {what} file was expected)")
    return p


# ---------------------------------------------------------------------------------- HDF5


def write_hdf5(path: str | os.PathLike, dataset: Dataset) -> Path:
    """Write ``dataset`` to ``path`` in lfads-torch's HDF5 layout (see the module docstring),
    atomically. Returns the path."""
    _check(dataset)
    path = Path(path)
    atomic_write_with(path, lambda tmp: _write_hdf5(tmp, dataset))
    return path


def _write_hdf5(tmp: str, dataset: Dataset) -> None:
    import h5py

    with h5py.File(tmp, "w") as f:
        for split in ("train", "valid"):
            f.create_dataset(f"{split}_encod_data", data=dataset.encod_data(split))
            f.create_dataset(f"{split}_recon_data", data=dataset.recon_data(split))
            f.create_dataset(f"{split}_inds", data=dataset.inds(split).astype(np.int64))
            ext = dataset.ext_input(split)
            if ext is not None:
                f.create_dataset(f"{split}_ext_input", data=ext)
            for name, value in (dataset.truth or {}).items():
                key = f"{split}_truth" if name == "rates" else f"{split}_truth_{name}"
                f.create_dataset(key, data=value[dataset.inds(split)])
        if dataset.truth and "rates" in dataset.truth:
            f.create_dataset("conversion_factor", data=np.float64(1.0))
        if dataset.bin_size is not None:
            f.create_dataset("bin_size", data=np.float64(dataset.bin_size))


def read_hdf5(path: str | os.PathLike) -> Dataset:
    """Read a dataset in lfads-torch's HDF5 layout (one written by `write_hdf5` or prepared
    for lfads-torch). Held-out neurons are the recon channels beyond the encod channels,
    forward bins the recon bins beyond the encod bins; missing indices default to 0..n-1
    (train) and n..n+m-1 (valid). Truth arrays are placed at their trials' indices (NaN
    where a trial index holds no trial)."""
    import h5py

    p = _open_for_reading(path, "HDF5")
    try:
        with h5py.File(p, "r") as f:
            arrays = {k: v[()] for k, v in f.items() if isinstance(v, h5py.Dataset)}
    except OSError as e:
        raise FileFormatError(f"{p} is not a readable HDF5 file: {e}") from e
    missing = [f"{s}_{k}" for s in ("train", "valid") for k in ("encod_data", "recon_data")
               if f"{s}_{k}" not in arrays]
    if missing:
        raise FileFormatError(f"{p} is not in lfads-torch's layout: it lacks {missing}")
    enc, rec = arrays["train_encod_data"], arrays["train_recon_data"]
    if enc.ndim != 3 or rec.ndim != 3:
        raise FileFormatError(f"{p}: train_encod_data/train_recon_data must be [trials, time, "
                              f"channels], got {enc.shape} and {rec.shape}")
    n_obs, n_in = enc.shape[1], enc.shape[2]
    n_forward = rec.shape[1] - n_obs
    if n_forward < 0 or rec.shape[2] < n_in:
        raise FileFormatError(f"{p}: recon data {rec.shape} must have at least the encod "
                              f"data's bins and channels {enc.shape}")
    parts = {}
    for split in ("train", "valid"):
        e, r = arrays[f"{split}_encod_data"], arrays[f"{split}_recon_data"]
        if e.shape[1:] != (n_obs, n_in) or r.shape[1:] != rec.shape[1:] \
                or e.shape[0] != r.shape[0]:
            raise FileFormatError(f"{p}: {split}'s encod/recon shapes {e.shape}/{r.shape} do "
                                  f"not match train's {enc.shape}/{rec.shape}")
        if not np.array_equal(e, r[:, :n_obs, :n_in], equal_nan=True):
            raise FileFormatError(f"{p}: {split}_encod_data differs from the first {n_in} "
                                  f"channels and {n_obs} bins of {split}_recon_data; an "
                                  "rnnlab Dataset reconstructs what it encodes")
        parts[split] = r
    held = rec.shape[2] > n_in
    inds = {s: arrays.get(f"{s}_inds") for s in ("train", "valid")}
    n_tr, n_va = parts["train"].shape[0], parts["valid"].shape[0]
    if inds["train"] is None:
        inds["train"] = np.arange(n_tr)
    if inds["valid"] is None:
        inds["valid"] = np.arange(n_tr, n_tr + n_va)
    inds = {s: np.asarray(v).astype(np.int64).reshape(-1) for s, v in inds.items()}
    truth = {}
    cf = float(arrays.get("conversion_factor", 1.0))
    names = {k[len("train_"):] for k in arrays
             if k.startswith("train_truth") and f"valid{k[len('train'):]}" in arrays}
    n_total = int(max(inds["train"].max(initial=-1), inds["valid"].max(initial=-1))) + 1
    for key in sorted(names):
        name = "rates" if key == "truth" else key[len("truth_"):]
        tr, va = arrays[f"train_{key}"], arrays[f"valid_{key}"]
        if name == "rates" and cf != 1.0:
            tr, va = tr / cf, va / cf
        dtype = np.result_type(tr.dtype, np.float32) if n_total > n_tr + n_va else tr.dtype
        full = np.full((n_total, *tr.shape[1:]), np.nan, dtype=dtype) \
            if n_total > n_tr + n_va else np.empty((n_total, *tr.shape[1:]), dtype=tr.dtype)
        full[inds["train"]] = tr
        full[inds["valid"]] = va
        truth[name] = full
    ext = [arrays.get(f"{s}_ext_input") for s in ("train", "valid")]
    bin_size = arrays.get("bin_size")
    try:
        return Dataset(
            train=parts["train"][..., :n_in], valid=parts["valid"][..., :n_in],
            train_inds=inds["train"], valid_inds=inds["valid"],
            ext_input_train=ext[0], ext_input_valid=ext[1],
            heldout_train=parts["train"][..., n_in:] if held else None,
            heldout_valid=parts["valid"][..., n_in:] if held else None,
            n_forward=n_forward, truth=truth or None,
            bin_size=None if bin_size is None else float(bin_size))
    except (ValueError, TypeError) as e:
        raise FileFormatError(f"{p}: {e}") from e


# ----------------------------------------------------------------------------------- NWB


def write_nwb(path: str | os.PathLike, dataset: Dataset, *,
              session_description: str = "spiking data (rnnlab.lfads)",
              identifier: str | None = None) -> Path:
    """Write ``dataset`` to ``path`` as an NWB file (see the module docstring), atomically.
    Time is in seconds of ``dataset.bin_size`` (0.01 s when unknown); trials are laid end to
    end, training then validation trials. Returns the path."""
    import datetime
    import uuid

    from pynwb import NWBHDF5IO, NWBFile, ProcessingModule, TimeSeries

    _check(dataset)
    path = Path(path)
    bin_size = dataset.bin_size or 0.01
    t = dataset.n_time
    inds = np.concatenate([dataset.train_inds, dataset.valid_inds])
    split = np.array(["train"] * len(dataset.train_inds) + ["valid"] * len(dataset.valid_inds))
    order = np.arange(inds.size)  # train then valid, each in its own order
    recon = np.concatenate([dataset.recon_data("train"), dataset.recon_data("valid")])[order]
    nwb = NWBFile(
        session_description=session_description,
        identifier=identifier or str(uuid.uuid4()),
        session_start_time=datetime.datetime.now(datetime.timezone.utc),
    )
    layout = {"n_heldin": dataset.n_neurons, "n_heldout": dataset.n_heldout,
              "n_forward": dataset.n_forward, "n_time": t,
              "bin_size": dataset.bin_size, "format": "rnnlab.lfads 1"}
    nwb.add_acquisition(TimeSeries(
        name="spike_counts", data=recon.reshape(-1, recon.shape[-1]), unit="counts",
        rate=1.0 / bin_size, starting_time=0.0, comments=json.dumps(layout),
        description="spike counts per bin, held-in then held-out neurons; trials end to end"))
    if dataset.ext_dim:
        ext = np.concatenate([dataset.ext_input_train, dataset.ext_input_valid])[order]
        nwb.add_acquisition(TimeSeries(
            name="ext_input", data=ext.reshape(-1, ext.shape[-1]), unit="a.u.",
            rate=1.0 / bin_size, starting_time=0.0, description="external inputs"))
    nwb.add_trial_column(name="trial_index", description="index of the trial in the "
                         "original order (rows of the truth arrays)")
    nwb.add_trial_column(name="split", description="train or valid")
    for row, i in enumerate(order):
        nwb.add_trial(start_time=row * t * bin_size, stop_time=(row + 1) * t * bin_size,
                      trial_index=int(inds[i]), split=str(split[i]))
    if dataset.truth:
        module = ProcessingModule(name="truth", description="ground truth of simulated data "
                                  "(rates: expected counts per bin), all trials by index")
        nwb.add_processing_module(module)
        for name, value in dataset.truth.items():
            module.add(TimeSeries(
                name=f"truth_{name}", data=value.reshape(-1, *value.shape[2:]),
                unit="counts per bin" if name == "rates" else "a.u.", rate=1.0 / bin_size,
                starting_time=0.0, comments=json.dumps({"shape": list(value.shape)}),
                description=f"true {name}, [n_total * time, ...] in trial-index order"))
    def write(tmp):
        with NWBHDF5IO(tmp, "w") as io:
            io.write(nwb)

    atomic_write_with(path, write)  # (the temporary name keeps .nwb: pynwb checks it)
    return path


def read_nwb(path: str | os.PathLike) -> Dataset:
    """Read a dataset written by `write_nwb`."""
    from pynwb import NWBHDF5IO

    p = _open_for_reading(path, "NWB")
    try:
        with NWBHDF5IO(str(p), "r") as io:
            nwb = io.read()
            if "spike_counts" not in nwb.acquisition:
                raise FileFormatError(f"{p} has no acquisition 'spike_counts': not written by "
                                      "rl.lfads.write_nwb")
            counts = nwb.acquisition["spike_counts"]
            layout = json.loads(counts.comments)
            data = np.asarray(counts.data[:])
            ext = np.asarray(nwb.acquisition["ext_input"].data[:]) \
                if "ext_input" in nwb.acquisition else None
            trials = nwb.trials
            inds = np.asarray(trials["trial_index"].data[:]).astype(np.int64)
            split = np.asarray([str(s) for s in trials["split"].data[:]])
            truth = {}
            if "truth" in nwb.processing:
                for name, ts in nwb.processing["truth"].data_interfaces.items():
                    shape = json.loads(ts.comments)["shape"]
                    truth[name[len("truth_"):]] = np.asarray(ts.data[:]).reshape(shape)
    except (OSError, KeyError, ValueError) as e:
        if isinstance(e, FileFormatError):
            raise
        raise FileFormatError(f"{p} is not an NWB file written by rl.lfads.write_nwb: "
                              f"{e}") from e
    t, n_in = layout["n_time"], layout["n_heldin"]
    data = data.reshape(-1, t, data.shape[-1])
    if ext is not None:
        ext = ext.reshape(-1, t, ext.shape[-1])
    tr, va = split == "train", split == "valid"
    held = layout["n_heldout"] > 0
    return Dataset(
        train=data[tr][..., :n_in], valid=data[va][..., :n_in],
        train_inds=inds[tr], valid_inds=inds[va],
        ext_input_train=None if ext is None else ext[tr],
        ext_input_valid=None if ext is None else ext[va],
        heldout_train=data[tr][..., n_in:] if held else None,
        heldout_valid=data[va][..., n_in:] if held else None,
        n_forward=layout["n_forward"], truth=truth or None, bin_size=layout["bin_size"])

"""The data LFADS is fitted to: trials split into training and validation, with the
held-out neurons, forward-prediction bins and ground truth of the Neural Latents Benchmark's
layout (what lfads-torch's HDF5 files hold).

Layout, as lfads-torch reads it:

- ``train``/``valid`` [trials, time, neurons]: the held-in neurons over the whole trial,
  the last ``n_forward`` bins included. What the encoder sees is
  ``encod_data(split) = train[:, :time - n_forward]``.
- ``heldout_train``/``heldout_valid`` [trials, time, n_heldout] (optional): neurons the model
  reconstructs but never sees (co-smoothing). What the reconstruction head predicts is
  ``recon_data(split)``, the held-in then the held-out neurons [trials, time, neurons + n_heldout].
- ``ext_input_train``/``ext_input_valid`` [trials, time, ext_dim] (optional): known inputs.
- ``truth`` (optional): a dict of arrays over ALL trials in their original order,
  [n_total, time, ...], indexed by ``train_inds``/``valid_inds``. The names rnnlab uses are
  ``"rates"`` (expected counts per bin of the held-in then held-out neurons, the same column
  order as ``recon_data``), ``"states"`` (the latent states that generated them) and
  ``"inputs"`` (the inputs that drove them). ``truth_split("rates", "valid")`` is
  ``truth["rates"][valid_inds]``.
"""

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._validate import integer, number, positive_number

__all__ = ["Dataset"]

SPLITS = ("train", "valid")


def _array(name: str, value: Any, ndim: int | None = 3) -> np.ndarray:
    try:
        a = np.asarray(value)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be a numeric array, got {type(value).__name__}") from e
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        raise TypeError(f"{name} must be a numeric array, got dtype {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        what = "[trials, time, channels]" if ndim == 3 else f"{ndim}-d"
        raise ValueError(f"{name} must be a {what} array, got shape {a.shape}")
    return a


def _indices(name: str, value: Any, n: int) -> np.ndarray:
    a = np.asarray(value)
    if a.ndim != 1 or not (np.issubdtype(a.dtype, np.integer) or a.size == 0):
        raise ValueError(f"{name} must be a 1-d array of trial indices (integers), got "
                         f"shape {a.shape} dtype {a.dtype}")
    a = a.astype(np.int64)
    if a.shape[0] != n:
        raise ValueError(f"{name} must hold one index per trial ({n}), got {a.shape[0]}")
    if a.size and a.min() < 0:
        raise ValueError(f"{name} must be non-negative trial indices, got {a.min()}")
    return a


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Trials of neural data split into training and validation (see the module docstring
    for the layout). Build it with :meth:`from_arrays`, or read one with
    ``rl.lfads.read_hdf5``/``read_nwb``. Every array is checked when the dataset is built:
    trials, time and channels must agree across the arrays, with an error naming the argument.

    **Fields:**

    - ``train``, ``valid``: [trials, time, neurons] held-in data (counts or continuous).
    - ``train_inds``, ``valid_inds``: [trials] each trial's index in the original order.
    - ``ext_input_train``, ``ext_input_valid``: [trials, time, ext_dim] or None.
    - ``heldout_train``, ``heldout_valid``: [trials, time, n_heldout] or None.
    - ``n_forward``: forward-prediction bins at the end of each trial (0: none); the encoder
      sees the first ``time - n_forward`` bins.
    - ``truth``: dict name -> [n_total, time, ...] over all trials (or None).
    - ``bin_size``: seconds per time bin, when known (None otherwise).
    """

    train: Any
    valid: Any
    train_inds: Any = None
    valid_inds: Any = None
    ext_input_train: Any = None
    ext_input_valid: Any = None
    heldout_train: Any = None
    heldout_valid: Any = None
    n_forward: Any = 0
    truth: Any = None
    bin_size: Any = None

    def __post_init__(self):
        put = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen)
        train = _array("train", self.train)
        valid = _array("valid", self.valid)
        put("train", train)
        put("valid", valid)
        if train.shape[0] < 1:
            raise ValueError(f"train must hold at least one trial, got shape {train.shape}")
        if valid.shape[1:] != train.shape[1:]:
            raise ValueError(f"valid must have train's time and neurons {train.shape[1:]}, "
                             f"got {valid.shape[1:]}")
        n_tr, n_va, t = train.shape[0], valid.shape[0], train.shape[1]
        tr_i = np.arange(n_tr) if self.train_inds is None else self.train_inds
        va_i = np.arange(n_tr, n_tr + n_va) if self.valid_inds is None else self.valid_inds
        tr_i = _indices("train_inds", tr_i, n_tr)
        va_i = _indices("valid_inds", va_i, n_va)
        if np.unique(np.concatenate([tr_i, va_i])).size != n_tr + n_va:
            raise ValueError("train_inds and valid_inds must be distinct trial indices "
                             "(no trial in both splits, none twice)")
        put("train_inds", tr_i)
        put("valid_inds", va_i)
        n_forward = integer("n_forward", self.n_forward, 0)
        if n_forward >= t:
            raise ValueError(f"n_forward must be smaller than the trials' {t} time bins, "
                             f"got {n_forward}")
        put("n_forward", n_forward)
        if self.bin_size is not None:
            put("bin_size", positive_number("bin_size", self.bin_size))
        for kind in ("ext_input", "heldout"):
            a_tr, a_va = getattr(self, f"{kind}_train"), getattr(self, f"{kind}_valid")
            if (a_tr is None) != (a_va is None):
                raise ValueError(f"{kind}_train and {kind}_valid must both be given or both "
                                 "be None")
            if a_tr is None:
                continue
            for split, a, n in (("train", a_tr, n_tr), ("valid", a_va, n_va)):
                name = f"{kind}_{split}"
                a = _array(name, a)
                if a.shape[:2] != (n, t):
                    raise ValueError(f"{name} must be [trials, time, ...] = ({n}, {t}, ...) "
                                     f"like {split}, got shape {a.shape}")
                put(name, a)
            if getattr(self, f"{kind}_train").shape[2] != getattr(self, f"{kind}_valid").shape[2]:
                raise ValueError(f"{kind}_train and {kind}_valid must have as many channels, "
                                 f"got {getattr(self, f'{kind}_train').shape[2]} and "
                                 f"{getattr(self, f'{kind}_valid').shape[2]}")
        if self.truth is not None:
            if not isinstance(self.truth, Mapping):
                raise TypeError("truth must be a dict name -> array over all trials, got "
                                f"{type(self.truth).__name__}")
            n_total = int(max(tr_i.max(initial=-1), va_i.max(initial=-1))) + 1
            truth = {}
            for k, v in self.truth.items():
                if not isinstance(k, str):
                    raise TypeError(f"truth's keys must be str, got {k!r}")
                a = _array(f"truth[{k!r}]", v, ndim=None)
                if a.ndim < 2 or a.shape[0] < n_total or a.shape[1] != t:
                    raise ValueError(
                        f"truth[{k!r}] must be [n_total, time, ...] over all trials in their "
                        f"original order (n_total > every index in train_inds/valid_inds, "
                        f"here >= {n_total}; time {t}), got shape {a.shape}")
                truth[k] = a
            if "rates" in truth and truth["rates"].ndim == 3 \
                    and truth["rates"].shape[2] != self.n_recon:
                raise ValueError(f"truth['rates'] must have one column per reconstructed "
                                 f"neuron (held-in then held-out: {self.n_recon}), got "
                                 f"{truth['rates'].shape[2]}")
            put("truth", truth)

    # sizes
    @property
    def n_neurons(self) -> int:
        """Held-in neurons (what the encoder sees)."""
        return int(self.train.shape[2])

    @property
    def n_heldout(self) -> int:
        return 0 if self.heldout_train is None else int(self.heldout_train.shape[2])

    @property
    def n_recon(self) -> int:
        """Neurons the model reconstructs: held-in plus held-out."""
        return self.n_neurons + self.n_heldout

    @property
    def n_time(self) -> int:
        """Time bins per trial, forward-prediction bins included."""
        return int(self.train.shape[1])

    @property
    def n_obs(self) -> int:
        """Time bins the encoder sees (``n_time - n_forward``)."""
        return self.n_time - self.n_forward

    @property
    def ext_dim(self) -> int:
        return 0 if self.ext_input_train is None else int(self.ext_input_train.shape[2])

    @property
    def n_total(self) -> int:
        """One past the largest trial index (the length of the truth arrays)."""
        return int(max(self.train_inds.max(initial=-1), self.valid_inds.max(initial=-1))) + 1

    # views
    def _split(self, split: str) -> str:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return split

    def inds(self, split: str) -> np.ndarray:
        """[trials] the split's trial indices in the original order."""
        return getattr(self, f"{self._split(split)}_inds")

    def encod_data(self, split: str) -> np.ndarray:
        """[trials, n_obs, neurons]: what the encoder sees (lfads-torch's ``encod_data``)."""
        return getattr(self, self._split(split))[:, : self.n_obs]

    def recon_data(self, split: str) -> np.ndarray:
        """[trials, time, neurons + n_heldout]: what the model reconstructs (lfads-torch's
        ``recon_data``)."""
        data = getattr(self, self._split(split))
        held = getattr(self, f"heldout_{split}")
        return data if held is None else np.concatenate([data, held.astype(data.dtype)], -1)

    def ext_input(self, split: str) -> np.ndarray | None:
        """[trials, time, ext_dim] or None."""
        return getattr(self, f"ext_input_{self._split(split)}")

    def truth_split(self, name: str, split: str) -> np.ndarray:
        """``truth[name]`` for the split's trials, [trials, time, ...]."""
        if not self.truth or name not in self.truth:
            have = sorted(self.truth) if self.truth else []
            raise KeyError(f"this dataset has no truth {name!r} (it has {have})")
        return self.truth[name][self.inds(split)]

    def __repr__(self) -> str:
        extra = [f"n_heldout={self.n_heldout}"] if self.n_heldout else []
        if self.n_forward:
            extra.append(f"n_forward={self.n_forward}")
        if self.ext_dim:
            extra.append(f"ext_dim={self.ext_dim}")
        if self.truth:
            extra.append(f"truth={sorted(self.truth)}")
        return (f"Dataset(train={self.train.shape[0]}, valid={self.valid.shape[0]} trials x "
                f"{self.n_time} bins x {self.n_neurons} neurons"
                + "".join(", " + e for e in extra) + ")")

    @classmethod
    def from_arrays(
        cls,
        data: Any,
        *,
        valid_fraction: float = 0.2,
        seed: int = 0,
        heldout_neurons: int | Sequence[int] | np.ndarray | None = None,
        n_forward: int = 0,
        truth: Mapping[str, Any] | None = None,
        ext_input: Any = None,
        bin_size: float | None = None,
    ) -> "Dataset":
        """Split ``data`` [trials, time, neurons] into training and validation trials at
        random (``seed``), ``valid_fraction`` of them (at least one) for validation.

        - ``heldout_neurons``: an int ``k`` holds out the last ``k`` neurons, a sequence holds
          out those neuron indices; the held-in neurons keep their order.
        - ``n_forward``: the last bins of each trial are forward-prediction bins.
        - ``truth``: dict name -> [trials, time, ...] in ``data``'s trial order; a ``"rates"``
          array with one column per neuron of ``data`` is reordered like the neurons
          (held-in then held-out).
        - ``ext_input``: [trials, time, ext_dim] known inputs.
        - ``bin_size``: seconds per bin (kept for files and figures).
        """
        data = _array("data", data)
        n, _, n_neurons = data.shape
        if n < 2:
            raise ValueError(f"data must hold at least 2 trials (one per split), got {n}")
        frac = number("valid_fraction", valid_fraction, 0.0, strict=True)
        if frac >= 1.0:
            raise ValueError(f"valid_fraction must be in (0, 1), got {valid_fraction!r}")
        seed = integer("seed", seed, 0)
        n_valid = min(max(int(round(frac * n)), 1), n - 1)
        perm = np.random.default_rng(seed).permutation(n)
        valid_inds, train_inds = np.sort(perm[:n_valid]), np.sort(perm[n_valid:])

        order = np.arange(n_neurons)
        heldout = None
        if heldout_neurons is not None:
            if isinstance(heldout_neurons, (int, np.integer)) and not isinstance(
                    heldout_neurons, (bool, np.bool_)):
                k = integer("heldout_neurons", heldout_neurons, 0)
                if k >= n_neurons:
                    raise ValueError(f"heldout_neurons must leave at least one held-in neuron "
                                     f"(data has {n_neurons}), got {k}")
                heldout = np.arange(n_neurons - k, n_neurons)
            else:
                heldout = np.asarray(heldout_neurons)
                if heldout.ndim != 1 or not np.issubdtype(heldout.dtype, np.integer) \
                        or heldout.size and (heldout.min() < 0 or heldout.max() >= n_neurons) \
                        or np.unique(heldout).size != heldout.size \
                        or heldout.size >= n_neurons:
                    raise ValueError(
                        "heldout_neurons must be an int (hold out the last k neurons) or "
                        f"distinct neuron indices in [0, {n_neurons}) leaving at least one "
                        f"held-in, got {heldout_neurons!r}")
            if heldout.size:
                held_in = np.setdiff1d(np.arange(n_neurons), heldout)
                order = np.concatenate([held_in, heldout])
            else:
                heldout = None
        n_in = n_neurons - (0 if heldout is None else heldout.size)

        def part(a, inds):
            return a[inds][:, :, order[:n_in]], (
                None if heldout is None else a[inds][:, :, order[n_in:]])

        tr, ho_tr = part(data, train_inds)
        va, ho_va = part(data, valid_inds)
        ext_tr = ext_va = None
        if ext_input is not None:
            ext = _array("ext_input", ext_input)
            if ext.shape[:2] != data.shape[:2]:
                raise ValueError(f"ext_input must be [trials, time, ext_dim] with data's "
                                 f"{data.shape[:2]}, got shape {ext.shape}")
            ext_tr, ext_va = ext[train_inds], ext[valid_inds]
        if truth is not None:
            if not isinstance(truth, Mapping):
                raise TypeError(f"truth must be a dict name -> array, got "
                                f"{type(truth).__name__}")
            truth = {k: np.asarray(v) for k, v in truth.items()}
            r = truth.get("rates")
            if r is not None and r.ndim == 3 and r.shape[2] == n_neurons:
                truth["rates"] = r[:, :, order]
        return cls(train=tr, valid=va, train_inds=train_inds, valid_inds=valid_inds,
                   ext_input_train=ext_tr, ext_input_valid=ext_va, heldout_train=ho_tr,
                   heldout_valid=ho_va, n_forward=n_forward, truth=truth,
                   bin_size=bin_size)

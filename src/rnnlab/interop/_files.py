"""Networks from weight files: safetensors, numpy ``.npz`` and MATLAB ``.mat``, in the namings
of trainRNNbrain, PsychRNN and rnnlab itself. Pickle (``.pt``, ``.pth``, ``.pkl``) is refused.

Each source's update rule maps exactly onto a `CTRNN` form:

- trainRNNbrain (``RNN_torch`` / ``RNN_numpy``): the rate form,
  ``y <- (1 - a) y + a (f(W_rec y + W_inp (u + s_in xi) + bias_rec) + sqrt(2 / a) s_rec xi)``,
  output ``W_out y``. Its recurrent noise ``a * sqrt(2 / a) s_rec = sqrt(2 a) s_rec`` is rnnlab's
  ``noise_std = s_rec``; its input noise ``sqrt(2 / a) s_in`` is rnnlab's
  ``input_noise_std = sqrt(2 / a) * s_in``.
- PsychRNN (``Basic``): the potential form with relu,
  ``x <- (1 - a) x + a (W_rec relu(x) + W_in u + b_rec) + sqrt(2 a) rec_noise xi``, output
  ``W_out relu(x) + b_out``; with Dale's law the effective weights are
  ``|W_rec| * rec_connectivity @ Dale_rec``, ``|W_in| * input_connectivity`` and
  ``|W_out| * output_connectivity @ Dale_out``.
- rnnlab: the effective weights (``w_rec``, ``w_in``, ``w_out``, ``b_rec``, ``b_out``) with
  the model's configuration as JSON.
"""

import json
import math
import os
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._validate import positive_number
from ..io._safe import FORMAT_KEY

FORMATS = ("trainrnnbrain", "psychrnn", "rnnlab")
_PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".bin")
_ALIASES = {"trainrnnbrain": "trainrnnbrain", "trainrnn": "trainrnnbrain",
            "psychrnn": "psychrnn", "rnnlab": "rnnlab", "auto": None}


class PickleRefused(ValueError):
    """A pickle file was given: rnnlab never unpickles (it would run the file's code)."""


# ------------------------------------------------------------------------------ reading files


def pickle_message(path: Path) -> str:
    """The refusal for a pickle file, with the two lines that convert it."""
    out = path.with_suffix(".safetensors")
    return (
        f"{path}: a {path.suffix or 'pickle'} file is a Python pickle, and rnnlab never "
        "unpickles (loading a pickle runs whatever code the file holds). Convert it to "
        "safetensors in your own environment, where you trust the file, then import the "
        "result:\n"
        "    import torch, safetensors.torch\n"
        f"    safetensors.torch.save_file({{k: v.contiguous() for k, v in torch.load("
        f"{str(path)!r}, map_location='cpu', weights_only=True).items()}}, {str(out)!r})\n"
        "(if the file holds a whole module rather than a state dict, use module.state_dict() "
        "in place of the torch.load(...) result)"
    )


def _sniff(path: Path) -> str:
    """The file type by content: safetensors, npz, torch-zip, mat, pickle or unknown."""
    with open(path, "rb") as f:
        head = f.read(128)
    if head.startswith(b"MATLAB"):
        return "mat"
    if len(head) >= 9 and head[8:9] == b"{":
        (n,) = struct.unpack("<Q", head[:8])
        if 8 + n <= path.stat().st_size:  # a safetensors header; JSON text gives a huge n
            return "safetensors"
    if head.lstrip()[:1] == b"{":
        return "json"
    if head[:1] == b"\x80" or head.startswith((b"(dp", b"}q", b"ccopy_reg")):
        return "pickle"
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except zipfile.BadZipFile:
            return "unknown"
        if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            return "pickle"  # torch.save's zip format: a pickle inside
        return "npz"
    return "unknown"


def read_arrays(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The named arrays of a ``.safetensors``, ``.npz`` or ``.mat`` file and, for
    safetensors, its string metadata. Never unpickles: a pickle is refused with
    `PickleRefused`, whose message prints the two lines that convert it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    kind = _sniff(path)
    if kind == "pickle" or (kind == "unknown" and path.suffix.lower() in _PICKLE_SUFFIXES):
        raise PickleRefused(pickle_message(path))
    if kind == "safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = dict(f.metadata() or {})
                arrays = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:  # safetensors' own errors are not ValueErrors
            raise ValueError(f"{path}: not a readable safetensors file ({e})") from None
        return arrays, meta
    if kind == "npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}, {}
        except ValueError as e:
            raise ValueError(
                f"{path}: holds Python objects, which rnnlab never unpickles ({e}); save plain "
                "numeric arrays (np.savez with arrays, not dicts or None)"
            ) from None
    if kind == "mat":
        import scipy.io

        try:
            raw = scipy.io.loadmat(str(path), squeeze_me=False, chars_as_strings=True)
        except NotImplementedError:
            raise ValueError(
                f"{path}: a MATLAB v7.3 (HDF5) file; save it with save(..., '-v7') in MATLAB, "
                "or convert it to .npz"
            ) from None
        arrays = {}
        for k, v in raw.items():
            if k.startswith("__"):
                continue
            v = np.asarray(v)
            if v.dtype.names and v.size == 1:  # a MATLAB struct: its fields are the entries
                for f in v.dtype.names:
                    arrays.setdefault(f, np.asarray(v[f].ravel()[0]))
            else:
                arrays[k] = v
        return arrays, {}
    if kind == "json":
        return _json_params(path)
    raise ValueError(
        f"{path}: not a safetensors, .npz, .mat or JSON file (its first bytes match none of "
        "them)"
    )


def _json_params(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """A JSON object of parameters (trainRNNbrain's saved params: matrices as nested lists):
    numbers and lists become arrays, strings string arrays; objects (its ``activation_args``)
    are returned as JSON text in the metadata entry ``"json"``, for the configuration."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: the JSON must be an object of named parameters")
    arrays, extras = {}, {}
    for k, v in value.items():
        if v is None:
            continue
        if isinstance(v, dict):
            extras[k] = v
            continue
        try:
            arr = np.asarray(v)
        except ValueError:  # ragged lists
            raise ValueError(f"{path}: entry {k!r} is a ragged list, not a matrix") from None
        if arr.dtype.kind not in "biufU":
            raise ValueError(f"{path}: entry {k!r} is not numbers or text")
        arrays[k] = arr
    return arrays, {"json": json.dumps(extras)} if extras else {}


# ------------------------------------------------------------------------------ values


def _scalar(arrays: Mapping[str, Any], key: str) -> Any:
    """A scalar from a file entry (0-d, [1], [1, 1], or a string array), else None."""
    if key not in arrays:
        return None
    v = np.asarray(arrays[key])
    if v.dtype.kind in "US":
        return str(v.ravel()[0]) if v.size else None
    if v.size != 1 or v.dtype.kind not in "biuf":
        return None
    return v.reshape(()).item()


def _matrix(name: str, value: Any, shape: tuple[int, ...] | None = None) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got shape {arr.shape}")
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _vector(name: str, value: Any, size: int) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.size != size or sum(d != 1 for d in arr.shape) > 1:
        raise ValueError(f"{name} must be a vector of {size} entries, got shape {arr.shape}")
    arr = arr.reshape(size)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _mask(name: str, value: Any, shape: tuple[int, int]) -> np.ndarray:
    arr = _matrix(name, value, shape)
    if not np.all(np.isin(arr, (0.0, 1.0))):
        raise ValueError(f"{name} must hold only 0 and 1, got values {np.unique(arr)[:5]}")
    return arr.astype(bool)


def _first(arrays: Mapping[str, Any], *names: str) -> tuple[str | None, Any]:
    for n in names:
        if n in arrays:
            return n, arrays[n]
    return None, None


def _require(arrays: Mapping[str, Any], fmt: str, *names: str) -> tuple[str, Any]:
    name, value = _first(arrays, *names)
    if name is None:
        raise ValueError(
            f"the {fmt} file has no {' / '.join(names)}; its entries are {sorted(arrays)}"
        )
    return name, value


def _config_from(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    path = Path(config)
    if not path.is_file():
        raise FileNotFoundError(f"config: {path}: no such file (a JSON configuration)")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"config: {path} is not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise ValueError(f"config: {path} must hold a JSON object")
    return value


def _setting(name: str, given: Any, config: Mapping[str, Any], arrays: Mapping[str, Any],
             *keys: str) -> Any:
    """A setting: the keyword argument, else the JSON config, else a scalar in the file."""
    if given is not None:
        return given
    for k in keys or (name,):
        if config.get(k) is not None:
            return config[k]
    for k in keys or (name,):
        v = _scalar(arrays, k)
        if v is not None:
            return v
    return None


def _time_constants(fmt: str, dt, tau, alpha) -> tuple[float, float]:
    if dt is not None and tau is not None:
        dt, tau = positive_number("dt", dt), positive_number("tau", tau)
        if alpha is not None and not math.isclose(float(alpha), dt / tau, rel_tol=1e-6):
            raise ValueError(f"alpha={alpha} disagrees with dt/tau = {dt}/{tau}")
        return dt, tau
    if alpha is not None:
        alpha = positive_number("alpha", alpha)
        if tau is not None:
            tau = positive_number("tau", tau)
            return alpha * tau, tau
        if dt is not None:
            dt = positive_number("dt", dt)
            return dt, dt / alpha
        return 100.0 * alpha, 100.0  # only the ratio matters; tau = 100 (ms) by convention
    raise ValueError(
        f"the {fmt} file and its config say nothing of the time step: pass dt= and tau= "
        "(or alpha=), e.g. from_file(path, dt=..., tau=...) or --dt/--tau on the command line"
    )


# ------------------------------------------------------------------------------ Dale's law


def _signs_from_columns(name: str, w: np.ndarray) -> np.ndarray:
    """Per presynaptic unit (column) the sign of its outgoing weights; a column with both
    signs is a violation of Dale's law."""
    pos, neg = np.any(w > 0, axis=0), np.any(w < 0, axis=0)
    both = np.flatnonzero(pos & neg)
    if both.size:
        j = int(both[0])
        raise ValueError(
            f"{name} violates Dale's law: column {j} (the outgoing weights of unit {j}) has "
            f"both signs ({int(both.size)} such columns), so unit {j} is neither excitatory "
            "nor inhibitory"
        )
    sign = np.where(neg, -1.0, 1.0)
    # a unit with no outgoing weight takes the type of the block it sits in
    silent = ~pos & ~neg
    if silent.any() and neg.any():
        first_inh = int(np.flatnonzero(neg)[0])
        sign[silent] = np.where(np.arange(len(sign))[silent] >= first_inh, -1.0, 1.0)
    return sign


def _dale_vector(name: str, mask: Any, n: int) -> np.ndarray:
    """Unit signs (+1 E, -1 I) from a Dale mask: a vector of signs, a diagonal matrix of
    signs (PsychRNN's Dale_rec) or a sign matrix (trainRNNbrain's sign(W_rec))."""
    arr = np.asarray(mask, dtype=np.float64)
    if arr.size == n:
        vec = arr.reshape(n)
    elif arr.shape == (n, n):
        off = arr - np.diag(np.diag(arr))
        if not off.any():
            vec = np.diag(arr).copy()
        else:
            vec = _signs_from_columns(name, arr)
            return vec
    else:
        raise ValueError(f"{name} must be a vector of {n} signs or an [{n}, {n}] matrix, got "
                         f"shape {arr.shape}")
    if not np.all(np.isin(vec, (-1.0, 1.0))):
        raise ValueError(f"{name} must hold +1 (excitatory) and -1 (inhibitory) per unit, got "
                         f"values {np.unique(vec)[:5]}")
    return vec


def _check_dale(name: str, w: np.ndarray, sign: np.ndarray, source: str) -> int:
    """Check the effective ``w`` against the unit signs; returns the number of excitatory
    units (which must come first, rnnlab's layout)."""
    bad = w * sign[None, :] < 0
    if bad.any():
        i, j = (int(a[0]) for a in np.nonzero(bad))
        kind = "excitatory" if sign[j] > 0 else "inhibitory"
        raise ValueError(
            f"{name} violates its Dale signs ({source}): {int(bad.sum())} entries have the wrong "
            f"sign, e.g. {name}[{i}, {j}] = {w[i, j]:.6g} although unit {j} is {kind}"
        )
    n_exc = int(np.sum(sign > 0))
    if not np.all(sign[:n_exc] > 0):
        raise ValueError(
            f"the excitatory units of {source} are not the first {n_exc}; rnnlab's Dale "
            "networks number excitatory units first: reorder the units (rows and columns of "
            "the recurrent matrix, rows of the input matrix, columns of the output matrix) so "
            "that they are"
        )
    if n_exc == 0:
        raise ValueError(f"{source} marks every unit inhibitory; a Dale network needs at least "
                         "one excitatory unit")
    return n_exc


def _check_masked(name: str, w: np.ndarray, mask: np.ndarray | None, mask_name: str) -> None:
    if mask is None:
        return
    off = ~mask & (w != 0)
    if off.any():
        i, j = (int(a[0]) for a in np.nonzero(off))
        raise ValueError(
            f"{name} has {int(off.sum())} non-zero entries where {mask_name} is 0, e.g. "
            f"{name}[{i}, {j}] = {w[i, j]:.6g}"
        )


def _check_nonnegative(name: str, w: np.ndarray, why: str) -> None:
    if np.any(w < 0):
        i, j = (int(a[0]) for a in np.nonzero(w < 0))
        raise ValueError(
            f"{name} has {int(np.sum(w < 0))} negative entries although {why}, e.g. "
            f"{name}[{i}, {j}] = {w[i, j]:.6g}"
        )


# ------------------------------------------------------------------------------ activations


def _trainrnnbrain_softplus(x):
    import jax

    return jax.nn.softplus(5.0 * x)  # trainRNNbrain's softplus: log(1 + exp(5 x))


_TRAINRNNBRAIN_ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid",
                              "softplus": _trainrnnbrain_softplus}


def _activation(fmt: str, value: Any, default: str, table: Mapping[str, Any] | None = None):
    from ..models._activations import ACTIVATIONS

    name = default if value is None else value
    if callable(name):
        return name
    if not isinstance(name, str):
        raise ValueError(f"activation must be a name, got {name!r}")
    key = name.strip().lower()
    if table is not None and key in table:
        return table[key]
    if key in ACTIVATIONS:
        return key
    known = sorted(set(table or ()) | set(ACTIVATIONS))
    raise ValueError(f"activation={name!r} ({fmt}) is not known; use one of {known}")


def _negative_rates(activation) -> dict[str, bool]:
    """The source trained its Dale network with this activation: keep it even where rnnlab
    would refuse one that can be negative for a new Dale network."""
    from ..models._activations import can_be_negative

    return {"allow_negative_rates": True} if can_be_negative(activation) else {}


# ------------------------------------------------------------------------------ formats


def _detect(arrays: Mapping[str, Any], meta: Mapping[str, str]) -> str:
    keys = set(arrays)
    if FORMAT_KEY in meta or {"w_rec", "w_in", "w_out"} <= keys:
        return "rnnlab"
    if "W_inp" in keys or "recurrent_layer.weight" in keys:
        return "trainrnnbrain"
    if {"W_rec", "W_in", "W_out"} <= keys:
        return "psychrnn"
    raise ValueError(
        "cannot tell the file's naming from its entries "
        f"{sorted(keys)[:12]}; give format= one of {FORMATS}"
    )


def _trainrnnbrain(arrays, config, *, dt, tau, activation, noise):
    from ..models import CTRNN

    fmt = "trainRNNbrain"
    name, w_rec = _require(arrays, fmt, "W_rec", "recurrent_layer.weight")
    w_rec = _matrix(name, w_rec)
    n = w_rec.shape[0]
    if w_rec.shape != (n, n):
        raise ValueError(f"{name} must be square, got shape {w_rec.shape}")
    in_name, w_in = _require(arrays, fmt, "W_inp", "input_layer.weight")
    w_in = _matrix(in_name, w_in)
    if w_in.shape[0] != n:
        raise ValueError(f"{in_name} must have shape ({n}, n_inputs), got {w_in.shape}")
    out_name, w_out = _require(arrays, fmt, "W_out", "output_layer.weight")
    w_out = _matrix(out_name, w_out)
    if w_out.shape[1] != n:
        raise ValueError(f"{out_name} must have shape (n_outputs, {n}), got {w_out.shape}")
    n_in, n_out = w_in.shape[1], w_out.shape[0]
    b_name, b = _first(arrays, "bias_rec", "b_rec", "bias", "recurrent_layer.bias")
    b = np.zeros(n) if b is None else _vector(b_name, b, n)
    _, y0 = _first(arrays, "y_init")
    y0 = None if y0 is None else _vector("y_init", y0, n)

    dt = _setting("dt", dt, config, arrays)
    tau = _setting("tau", tau, config, arrays)
    dt, tau = _time_constants(fmt, dt, tau, None)
    alpha = dt / tau
    equation = str(_setting("equation_type", None, config, arrays) or "s").lower()
    if equation not in ("s", "h"):
        raise ValueError(f"equation_type={equation!r}: trainRNNbrain's forms are 's' (rates) "
                         "and 'h' (potentials)")
    args = config.get("activation_args")
    slope = 1.0
    if activation is None and isinstance(args, Mapping) and "name" in args:
        import types

        from ._torch import _trainrnnbrain_activation

        act, slope = _trainrnnbrain_activation(types.SimpleNamespace(activation_args=args), {})
    else:
        act = _activation(fmt, _setting("activation", activation, config, arrays), "relu",
                          _TRAINRNNBRAIN_ACTIVATIONS)
    if slope != 1.0:
        if equation == "h":
            raise ValueError("an activation slope != 1 with equation_type='h' rescales the "
                             "state itself; rnnlab imports it with slope 1 only")
        if slope <= 0:
            raise ValueError(f"activation_args slope must be > 0, got {slope}")
        # f(slope * z) with z = W_rec y + W_inp u + b: the slope folds into the weights
        w_rec, w_in, b = slope * w_rec, slope * w_in, slope * b
    gamma = float(_setting("gamma", None, config, arrays) or 0.0)
    sigma_rec = _setting("sigma_rec", noise.get("sigma_rec"), config, arrays) or 0.0
    sigma_inp = _setting("sigma_inp", noise.get("sigma_inp"), config, arrays) or 0.0

    masks = {}
    for key, shape, ctrnn_key in (("recurrent_mask", (n, n), "w_rec_mask"),
                                  ("input_mask", (n, n_in), "w_in_mask"),
                                  ("output_mask", (n_out, n), "w_out_mask")):
        if key in arrays:
            masks[ctrnn_key] = _mask(key, arrays[key], shape)
    _check_masked(name, w_rec, masks.get("w_rec_mask"), "recurrent_mask")
    _check_masked(in_name, w_in, masks.get("w_in_mask"), "input_mask")
    _check_masked(out_name, w_out, masks.get("w_out_mask"), "output_mask")

    constrained = config.get("constrained", _scalar(arrays, "constrained"))
    kwargs: dict[str, Any] = {}
    if "dale_mask" in arrays or constrained:
        if "dale_mask" in arrays:
            sign, source = _dale_vector("dale_mask", arrays["dale_mask"], n), "dale_mask"
        else:
            sign, source = _signs_from_columns(name, w_rec), "constrained=True"
        n_exc = _check_dale(name, w_rec, sign, source)
        # trainRNNbrain's constrained networks have non-negative input and output weights
        _check_nonnegative(in_name, w_in, f"the network is Dale-constrained ({source})")
        _check_nonnegative(out_name, w_out, f"the network is Dale-constrained ({source})")
        kwargs.update(dale=True, excitatory_fraction=n_exc / n, nonnegative_inputs=True,
                      nonnegative_outputs=True, **_negative_rates(act))
    model = CTRNN.from_weights(
        w_rec, w_in, w_out, b, np.zeros(n_out), activation=act, dt=dt, tau=tau,
        form="rate" if equation == "s" else "potential", noise_std=float(sigma_rec),
        input_noise_std=float(math.sqrt(2.0 / alpha) * sigma_inp),
        initial_state="zeros" if y0 is None else y0, **masks, **kwargs,
    )
    if gamma != 0.0 and equation == "s":
        # its cubic leak -gamma y^3: a FunctionModel of its vector field (constraints were
        # checked on the CT-RNN above, the same network without the cubic term)
        from ._torch import _cubic_leak_model

        return _cubic_leak_model(model, gamma)
    return model


def _psychrnn(arrays, config, *, dt, tau, activation, noise):
    from ..models import CTRNN

    fmt = "PsychRNN"
    w_rec = _matrix("W_rec", _require(arrays, fmt, "W_rec")[1])
    n = w_rec.shape[0]
    if w_rec.shape != (n, n):
        raise ValueError(f"W_rec must be square, got shape {w_rec.shape}")
    w_in = _matrix("W_in", _require(arrays, fmt, "W_in")[1])
    w_out = _matrix("W_out", _require(arrays, fmt, "W_out")[1])
    if w_in.shape[0] != n:
        raise ValueError(f"W_in must have shape ({n}, N_in), got {w_in.shape}")
    if w_out.shape[1] != n:
        raise ValueError(f"W_out must have shape (N_out, {n}), got {w_out.shape}")
    n_in, n_out = w_in.shape[1], w_out.shape[0]
    b_rec = _vector("b_rec", arrays["b_rec"], n) if "b_rec" in arrays else np.zeros(n)
    b_out = _vector("b_out", arrays["b_out"], n_out) if "b_out" in arrays else np.zeros(n_out)
    h0 = _vector("init_state", arrays["init_state"], n) if "init_state" in arrays else None
    conn = {}
    for key, shape in (("rec_connectivity", (n, n)), ("input_connectivity", (n, n_in)),
                       ("output_connectivity", (n_out, n))):
        conn[key] = _mask(key, arrays[key], shape) if key in arrays else np.ones(shape, bool)

    dt = _setting("dt", dt, config, arrays)
    tau = _setting("tau", tau, config, arrays)
    alpha = _setting("alpha", None, config, arrays)
    dt, tau = _time_constants(fmt, dt, tau, alpha)
    act = _activation(fmt, _setting("activation", activation, config, arrays), "relu")
    rec_noise = _setting("rec_noise", noise.get("rec_noise"), config, arrays) or 0.0

    dale_ratio = _setting("dale_ratio", None, config, arrays)
    signs = None
    if "Dale_rec" in arrays:
        signs = _dale_vector("Dale_rec", arrays["Dale_rec"], n)
        d = np.asarray(arrays["Dale_rec"], np.float64)
        if d.shape == (n, n) and np.any(d - np.diag(np.diag(d))):
            raise ValueError("Dale_rec must be a diagonal matrix of +1/-1 (PsychRNN's layout)")
    dale = bool(dale_ratio) or (signs is not None and np.any(signs < 0))
    kwargs: dict[str, Any] = {}
    if dale:
        if signs is None:
            n_exc = int(float(dale_ratio) * n)  # PsychRNN: the first int(dale_ratio N) units
            signs = np.where(np.arange(n) < n_exc, 1.0, -1.0)
        rec = np.abs(w_rec) * conn["rec_connectivity"] * signs[None, :]
        n_exc = _check_dale("W_rec", rec, signs, "Dale_rec")
        if dale_ratio and n_exc != int(float(dale_ratio) * n):
            raise ValueError(
                f"Dale_rec has {n_exc} excitatory units but dale_ratio={dale_ratio} gives "
                f"int({dale_ratio} * {n}) = {int(float(dale_ratio) * n)}"
            )
        if "Dale_out" in arrays:
            d_out = np.asarray(arrays["Dale_out"], np.float64)
            out_signs = np.diag(d_out) if d_out.shape == (n, n) else d_out.reshape(-1)
            if d_out.shape == (n, n) and np.any(d_out - np.diag(np.diag(d_out))):
                raise ValueError("Dale_out must be a diagonal matrix (PsychRNN's layout)")
        else:
            out_signs = np.maximum(signs, 0.0)
        if out_signs.shape != (n,) or not (
            np.array_equal(out_signs, np.maximum(signs, 0.0)) or np.array_equal(out_signs, signs)
        ):
            raise ValueError(
                "Dale_out must be diag(1 for excitatory units, 0 for inhibitory ones), as "
                "PsychRNN writes it (or diag(Dale_rec))"
            )
        e_only = np.array_equal(out_signs, np.maximum(signs, 0.0))
        inp = np.abs(w_in) * conn["input_connectivity"]
        out = np.abs(w_out) * conn["output_connectivity"] * out_signs[None, :]
        if not e_only:
            raise ValueError(
                "Dale_out reads the inhibitory units with negative weights; rnnlab's Dale "
                "networks read non-negative outputs from all units or the excitatory ones only"
            )
        kwargs.update(dale=True, excitatory_fraction=n_exc / n, readout="excitatory",
                      nonnegative_inputs=True, nonnegative_outputs=True,
                      **_negative_rates(act))
        w_rec, w_in, w_out = rec, inp, out
    else:
        w_rec = w_rec * conn["rec_connectivity"]
        w_in = w_in * conn["input_connectivity"]
        w_out = w_out * conn["output_connectivity"]
    masks = {"w_rec_mask": conn["rec_connectivity"], "w_in_mask": conn["input_connectivity"],
             "w_out_mask": conn["output_connectivity"]}
    return CTRNN.from_weights(
        w_rec, w_in, w_out, b_rec, b_out, activation=act, dt=dt, tau=tau, form="potential",
        noise_std=float(rec_noise), initial_state="zeros" if h0 is None else h0,
        **masks, **kwargs,
    )


_RNNLAB_MASKS = ("w_rec_mask", "w_in_mask", "w_out_mask")
# entries of a model's config() that are not constructor options of `from_weights`
_RNNLAB_SIZES = ("n_in", "n_hidden", "n_out", "trainable", "activation", "class")


def _rnnlab(arrays, meta, config, *, dt, tau, activation, noise):
    import inspect

    from ..models import CTRNN, model_class

    if FORMAT_KEY in meta:
        raise _UseLoad()
    cfg: dict[str, Any] = {}
    if "config" in arrays:  # the model's configuration as JSON text (rnnlab.export writes it)
        try:
            stored = json.loads(str(np.asarray(arrays["config"]).ravel()[0]))
        except (json.JSONDecodeError, IndexError) as e:
            raise ValueError(f"the file's 'config' entry is not JSON ({e})") from None
        if isinstance(stored, dict) and isinstance(stored.get("config"), dict):
            stored = {**stored["config"], "class": stored.get("class")}  # a model_meta
        if isinstance(stored, dict):
            cfg.update(stored)
    cfg.update(config)
    cls_name = cfg.get("class") or _scalar(arrays, "model") or "CTRNN"
    cls = model_class(str(cls_name))
    if cls.__name__ not in ("CTRNN", "VanillaRNN", "GRU", "LSTM"):
        raise ValueError(f"the file describes a {cls.__name__}; npz/mat imports build a CTRNN, "
                         "VanillaRNN, GRU or LSTM (other models: rnnlab.save / rnnlab.load)")
    act = _activation("rnnlab", _setting("activation", activation, cfg, arrays), "tanh")
    kwargs = {k: v for k, v in cfg.items() if k not in _RNNLAB_SIZES}
    fmt = "rnnlab"
    w = {k: _matrix(k, _require(arrays, fmt, k)[1]) for k in ("w_rec", "w_in", "w_out")}
    rows, n_out = w["w_rec"].shape[0], w["w_out"].shape[0]
    n = w["w_rec"].shape[1]
    for k, size in (("b_rec", rows), ("b_in", rows), ("b_out", n_out)):
        if k in arrays:
            w[k] = _vector(k, arrays[k], size)
    if "b_in" in w and cls is CTRNN:
        raise ValueError("a CTRNN has no b_in; the file's entries are a gated network's")
    dt = _setting("dt", dt, cfg, arrays)
    if dt is not None:
        kwargs["dt"] = positive_number("dt", dt)
    if cls is CTRNN:
        if tau is None:
            tau = cfg.get("tau")
        if tau is None and "tau" in arrays:
            tau = np.asarray(arrays["tau"], np.float64).ravel()
            tau = float(tau[0]) if np.all(tau == tau[0]) else tau
        if tau is None or dt is None:
            _time_constants(fmt, dt, tau, None)  # the error saying what to pass
        kwargs["tau"] = np.asarray(tau, np.float64) if isinstance(tau, list) else tau
    for k in ("noise_std", "input_noise_std"):
        value = noise.get(k)
        if value is None and k not in kwargs:
            value = _scalar(arrays, k)
        if value is not None:
            kwargs[k] = float(value)
    for k in _RNNLAB_MASKS:
        if k in arrays:
            kwargs[k] = np.asarray(arrays[k]) != 0
    if "h0" in arrays and "initial_state" in inspect.signature(cls.__init__).parameters:
        kwargs["initial_state"] = _vector("h0", arrays["h0"], np.asarray(arrays["h0"]).size)
    if cls is CTRNN and kwargs.get("dale"):
        # checked here too, so that the error names the entry and an offending weight
        n_exc = int(round(float(kwargs.get("excitatory_fraction", 0.8)) * n))
        sign = np.where(np.arange(n) < n_exc, 1.0, -1.0)
        _check_dale("w_rec", w["w_rec"], sign, f"dale=True, {n_exc} excitatory units first")
    try:
        return cls.from_weights(**w, activation=act, **kwargs)
    except TypeError as e:
        raise ValueError(f"the file's configuration does not fit a {cls.__name__} ({e})") \
            from None


class _UseLoad(Exception):
    pass


def from_file(
    path: str | os.PathLike,
    *,
    format: str | None = None,
    config: Mapping[str, Any] | str | os.PathLike | None = None,
    dt: float | None = None,
    tau: float | None = None,
    activation: str | None = None,
    **noise: float,
):
    """A network from a weight file: ``.safetensors`` (as ``safetensors.torch.save_file``
    writes a state dict, or as `rnnlab.save` writes a model), ``.npz``, MATLAB ``.mat`` or a
    JSON object of parameters (trainRNNbrain saves its parameters so: matrices as lists).

    Pickles (``.pt``, ``.pth``, ``.pkl``, ...) are never unpickled: the error names the file
    and prints the two lines that convert it to safetensors in your own environment.

    The naming (``format``) is detected from the entries when not given:

    - ``"trainrnnbrain"``: ``W_rec`` [N, N], ``W_inp`` [N, n_in], ``W_out`` [n_out, N],
      optional ``bias_rec``, ``y_init``, ``dale_mask`` (signs per unit, or trainRNNbrain's
      sign matrix), ``recurrent_mask``, ``input_mask``, ``output_mask``; or the state dict of
      ``RNN_torch`` (``recurrent_layer.weight``, ``recurrent_layer.bias``,
      ``input_layer.weight``, ``output_layer.weight``); newer versions name the bias
      ``bias``. Settings from ``config`` (its JSON configuration: ``dt``, ``tau``,
      ``activation`` or ``activation_args`` (name, slope, beta, leak_slope), ``sigma_rec``,
      ``sigma_inp``, ``constrained``, ``gamma``, ``equation_type``) or scalars in the file.
      Builds a rate-form `CTRNN` (``equation_type="h"``: the potential form); with a cubic
      leak ``gamma != 0``, a `FunctionModel` of
      ``(-y + f(W_rec y + W_inp u + b) - gamma y^3) / tau``.
    - ``"psychrnn"``: its saved weights ``W_rec``, ``W_in``, ``W_out``, ``b_rec``, ``b_out``,
      ``init_state``, ``Dale_rec``, ``Dale_out``, ``rec_connectivity``,
      ``input_connectivity``, ``output_connectivity``; ``alpha`` (or ``dt`` and ``tau``),
      ``dale_ratio``, ``rec_noise`` and ``activation`` (default relu) from ``config`` or the
      file. Builds a potential-form `CTRNN` (with ``alpha`` alone, tau = 100 and
      dt = 100 alpha).
    - ``"rnnlab"``: a file of `rnnlab.save` (loaded as it is), or the effective weights
      ``w_rec``, ``w_in``, ``w_out``, ``b_rec``, ``b_out`` (optional ``h0``, masks) with the
      model's configuration in a ``config`` entry (JSON text) or ``config=``.

    Dale's law and masks in the source become the model's constraints, checked, not trusted:
    a weight of the wrong sign for its unit, or non-zero where its mask is 0, is a ValueError
    naming the matrix and an offending entry. rnnlab's Dale networks number excitatory units
    first; a source that does not is refused with what to reorder.

    Args:
        path: the file.
        format: ``"trainrnnbrain"``, ``"psychrnn"``, ``"rnnlab"`` or None (detect).
        config: the source's configuration: a dict or the path of a JSON file.
        dt, tau: the time step and time constant, overriding config and file.
        activation: the activation's name, overriding config and file.
        **noise: noise levels overriding the source's, in its own terms: ``sigma_rec``,
            ``sigma_inp`` (trainRNNbrain), ``rec_noise`` (PsychRNN), ``noise_std``,
            ``input_noise_std`` (rnnlab).

    Returns: a `CTRNN` (a `FunctionModel` for trainRNNbrain's cubic leak; for rnnlab's own
    files, the saved model's class) whose outputs and Jacobians equal the source's update rule.
    """
    path = Path(path)
    if format is not None:
        if not isinstance(format, str) or format.strip().lower() not in _ALIASES:
            raise ValueError(f"format={format!r} is not known; use one of {FORMATS} (or None "
                             "to detect it from the file's entries)")
        format = _ALIASES[format.strip().lower()]
    allowed = {"trainrnnbrain": ("sigma_rec", "sigma_inp"), "psychrnn": ("rec_noise",),
               "rnnlab": ("noise_std", "input_noise_std")}
    arrays, meta = read_arrays(path)
    cfg = _config_from(config)
    if "json" in meta and FORMAT_KEY not in meta:  # objects of a JSON parameter file
        cfg = {**json.loads(meta["json"]), **cfg}
    fmt = format or _detect(arrays, meta)
    unknown = set(noise) - set(allowed[fmt])
    if unknown:
        raise TypeError(f"from_file got unknown options {sorted(unknown)}; the {fmt} format "
                        f"takes the noise levels {list(allowed[fmt])}")
    try:
        if fmt == "trainrnnbrain":
            return _trainrnnbrain(arrays, cfg, dt=dt, tau=tau, activation=activation,
                                  noise=noise)
        if fmt == "psychrnn":
            return _psychrnn(arrays, cfg, dt=dt, tau=tau, activation=activation, noise=noise)
        return _rnnlab(arrays, meta, cfg, dt=dt, tau=tau, activation=activation, noise=noise)
    except _UseLoad:
        from ..io import load

        return load(path)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None

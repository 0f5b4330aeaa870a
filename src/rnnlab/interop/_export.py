"""`export`: a network's weights and its equations, as plain text, in a .npz or MATLAB .mat file.

The file is meant to be read without rnnlab: numpy (``np.load``) or MATLAB / scipy
(``loadmat``). Besides the arrays it holds ``equations``: a plain-text description of one time
step that is, line for line, numpy code over the stored names (comments start with ``#``), so
what the text says is what the model computes (the tests execute it).
"""

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..io._safe import atomic_write_bytes
from ..models import CTRNN, GRU, LSTM, AbstractRNN, VanillaRNN

_SUFFIXES = (".npz", ".mat")

# rnnlab's activations in numpy, as the equations text writes them
_NUMPY_ACTIVATION = {
    "tanh": "np.tanh(z)",
    "relu": "np.maximum(z, 0.0)",
    "softplus": "np.logaddexp(0.0, z)",
    "sigmoid": "1.0 / (1.0 + np.exp(-z))",
    "retanh": "np.maximum(np.tanh(z), 0.0)",
    "leaky_relu": "np.where(z > 0, z, 0.01 * z)",
    "linear": "z",
}

_COMMON = """\
# One time step per input vector u (vectors are columns in the .mat file, 1-D in the .npz);
# '@' is the matrix product. A trial starts at x = h0; after each input u[t] the state is
# updated by the lines below and the output y computed from the new state
# (rnnlab's states[t] and outputs[t]).
"""


def _noise_text(model: AbstractRNN, recurrent: str) -> str:
    return (
        "# Noise (only in noisy simulations; xi ~ N(0, I) drawn afresh each step):\n"
        "#   u = u + input_noise_std * xi_in before the step;\n"
        f"#   {recurrent} after it.\n"
    )


def _equations(model: AbstractRNN) -> str:
    name = model.activation_name
    lines = [
        f"# rnnlab {type(model).__name__} (activation {name}), exported by rnnlab.export.",
    ]
    act = [f"f = lambda z: {_NUMPY_ACTIVATION[name]}",
           "sigmoid = lambda z: 1.0 / (1.0 + np.exp(-z))"]
    if isinstance(model, CTRNN):
        if model.form == "potential":
            lines += [
                "# Leaky CT-RNN, potential form: tau dx/dt = -x + w_rec f(x) + w_in u + b_rec,",
                "# integrated by Euler steps of dt (alpha = dt / tau, per unit); rates f(x).",
                _COMMON + _noise_text(model, "x = x + sqrt(2 * alpha) * noise_std * xi_rec"),
                *act,
                "alpha = dt / tau",
                "x = (1 - alpha) * x + alpha * (w_rec @ f(x) + w_in @ u + b_rec)",
                "y = w_out @ f(x) + b_out",
            ]
        else:
            lines += [
                "# Leaky CT-RNN, rate form: tau dr/dt = -r + f(w_rec r + w_in u + b_rec),",
                "# integrated by Euler steps of dt (alpha = dt / tau, per unit); the state is",
                "# the rates.",
                _COMMON + _noise_text(model, "x = x + sqrt(2 * alpha) * noise_std * xi_rec"),
                *act,
                "alpha = dt / tau",
                "x = (1 - alpha) * x + alpha * f(w_rec @ x + w_in @ u + b_rec)",
                "y = w_out @ x + b_out",
            ]
    elif isinstance(model, VanillaRNN):
        lines += [
            "# Discrete-time RNN (a map): h' = f(w_rec h + w_in u + b_rec).",
            _COMMON + _noise_text(model, "x = x + noise_std * xi_rec"),
            *act,
            "x = f(w_rec @ x + w_in @ u + b_rec)",
            "y = w_out @ x + b_out",
        ]
    elif isinstance(model, GRU):
        lines += [
            "# Gated recurrent unit (PyTorch's nn.GRU): gate blocks of H rows, in the order",
            "# reset r, update z, candidate n; h' = (1 - z) n + z h.",
            _COMMON + _noise_text(model, "x = x + noise_std * xi_rec"),
            *act,
            "H = w_rec.shape[1]",
            "gi = w_in @ u + b_in",
            "gh = w_rec @ x + b_rec",
            "r = sigmoid(gi[:H] + gh[:H])",
            "z = sigmoid(gi[H:2 * H] + gh[H:2 * H])",
            "n = f(gi[2 * H:] + r * gh[2 * H:])",
            "x = (1 - z) * n + z * x",
            "y = w_out @ x + b_out",
        ]
    elif isinstance(model, LSTM):
        lines += [
            "# Long short-term memory (PyTorch's nn.LSTM): gate blocks of H rows, in the order",
            "# input i, forget g_f, cell g_c, output o; the state x is h stacked on c.",
            _COMMON + _noise_text(model, "x = x + noise_std * xi_rec (both h and c)"),
            *act,
            "H = w_rec.shape[1]",
            "h, c = x[:H], x[H:]",
            "g = w_in @ u + b_in + w_rec @ h + b_rec",
            "i, g_f, g_c, o = sigmoid(g[:H]), sigmoid(g[H:2 * H]), f(g[2 * H:3 * H]), "
            "sigmoid(g[3 * H:])",
            "c = g_f * c + i * g_c",
            "h = o * f(c)",
            "x = np.concatenate([h, c])",
            "y = w_out @ h + b_out",
        ]
    return "\n".join(lines) + "\n"


def _arrays(model: AbstractRNN) -> dict[str, np.ndarray]:
    out = {k: np.asarray(v, np.float64) for k, v in model.effective_weights().items()}
    out["h0"] = np.asarray(model.initial_state(), np.float64)
    out["noise_std"] = np.asarray(float(np.asarray(model.noise_std)))
    out["input_noise_std"] = np.asarray(float(np.asarray(model.input_noise_std)))
    out["dt"] = np.asarray(float(model.dt))
    if isinstance(model, CTRNN):
        out["tau"] = np.asarray(model.tau, np.float64)
    return out


def export(model: AbstractRNN, path: str | Path) -> Path:
    """Write ``model`` to ``path`` (``.npz`` or MATLAB ``.mat``) for use outside rnnlab.

    The file holds the effective weights (constraints applied) under rnnlab's names: ``w_rec``
    [N, N] (gated models: [G N, N], gate blocks stacked by rows as PyTorch does), ``w_in``,
    ``w_out`` [n_out, N], ``b_rec``, ``b_out`` (gated models also ``b_in``), the initial state
    ``h0``, ``dt``, ``tau`` (CT-RNN, per unit), ``noise_std``, ``input_noise_std``, and the
    strings ``equations`` (one time step as plain text, numpy syntax over these names),
    ``model`` (the class), ``activation`` and ``config`` (rnnlab's JSON configuration).
    Float64 arrays; in the .mat file vectors are columns. The write is atomic.

    Exports `CTRNN`, `VanillaRNN`, `GRU`, `LSTM` with a named activation. Returns the path.
    """
    path = Path(path)
    if path.suffix.lower() not in _SUFFIXES:
        raise ValueError(
            f"path must end in .npz or .mat (the format is chosen by the suffix), got {path.name!r}"
        )
    if not isinstance(model, (CTRNN, VanillaRNN, GRU, LSTM)):
        raise TypeError(
            f"export writes CTRNN, VanillaRNN, GRU and LSTM networks; got {type(model).__name__}"
        )
    if model.activation_name is None:
        raise ValueError(
            "export needs a named activation (the file describes it in text); this model uses "
            "a custom callable"
        )
    contents: dict[str, Any] = _arrays(model)
    contents["equations"] = np.asarray(_equations(model))
    contents["model"] = np.asarray(type(model).__name__)
    contents["activation"] = np.asarray(model.activation_name)
    contents["config"] = np.asarray(json.dumps(model.config(), sort_keys=True))
    buffer = io.BytesIO()
    if path.suffix.lower() == ".npz":
        np.savez(buffer, **contents)
    else:
        from scipy.io import savemat

        savemat(buffer, contents, oned_as="column")
    atomic_write_bytes(path, buffer.getvalue())
    return path

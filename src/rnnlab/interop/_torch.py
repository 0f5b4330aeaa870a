"""PyTorch modules in and out of rnnlab: `from_torch` and `to_torch` (torch imported lazily).

Import reads the parameters of a module (never a pickle) and builds the rnnlab model with the
same update rule, so that its outputs, Jacobians and fixed points are the module's:

=============================  ==========================================================
module                         rnnlab model
=============================  ==========================================================
``nn.RNN`` (tanh / relu)       `VanillaRNN`: h' = f(W_ih u + b_ih + W_hh h + b_hh)
``nn.GRU``                     `GRU` (gates r, z, n; both biases, PyTorch layout)
``nn.LSTM``                    `LSTM` (gates i, f, g, o; state concat(h, c))
``nn.RNNCell`` / ``GRUCell`` /  the same models (one step of the cell is one step)
``LSTMCell``
trainRNNbrain ``RNN_torch``    `CTRNN`, rate form (its update s' = s + alpha (-s +
                               f(W_rec s + W_inp (u + n_in) + b) + n_rec))
pyrnn ``RNN``                  `VanillaRNN` (h' = tanh(w_rec(h) + w_in(u)), y = w_out(h))
rnnlab's own `to_torch`        the model it came from
=============================  ==========================================================

PyTorch's recurrent layers have no readout: their output is the hidden state, so by default the
imported model reads out h itself (``W_out = I``, ``n_out = n_hidden``) and its outputs equal
the module's; pass ``readout=`` an ``nn.Linear`` to read out through it instead.
``batch_first`` only changes how the module is called, not its weights: `to_torch` gives a
module with the layout you ask for.
"""

import functools
import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..models import CTRNN, GRU, LSTM, AbstractRNN, FunctionModel, VanillaRNN
from ..models._activations import ACTIVATIONS, can_be_negative

_INSTALL = (
    "PyTorch is needed for this; install it with `pip install 'rnnlab[torch]'` (or the CPU "
    "wheel: `pip install torch --index-url https://download.pytorch.org/whl/cpu`)"
)


def _torch():
    try:
        import torch
    except ImportError as e:
        raise ImportError(_INSTALL) from e
    return torch


def _np(t: Any) -> np.ndarray:
    """A float64 numpy copy of a tensor (or array, or number)."""
    if hasattr(t, "detach"):
        t = t.detach().cpu()
        if t.dtype.is_floating_point:
            t = t.double()
        return t.numpy().copy()
    return np.asarray(t, dtype=np.float64)


# ---------------------------------------------------------------------------- activations


def _torch_activations() -> dict[str, Callable]:
    """rnnlab's named activations written with torch functions (same numbers)."""
    torch = _torch()
    F = torch.nn.functional
    return {
        "tanh": torch.tanh,
        "relu": torch.relu,
        "softplus": F.softplus,
        "sigmoid": torch.sigmoid,
        "retanh": lambda x: torch.clamp(torch.tanh(x), min=0.0),
        "leaky_relu": lambda x: F.leaky_relu(x, 0.01),
        "linear": lambda x: x,
    }


def _identify_activation(fn: Callable, where: str) -> str:
    """The rnnlab name of a torch activation callable, found by evaluating it on a grid."""
    torch = _torch()
    grid = torch.linspace(-6.0, 6.0, 241, dtype=torch.float64)
    try:
        with torch.no_grad():
            values = _np(fn(grid))
    except Exception as e:  # noqa: BLE001 - any failure means "cannot identify"
        raise ValueError(
            f"could not evaluate {where} on a test tensor ({e}); pass activation= (one of "
            f"{sorted(ACTIVATIONS)} or a JAX callable)"
        ) from None
    for name, ref in _torch_activations().items():
        with torch.no_grad():
            if values.shape == grid.shape and np.allclose(values, _np(ref(grid)), atol=1e-6):
                return name
    raise ValueError(
        f"{where} is not one of rnnlab's activations {sorted(ACTIVATIONS)} (compared on "
        "[-6, 6]); pass activation= with a JAX function that computes the same thing"
    )


# ---------------------------------------------------------------------------- import


def _readout(readout: Any, n_hidden: int) -> tuple[np.ndarray, np.ndarray]:
    """(W_out, b_out) of an ``nn.Linear`` readout, or the identity (outputs = hidden state)."""
    if readout is None:
        return np.eye(n_hidden), np.zeros(n_hidden)
    torch = _torch()
    if not isinstance(readout, torch.nn.Linear):
        raise TypeError(
            f"readout must be a torch.nn.Linear (or None for the hidden state itself), got "
            f"{type(readout).__name__}"
        )
    w = _np(readout.weight)
    if w.shape[1] != n_hidden:
        raise ValueError(
            f"readout takes {w.shape[1]} features but the network has {n_hidden} hidden units"
        )
    b = _np(readout.bias) if readout.bias is not None else np.zeros(w.shape[0])
    return w, b


def _check_recurrent_layer(module: Any, name: str) -> None:
    if module.num_layers != 1:
        raise ValueError(
            f"{name} has num_layers={module.num_layers}; from_torch imports single-layer "
            "networks (the analysis needs one state); import each layer's weights separately"
        )
    if module.bidirectional:
        raise ValueError(f"{name} is bidirectional, which is not a dynamical system forward "
                         "in time; import a unidirectional layer")
    if getattr(module, "proj_size", 0):
        raise ValueError(f"{name} has proj_size={module.proj_size}; only proj_size=0 is supported")


def _layer_weights(module: Any) -> dict[str, np.ndarray]:
    """The weights of a layer (``weight_ih_l0``, ...) or a cell (``weight_ih``, ...)."""
    sfx = "" if hasattr(module, "weight_ih") else "_l0"
    g = getattr(module, "weight_ih" + sfx).shape[0]
    bias = getattr(module, "bias_ih" + sfx, None)
    return {
        "w_in": _np(getattr(module, "weight_ih" + sfx)),
        "w_rec": _np(getattr(module, "weight_hh" + sfx)),
        "b_in": _np(bias) if bias is not None else np.zeros(g),
        "b_rec": _np(getattr(module, "bias_hh" + sfx)) if bias is not None else np.zeros(g),
        "h": module.hidden_size,
    }


def _from_rnn(module: Any, readout: Any, kwargs: dict) -> VanillaRNN:
    if not hasattr(module, "weight_ih"):  # a layer, not a cell
        _check_recurrent_layer(module, "nn.RNN")
    w = _layer_weights(module)
    w_out, b_out = _readout(readout, w["h"])
    kwargs.setdefault("activation", module.nonlinearity)
    return VanillaRNN.from_weights(w["w_rec"], w["w_in"], w_out, w["b_in"] + w["b_rec"], b_out,
                                   **kwargs)


def _from_gated(cls: type, module: Any, readout: Any, kwargs: dict) -> AbstractRNN:
    if not hasattr(module, "weight_ih"):
        _check_recurrent_layer(module, f"nn.{cls.__name__}")
    w = _layer_weights(module)
    w_out, b_out = _readout(readout, w["h"])
    return cls.from_weights(w["w_in"], w["w_rec"], w_out, w["b_in"], w["b_rec"], b_out,
                            **kwargs)


def _attr_value(module: Any, name: str) -> Any:
    value = getattr(module, name)
    return float(_np(value)) if hasattr(value, "detach") else value


def _trainrnnbrain_activation(module: Any, kwargs: dict) -> tuple[str | Callable, float]:
    """(activation, slope) of a trainRNNbrain module: its ``activation_args`` (newer) or its
    ``activation`` callable (older, identified on a grid)."""
    if "activation" in kwargs:
        return kwargs.pop("activation"), 1.0
    args = getattr(module, "activation_args", None)
    if isinstance(args, dict) and "name" in args:
        name, slope = args["name"], float(args.get("slope", 1.0))
        if name == "softplus" and float(args.get("beta", 1.0)) != 1.0:
            beta = float(args["beta"])
            return (lambda x: jax.nn.softplus(beta * x) / beta), slope
        if name == "leaky_relu":
            leak = float(args.get("leak_slope", 0.01)) / slope if slope else 0.0
            if leak == 0.01:
                return "leaky_relu", slope
            return (lambda x: jnp.where(x > 0, x, leak * x)), slope
        if name not in ACTIVATIONS:
            raise ValueError(f"trainRNNbrain activation {name!r} is not known; pass activation=")
        return name, slope
    return _identify_activation(module.activation, "the module's activation"), 1.0


def _dale_sign(mask: Any, n: int) -> np.ndarray | None:
    """The presynaptic signs [n] of a trainRNNbrain Dale mask (a sign vector, or the sign matrix
    of W_rec in older versions), or None."""
    if mask is None:
        return None
    m = _np(mask)
    if m.ndim == 2:  # sign(W_rec): each column one sign (zeros where there is no connection)
        signs = np.zeros(n)
        for j in range(n):
            col = m[:, j][m[:, j] != 0]
            if col.size and not (np.all(col > 0) or np.all(col < 0)):
                raise ValueError(f"the module's dale_mask gives unit {j} both signs")
            signs[j] = col[0] if col.size else 1.0
        return np.sign(signs)
    return np.sign(m.reshape(n))


def _from_trainrnnbrain(module: Any, kwargs: dict) -> CTRNN | FunctionModel:
    needs = (("W_rec", "W_inp", "W_out") if hasattr(module, "W_rec")
             else ("recurrent_layer", "input_layer", "output_layer"))
    missing = [name for name in needs if not hasattr(module, name)]
    if missing:
        raise TypeError(
            f"{type(module).__name__} has dt, tau and {needs[0]} like trainRNNbrain's RNN_torch "
            f"but no {', '.join(missing)}; build the model from its weights with "
            "rnnlab.CTRNN.from_weights"
        )
    if hasattr(module, "W_rec"):
        w_rec, w_in, w_out = _np(module.W_rec), _np(module.W_inp), _np(module.W_out)
        bias = getattr(module, "bias", None)
        amp = getattr(module, "bias_init_amp", None)
        use_bias = (bias is not None and amp is not None
                    and abs(_attr_value(module, "bias_init_amp")) >= 1e-8)
        b = _np(bias) if use_bias else np.zeros(w_rec.shape[0])
    else:  # older versions: three nn.Linear layers
        w_rec = _np(module.recurrent_layer.weight)
        w_in = _np(module.input_layer.weight)
        w_out = _np(module.output_layer.weight)
        rb = module.recurrent_layer.bias
        b = _np(rb) if rb is not None else np.zeros(w_rec.shape[0])
    n = w_rec.shape[0]
    equation = str(getattr(module, "equation_type", "s")).lower()
    if equation != "s":
        raise ValueError(
            f"equation_type={equation!r}: from_torch reads trainRNNbrain's 's' (rate) form; "
            "save the module's parameters (get_params) and use rnnlab.from_file"
        )
    gamma = float(_attr_value(module, "gamma")) if hasattr(module, "gamma") else 0.0
    activation, slope = _trainrnnbrain_activation(module, kwargs)
    if slope != 1.0:  # f(slope * z) with z linear in (s, u, b): fold the slope into the weights
        if slope <= 0:
            raise ValueError(f"activation slope must be > 0, got {slope}")
        w_rec, w_in, b = slope * w_rec, slope * w_in, slope * b
    dt = float(_attr_value(module, "dt"))
    tau = float(_attr_value(module, "tau"))
    alpha = dt / tau
    sigma_rec = float(_attr_value(module, "sigma_rec")) if hasattr(module, "sigma_rec") else 0.0
    sigma_inp = float(_attr_value(module, "sigma_inp")) if hasattr(module, "sigma_inp") else 0.0
    y_init = getattr(module, "y_init", None)
    h0 = _np(y_init).reshape(n) if y_init is not None else np.zeros(n)

    options: dict[str, Any] = dict(
        form="rate", activation=activation, dt=dt, tau=tau, noise_std=sigma_rec,
        # its input noise is sqrt(2 / alpha) sigma_inp xi, added to u
        input_noise_std=math.sqrt(2.0 / alpha) * sigma_inp, initial_state=h0,
    )
    sign = _dale_sign(getattr(module, "dale_mask", None), n)
    dale = kwargs.pop("dale", sign is not None)
    if dale and sign is not None:
        n_exc = int(np.sum(sign > 0))
        if not (np.all(sign[:n_exc] > 0) and np.all(sign[n_exc:] < 0)):
            raise ValueError(
                "the module's dale_mask does not list its excitatory units first; rnnlab's Dale "
                "networks do (pass dale=False to import the weights without the constraint)"
            )
        options.update(dale=True, excitatory_fraction=n_exc / n)
        if can_be_negative(activation):  # trainRNNbrain allows Dale networks with tanh
            options["allow_negative_rates"] = True
        # its constrained networks also keep W_inp, W_out >= 0 (checked like the rest)
        options.update(nonnegative_inputs=True, nonnegative_outputs=True)
    masks = {"w_rec_mask": "recurrent_mask", "w_in_mask": "input_mask",
             "w_out_mask": "output_mask"}
    for ours, theirs in masks.items():
        m = getattr(module, theirs, None)
        if m is None or ours in kwargs:
            continue
        m = _np(m) != 0
        if ours == "w_rec_mask" and np.array_equal(m, ~np.eye(n, dtype=bool)):
            options["autapses"] = False  # its usual mask: no self-connections
        elif not m.all():
            options[ours] = m
    options.update(kwargs)
    model = CTRNN.from_weights(w_rec, w_in, w_out, b, None, **options)  # constraints checked
    return model if gamma == 0.0 else _cubic_leak_model(model, gamma)


class _CubicLeakField(eqx.Module):
    """trainRNNbrain's vector field with its cubic leak, ``ds/dt = (-s + f(W_rec s + W_inp u' +
    b) + n_rec - gamma s^3) / tau``, a pytree callable for `FunctionModel` (its arrays are
    leaves, so the analysis can run in float64). With a key, ``u' = u + in_scale xi_in`` and
    ``n_rec = rec_scale xi_rec`` (``sqrt(2 / alpha) sigma``, as trainRNNbrain draws them)."""

    w_rec: jax.Array
    w_in: jax.Array
    b: jax.Array
    w_out: jax.Array
    tau: jax.Array
    gamma: float = eqx.field(static=True)
    in_scale: float = eqx.field(static=True)
    rec_scale: float = eqx.field(static=True)
    activation: Callable = eqx.field(static=True)

    def __call__(self, s, u, *, key=None):
        noise = 0.0
        if key is not None and (self.in_scale or self.rec_scale):
            k_in, k_rec = jax.random.split(key)
            u = u + self.in_scale * jax.random.normal(k_in, u.shape, u.dtype)
            noise = self.rec_scale * jax.random.normal(k_rec, s.shape, s.dtype)
        drive = self.activation(self.w_rec @ s + self.w_in @ u + self.b)
        return (-s + drive + noise - self.gamma * s**3) / self.tau

    def readout(self, s):
        return self.w_out @ s


def _cubic_leak_model(model: CTRNN, gamma: float) -> FunctionModel:
    """A `FunctionModel` of trainRNNbrain's update with ``gamma != 0`` (its constraints were
    checked on ``model``, the same network without the cubic term)."""
    w = model.effective_weights()
    alpha = np.asarray(model.alpha, np.float64)
    field = _CubicLeakField(
        w_rec=w["w_rec"], w_in=w["w_in"], b=w["b_rec"], w_out=w["w_out"], tau=model.tau,
        gamma=gamma,
        in_scale=float(np.asarray(model.input_noise_std)),
        rec_scale=float(np.sqrt(2.0 / alpha[0]) * float(np.asarray(model.noise_std))),
        activation=model.activation,
    )
    return FunctionModel(vector_field=field, state_size=model.n_hidden, n_in=model.n_in,
                         readout=field.readout, dt=model.dt,
                         initial_state=np.asarray(model.initial_state()))


def _from_pyrnn(module: Any, kwargs: dict) -> VanillaRNN:
    w_rec = _np(module.w_rec.weight)
    b = _np(module.w_rec.bias) if module.w_rec.bias is not None else np.zeros(w_rec.shape[0])
    if module.w_in.bias is not None:
        b = b + _np(module.w_in.bias)
    w_out = _np(module.w_out.weight)
    b_out = _np(module.w_out.bias) if module.w_out.bias is not None else np.zeros(w_out.shape[0])
    if "activation" not in kwargs:
        kwargs["activation"] = _identify_activation(module.activation, "the module's activation")
    return VanillaRNN.from_weights(w_rec, _np(module.w_in.weight), w_out, b, b_out, **kwargs)


def from_torch(module: Any, *, readout: Any = None, **kwargs: Any) -> AbstractRNN:
    """The rnnlab model of a PyTorch recurrent module, with the same outputs.

    Args:
        module: ``torch.nn.RNN`` (tanh or relu), ``nn.GRU``, ``nn.LSTM`` (single layer,
            unidirectional; both biases; ``batch_first`` either way), their cells
            (``nn.RNNCell``, ``nn.GRUCell``, ``nn.LSTMCell``), a trainRNNbrain
            ``RNN_torch`` (recognised by ``W_rec``/``W_inp``/``W_out`` or its
            ``recurrent_layer``/``input_layer``/``output_layer`` with ``dt`` and ``tau``), a
            pyrnn ``RNN`` (``w_in``/``w_rec``/``w_out`` linear layers), or a module made by
            `to_torch`.
        readout: for ``nn.RNN``/``GRU``/``LSTM`` and their cells, an ``nn.Linear`` applied to
            the hidden state (default: none, the outputs are the hidden state, as the module
            returns it).
        **kwargs: passed to the model's ``from_weights`` (for example ``dt``, constraints to
            check such as ``autapses=False``, ``trainable``); ``activation=`` overrides what is
            read from the module.

    A trainRNNbrain network becomes a rate-form `CTRNN` (or, when its cubic leak ``gamma`` is
    not 0, a `FunctionModel` of its vector field, ``-s + f(...) - gamma s^3``) with its ``dt``, ``tau``, bias,
    ``y_init``, noise (``noise_std = sigma_rec``; its input noise ``sqrt(2 / alpha) sigma_inp``
    becomes ``input_noise_std``), masks (``recurrent_mask``, ``input_mask``, ``output_mask``)
    and Dale mask (excitatory units first), all checked against the weights; an activation
    ``slope`` is folded into ``W_rec``, ``W_inp`` and the bias (``f(k z)`` with z linear). Its
    trajectory starts at ``y_init`` and the module returns that first state too, so the
    module's ``states[:, t + 1]`` is rnnlab's ``states[t]``.

    Raises ``ImportError`` without torch, ``TypeError`` for a module it does not know, and
    ``ValueError`` (naming the reason) for what the rnnlab model cannot express.
    """
    torch = _torch()
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"from_torch takes a torch.nn.Module, got {type(module).__name__}")
    kwargs = dict(kwargs)
    own = getattr(module, "rnnlab_model", None)
    if callable(own):
        if readout is not None or kwargs:
            raise ValueError("a module made by to_torch carries its model; pass no other options")
        return own()
    if isinstance(module, (torch.nn.RNN, torch.nn.RNNCell)):
        return _from_rnn(module, readout, kwargs)
    if isinstance(module, (torch.nn.GRU, torch.nn.GRUCell)):
        return _from_gated(GRU, module, readout, kwargs)
    if isinstance(module, (torch.nn.LSTM, torch.nn.LSTMCell)):
        return _from_gated(LSTM, module, readout, kwargs)
    if readout is not None:
        raise ValueError("readout= applies to nn.RNN, nn.GRU and nn.LSTM; this module has its own")
    if hasattr(module, "dt") and hasattr(module, "tau") and (
        hasattr(module, "W_rec") or hasattr(module, "recurrent_layer")
    ):
        return _from_trainrnnbrain(module, kwargs)
    linear = torch.nn.Linear
    if all(isinstance(getattr(module, n, None), linear) for n in ("w_in", "w_rec", "w_out")):
        return _from_pyrnn(module, kwargs)
    raise TypeError(
        f"from_torch does not know {type(module).__name__}: it reads nn.RNN, nn.GRU, nn.LSTM, "
        "trainRNNbrain's RNN_torch, pyrnn's RNN and modules made by rnnlab.to_torch. For "
        "another network, build the rnnlab model from its weights (rnnlab.CTRNN.from_weights, "
        "VanillaRNN/GRU/LSTM.from_weights) or wrap its update in rnnlab.FunctionModel"
    )


# ---------------------------------------------------------------------------- export


@functools.cache
def _module_classes() -> dict[str, type]:
    """The torch module classes of `to_torch` (defined on first use: torch is optional)."""
    torch = _torch()
    nn = torch.nn

    class _Exported(nn.Module):
        """What every module made by `to_torch` shares: the readout, the batch layout, the
        way back to rnnlab."""

        def _setup(self, model: AbstractRNN, batch_first: bool) -> None:
            self.batch_first = batch_first
            self._model = model  # the rnnlab model, for from_torch (exact round trip)
            w = model.effective_weights()
            self.readout = nn.Linear(model.n_hidden, model.n_out)
            with torch.no_grad():
                self.readout.weight.copy_(torch.from_numpy(np.array(w["w_out"])))
                self.readout.bias.copy_(torch.from_numpy(np.array(w["b_out"])))
            self.register_buffer("h0", torch.from_numpy(np.array(model.initial_state())))

        def rnnlab_model(self) -> AbstractRNN:
            """The rnnlab model with this module's current parameters."""
            return _model_from_module(self)

        def _layout(self, inputs: Any) -> tuple[Any, bool]:
            """inputs as [batch, time, n_in], and whether they were unbatched."""
            if inputs.dim() == 2:
                return inputs.unsqueeze(0), True
            if inputs.dim() != 3:
                raise ValueError(f"inputs must be 2-D or 3-D, got shape {tuple(inputs.shape)}")
            return (inputs if self.batch_first else inputs.transpose(0, 1)), False

        def _out(self, tensor: Any, unbatched: bool) -> Any:
            if unbatched:
                return tensor[0]
            return tensor if self.batch_first else tensor.transpose(0, 1)

    class CTRNNModule(_Exported):
        """rnnlab's CT-RNN (Euler steps) in PyTorch: ``forward(inputs, h0=None, noise=False,
        generator=None) -> (outputs, states)``, ``states[t]`` the state after ``inputs[t]``."""

        def __init__(self, model: CTRNN, batch_first: bool):
            super().__init__()
            self._setup(model, batch_first)
            w = model.effective_weights()
            t = lambda a: nn.Parameter(torch.from_numpy(np.array(a)))  # noqa: E731
            self.W_rec, self.W_in, self.b_rec = t(w["w_rec"]), t(w["w_in"]), t(w["b_rec"])
            self.register_buffer("alpha", torch.from_numpy(np.array(model.alpha)))
            self.form = model.form
            self.activation_name = model.activation_name
            self.activation = _torch_activations()[model.activation_name]
            self.noise_std = float(np.asarray(model.noise_std))
            self.input_noise_std = float(np.asarray(model.input_noise_std))

        def step(self, x: Any, u: Any) -> Any:
            """One noise-free Euler step, x [..., N], u [..., n_in]."""
            proj = u @ self.W_in.T + self.b_rec
            if self.form == "potential":
                drive = self.activation(x) @ self.W_rec.T + proj
            else:
                drive = self.activation(x @ self.W_rec.T + proj)
            return (1 - self.alpha) * x + self.alpha * drive

        def forward(self, inputs, h0=None, noise=False, generator=None):
            u, unbatched = self._layout(inputs)
            x = (self.h0 if h0 is None else h0).to(u.dtype).expand(u.shape[0], -1)
            states = []
            for k in range(u.shape[1]):
                uk = u[:, k]
                if noise and self.input_noise_std:
                    uk = uk + self.input_noise_std * torch.randn(
                        uk.shape, generator=generator, dtype=u.dtype)
                x = self.step(x, uk)
                if noise and self.noise_std:
                    x = x + torch.sqrt(2 * self.alpha) * self.noise_std * torch.randn(
                        x.shape, generator=generator, dtype=u.dtype)
                states.append(x)
            states = torch.stack(states, 1)
            rates = self.activation(states) if self.form == "potential" else states
            return self._out(self.readout(rates), unbatched), self._out(states, unbatched)

    class LayerModule(_Exported):
        """An ``nn.RNN``/``nn.GRU``/``nn.LSTM`` layer (attribute ``layer``) and a linear
        readout: ``forward(inputs, h0=None) -> (outputs, states)``; for an LSTM the states are
        concat(h, c), as in rnnlab."""

        def __init__(self, model: AbstractRNN, batch_first: bool):
            super().__init__()
            self._setup(model, batch_first)
            w = {k: np.asarray(v) for k, v in model.effective_weights().items()}
            n_in, n = model.n_in, model.n_hidden
            if isinstance(model, VanillaRNN):
                self.layer = nn.RNN(n_in, n, nonlinearity=model.activation_name,
                                    batch_first=True)
                b_in, b_rec = w["b_rec"], np.zeros_like(w["b_rec"])
            else:
                layer_cls = nn.GRU if isinstance(model, GRU) else nn.LSTM
                self.layer = layer_cls(n_in, n, batch_first=True)
                b_in, b_rec = w["b_in"], w["b_rec"]
            self.is_lstm = isinstance(model, LSTM)
            with torch.no_grad():
                for name, value in (("weight_ih_l0", w["w_in"]), ("weight_hh_l0", w["w_rec"]),
                                    ("bias_ih_l0", b_in), ("bias_hh_l0", b_rec)):
                    getattr(self.layer, name).copy_(torch.from_numpy(np.array(value)))

        def forward(self, inputs, h0=None):
            u, unbatched = self._layout(inputs)
            n = self.layer.hidden_size
            s0 = (self.h0 if h0 is None else h0).to(u.dtype)
            s0 = s0.expand(u.shape[0], -1)
            if self.is_lstm:
                start = (s0[:, :n].unsqueeze(0).contiguous(), s0[:, n:].unsqueeze(0).contiguous())
                hs, cs = [], []
                state = start
                for k in range(u.shape[1]):  # c of every step, which nn.LSTM does not return
                    out, state = self.layer(u[:, k : k + 1], state)
                    hs.append(state[0][0])
                    cs.append(state[1][0])
                h_all = torch.stack(hs, 1)
                states = torch.cat([h_all, torch.stack(cs, 1)], -1)
            else:
                h_all, _ = self.layer(u, s0.unsqueeze(0).contiguous())
                states = h_all
            return self._out(self.readout(h_all), unbatched), self._out(states, unbatched)

    return {"CTRNNModule": CTRNNModule, "LayerModule": LayerModule}


def _model_from_module(module: Any) -> AbstractRNN:
    """The rnnlab model of a module made by `to_torch`, with the module's current parameters
    (the structure and constraints come from the model it was made from)."""
    import equinox as eqx

    model = module._model
    if isinstance(model, CTRNN):
        w = {"w_rec": module.W_rec, "w_in": module.W_in, "b_rec": module.b_rec}
    else:
        layer = module.layer
        w = {"w_in": layer.weight_ih_l0, "w_rec": layer.weight_hh_l0}
        if isinstance(model, VanillaRNN):
            w["b_rec"] = _np(layer.bias_ih_l0) + _np(layer.bias_hh_l0)
        else:
            w["b_in"], w["b_rec"] = layer.bias_ih_l0, layer.bias_hh_l0
    w["w_out"], w["b_out"] = module.readout.weight, module.readout.bias
    w = {k: _np(v) for k, v in w.items()}
    same = all(np.array_equal(w[k], np.asarray(v, np.float64))
               for k, v in model.effective_weights().items() if k in w)
    if same:
        return model  # unchanged since export: the very model (exact round trip)
    if isinstance(model, CTRNN):
        try:
            return CTRNN.from_weights(
                w["w_rec"], w["w_in"], w["w_out"], w["b_rec"], w["b_out"],
                **{k: v for k, v in model.config().items()
                   if k not in ("n_in", "n_hidden", "n_out")},
                initial_state=np.asarray(model.initial_state()),
            )
        except ValueError as e:
            raise ValueError(
                f"the module's parameters no longer satisfy the constraints of the model it was "
                f"exported from (torch training does not keep them): {e}"
            ) from None
    f32 = lambda a: jnp.asarray(a, dtype=jnp.float32)  # noqa: E731
    names = tuple(w)
    return eqx.tree_at(lambda m: tuple(getattr(m, k) for k in names), model,
                       tuple(f32(w[k]) for k in names))


def to_torch(model: AbstractRNN, *, batch_first: bool = True) -> Any:
    """A PyTorch ``nn.Module`` computing what ``model`` computes (float32 parameters).

    - `CTRNN` (both forms, per-unit ``tau``, named activations): a module with parameters
      ``W_rec``, ``W_in``, ``b_rec`` (the effective weights) and ``readout`` (``nn.Linear``),
      buffers ``alpha`` and ``h0``, stepping ``x' = (1 - alpha) x + alpha drive`` as rnnlab;
      ``forward(inputs, h0=None, noise=False, generator=None)`` (noise ``sqrt(2 alpha)
      noise_std``, input noise ``input_noise_std``, drawn by torch).
    - `VanillaRNN` (tanh, relu), `GRU`, `LSTM` (tanh): torch's own ``nn.RNN``/``nn.GRU``/
      ``nn.LSTM`` as ``module.layer`` (the vanilla bias as ``bias_ih_l0``, ``bias_hh_l0 =
      0``) and ``readout``; ``forward(inputs, h0=None)``.

    Every module returns ``(outputs, states)`` for inputs [batch, time, n_in]
    (``batch_first=True``, default) or [time, batch, n_in], or unbatched [time, n_in];
    ``states[t]`` is the state after ``inputs[t]`` (rnnlab's `simulate` convention; an LSTM's
    state is concat(h, c)). ``rnnlab.from_torch(module)`` gives the model back (the same object
    while the parameters are unchanged). Constraints are exported as the effective weights;
    training the module in torch does not keep them.
    """
    if not isinstance(batch_first, bool):
        raise TypeError(f"batch_first must be True or False, got {batch_first!r}")
    classes = _module_classes()
    if isinstance(model, CTRNN):
        if model.activation_name is None:
            raise ValueError(
                "to_torch needs a named activation; this CTRNN uses a custom callable, which "
                "has no torch counterpart"
            )
        return classes["CTRNNModule"](model, batch_first)
    if isinstance(model, VanillaRNN):
        if model.activation_name not in ("tanh", "relu"):
            raise ValueError(
                f"to_torch: nn.RNN has tanh and relu; this VanillaRNN uses "
                f"{model.activation_name or 'a custom activation'}"
            )
        return classes["LayerModule"](model, batch_first)
    if isinstance(model, (GRU, LSTM)):
        if model.activation_name != "tanh":
            raise ValueError(
                f"to_torch: nn.{type(model).__name__} uses tanh; this model uses "
                f"{model.activation_name or 'a custom activation'}"
            )
        return classes["LayerModule"](model, batch_first)
    raise TypeError(
        f"to_torch exports CTRNN, VanillaRNN, GRU and LSTM; got {type(model).__name__}"
    )

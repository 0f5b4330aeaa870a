"""The leaky continuous-time RNN (CT-RNN) with exact biological constraints."""

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._random import normal
from .._validate import ArrayInput, positive_number
from . import _network as nw
from ._activations import (
    DALE_DEFAULT_ACTIVATION,
    DEFAULT_GAIN,
    NONNEGATIVE_ACTIVATIONS,
    can_be_negative,
)
from ._base import has_noise, register_model
from ._ctrnn_fast import affine_rows, ctrnn_unroll_batch, potential_euler, rate_euler
from ._network import AbstractMaskedNetwork, Noise

_WEIGHT_NAMES = ("w_rec", "w_in", "w_out", "b_rec", "b_out")
_TRAINABLE_NAMES = frozenset(_WEIGHT_NAMES + ("tau", "h0"))
_DEFAULT_TRAINABLE = _WEIGHT_NAMES
_FORMS = ("potential", "rate")

@register_model
class CTRNN(AbstractMaskedNetwork):
    r"""Leaky continuous-time RNN, integrated with the Euler method.

    Two forms (``form``):

    - ``"potential"`` (default; state x is a membrane potential / synaptic current, rates f(x))::

          tau dx/dt = -x + W_rec f(x) + W_in u + b_rec
          y = W_out f(x) + b_out

    - ``"rate"`` (state r is the firing rate itself)::

          tau dr/dt = -r + f(W_rec r + W_in u + b_rec)
          y = W_out r + b_out

    The Euler step with ``alpha = dt / tau`` (per unit when ``tau`` is a vector) and noise is,
    exactly (shown for the potential form; the rate form is the same with
    ``W_rec f(x) + W_in u' + b`` replaced by ``f(W_rec r + W_in u' + b)``)::

        u'     = u + input_noise_std * xi_in              xi_in  ~ N(0, I_{n_in})
        x[t+1] = (1 - alpha) * x[t] + alpha * (W_rec f(x[t]) + W_in u'[t] + b_rec)
                 + sqrt(2 * alpha) * noise_std * xi_rec   xi_rec ~ N(0, I_{n_hidden})

    The ``sqrt(2 alpha)`` scaling (PsychRNN, Yang et al. 2019) keeps the stationary variance of
    the recurrent noise independent of ``dt``. Noise is drawn only when a ``key`` is given, by
    `rnnlab._random.normal` as the training path draws it (see `unroll_batch`): `step`,
    `unroll`, `rnnlab.simulate` and `rnnlab.train` see the same noise for the same key. The
    noise levels are data (float32 scalars, never trained), so networks that differ only in
    them stack into one ensemble.

    Constraints are a parametrisation: the trainable leaves are free, and the effective weights
    (``effective_weights()``) are derived from them in every computation, so no optimiser step
    can break them:

    - ``dale=True``: the first ``round(excitatory_fraction * n_hidden)`` units are excitatory,
      the rest inhibitory; ``W_rec = |W_raw| * mask * sign[None, :]`` (column j is the
      presynaptic unit j). ``readout="excitatory"`` reads the output from excitatory units only.
      Units act on each other through their rates, so the rates must be non-negative for the
      signs to mean excitation and inhibition: Dale networks default to ``relu`` (as PsychRNN
      and trainRNNbrain), and an activation that can be negative (``tanh``, ``leaky_relu``,
      ``linear``, a callable negative somewhere) is refused unless
      ``allow_negative_rates=True``. In the potential form the rates are ``f(x) >= 0``; in the
      rate form the state is the rate, which stays ``>= 0`` from a non-negative initial state
      without noise (each step is a convex combination of non-negative values), while
      recurrent noise can push it below zero by about its own amplitude.
    - ``autapses=False``: the diagonal of ``W_rec`` is exactly 0.
    - ``w_rec_mask``, ``w_in_mask``, ``w_out_mask``: 0/1 arrays; masked entries are exactly 0.
    - ``nonnegative_inputs`` / ``nonnegative_outputs``: ``W_in`` / ``W_out`` are ``|W_raw|``.
    - ``trainable``: names among ``w_rec, w_in, w_out, b_rec, b_out, tau, h0`` that training
      updates; the others stay at their initial values (default: the five weights and biases).

    Args:
        n_in, n_hidden, n_out: sizes.
        key: PRNG key for the initialisation.
        activation: a name (``tanh``, ``relu``, ``softplus``, ``sigmoid``, ``retanh``,
            ``leaky_relu``, ``linear``) or a callable (a callable model cannot be saved).
            Default ``tanh``, or ``relu`` with ``dale=True``.
        dt: Euler step, in the same time unit as ``tau`` (ms by convention). Default 10.
        tau: time constant, scalar or a vector of ``n_hidden`` per-unit values. Default 100.
        noise_std: recurrent noise sigma_rec (stored as a float32 array leaf). Default 0.
        input_noise_std: input noise sigma_in (likewise). Default 0.
        form: ``"potential"`` or ``"rate"``, see above.
        gain: W_rec ~ N(0, gain^2 / (N p)) with p the density of ``w_rec_mask``; default per
            activation (1.5 for tanh, 0.9 for relu).
        spectral_radius: if given, W_rec is rescaled to this spectral radius after drawing.
            With ``dale=True`` the (balanced) matrix is always rescaled, to ``gain`` by default.
        use_bias: whether b_rec and b_out exist as trainable leaves (else they stay 0).
        initial_state: ``"zeros"`` or an array of shape [n_hidden]; add ``"h0"`` to
            ``trainable`` to learn it.
        allow_negative_rates: with ``dale=True``, accept an activation that can be negative
            (the E/I signs then hold for the weights only, not for the units' effects).
    """

    is_continuous: ClassVar[bool] = True
    _param_fields: ClassVar[dict[str, str]] = {"tau": "tau_param"}

    w_rec: Float[Array, "n_hidden n_hidden"]
    w_in: Float[Array, "n_hidden n_in"]
    w_out: Float[Array, "n_out n_hidden"]
    b_rec: Float[Array, " n_hidden"]
    b_out: Float[Array, " n_out"]
    tau_param: Float[Array, " n_hidden"]
    ei_sign: Array

    form: str = eqx.field(static=True)
    dale: bool = eqx.field(static=True)
    excitatory_fraction: float = eqx.field(static=True)
    n_excitatory: int = eqx.field(static=True)
    readout_from: str = eqx.field(static=True)
    nonnegative_inputs: bool = eqx.field(static=True)
    nonnegative_outputs: bool = eqx.field(static=True)
    tau_per_unit: bool = eqx.field(static=True)
    allow_negative_rates: bool = eqx.field(static=True)

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        n_out: int,
        *,
        key: PRNGKeyArray,
        activation: str | Callable | None = None,
        dt: float = 10.0,
        tau: float | ArrayInput = 100.0,
        noise_std: float = 0.0,
        input_noise_std: float = 0.0,
        form: str = "potential",
        dale: bool = False,
        excitatory_fraction: float = 0.8,
        autapses: bool = True,
        w_rec_mask: ArrayInput | None = None,
        w_in_mask: ArrayInput | None = None,
        w_out_mask: ArrayInput | None = None,
        readout: str = "all",
        nonnegative_inputs: bool = False,
        nonnegative_outputs: bool = False,
        gain: float | None = None,
        spectral_radius: float | None = None,
        use_bias: bool = True,
        initial_state: str | ArrayInput = "zeros",
        trainable: Iterable[str] = _DEFAULT_TRAINABLE,
        allow_negative_rates: bool = False,
    ):
        if activation is None:
            activation = DALE_DEFAULT_ACTIVATION if dale else "tanh"
        n_in, n_hidden, n_out = self._init_network(
            n_in, n_hidden, n_out, activation=activation, dt=dt, noise_std=noise_std,
            input_noise_std=input_noise_std,
        )
        dt = self.dt
        if dale and not allow_negative_rates and can_be_negative(activation):
            shown = activation if isinstance(activation, str) else getattr(
                activation, "__name__", repr(activation))
            raise ValueError(
                f"activation={shown!r} can be negative, so with dale=True an excitatory unit "
                "would inhibit its targets (and an inhibitory one excite them) whenever its "
                "rate is below zero; use a non-negative activation "
                f"({', '.join(NONNEGATIVE_ACTIVATIONS)}; the default for dale=True is "
                f"{DALE_DEFAULT_ACTIVATION!r}), or pass "
                "allow_negative_rates=True to keep it anyway"
            )
        if form not in _FORMS:
            raise ValueError(f"form={form!r} is not known; use one of {_FORMS}")
        if readout not in ("all", "excitatory"):
            raise ValueError(f"readout={readout!r} is not known; use 'all' or 'excitatory'")
        if readout == "excitatory" and not dale:
            raise ValueError("readout='excitatory' needs dale=True (no E/I types otherwise)")
        if not (0.0 < excitatory_fraction <= 1.0):
            raise ValueError(
                f"excitatory_fraction must be in (0, 1], got {excitatory_fraction!r}"
            )
        trainable = nw.check_trainable(trainable, _TRAINABLE_NAMES)
        gain = positive_number("gain", gain, allow_none=True)
        spectral_radius = positive_number("spectral_radius", spectral_radius, allow_none=True)

        tau_arr = np.asarray(tau, dtype=np.float64)
        if tau_arr.ndim == 0:
            tau_per_unit = False
            tau_vec = np.full((n_hidden,), float(tau_arr))
        elif tau_arr.shape == (n_hidden,):
            tau_per_unit = True
            tau_vec = tau_arr
        else:
            raise ValueError(
                f"tau must be a scalar or have shape ({n_hidden},), got shape {tau_arr.shape}"
            )
        if not np.all(np.isfinite(tau_vec)) or np.any(tau_vec <= 0):
            raise ValueError("tau must be positive and finite")
        if np.any(tau_vec < dt):
            raise ValueError(
                f"dt={dt} is larger than tau (min {tau_vec.min():g}): alpha = dt/tau must be "
                "<= 1 for a stable Euler step; lower dt or raise tau"
            )
        if "tau" in trainable and np.any(tau_vec <= dt):
            raise ValueError("a trainable tau must start strictly above dt")

        n_exc = int(round(excitatory_fraction * n_hidden)) if dale else n_hidden
        if dale and not (1 <= n_exc <= n_hidden):
            raise ValueError(
                f"excitatory_fraction={excitatory_fraction} leaves no excitatory unit"
            )
        ei_sign = np.ones((n_hidden,), dtype=np.int8)
        if dale:
            ei_sign[n_exc:] = -1

        rec_mask = np.asarray(nw.as_mask("w_rec_mask", w_rec_mask, (n_hidden, n_hidden)))
        if not autapses:
            rec_mask = rec_mask.copy()
            np.fill_diagonal(rec_mask, False)
        in_mask = nw.as_mask("w_in_mask", w_in_mask, (n_hidden, n_in))
        out_mask = np.asarray(nw.as_mask("w_out_mask", w_out_mask, (n_out, n_hidden)))
        if readout == "excitatory":
            out_mask = out_mask.copy()
            out_mask[:, n_exc:] = False

        if isinstance(initial_state, str):
            if initial_state != "zeros":
                raise ValueError(
                    f"initial_state={initial_state!r}: use 'zeros' or an array of shape "
                    f"({n_hidden},)"
                )
            h0 = jnp.zeros((n_hidden,))
        else:
            h0 = jnp.asarray(initial_state, dtype=jnp.float32)
            if h0.shape != (n_hidden,):
                raise ValueError(
                    f"initial_state must have shape ({n_hidden},), got {h0.shape}"
                )
            if dale and form == "rate" and not allow_negative_rates and bool(jnp.any(h0 < 0)):
                raise ValueError(
                    "initial_state has negative entries, but in the rate form the state is "
                    "the rates, which dale=True keeps non-negative; give initial_state >= 0 "
                    "(or allow_negative_rates=True)"
                )

        name = self.activation_name
        if gain is None:
            gain = DEFAULT_GAIN.get(name, 1.0) if name is not None else 1.0

        k_rec, k_in, k_out = jax.random.split(key, 3)
        density = max(rec_mask.mean(), 1e-12)
        rec_mask_j = jnp.asarray(rec_mask)
        if dale:
            # |N(0,1)| entries, inhibitory columns scaled by n_E / n_I so that every row is
            # balanced in expectation, then rescaled to the requested spectral radius.
            raw = jnp.abs(jax.random.normal(k_rec, (n_hidden, n_hidden)))
            n_inh = n_hidden - n_exc
            if n_inh > 0:
                scale = jnp.where(jnp.arange(n_hidden) < n_exc, 1.0, n_exc / n_inh)
                raw = raw * scale[None, :]
            eff = raw * rec_mask_j * jnp.asarray(ei_sign)[None, :]
            target = spectral_radius if spectral_radius is not None else gain
            rho = nw.spectral_radius(eff)
            w_rec = raw * jnp.where(rho > 0, target / rho, 1.0)
        else:
            w_rec = jax.random.normal(k_rec, (n_hidden, n_hidden)) * (
                gain / math.sqrt(n_hidden * density)
            )
            if spectral_radius is not None:
                rho = nw.spectral_radius(w_rec * rec_mask_j)
                w_rec = w_rec * jnp.where(rho > 0, spectral_radius / rho, 1.0)
        w_in = jax.random.normal(k_in, (n_hidden, n_in)) / math.sqrt(n_in)
        if nonnegative_inputs:
            w_in = jnp.abs(w_in)
        fan_in_out = max(int(out_mask.any(axis=0).sum()), 1)
        w_out = jax.random.normal(k_out, (n_out, n_hidden)) / math.sqrt(fan_in_out)
        if nonnegative_outputs:
            w_out = jnp.abs(w_out)

        self.w_rec = w_rec * rec_mask_j
        self.w_in = w_in * jnp.asarray(in_mask)
        self.w_out = w_out * jnp.asarray(out_mask)
        self.b_rec = jnp.zeros((n_hidden,))
        self.b_out = jnp.zeros((n_out,))
        tau_j = jnp.asarray(tau_vec, dtype=jnp.float32)
        self.tau_param = jnp.log(tau_j) if "tau" in trainable else tau_j
        self.h0 = h0
        self.w_rec_mask = rec_mask_j
        self.w_in_mask = jnp.asarray(in_mask)
        self.w_out_mask = jnp.asarray(out_mask)
        self.ei_sign = jnp.asarray(ei_sign)

        self.form = form
        self.dale = bool(dale)
        self.excitatory_fraction = float(excitatory_fraction)
        self.n_excitatory = n_exc
        self.autapses = bool(autapses)
        self.readout_from = readout
        self.nonnegative_inputs = bool(nonnegative_inputs)
        self.nonnegative_outputs = bool(nonnegative_outputs)
        self.use_bias = bool(use_bias)
        self.trainable = trainable
        self.tau_per_unit = tau_per_unit
        self.allow_negative_rates = bool(allow_negative_rates)

    # ------------------------------------------------------------------ construction helpers

    @classmethod
    def from_weights(
        cls,
        w_rec: ArrayInput,
        w_in: ArrayInput,
        w_out: ArrayInput,
        b_rec: ArrayInput | None = None,
        b_out: ArrayInput | None = None,
        *,
        activation: str | Callable | None = None,
        dt: float = 10.0,
        tau: float | ArrayInput = 100.0,
        **kwargs,
    ) -> "CTRNN":
        """Build a network from given effective weights.

        Shapes: ``w_rec`` [n_hidden, n_hidden], ``w_in`` [n_hidden, n_in], ``w_out``
        [n_out, n_hidden], ``b_rec`` [n_hidden], ``b_out`` [n_out]. Other keyword arguments are
        those of the constructor (constraints included); the given weights must already satisfy
        the constraints asked for, else a ``ValueError`` names the one that fails.
        ``effective_weights()`` of the result returns these arrays (as float32).
        """
        arrays = {}
        for name, value in (("w_rec", w_rec), ("w_in", w_in), ("w_out", w_out)):
            arr = np.asarray(value, dtype=np.float64)
            if arr.ndim != 2:
                raise ValueError(f"{name} must be a 2-D array, got shape {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} contains NaN or inf")
            arrays[name] = arr
        n_hidden = arrays["w_rec"].shape[0]
        if arrays["w_rec"].shape != (n_hidden, n_hidden):
            raise ValueError(f"w_rec must be square, got shape {arrays['w_rec'].shape}")
        if arrays["w_in"].shape[0] != n_hidden:
            raise ValueError(
                f"w_in must have shape ({n_hidden}, n_in), got {arrays['w_in'].shape}"
            )
        if arrays["w_out"].shape[1] != n_hidden:
            raise ValueError(
                f"w_out must have shape (n_out, {n_hidden}), got {arrays['w_out'].shape}"
            )
        n_in = arrays["w_in"].shape[1]
        n_out = arrays["w_out"].shape[0]
        for name, value, size in (("b_rec", b_rec, n_hidden), ("b_out", b_out, n_out)):
            arr = np.zeros((size,)) if value is None else np.asarray(value, dtype=np.float64)
            if arr.shape != (size,):
                raise ValueError(f"{name} must have shape ({size},), got {arr.shape}")
            arrays[name] = arr
        if not kwargs.get("use_bias", True) and (
            np.any(arrays["b_rec"] != 0) or np.any(arrays["b_out"] != 0)
        ):
            raise ValueError("use_bias=False but b_rec or b_out is non-zero")

        model = cls(
            n_in, n_hidden, n_out, key=jax.random.PRNGKey(0), activation=activation, dt=dt,
            tau=tau, **kwargs,
        )
        w_rec_np, w_in_np, w_out_np = arrays["w_rec"], arrays["w_in"], arrays["w_out"]
        for name, arr, mask in (
            ("w_rec", w_rec_np, model.w_rec_mask),
            ("w_in", w_in_np, model.w_in_mask),
            ("w_out", w_out_np, model.w_out_mask),
        ):
            off = np.asarray(~mask) & (arr != 0)
            if off.any():
                what = "masked (or autapse / inhibitory-readout)"
                raise ValueError(f"{name} has {int(off.sum())} non-zero {what} entries")
        if model.dale:
            sign = np.asarray(model.ei_sign, dtype=np.float64)[None, :]
            if np.any(w_rec_np * sign < 0):
                raise ValueError(
                    f"w_rec violates Dale's law: columns 0..{model.n_excitatory - 1} must be "
                    f">= 0 (excitatory) and the rest <= 0 (inhibitory)"
                )
            w_rec_np = np.abs(w_rec_np)
        if model.nonnegative_inputs:
            if np.any(w_in_np < 0):
                raise ValueError("w_in has negative entries but nonnegative_inputs=True")
        if model.nonnegative_outputs:
            if np.any(w_out_np < 0):
                raise ValueError("w_out has negative entries but nonnegative_outputs=True")
        f32 = lambda a: jnp.asarray(a, dtype=jnp.float32)  # noqa: E731
        return eqx.tree_at(
            lambda m: (m.w_rec, m.w_in, m.w_out, m.b_rec, m.b_out),
            model,
            (f32(w_rec_np), f32(w_in_np), f32(w_out_np), f32(arrays["b_rec"]),
             f32(arrays["b_out"])),
        )

    @classmethod
    def from_flax(
        cls,
        params: Any,
        *,
        alpha: float | ArrayInput,
        noise_const: float | ArrayInput = 0.0,
        dt: float = 1.0,
        activation: str | Callable = "tanh",
        initial_state: str | ArrayInput | None = None,
        **kwargs,
    ) -> "CTRNN":
        """The network of a Flax Linen CT-RNN cell (ctrnn-jax's ``CTRNNCell``, or
        `rnnlab.flax.CTRNNCell`), with identical outputs.

        Args:
            params: the cell's parameters: what ``nn.RNN(CTRNNCell(...)).init(...)`` returns,
                its ``"params"`` entry, or the cell's own dict (``recurrent_kernel``,
                ``input_kernel``, ``output_kernel``; kernels [in, out]). Needs no Flax.
            alpha: the cell's ``alpha`` (scalar, or per unit): ``tau = dt / alpha``, chosen so
                that the float32 ``dt / tau`` is exactly ``alpha``.
            noise_const: the cell's ``noise_const``; ctrnn-jax adds ``alpha * noise_const *
                xi`` to the state, rnnlab ``sqrt(2 alpha) * noise_std * xi``, so ``noise_std =
                noise_const * sqrt(alpha / 2)`` (the same draw gives the same step).
            dt: the step in rnnlab's time unit (default 1: time counted in steps).
            activation: the cell's ``activation_fn`` (default ``tanh``, ctrnn-jax's).
            initial_state: the cell's first carry; default ones (ctrnn-jax's ``carry_init``).
            **kwargs: other arguments of `from_weights` (constraints to check, ``trainable``).

        The model is the potential form; its readout is the cell's ``z``, its rates the cell's
        ``rates``.
        """
        from ._flax_params import ctrnn_kwargs_from_flax

        args = ctrnn_kwargs_from_flax(params, alpha=alpha, noise_const=noise_const, dt=dt,
                                      initial_state=initial_state)
        if kwargs.get("form", "potential") != "potential":
            raise ValueError("a Flax CTRNNCell is the potential form; leave form unset")
        return cls.from_weights(
            args.pop("w_rec"), args.pop("w_in"), args.pop("w_out"), args.pop("b_rec"),
            args.pop("b_out"), activation=activation, **args, **kwargs,
        )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "CTRNN":
        """A model with the structure given by `config` (array values arbitrary).

        A trained trainable ``tau`` may sit at its lower clip ``dt``, which the constructor
        refuses as a starting value; since `rnnlab.load` replaces ``tau_param`` with the saved
        tensor anyway, the structure is built from a placeholder above ``dt``.
        """
        config = dict(config)
        if (config.get("dale") and "allow_negative_rates" not in config
                and can_be_negative(config.get("activation", "tanh"))):
            # a file written before dale=True refused activations that can be negative (a
            # Dale network with tanh): load it as it was trained
            config["allow_negative_rates"] = True
        if "activation" not in config:
            config["activation"] = "tanh"  # the default before Dale networks had their own
        if "tau" in config.get("trainable", ()):
            dt = float(config.get("dt", 10.0))
            tau = np.maximum(np.asarray(config.get("tau", 100.0), dtype=np.float64), 2.0 * dt)
            config["tau"] = float(tau) if tau.ndim == 0 else tau.tolist()
        return super().from_config(config)

    def _config_extra(self) -> dict[str, Any]:
        tau = np.asarray(self.tau)
        return {
            **super()._config_extra(),
            "tau": tau.tolist() if self.tau_per_unit else float(tau[0]),
            "form": self.form,
            "dale": self.dale,
            "excitatory_fraction": self.excitatory_fraction,
            "readout": self.readout_from,
            "nonnegative_inputs": self.nonnegative_inputs,
            "nonnegative_outputs": self.nonnegative_outputs,
            # written only when set, so that configs (and checkpoint fingerprints) of models
            # that obey the rule are unchanged
            **({"allow_negative_rates": True} if self.allow_negative_rates else {}),
        }

    # ------------------------------------------------------------------ derived quantities

    @property
    def tau(self) -> Float[Array, " n_hidden"]:
        """Effective per-unit time constants [n_hidden]."""
        p = self._frozen("tau", self.tau_param)
        if "tau" in self.trainable:
            return jnp.maximum(jnp.exp(p), self.dt)
        return p

    @property
    def alpha(self) -> Float[Array, " n_hidden"]:
        """dt / tau per unit."""
        return self.dt / self.tau

    def effective_weights(self) -> dict[str, Array]:
        """The weights actually used: keys ``w_rec``, ``w_in``, ``w_out``, ``b_rec``, ``b_out``."""
        w_rec = self._frozen("w_rec", self.w_rec)
        if self.dale:
            w_rec = jnp.abs(w_rec) * self.ei_sign[None, :].astype(w_rec.dtype)
        w_rec = jnp.where(self.w_rec_mask, w_rec, 0.0)
        w_in = self._frozen("w_in", self.w_in)
        if self.nonnegative_inputs:
            w_in = jnp.abs(w_in)
        w_in = jnp.where(self.w_in_mask, w_in, 0.0)
        w_out = self._frozen("w_out", self.w_out)
        if self.nonnegative_outputs:
            w_out = jnp.abs(w_out)
        w_out = jnp.where(self.w_out_mask, w_out, 0.0)
        return {"w_rec": w_rec, "w_in": w_in, "w_out": w_out, "b_rec": self._bias("b_rec"),
                "b_out": self._bias("b_out")}

    # ------------------------------------------------------------------ the model contract

    def rates(self, state: Float[ArrayLike, "... n_hidden"]) -> Float[Array, "... n_hidden"]:
        return self.activation(state) if self.form == "potential" else state

    def _drive(self, w: dict[str, Array], state: Array, proj_input: Array) -> Array:
        """The target the state relaxes to: W f(x) + W_in u + b, or f(W r + W_in u + b)."""
        if self.form == "potential":
            return w["w_rec"] @ self.activation(state) + proj_input
        return self.activation(w["w_rec"] @ state + proj_input)

    def vector_field(
        self, state: Float[ArrayLike, " n_hidden"], input: Float[ArrayLike, " n_in"]
    ) -> Float[Array, " n_hidden"]:
        """dx/dt = (-x + drive(x, u)) / tau, in units of 1 / (time unit of dt)."""
        w = self.effective_weights()
        proj = w["w_in"] @ input + w["b_rec"]
        return (-state + self._drive(w, state, proj)) / self.tau

    def _activation_slope(self, z: Array) -> Array:
        # f'(z) elementwise: a JVP with a tangent of ones (activations are elementwise).
        return jax.jvp(self.activation, (z,), (jnp.ones_like(z),))[1]

    def jacobian(
        self, state: Float[ArrayLike, " n_hidden"], input: Float[ArrayLike, " n_in"]
    ) -> Float[Array, "n_hidden n_hidden"]:
        """Analytic dF/dx: ``(-I + W_rec diag f'(x)) / tau`` (potential form) or
        ``(-I + diag f'(z) W_rec) / tau`` with ``z = W_rec r + W_in u + b`` (rate form)."""
        w = self.effective_weights()
        if self.form == "potential":
            m = w["w_rec"] * self._activation_slope(state)[None, :]
        else:
            z = w["w_rec"] @ state + w["w_in"] @ input + w["b_rec"]
            m = self._activation_slope(z)[:, None] * w["w_rec"]
        eye = jnp.eye(self.n_hidden, dtype=m.dtype)
        return (m - eye) / self.tau[:, None]

    def input_jacobian(
        self, state: Float[ArrayLike, " n_hidden"], input: Float[ArrayLike, " n_in"]
    ) -> Float[Array, "n_hidden n_in"]:
        """Analytic dF/du: ``W_in / tau`` (potential form) or ``diag f'(z) W_in / tau`` (rate)."""
        w = self.effective_weights()
        if self.form == "potential":
            return w["w_in"] / self.tau[:, None]
        z = w["w_rec"] @ state + w["w_in"] @ input + w["b_rec"]
        return self._activation_slope(z)[:, None] * w["w_in"] / self.tau[:, None]

    # The Euler step, written once: `_stepping_weights`, `_draw_noise` and `_input_terms`
    # prepare what does not depend on the state, `_advance` (`potential_euler` / `rate_euler`)
    # takes the step. `step`, `unroll` and the training path `ctrnn_unroll_batch` all use them.

    def _stepping_weights(self, dtype: Any = None) -> dict[str, Array]:
        """The effective weights with ``alpha``, ``decay = 1 - alpha`` and ``w_step``: the
        transposed recurrent matrix, times alpha per postsynaptic unit in the potential form."""
        w = self.effective_weights()
        alpha = self.alpha if dtype is None else self.alpha.astype(dtype)
        w_t = w["w_rec"].T
        w_step = alpha[None, :] * w_t if self.form == "potential" else w_t
        return dict(w, alpha=alpha, decay=1.0 - alpha, w_step=w_step)

    def _draw_noise(
        self, key: PRNGKeyArray | None, shape: tuple[int, ...], dtype: Any
    ) -> Noise:
        """``k_in, k_rec = split(key)``; ``xi_in = normal(k_in, [*shape, n_in])``, ``xi_rec =
        normal(k_rec, [*shape, n_hidden])`` with `rnnlab._random.normal` (float32 draws, cast).

        The training path draws a batch's noise at once (``shape = (batch, time)``): since the
        generator numbers the samples by their flat index, one trial (``(time,)``) or one step
        (``()``) draws what trial 0, or step 0 of trial 0, of a batch draws from the same key.
        """
        if key is None:
            return None, None
        k_in, k_rec = jax.random.split(key)
        xi_in = xi_rec = None
        if has_noise(self.input_noise_std):
            xi_in = normal(k_in, shape + (self.n_in,)).astype(dtype)
        if has_noise(self.noise_std):
            xi_rec = normal(k_rec, shape + (self.n_hidden,)).astype(dtype)
        return xi_in, xi_rec

    def _input_terms(
        self, w: dict[str, Array], inputs: Array, noise: Noise, *, rows: bool = False
    ) -> Any:
        """The state-independent terms of the steps of ``inputs`` [..., n_in]: with
        ``p = (u + input_noise_std xi_in) W_in^T + b_rec`` and ``a = sqrt(2 alpha) noise_std
        xi_rec``, ``z = alpha p + a`` (potential form) or ``(p, a)`` (rate form).

        ``rows=True`` (the training path) computes p with `affine_rows`, products shaped for
        speed over many rows with a hand-written reverse pass (same numbers; no forward mode).
        """
        xi_in, xi_rec = noise
        u = inputs if xi_in is None else inputs + self.input_noise_std * xi_in
        if rows:
            flat = affine_rows(u.reshape(-1, self.n_in), w["w_in"].T, w["b_rec"])
            proj = flat.reshape(u.shape[:-1] + (self.n_hidden,))
        else:
            proj = u @ w["w_in"].T + w["b_rec"]
        alpha = w["alpha"]
        add = None if xi_rec is None else (jnp.sqrt(2.0 * alpha) * self.noise_std) * xi_rec
        if self.form == "potential":
            return alpha * proj if add is None else alpha * proj + add
        return proj, jnp.zeros_like(proj) if add is None else add

    def _advance(self, w: dict[str, Array], state: Array, terms: Any) -> Array:
        if self.form == "potential":
            return potential_euler(self.activation, w["w_step"], w["decay"], state, terms)
        p, a = terms
        return rate_euler(self.activation, w["w_step"], w["alpha"], w["decay"], state, p, a)[0]

    def unroll_batch(
        self,
        inputs: Float[ArrayLike, "batch time n_in"],
        initial_state: Float[ArrayLike, "... n_hidden"],
        *,
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, "batch time n_hidden"]:
        """Batched unroll with a hand-written reverse pass (see `ctrnn_unroll_batch`): the
        training forward pass, and what `rnnlab.simulate` runs.

        The step is `step`'s; the noise of the whole batch is drawn from ``key`` at once
        (batch-major [B, T, N]), trial 0's equal to what `unroll` draws from ``key``.
        Gradients equal autodiff through a scan of `step` to float rounding.
        """
        return ctrnn_unroll_batch(self, inputs, initial_state, key=key)

    def readout_all(self, states: Float[ArrayLike, "... n_hidden"]) -> Float[Array, "... n_out"]:
        w = self.effective_weights()
        r = self.rates(states)
        # flattened rows, products shaped for speed (see `affine_rows`); exact gradients
        flat = affine_rows(r.reshape(-1, self.n_hidden), w["w_out"].T, w["b_out"])
        return flat.reshape(*states.shape[:-1], self.n_out)


def multi_area_mask(
    sizes: Sequence[int],
    projections: ArrayInput,
    *,
    key: PRNGKeyArray,
) -> np.ndarray:
    """A 0/1 recurrent mask for a network of areas (pyrnn's multi-region connectivity).

    Args:
        sizes: number of units per area; the areas occupy consecutive index blocks.
        projections: [n_areas, n_areas] connection probabilities; entry (i, j) is the
            probability that a unit of area j projects to a unit of area i (diagonal: within-area
            density).
        key: PRNG key for the random draw.

    Returns: a bool array [sum(sizes), sum(sizes)], usable as ``w_rec_mask``.
    """
    sizes = [int(s) for s in sizes]
    if not sizes or any(s < 1 for s in sizes):
        raise ValueError(f"sizes must be a non-empty list of positive integers, got {sizes}")
    probs = np.asarray(projections, dtype=np.float64)
    n_areas = len(sizes)
    if probs.shape != (n_areas, n_areas):
        raise ValueError(f"projections must have shape ({n_areas}, {n_areas}), got {probs.shape}")
    if np.any((probs < 0) | (probs > 1)):
        raise ValueError("projections must hold probabilities in [0, 1]")
    edges = np.concatenate([[0], np.cumsum(sizes)])
    n = int(edges[-1])
    area = np.repeat(np.arange(n_areas), sizes)
    p = probs[area[:, None], area[None, :]]
    draw = np.asarray(jax.random.uniform(key, (n, n)))
    return draw < p

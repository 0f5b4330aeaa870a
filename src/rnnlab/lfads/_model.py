"""The LFADS model (Sussillo et al. 2016; Pandarinath et al. 2018) with lfads-torch's
architecture and names, as one Equinox module acting on one trial (vmap batches trials)."""

import math
import os
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._validate import integer, nonnegative_number, positive_int, positive_number
from ..io._model_io import tensors_to_tree, tree_to_tensors
from ..io._safe import read_safetensors, write_safetensors
from ._loss import ALIASES, N_PARAMS, recon_means
from ._loops import decoder, gru_group
from ._modules import BidirectionalGRU, ClippedGRUCell, Linear, run_gru_group
from ._random import normal, random_bits


class LFADSOutput(NamedTuple):
    """What one pass of `LFADS` gives for one trial (time T = the reconstruction length).

    ``output_params`` [T, neurons, n_params] (the reconstruction head's parameters: Poisson
    log-rates, ...), ``factors`` [T, fac_dim], ``gen_states`` [T, gen_dim], ``gen_init``
    [gen_dim] (the generator's initial state), ``con_states`` [T, con_dim], ``co_means``,
    ``co_stds`` [T, co_dim] (the posterior of the inferred inputs), ``gen_inputs``
    [T, co_dim + ext_input_dim] (what drove the generator: the inferred inputs, sampled or
    their means, then the external inputs), ``ic_mean``, ``ic_std`` [ic_dim] (the posterior of
    the initial condition)."""

    output_params: Array
    factors: Array
    gen_states: Array
    gen_init: Array
    con_states: Array
    co_means: Array
    co_stds: Array
    gen_inputs: Array
    ic_mean: Array
    ic_std: Array


def keep_masks(key: PRNGKeyArray, rate: float, shapes: list, dtype: Any = jnp.float32
               ) -> list:
    """Dropout's masks for arrays of ``shapes``: 0 (dropped, probability ``rate``) or
    1 / (1 - rate), all from one draw of random bits, 16 an entry (the keep probability is
    1 - rate to within 2^-17; one draw instead of one per mask, half the bits of a float
    uniform: the random numbers are a noticeable part of a training step on a CPU)."""
    sizes = [math.prod(s) for s in shapes]
    total = sum(sizes)
    bits = random_bits(key, ((total + 1) // 2,))
    u16 = jnp.concatenate([bits & 0xFFFF, bits >> 16])[:total]
    keep = u16 < jnp.uint32(round((1.0 - rate) * 65536))
    scaled = keep.astype(dtype) / (1.0 - rate)
    ends = np.cumsum(sizes)
    return [scaled[e - n : e].reshape(s) for s, n, e in zip(shapes, sizes, ends)]


def lagged_inputs(fwd: Array, bwd: Array, lag: int, n_time: int) -> Array:
    """The controller's inputs [n_time, 2E] from the encoder's forward and backward outputs
    [T_enc, E] (lfads-torch's lag): at step t the forward state of step t - lag and the
    backward state of step t + lag, zero where those fall outside the encoded steps and in
    the forward-prediction steps past T_enc."""
    t_enc, E = fwd.shape
    f = jnp.concatenate([jnp.zeros((lag, E)), fwd])[:t_enc]
    b = jnp.concatenate([bwd, jnp.zeros((lag, E))])[lag:]
    ci = jnp.concatenate([f, b], axis=1)
    if n_time > t_enc:
        return jnp.concatenate([ci, jnp.zeros((n_time - t_enc, 2 * E))])
    return ci[:n_time]


CONFIG_FIELDS = (
    "n_neurons", "n_heldout", "ext_input_dim", "ic_enc_dim", "ci_enc_dim", "ci_lag", "con_dim",
    "co_dim", "ic_dim", "gen_dim", "fac_dim", "dropout_rate", "cell_clip", "ic_post_var_min",
    "reconstruction", "ic_prior_var", "learn_ic_prior", "co_prior_tau", "co_prior_nvar",
    "gamma_loc", "zig_scale_init",
)


class LFADS(eqx.Module):
    """Latent Factor Analysis via Dynamical Systems: a sequential variational auto-encoder of
    single-trial population data [time, neurons] (lfads-torch's architecture and names).

    - ``ic_enc``: a bidirectional GRU (``ic_enc_dim`` each way) over the trial; its two final
      states map (``ic_linear``) to the mean and log-variance of a diagonal Gaussian posterior
      over the initial condition (``ic_dim``; std = sqrt(exp(logvar) + ``ic_post_var_min``)),
      which ``ic_to_g0`` maps to the generator's initial state. Prior N(``ic_prior_mean``,
      ``ic_prior_var``): the mean learned with ``learn_ic_prior`` (else fixed at 0), the
      variance fixed.
    - Controller (when ``con_dim``, ``co_dim`` and ``ci_enc_dim`` are all > 0): a second
      bidirectional GRU ``ci_enc`` whose outputs, lagged by ``ci_lag`` steps (forward states
      delayed, backward states advanced), and the previous factors drive the controller GRU
      ``con_cell`` (``con_dim``); ``co_linear`` gives the posterior mean and log-variance of
      the inferred input u_t (``co_dim``) with an AR(1) prior (learned ``tau`` and noise
      variance ``nvar``, initialised at ``co_prior_tau``, ``co_prior_nvar``).
    - Generator ``gen_cell``: a GRU (``gen_dim``, state clipped at ``cell_clip``) driven by
      u_t and the external inputs (``ext_input_dim``); factors = ``fac_linear``(dropout(g_t))
      with unit-norm rows (``fac_dim``); ``readout`` maps factors to the parameters of the
      ``reconstruction`` head for ``n_neurons + n_heldout`` neurons.
    - Dropout (``dropout_rate``) on the encoder input, the encoder's final state, the
      controller input, the generator state before the factors and the external inputs.

    The encoders see the ``n_neurons`` observed neurons; the readout also predicts
    ``n_heldout`` held-out neurons (NLB co-smoothing), and the decoder runs past the
    encoder's last bin for forward prediction (``n_time`` in `__call__`).

    Args:
        n_neurons: observed neurons (the encoder's input size).
        key: PRNG key for the initialisation (lfads-torch's: weights ~ N(0, 1/fan_in), GRU
            gate biases 1).
        ic_enc_dim (64), ci_enc_dim (64), ci_lag (1), con_dim (64), co_dim (1), ic_dim (64),
            gen_dim (100), fac_dim (40): sizes (lfads-torch's names; ``con_dim=0`` or
            ``co_dim=0``: no controller, the generator runs autonomously).
        ext_input_dim: external inputs per step (0).
        n_heldout: held-out neurons predicted by the readout but not seen by the encoders (0).
        dropout_rate (0.05), cell_clip (5.0; None: no clipping), ic_post_var_min (1e-4).
        reconstruction: ``"poisson"`` (default), ``"gaussian"``, ``"gamma"`` or
            ``"zero_inflated_gamma"`` (see `rnnlab.lfads._loss`).
        ic_prior_var (0.1), learn_ic_prior (True), co_prior_tau (10.0 steps),
            co_prior_nvar (0.1): the priors.
        gamma_loc (0.0), zig_scale_init (1.0): the zero-inflated Gamma's shift and the start
            of its per-neuron scales.
    """

    ic_enc: BidirectionalGRU
    ic_linear: Linear
    ci_enc: BidirectionalGRU | None
    con_cell: ClippedGRUCell | None
    co_linear: Linear | None
    con_h0: Array | None
    ic_to_g0: Linear
    gen_cell: ClippedGRUCell
    fac_linear: Linear
    readout: Linear
    ic_prior_mean: Array
    ic_prior_logvar: Array
    co_prior_logtaus: Array | None
    co_prior_lognvars: Array | None
    zig_scale: Array | None

    n_neurons: int = eqx.field(static=True)
    n_heldout: int = eqx.field(static=True)
    ext_input_dim: int = eqx.field(static=True)
    ic_enc_dim: int = eqx.field(static=True)
    ci_enc_dim: int = eqx.field(static=True)
    ci_lag: int = eqx.field(static=True)
    con_dim: int = eqx.field(static=True)
    co_dim: int = eqx.field(static=True)
    ic_dim: int = eqx.field(static=True)
    gen_dim: int = eqx.field(static=True)
    fac_dim: int = eqx.field(static=True)
    dropout_rate: float = eqx.field(static=True)
    cell_clip: float | None = eqx.field(static=True)
    ic_post_var_min: float = eqx.field(static=True)
    reconstruction: str = eqx.field(static=True)
    ic_prior_var: float = eqx.field(static=True)
    learn_ic_prior: bool = eqx.field(static=True)
    co_prior_tau: float = eqx.field(static=True)
    co_prior_nvar: float = eqx.field(static=True)
    gamma_loc: float = eqx.field(static=True)
    zig_scale_init: float = eqx.field(static=True)

    def __init__(
        self,
        n_neurons: int,
        *,
        key: Any,  # a JAX PRNG key, checked here
        ic_enc_dim: int = 64,
        ci_enc_dim: int = 64,
        ci_lag: int = 1,
        con_dim: int = 64,
        co_dim: int = 1,
        ic_dim: int = 64,
        gen_dim: int = 100,
        fac_dim: int = 40,
        ext_input_dim: int = 0,
        n_heldout: int = 0,
        dropout_rate: float = 0.05,
        cell_clip: float | None = 5.0,
        ic_post_var_min: float = 1e-4,
        reconstruction: str = "poisson",
        ic_prior_var: float = 0.1,
        learn_ic_prior: bool = True,
        co_prior_tau: float = 10.0,
        co_prior_nvar: float = 0.1,
        gamma_loc: float = 0.0,
        zig_scale_init: float = 1.0,
    ):
        from ..training._train import check_key

        key = check_key(key)
        self.n_neurons = positive_int("n_neurons", n_neurons)
        self.ic_enc_dim = positive_int("ic_enc_dim", ic_enc_dim)
        self.ic_dim = positive_int("ic_dim", ic_dim)
        self.gen_dim = positive_int("gen_dim", gen_dim)
        self.fac_dim = positive_int("fac_dim", fac_dim)
        self.ci_enc_dim = integer("ci_enc_dim", ci_enc_dim, 0)
        self.con_dim = integer("con_dim", con_dim, 0)
        self.co_dim = integer("co_dim", co_dim, 0)
        self.ci_lag = integer("ci_lag", ci_lag, 0)
        self.ext_input_dim = integer("ext_input_dim", ext_input_dim, 0)
        self.n_heldout = integer("n_heldout", n_heldout, 0)
        rate = nonnegative_number("dropout_rate", dropout_rate)
        if rate >= 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate!r}")
        self.dropout_rate = rate
        # None (or inf): no clipping (stored as None so that the configuration is JSON)
        self.cell_clip = None if cell_clip is None or (
            isinstance(cell_clip, (int, float)) and cell_clip == math.inf
        ) else positive_number("cell_clip", cell_clip)
        self.ic_post_var_min = nonnegative_number("ic_post_var_min", ic_post_var_min)
        if not isinstance(reconstruction, str) or \
                ALIASES.get(reconstruction, reconstruction) not in N_PARAMS:
            raise ValueError(f"reconstruction must be one of {sorted(N_PARAMS)}, "
                             f"got {reconstruction!r}")
        self.reconstruction = ALIASES.get(reconstruction, reconstruction)
        self.ic_prior_var = positive_number("ic_prior_var", ic_prior_var)
        if not isinstance(learn_ic_prior, (bool, np.bool_)):
            raise ValueError(f"learn_ic_prior must be True or False, got {learn_ic_prior!r}")
        self.learn_ic_prior = bool(learn_ic_prior)
        self.co_prior_tau = positive_number("co_prior_tau", co_prior_tau)
        self.co_prior_nvar = positive_number("co_prior_nvar", co_prior_nvar)
        self.gamma_loc = nonnegative_number("gamma_loc", gamma_loc)
        self.zig_scale_init = positive_number("zig_scale_init", zig_scale_init)

        keys = jax.random.split(key, 9)
        clip = math.inf if self.cell_clip is None else self.cell_clip
        self.ic_enc = BidirectionalGRU(self.n_neurons, self.ic_enc_dim, key=keys[0],
                                       clip_value=clip)
        self.ic_linear = Linear(2 * self.ic_enc_dim, 2 * self.ic_dim, key=keys[1])
        if self.use_con:
            self.ci_enc = BidirectionalGRU(self.n_neurons, self.ci_enc_dim, key=keys[2],
                                           clip_value=clip)
            self.con_cell = ClippedGRUCell(2 * self.ci_enc_dim + self.fac_dim, self.con_dim,
                                           key=keys[3], clip_value=clip)
            self.co_linear = Linear(self.con_dim, 2 * self.co_dim, key=keys[4])
            self.con_h0 = jnp.zeros(self.con_dim)
            self.co_prior_logtaus = jnp.full(self.co_dim, math.log(self.co_prior_tau),
                                             jnp.float32)
            self.co_prior_lognvars = jnp.full(self.co_dim, math.log(self.co_prior_nvar),
                                              jnp.float32)
        else:
            self.ci_enc = self.con_cell = self.co_linear = self.con_h0 = None
            self.co_prior_logtaus = self.co_prior_lognvars = None
        self.ic_to_g0 = Linear(self.ic_dim, self.gen_dim, key=keys[5])
        self.gen_cell = ClippedGRUCell(self.gen_input_dim, self.gen_dim, key=keys[6],
                                       clip_value=clip)
        self.fac_linear = Linear(self.gen_dim, self.fac_dim, key=keys[7], bias=False,
                                 normalized=True)
        self.readout = Linear(self.fac_dim, self.n_params * self.n_recon, key=keys[8])
        self.ic_prior_mean = jnp.zeros(self.ic_dim)
        self.ic_prior_logvar = jnp.full(self.ic_dim, math.log(self.ic_prior_var), jnp.float32)
        self.zig_scale = (jnp.full((2, self.n_recon), self.zig_scale_init, jnp.float32)
                          if self.reconstruction == "zero_inflated_gamma" else None)

    # ------------------------------------------------------------------ sizes

    @property
    def use_con(self) -> bool:
        """Whether the model has a controller (inferred inputs)."""
        return self.ci_enc_dim > 0 and self.con_dim > 0 and self.co_dim > 0

    @property
    def gen_input_dim(self) -> int:
        return (self.co_dim if self.use_con else 0) + self.ext_input_dim

    @property
    def n_params(self) -> int:
        return N_PARAMS[self.reconstruction]

    @property
    def n_recon(self) -> int:
        """Neurons the readout predicts: the observed then the held-out ones."""
        return self.n_neurons + self.n_heldout

    def config(self) -> dict[str, Any]:
        """The constructor's arguments (JSON-able), so that ``LFADS(**config, key=...)``
        rebuilds the same architecture."""
        return {name: getattr(self, name) for name in CONFIG_FIELDS}

    # ------------------------------------------------------------------ the pass

    def __call__(
        self,
        encod_data: Float[Array, "T_enc neurons"],
        *,
        n_time: int | None = None,
        ext_input: Float[Array, "T ext"] | None = None,
        key: PRNGKeyArray | None = None,
        sample_posteriors: bool = False,
        dropout: bool = False,
    ) -> LFADSOutput:
        """One trial through the model.

        Args:
            encod_data: [T_enc, n_neurons] what the encoders see.
            n_time: steps the decoder runs (default T_enc); the steps after T_enc are
                forward prediction (the controller's encoder input is zero there).
            ext_input: [n_time, ext_input_dim] (needed when ``ext_input_dim > 0``).
            key: PRNG key for posterior samples and dropout (needed with either on).
            sample_posteriors: draw the initial condition and the inferred inputs from their
                posteriors (training); else pass their means.
            dropout: apply dropout (training).

        Returns: an `LFADSOutput`.
        """
        t_enc = encod_data.shape[0]
        T = t_enc if n_time is None else n_time
        if (sample_posteriors or dropout) and key is None:
            raise ValueError("a key is needed to sample the posteriors or apply dropout")
        k_drop, k_noise = jax.random.split(key) if key is not None else (None, None)
        drop = self.dropout_rate if dropout else 0.0
        n_con = 2 * self.ci_enc_dim + self.fac_dim if self.use_con else 0
        co = self.co_dim if self.use_con else 0
        shapes = [encod_data.shape, (2 * self.ic_enc_dim,), (self.gen_dim,),
                  (T, self.ext_input_dim), (T, n_con), (T, self.gen_dim)]
        if drop:  # every dropout mask drawn up front, at once
            masks = keep_masks(k_drop, drop, shapes, encod_data.dtype)
        else:
            masks = [jnp.ones(s, encod_data.dtype) for s in shapes]
        m_data, m_h_n, m_g0, m_ext, con_keep, gen_keep = masks
        if sample_posteriors:  # the posteriors' noise (initial condition, inferred inputs)
            n_noise = self.ic_dim + T * co
            noise = (normal(k_noise, (n_noise,)) if encod_data.dtype == jnp.float32
                     else jax.random.normal(k_noise, (n_noise,), encod_data.dtype))
            ic_noise, co_noise = noise[: self.ic_dim], noise[self.ic_dim:].reshape(T, co)
        else:
            co_noise = jnp.zeros((T, co), encod_data.dtype)

        data_drop = encod_data * m_data
        # the encoders: every direction of both bidirectional GRUs in one scan
        encs = [self.ic_enc] + ([self.ci_enc] if self.use_con else [])
        runs = run_gru_group([c for e in encs for c in (e.fwd, e.bwd)], data_drop,
                             [h for e in encs for h in e.h0], (False, True) * len(encs))
        h_n = jnp.concatenate([runs[0][1], runs[1][1]])
        ic_params = self.ic_linear(h_n * m_h_n)
        ic_mean, ic_logvar = ic_params[: self.ic_dim], ic_params[self.ic_dim:]
        ic_std = jnp.sqrt(jnp.exp(ic_logvar) + self.ic_post_var_min)
        ic_samp = ic_mean + ic_std * ic_noise if sample_posteriors else ic_mean
        gen_init = self.ic_to_g0(ic_samp)
        factor0 = self.fac_linear(gen_init * m_g0)

        # controller inputs: lagged bidirectional encodings, zero past the encoder's steps
        if self.use_con:
            ci = lagged_inputs(runs[2][0], runs[3][0][::-1], self.ci_lag, T)
        else:
            ci = jnp.zeros((T, 0))
        if self.ext_input_dim:
            if ext_input is None:
                raise ValueError(f"the model takes {self.ext_input_dim} external inputs: "
                                 "pass ext_input [n_time, ext_input_dim]")
            ext = ext_input * m_ext
        else:
            ext = jnp.zeros((T, 0))

        w_fac = self.fac_linear.effective_weight()  # normalised once, not every step
        gen_hh = self.gen_cell.split_hh()
        if self.use_con:
            # the controller's input part from the encodings for all steps at once; the
            # factors' and the generator's (inferred and external inputs) parts depend on
            # the previous step and stay in the loop
            n_ci = 2 * self.ci_enc_dim
            w_ci = self.con_cell.weight_ih[:, :n_ci]
            ci_pre = (ci * con_keep[:, :n_ci]) @ w_ci.T + self.con_cell.bias_ih
            weights = (self.con_cell.weight_ih[:, n_ci:], self.con_cell.split_hh(),
                       self.co_linear.weight, self.co_linear.bias, self.gen_cell.weight_ih,
                       self.gen_cell.bias_ih, gen_hh, w_fac)
            static = (self.con_cell.clip_value, self.gen_cell.clip_value, co,
                      bool(sample_posteriors))
            gen_states, con_states, co_means, co_stds, inputs, factors = decoder(
                static, weights, (ci_pre, con_keep[:, n_ci:], co_noise, ext, gen_keep),
                (gen_init, self.con_h0, factor0))
            gen_inputs = jnp.concatenate([inputs, ext], axis=1)
        else:
            # without a controller the generator's inputs are known before its loop
            gen_states = gru_group((self.gen_cell.clip_value,), (False,), [(
                self.gen_cell.weight_ih, self.gen_cell.bias_ih, gen_hh)], ext, [gen_init])[0]
            factors = (gen_states * gen_keep) @ w_fac.T
            con_states = co_means = co_stds = jnp.zeros((T, 0))
            gen_inputs = ext
        params = self.readout(factors).reshape(T, self.n_params, self.n_recon)
        output_params = jnp.swapaxes(params, 1, 2)  # [T, neurons, n_params]
        return LFADSOutput(output_params, factors, gen_states, gen_init, con_states, co_means,
                           co_stds, gen_inputs, ic_mean, ic_std)

    def means(self, output_params: Array) -> Array:
        """The reconstruction head's means (firing rates per bin for Poisson) from
        ``output_params`` [..., neurons, n_params]."""
        return recon_means(self.reconstruction, output_params, self.zig_scale, self.gamma_loc)

    def recurrent_kernels(self) -> dict[str, list]:
        """The recurrent weight matrices the L2 penalty acts on, by lfads-torch's scale name."""
        out = {"ic_enc": [self.ic_enc.fwd.weight_hh, self.ic_enc.bwd.weight_hh],
               "gen": [self.gen_cell.weight_hh]}
        if self.use_con:
            out["ci_enc"] = [self.ci_enc.fwd.weight_hh, self.ci_enc.bwd.weight_hh]
            out["con"] = [self.con_cell.weight_hh]
        return out


# ------------------------------------------------------------------------------ files

KIND = "lfads"


def save(path: str | os.PathLike, model: LFADS) -> None:
    """Write ``model`` to one ``.safetensors`` file (weights, the configuration as JSON
    metadata), atomically."""
    if not isinstance(model, LFADS):
        raise TypeError(f"model must be an rnnlab.lfads.LFADS, got {type(model).__name__}")
    from .. import __version__

    write_safetensors(path, tree_to_tensors(model),
                      {"kind": KIND, "config": model.config(), "version": __version__})


def load(path: str | os.PathLike) -> LFADS:
    """Read a model written by `save`; its outputs are bit-identical to the saved model's.
    Raises FileNotFoundError for a missing file and a ValueError naming the file for a
    truncated, corrupted or foreign one."""
    from ..io._safe import FileFormatError

    tensors, meta = read_safetensors(path, kind=KIND)
    try:
        template = LFADS(**meta["config"], key=jax.random.PRNGKey(0))
    except (KeyError, TypeError, ValueError) as e:
        raise FileFormatError(f"{path}: cannot rebuild the LFADS model ({e})") from None
    return tensors_to_tree(template, tensors, "", str(path))

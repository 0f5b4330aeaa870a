"""Fitting LFADS: the ELBO with KL/L2 warm-up, coordinated dropout, Adam with learning-rate
decay on a validation plateau, early stopping, checkpoints with bit-identical resume, a
progress bar and divergence handling (the house patterns of `rnnlab.train`).

An *epoch* (one pass over the training trials in a fresh random order, in batches) is one
compiled program: a ``lax.scan`` of the training step, trials batched by ``vmap``. Epochs are
queued without host synchronisation; the host waits once per evaluation (every
``eval_every`` epochs) for the losses and the validation score."""

import dataclasses
import functools
import hashlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import _interrupt as interrupt
from .._validate import integer, nonnegative_number, positive_int, positive_number
from ..io._model_io import tensors_to_tree, tree_to_tensors
from ..io._safe import atomic_write_json, atomic_write_text, read_safetensors, write_safetensors
from ..training._runner import key_data, progress_enabled, progress_lines
from ..training._train import check_key
from ._loss import Scales, elbo_loss, ramp
from ._model import LFADS, save

CHECKPOINT = "checkpoint.safetensors"


class FitDiverged(RuntimeError):
    """The training loss became NaN or infinite. ``result`` (a `FitResult`) holds the last
    good model: the parameters one step before the non-finite loss."""

    def __init__(self, message: str, result: "FitResult"):
        super().__init__(message)
        self.result = result


@dataclasses.dataclass
class FitResult:
    """What `fit` returns.

    Attributes:
        model: the model at the last step.
        best_model: the model at the evaluation with the lowest smoothed validation
            reconstruction loss after the warm-ups (the last model when none came after).
        history: one dict per evaluation: ``epoch``, ``step``, ``train_loss`` (mean over the
            steps since the previous evaluation), ``valid_loss``, ``valid_recon``,
            ``valid_recon_smth`` (exponentially smoothed, weight 0.3 on the newest),
            ``valid_kl_ic``, ``valid_kl_co``, ``l2``, ``kl_ramp``, ``l2_ramp``,
            ``learning_rate``, ``wall_time``.
        epochs, steps: epochs and optimiser steps done.
        stopped: ``"max_epochs"``, ``"lr_stop"`` (the learning rate decayed below
            ``lr_stop``), ``"early_stop"`` (no better smoothed validation loss for
            ``early_stop_patience`` evaluations) or ``"diverged"``.
        best_epoch: the epoch of ``best_model`` (None: the last).
    """

    model: LFADS
    best_model: LFADS
    history: list
    epochs: int
    steps: int
    stopped: str
    best_epoch: int | None = None


# ------------------------------------------------------------------------------ data


@dataclasses.dataclass(frozen=True)
class _Split:
    encod: np.ndarray  # [trials, T - n_forward, neurons]
    recon: np.ndarray  # [trials, T, neurons + heldout]
    ext: np.ndarray | None  # [trials, T, ext]


def _array(name: str, x: Any) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim != 3:
        raise ValueError(f"{name} must be an array [trials, time, neurons], got shape "
                         f"{arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return arr


def split_data(data: Any, *, valid_fraction: float = 0.2, seed: int = 0
               ) -> tuple[_Split, _Split, np.ndarray | None, np.ndarray | None]:
    """(train, valid, train_inds, valid_inds) from an `rnnlab.lfads.Dataset` (or anything
    with its fields) or a plain array [trials, time, neurons] (split at random, seeded)."""
    if hasattr(data, "train") and hasattr(data, "valid"):
        n_fwd = int(getattr(data, "n_forward", 0) or 0)
        out = []
        for part in ("train", "valid"):
            obs = _array(f"data.{part}", getattr(data, part))
            held = getattr(data, f"heldout_{part}", None)
            recon = obs if held is None else np.concatenate(
                [obs, _array(f"data.heldout_{part}", held)], axis=2)
            ext = getattr(data, f"ext_input_{part}", None)
            ext = None if ext is None else _array(f"data.ext_input_{part}", ext)
            if n_fwd >= obs.shape[1]:
                raise ValueError(f"data.n_forward={n_fwd} leaves the encoder no time bins "
                                 f"(the trials have {obs.shape[1]})")
            out.append(_Split(obs[:, : obs.shape[1] - n_fwd], recon, ext))
        inds = [getattr(data, "train_inds", None), getattr(data, "valid_inds", None)]
        return out[0], out[1], *(None if i is None else np.asarray(i) for i in inds)
    from ._data import Dataset

    return split_data(Dataset.from_arrays(_array("data", data), valid_fraction=valid_fraction,
                                          seed=seed))


def check_split(model: LFADS, s: _Split, name: str) -> None:
    if s.encod.shape[2] != model.n_neurons:
        raise ValueError(f"{name} has {s.encod.shape[2]} neurons but the model was built "
                         f"with n_neurons={model.n_neurons}")
    if s.recon.shape[2] != model.n_recon:
        raise ValueError(f"{name} has {s.recon.shape[2] - s.encod.shape[2]} held-out neurons "
                         f"but the model was built with n_heldout={model.n_heldout}")
    if model.ext_input_dim:
        if s.ext is None:
            raise ValueError(f"the model takes ext_input_dim={model.ext_input_dim} external "
                             f"inputs but {name} has none")
        if s.ext.shape != (*s.recon.shape[:2], model.ext_input_dim):
            raise ValueError(f"{name}'s external inputs have shape {s.ext.shape}, expected "
                             f"{(*s.recon.shape[:2], model.ext_input_dim)}")
    if model.reconstruction in ("poisson",) and np.any(s.recon < 0):
        raise ValueError(f"{name} has negative values: the Poisson reconstruction needs "
                         "counts (use reconstruction='gaussian' for continuous data)")
    if model.reconstruction == "gamma" and np.any(s.recon <= 0):
        raise ValueError(f"{name} has values <= 0: the Gamma reconstruction needs positive "
                         "data")


# ------------------------------------------------------------------------------ programs


class Settings(NamedTuple):
    """The static settings of the compiled programs (hashable: equal settings share them)."""

    scales: Scales
    kl_start: int
    kl_increase: int
    l2_start: int
    l2_increase: int
    cd_rate: float
    cd_pass_rate: float
    grad_clip: float | None
    adam_epsilon: float
    batch_size: int
    steps_per_epoch: int


@functools.lru_cache(maxsize=None)
def optimizer_for(grad_clip: float | None, adam_epsilon: float) -> optax.GradientTransformation:
    """Adam's scaling after global-norm clipping (the learning rate is applied by the step,
    so that the plateau schedule can change it without recompiling)."""
    adam = optax.scale_by_adam(eps=adam_epsilon)
    return adam if grad_clip is None else optax.chain(optax.clip_by_global_norm(grad_clip), adam)


def train_step(params, static, opt_state, encod, recon, ext, key, epoch, lr,
               settings: Settings):
    """One training step on one batch: ``(params, opt_state, loss)`` after Adam on the ELBO
    (`benchmarks/lfads.py` times it)."""
    st = settings
    kl_r = ramp(epoch, st.kl_start, st.kl_increase)
    l2_r = ramp(epoch, st.l2_start, st.l2_increase)

    def objective(p):
        return elbo_loss(eqx.combine(p, static), encod, recon, ext, key, scales=st.scales,
                         kl_ramp=kl_r, l2_ramp=l2_r, cd_rate=st.cd_rate,
                         cd_pass_rate=st.cd_pass_rate, train=True)

    (loss, _), grads = jax.value_and_grad(objective, has_aux=True)(params)
    optimizer = optimizer_for(st.grad_clip, st.adam_epsilon)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    updates = jax.tree.map(lambda u: -lr * u, updates)
    return eqx.apply_updates(params, updates), opt_state, loss


@eqx.filter_jit
def run_epoch(params, static, opt_state, encod, recon, ext, key, epoch, lr, limit,
              settings: Settings):
    """One epoch: a scan of `train_step` over the batches of a fresh permutation of the
    training trials. Steps with index >= ``limit`` leave the parameters as they are (the
    replay to the last good step after a divergence)."""
    B = settings.batch_size
    k_perm, k_steps = jax.random.split(key)
    perm = jax.random.permutation(k_perm, encod.shape[0])

    def body(carry, i):
        params, opt_state = carry
        idx = jax.lax.dynamic_slice(perm, (i * B,), (B,))
        e = None if ext is None else ext[idx]
        new_p, new_o, loss = train_step(params, static, opt_state, encod[idx], recon[idx], e,
                                        jax.random.fold_in(k_steps, i), epoch, lr, settings)
        ok = i < limit
        params = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new_p, params)
        opt_state = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new_o, opt_state)
        return (params, opt_state), loss

    (params, opt_state), losses = jax.lax.scan(body, (params, opt_state),
                                               jnp.arange(settings.steps_per_epoch))
    return params, opt_state, losses


@eqx.filter_jit
def valid_parts(params, static, encod, recon, ext, key, epoch, settings: Settings):
    """The loss and its parts on a batch of validation trials (no dropout)."""
    st = settings
    loss, parts = elbo_loss(eqx.combine(params, static), encod, recon, ext, key,
                            scales=st.scales, kl_ramp=ramp(epoch, st.kl_start, st.kl_increase),
                            l2_ramp=ramp(epoch, st.l2_start, st.l2_increase), train=False)
    return {"loss": loss, **parts}


# ------------------------------------------------------------------------------ fit


def _fingerprint_data(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is not None:
            h.update(str(a.shape).encode())
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def fit(
    model: LFADS,
    data: Any,  # an rnnlab.lfads.Dataset or an array [trials, time, neurons], checked here
    *,
    key: Any,  # one JAX PRNG key, checked here
    max_epochs: int = 500,
    batch_size: int = 128,
    learning_rate: float = 4e-3,
    lr_decay: float = 0.95,
    lr_patience: int = 6,
    lr_stop: float = 1e-5,
    adam_epsilon: float = 1e-8,
    grad_clip: float | None = 200.0,
    kl_start_epoch: int = 0,
    kl_increase_epoch: int = 80,
    l2_start_epoch: int = 0,
    l2_increase_epoch: int = 80,
    kl_ic_scale: float = 1.0,
    kl_co_scale: float = 0.05,
    l2_ic_enc_scale: float = 0.0,
    l2_ci_enc_scale: float = 0.0,
    l2_gen_scale: float = 0.0,
    l2_con_scale: float = 0.0,
    cd_rate: float = 0.3,
    cd_pass_rate: float = 0.0,
    early_stop_patience: int | None = 50,
    eval_every: int = 1,
    valid_fraction: float = 0.2,
    out: Any = None,  # a folder (str or Path) or None
    resume: bool = False,
    progress: bool | None = None,
) -> FitResult:
    """Fit ``model`` to ``data`` by maximising the ELBO (lfads-torch's recipe).

    Loss per batch (`rnnlab.lfads._loss.elbo_loss`): the reconstruction NLL summed over time
    and neurons and averaged over trials (the original LFADS's units) + ``l2_ramp`` * L2 of
    the recurrent kernels + ``kl_ramp`` * (``kl_ic_scale`` KL(initial condition) +
    ``kl_co_scale`` KL(inferred inputs)). The ramps rise from 0 to 1 linearly: epoch
    ``kl_start_epoch`` (``l2_start_epoch``) to ``+ kl_increase_epoch``. Coordinated dropout
    (``cd_rate``, ``cd_pass_rate``) and dropout act in training; posteriors are sampled in
    training and validation. The inputs' KL is down-weighted by default (``kl_co_scale``
    0.05, inside lfads-torch's tuned range; no generator L2): at the ELBO's weight 1 (and the
    original's ``l2_gen_scale=2000``) the controller carries too little and the rates fall
    below smoothing's on input-driven data (docs/lfads.md).

    Adam (``learning_rate``, ``adam_epsilon``) after global-norm gradient clipping at
    ``grad_clip`` (None: off). Every ``eval_every`` epochs the validation split is scored;
    after the warm-ups, its smoothed reconstruction loss drives the schedule: no improvement
    for more than ``lr_patience`` evaluations multiplies the learning rate by ``lr_decay``,
    and training stops when that would take it below ``lr_stop``, or after
    ``early_stop_patience`` evaluations without improvement (None: never), or at
    ``max_epochs``.

    With ``out`` (a folder): ``config.json``, ``history.jsonl``, ``model.safetensors`` (the
    best model, `rnnlab.lfads.load` reads it), ``model_final.safetensors`` and an atomic
    checkpoint ``checkpoints/checkpoint.safetensors`` at every evaluation; ``resume=True``
    continues from it to the same result, bit for bit, as an uninterrupted fit (epoch ``e``
    always draws from ``fold_in(key, e)``). Ctrl-C inside `rnnlab.training.graceful_interrupts`
    stops at the next evaluation with the checkpoint written.

    A NaN or infinite training loss stops with `FitDiverged`, whose ``result`` holds the
    parameters one step before it (the checkpoint on disk is the last evaluation's).

    Args:
        model: an `LFADS` (its ``n_neurons``, ``n_heldout``, ``ext_input_dim`` match the data).
        data: an `rnnlab.lfads.Dataset` (train/valid splits, held-out neurons, forward bins,
            external inputs) or an array [trials, time, neurons] split at random (seeded by
            the key) with ``valid_fraction`` of the trials for validation.
        key: PRNG key; the same key gives the same result, bit for bit, on the same machine.
        batch_size: trials per step (at most the training trials); an epoch is
            ``train_trials // batch_size`` steps.
        progress: a progress bar (default: when stderr is a terminal); outside one, one line
            per evaluation.

    Returns: a `FitResult`.
    """
    if not isinstance(model, LFADS):
        raise TypeError(f"model must be an rnnlab.lfads.LFADS, got {type(model).__name__}")
    key = check_key(key)
    max_epochs = positive_int("max_epochs", max_epochs)
    batch_size = positive_int("batch_size", batch_size)
    lr0 = positive_number("learning_rate", learning_rate)
    lr_decay = positive_number("lr_decay", lr_decay)
    if lr_decay >= 1.0:
        raise ValueError(f"lr_decay must be in (0, 1), got {lr_decay!r}")
    lr_patience = integer("lr_patience", lr_patience, 0)
    lr_stop = nonnegative_number("lr_stop", lr_stop)
    adam_epsilon = positive_number("adam_epsilon", adam_epsilon)
    grad_clip = positive_number("grad_clip", grad_clip, allow_none=True)
    kl_start = integer("kl_start_epoch", kl_start_epoch, 0)
    kl_increase = integer("kl_increase_epoch", kl_increase_epoch, 0)
    l2_start = integer("l2_start_epoch", l2_start_epoch, 0)
    l2_increase = integer("l2_increase_epoch", l2_increase_epoch, 0)
    scales = Scales(*(nonnegative_number(n, v) for n, v in (
        ("kl_ic_scale", kl_ic_scale), ("kl_co_scale", kl_co_scale),
        ("l2_ic_enc_scale", l2_ic_enc_scale), ("l2_ci_enc_scale", l2_ci_enc_scale),
        ("l2_gen_scale", l2_gen_scale), ("l2_con_scale", l2_con_scale))))
    cd_rate = nonnegative_number("cd_rate", cd_rate)
    if cd_rate >= 1.0:
        raise ValueError(f"cd_rate must be in [0, 1), got {cd_rate!r}")
    cd_pass_rate = nonnegative_number("cd_pass_rate", cd_pass_rate)
    if cd_pass_rate > 1.0:
        raise ValueError(f"cd_pass_rate must be in [0, 1], got {cd_pass_rate!r}")
    if early_stop_patience is not None:
        early_stop_patience = positive_int("early_stop_patience", early_stop_patience)
    eval_every = positive_int("eval_every", eval_every)

    seed = int(np.asarray(jax.random.key_data(key) if jnp.issubdtype(
        key.dtype, jax.dtypes.prng_key) else key).ravel()[-1])
    train, valid, _, _ = split_data(data, valid_fraction=valid_fraction, seed=seed)
    check_split(model, train, "the training data")
    check_split(model, valid, "the validation data")
    n_train = train.encod.shape[0]
    batch = min(batch_size, n_train)
    steps_per_epoch = max(1, n_train // batch)
    warmup = max(kl_start + kl_increase, l2_start + l2_increase)

    settings = Settings(scales, kl_start, kl_increase, l2_start, l2_increase, cd_rate,
                        cd_pass_rate, grad_clip, adam_epsilon, batch, steps_per_epoch)
    params, static = eqx.partition(model, eqx.is_array)
    opt_state = optimizer_for(grad_clip, adam_epsilon).init(params)

    def epoch_jit(p, o, encod, recon, ext, k, e, lr, limit):
        return run_epoch(p, static, o, encod, recon, ext, k, e, lr, limit, settings)

    def valid_jit(p, encod, recon, ext, k, e):
        return valid_parts(p, static, encod, recon, ext, k, e, settings)

    dev = [jnp.asarray(train.encod), jnp.asarray(train.recon),
           None if train.ext is None else jnp.asarray(train.ext)]
    vdev = [jnp.asarray(valid.encod), jnp.asarray(valid.recon),
            None if valid.ext is None else jnp.asarray(valid.ext)]
    train_key, eval_key = jax.random.split(key)

    def evaluate(p, epoch):
        k = jax.random.fold_in(eval_key, epoch)
        n, chunk, acc = vdev[0].shape[0], 512, None
        for i, s in enumerate(range(0, n, chunk)):
            sl = slice(s, s + chunk)
            parts = valid_jit(p, vdev[0][sl], vdev[1][sl], None if vdev[2] is None
                              else vdev[2][sl], jax.random.fold_in(k, i), jnp.float32(epoch))
            w = min(chunk, n - s) / n
            acc = {k2: w * v for k2, v in parts.items()} if acc is None else {
                k2: acc[k2] + w * v for k2, v in parts.items()}
        return {k2: float(v) for k2, v in acc.items()}

    options = dict(max_epochs=max_epochs, batch_size=batch, learning_rate=lr0,
                   lr_decay=lr_decay, lr_patience=lr_patience, lr_stop=lr_stop,
                   adam_epsilon=adam_epsilon, grad_clip=grad_clip, kl_start_epoch=kl_start,
                   kl_increase_epoch=kl_increase, l2_start_epoch=l2_start,
                   l2_increase_epoch=l2_increase, **scales._asdict(), cd_rate=cd_rate,
                   cd_pass_rate=cd_pass_rate, early_stop_patience=early_stop_patience,
                   eval_every=eval_every, valid_fraction=valid_fraction)
    fingerprint = json.loads(json.dumps({
        "model": model.config(), "init": _fingerprint_data(*tree_to_tensors(params).values()),
        "key": key_data(key), "data": _fingerprint_data(train.encod, train.recon, train.ext,
                                                        valid.encod, valid.recon, valid.ext),
        "fit": {k: v for k, v in options.items() if k != "max_epochs"}}))

    # host-side state (all of it goes into the checkpoint)
    st = {"epoch": 0, "lr": lr0, "smth": None, "best_smth": math.inf, "bad_lr": 0,
          "best_stop": math.inf, "bad_stop": 0, "best_epoch": None, "stopped": "max_epochs",
          "wall": 0.0, "history": [], "pending": []}
    best_params = None
    folder = ckpt = None
    if out is not None:
        folder = Path(out)
        ckpt = folder / "checkpoints" / CHECKPOINT
        if resume and ckpt.exists():
            tensors, meta = read_safetensors(ckpt, kind="lfads_checkpoint")
            if meta.get("fingerprint") != fingerprint:
                raise ValueError(f"{ckpt}: the checkpoint was made with another model, data, "
                                 "key or fit settings; resume with the same ones (only "
                                 "max_epochs may change)")
            params = tensors_to_tree(params, tensors, "params", str(ckpt))
            opt_state = tensors_to_tree(opt_state, tensors, "opt", str(ckpt))
            if any(n.startswith("best") for n in tensors):
                best_params = tensors_to_tree(params, tensors, "best", str(ckpt))
            st = meta["state"]
            st["best_smth"] = math.inf if st["best_smth"] is None else st["best_smth"]
            st["best_stop"] = math.inf if st["best_stop"] is None else st["best_stop"]
        elif ckpt.exists() and not resume:
            raise FileExistsError(f"{folder} already holds an LFADS fit; pass resume=True to "
                                  "continue it, or choose another folder")
        atomic_write_json(folder / "config.json", {
            "kind": "lfads_fit", "model": model.config(), "fit": options,
            "key": key_data(key), "n_train": n_train, "n_valid": int(valid.encod.shape[0])})

    def write_checkpoint():
        tensors = tree_to_tensors(params, "params")
        tensors.update(tree_to_tensors(opt_state, "opt"))
        if best_params is not None:
            tensors.update(tree_to_tensors(best_params, "best"))
        state = dict(st, best_smth=None if math.isinf(st["best_smth"]) else st["best_smth"],
                     best_stop=None if math.isinf(st["best_stop"]) else st["best_stop"])
        write_safetensors(ckpt, tensors, {"kind": "lfads_checkpoint",
                                          "fingerprint": fingerprint, "state": state})
        atomic_write_text(folder / "history.jsonl",
                          "".join(json.dumps(h) + "\n" for h in st["history"]))

    bar = None
    if progress_enabled(progress):
        from tqdm.auto import tqdm

        bar = tqdm(total=max_epochs, initial=min(st["epoch"], max_epochs), desc="lfads fit",
                   unit="epoch", dynamic_ncols=True)
    lines = progress_lines(progress)
    t0 = time.perf_counter()
    wall0 = st["wall"]
    full = jnp.int32(steps_per_epoch)
    diverged = None
    prev_start: list = []  # the start of the previous chunk's last epoch
    first_step = st["epoch"] * steps_per_epoch
    try:
        while st["epoch"] < max_epochs and st["stopped"] == "max_epochs":
            e0 = st["epoch"]
            stop = min(max_epochs, (e0 // eval_every + 1) * eval_every)
            starts, chunk_losses = list(prev_start), []
            for e in range(e0, stop):
                starts.append((e, params, opt_state, st["lr"]))
                params, opt_state, losses = epoch_jit(
                    params, opt_state, *dev, jax.random.fold_in(train_key, e), jnp.float32(e),
                    jnp.float32(st["lr"]), full)
                chunk_losses.append(losses)
            prev_start = starts[-1:]
            values = np.asarray(jax.device_get(jnp.concatenate(chunk_losses)), np.float64)
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:
                s_bad = e0 * steps_per_epoch + int(bad[0])  # the loss of the params after s_bad
                good = s_bad - 1 if s_bad > first_step else s_bad
                e_g, p0, o0, lr_g = max((x for x in starts if x[0] * steps_per_epoch <= good),
                                  key=lambda x: x[0])
                params, opt_state, _ = epoch_jit(
                    p0, o0, *dev, jax.random.fold_in(train_key, e_g), jnp.float32(e_g),
                    jnp.float32(lr_g), jnp.int32(good - e_g * steps_per_epoch))
                st["stopped"] = "diverged"
                diverged = (s_bad, float(values[int(bad[0])]), good)
                break
            st["pending"].extend(values.tolist())
            st["epoch"] = stop
            scores = evaluate(params, stop - 1)
            v = scores["recon"]
            st["smth"] = v if st["smth"] is None else 0.3 * v + 0.7 * st["smth"]
            rec = {"epoch": stop, "step": stop * steps_per_epoch,
                   "train_loss": float(np.mean(st["pending"])),
                   "valid_loss": scores["loss"], "valid_recon": v,
                   "valid_recon_smth": st["smth"], "valid_kl_ic": scores["kl_ic"],
                   "valid_kl_co": scores["kl_co"], "l2": scores["l2"],
                   "kl_ramp": min(max((stop - kl_start) / (kl_increase + 1), 0.0), 1.0),
                   "l2_ramp": min(max((stop - l2_start) / (l2_increase + 1), 0.0), 1.0),
                   "learning_rate": st["lr"],
                   "wall_time": wall0 + time.perf_counter() - t0}
            st["history"].append(rec)
            st["pending"] = []
            if stop >= warmup:  # the schedule acts once the loss stops changing by design
                if st["smth"] < st["best_stop"]:
                    st["best_stop"], st["bad_stop"] = st["smth"], 0
                    st["best_epoch"] = stop
                    best_params = params
                else:
                    st["bad_stop"] += 1
                if st["smth"] < st["best_smth"]:
                    st["best_smth"], st["bad_lr"] = st["smth"], 0
                else:
                    st["bad_lr"] += 1
                    if st["bad_lr"] > lr_patience:
                        st["bad_lr"] = 0
                        if st["lr"] * lr_decay < lr_stop:
                            st["stopped"] = "lr_stop"
                        else:
                            st["lr"] = st["lr"] * lr_decay
                if early_stop_patience is not None and st["bad_stop"] >= early_stop_patience:
                    st["stopped"] = "early_stop"
            st["wall"] = rec["wall_time"]
            if bar is not None:
                bar.update(stop - e0)
                bar.set_postfix(valid=f"{st['smth']:.4g}", lr=f"{st['lr']:.2g}")
            if lines:
                print(f"lfads fit: epoch {stop}/{max_epochs} valid recon {v:.4g} (smoothed "
                      f"{st['smth']:.4g}) lr {st['lr']:.3g} elapsed {rec['wall_time']:.1f} s",
                      file=sys.stderr, flush=True)
            if ckpt is not None:
                write_checkpoint()
            if interrupt.requested() and st["epoch"] < max_epochs \
                    and st["stopped"] == "max_epochs":
                raise interrupt.TrainingInterrupted(st["epoch"], ckpt)
    finally:
        if bar is not None:
            bar.close()

    final = eqx.combine(params, static)
    best = final if best_params is None else eqx.combine(best_params, static)
    steps = st["epoch"] * steps_per_epoch
    result = FitResult(final, best, st["history"], st["epoch"], steps, st["stopped"],
                       st["best_epoch"] if best_params is not None else None)
    if diverged is not None:
        s, value, good = diverged
        result.steps = good
        where = f"; the last checkpoint (epoch {st['epoch']}) is kept at {ckpt}" if (
            ckpt is not None and ckpt.exists()) else ""
        raise FitDiverged(
            f"LFADS fit diverged: the training loss became {value} at step {s + 1} (the "
            f"parameters after {s} steps); the last good parameters are those after {good} "
            f"steps{where}. Lower the learning rate, clip gradients harder (grad_clip) or "
            "check the data.", result)
    if folder is not None:
        save(folder / "model.safetensors", best)
        save(folder / "model_final.safetensors", final)
        atomic_write_json(folder / "result.json", {
            "epochs": result.epochs, "steps": steps, "stopped": result.stopped,
            "best_epoch": result.best_epoch,
            "final": st["history"][-1] if st["history"] else None})
    return result

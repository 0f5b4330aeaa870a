"""BPTT training with Optax: masked losses, regularisers, evaluation, early stopping,
atomic checkpoints, resume, and divergence detection."""

import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, PRNGKeyArray

from ..io._model_io import model_meta, save, tensors_to_tree, tree_to_tensors
from ..io._safe import (
    FileFormatError,
    atomic_write_json,
    atomic_write_text,
    read_safetensors,
    write_safetensors,
)
from ..models._base import AbstractRNN
from ..tasks._base import AbstractTask, Trial, registered_name

CHECKPOINT_NAME = "checkpoint.safetensors"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite. ``result`` holds the last good model (the parameters
    one step before the non-finite loss), its step count and the history up to it."""

    def __init__(self, message: str, result: "TrainResult"):
        super().__init__(message)
        self.result = result


@dataclasses.dataclass
class TrainResult:
    """What `train` returns.

    Attributes:
        model: the trained model (at the last step, or at the step early stopping fired).
        history: one dict per evaluation: ``step``, ``loss`` and ``accuracy`` (on fresh trials),
            ``train_loss`` (mean training loss since the previous evaluation), ``wall_time``
            (seconds of training so far, summed over resumes), plus task-specific scores.
        best_model: the model at the best evaluation (see `is_better`): the highest
            accuracy, ties broken by the lower evaluation loss; when training runs all its
            steps (no ``target_accuracy``, or 1), accuracies within the evaluation's binomial
            standard error of the highest so far count as ties.
        steps: number of optimiser steps taken in total.
        stopped: ``"steps"`` (ran all steps) or ``"target_accuracy"`` (early stop).
        best_step: the step of the best evaluation (None: no evaluation was better than the
            starting model, which is then ``best_model``).
    """

    model: AbstractRNN
    history: list[dict[str, float]]
    best_model: AbstractRNN
    steps: int
    stopped: str
    best_step: int | None = None

    @property
    def best_record(self) -> dict[str, float] | None:
        """The history record of the best evaluation (None without one)."""
        for h in self.history:
            if h["step"] == self.best_step:
                return h
        return None

    @property
    def final_accuracy(self) -> float:
        return self.history[-1]["accuracy"] if self.history else float("nan")


# ------------------------------------------------------------------------------ loss and step


def weight_penalty(model: AbstractRNN) -> Array:
    """Mean squared entry of each effective weight matrix, summed over matrices."""
    if hasattr(model, "effective_weights"):
        w = model.effective_weights()
        mats = [w[k] for k in ("w_rec", "w_in", "w_out") if k in w]
    else:
        params = eqx.filter(model, model.trainable_filter())
        mats = [x for x in jax.tree.leaves(params) if x.ndim == 2]
    return sum(jnp.mean(m**2) for m in mats)


def batch_loss(
    model: AbstractRNN,
    task: AbstractTask,
    trial: Trial,
    key: PRNGKeyArray | None,
    l2_rates: float = 0.0,
    l2_weights: float = 0.0,
) -> tuple[Array, dict[str, Array]]:
    """Task loss plus regularisers on a batch of trials; returns (total, parts)."""
    # the model's batched unroll (CTRNN: hand-written reverse pass; default: vmap of unroll)
    states = model.unroll_batch(trial.inputs, model.initial_state(), key=key)
    outputs = model.readout_all(states)
    task_loss = task.loss(outputs, trial)
    total = task_loss
    parts = {"task_loss": task_loss}
    if l2_rates:
        rate_pen = jnp.mean(model.rates_all(states) ** 2)
        total = total + l2_rates * rate_pen
        parts["rate_penalty"] = rate_pen
    if l2_weights:
        w_pen = weight_penalty(model)
        total = total + l2_weights * w_pen
        parts["weight_penalty"] = w_pen
    return total, parts


def make_train_step(
    static: AbstractRNN,
    task: AbstractTask,
    optimizer: optax.GradientTransformation,
    *,
    batch_size: int,
    l2_rates: float = 0.0,
    l2_weights: float = 0.0,
) -> Callable:
    """A pure training step ``(params, opt_state, key) -> (params, opt_state, loss)``.

    ``params`` are the trainable leaves (``eqx.partition(model, model.trainable_filter())``),
    ``static`` the rest. The step samples its own batch from ``key`` inside the compiled
    function. It is written to be ``jax.jit``-ed, and ``jax.vmap``-ed over a stack of
    (params, opt_state, key) to train ensembles.
    """

    def step(params, opt_state, key):
        k_trial, k_noise = jax.random.split(key)
        trial = task.sample_batch(k_trial, batch_size)

        def objective(p):
            model = eqx.combine(p, static)
            return batch_loss(model, task, trial, k_noise, l2_rates, l2_weights)

        (loss, _), grads = jax.value_and_grad(objective, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = eqx.apply_updates(params, updates)
        return params, opt_state, loss

    return step


def evaluate(
    model: AbstractRNN, task: AbstractTask, *, key: PRNGKeyArray, batch_size: int = 512
) -> dict[str, float]:
    """Scores of ``model`` on ``batch_size`` fresh trials of ``task`` (noise on, as in training).

    Returns a dict of floats with at least ``loss`` and ``accuracy``.
    """
    _check_pair(model, task)
    key = check_key(key)
    out = _evaluate_jit(model, task, key, batch_size)
    return {k: float(v) for k, v in out.items()}


@eqx.filter_jit
def _evaluate_jit(model, task, key, batch_size):
    k_trial, k_noise = jax.random.split(key)
    trial = task.sample_batch(k_trial, batch_size)
    # the batched unroll used in training (same noise convention; CTRNN: fast path)
    states = model.unroll_batch(trial.inputs, model.initial_state(), key=k_noise)
    return task.evaluate(model.readout_all(states), trial)


# ------------------------------------------------------------------------------ checks


def _check_pair(model, task) -> None:
    if not isinstance(model, AbstractRNN):
        raise TypeError(f"model must be an rnnlab model (AbstractRNN), got {type(model).__name__}")
    if not isinstance(task, AbstractTask):
        raise TypeError(f"task must be an rnnlab task (AbstractTask), got {type(task).__name__}")
    if model.n_in != task.n_in:
        raise ValueError(f"model.n_in={model.n_in} but the task has n_in={task.n_in} inputs")
    if model.n_out != task.n_out:
        raise ValueError(f"model.n_out={model.n_out} but the task has n_out={task.n_out} outputs")
    model_dt = getattr(model, "dt", None)
    if model.is_continuous and model_dt is not None and not math.isclose(model_dt, task.dt):
        raise ValueError(
            f"model.dt={model_dt} differs from task.dt={task.dt}: build the model with "
            f"dt={task.dt} (the task's trials are laid out in steps of task.dt)"
        )


def check_key(key: Any, name: str = "key") -> Array:
    """``key`` as one JAX PRNG key, or a TypeError naming ``name``."""
    if isinstance(key, (jax.Array, np.ndarray)):
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.ndim == 0:
            return key
        if key.dtype == np.uint32 and key.ndim == 1:
            return jnp.asarray(key)
        what = f"an array of dtype {key.dtype} and shape {key.shape}"
    else:
        what = type(key).__name__
    raise TypeError(
        f"{name} must be one JAX PRNG key, e.g. jax.random.PRNGKey(seed) or "
        f"jax.random.key(seed), got {what}"
    )


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_float(name: str, value: Any, minimum: float = 0.0, *, strict=False) -> float:
    if isinstance(value, (jax.Array, np.ndarray)) and value.shape == () and jnp.issubdtype(
        value.dtype, jnp.floating
    ):
        value = float(value)  # a 0-d array (np.float32(...), jnp.asarray(...)) is a number
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and (value > minimum if strict else value >= minimum)
    if not ok:
        rel = ">" if strict else ">="
        raise ValueError(f"{name} must be a finite number {rel} {minimum}, got {value!r}")
    return float(value)


def check_loop_args(steps, batch_size, eval_every, eval_batch_size, l2_rates, l2_weights,
                    target_accuracy):
    """Validate the arguments `train` and `train_ensemble` share; returns them normalised."""
    steps = _check_int("steps", steps, 1)
    batch_size = _check_int("batch_size", batch_size, 1)
    eval_every = _check_int("eval_every", eval_every, 1)
    eval_batch_size = _check_int("eval_batch_size", eval_batch_size, 1)
    l2_rates = _check_float("l2_rates", l2_rates)
    l2_weights = _check_float("l2_weights", l2_weights)
    if target_accuracy is not None:
        target_accuracy = _check_float("target_accuracy", target_accuracy)
        if target_accuracy > 1:
            raise ValueError(f"target_accuracy must be in [0, 1], got {target_accuracy}")
    return steps, batch_size, eval_every, eval_batch_size, l2_rates, l2_weights, target_accuracy


def make_optimizer(
    learning_rate: float | Callable, grad_clip: float | None
) -> optax.GradientTransformation:
    """Adam with the given learning rate (or Optax schedule), after global-norm clipping."""
    if not callable(learning_rate):
        _check_float("learning_rate", learning_rate, 0.0, strict=True)
    adam = optax.adam(learning_rate)
    if grad_clip is None:
        return adam
    _check_float("grad_clip", grad_clip, 0.0, strict=True)
    return optax.chain(optax.clip_by_global_norm(grad_clip), adam)


# ------------------------------------------------------------------------------ checkpoints


def _key_data(key) -> list[int]:
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.asarray(key).ravel().tolist()


def _fingerprint(model, task, hyper) -> dict[str, Any]:
    return {
        "model": model_meta(model) if _can_describe(model) else type(model).__name__,
        "task": {"name": registered_name(task), "params": _task_config(task)},
        "training": {k: v for k, v in hyper.items() if k != "steps"},
    }


def _can_describe(model) -> bool:
    try:
        model.config()
        return True
    except ValueError:
        return False


def _task_config(task) -> Any:
    try:
        return json.loads(json.dumps(task.config()))
    except (TypeError, ValueError):
        return type(task).__name__


def save_checkpoint(path, params, opt_state, meta, best_params=None) -> None:
    """Write the trainable leaves, the optimiser state and (optionally) the trainable leaves
    of the best model so far to one atomic checkpoint file."""
    tensors = tree_to_tensors(params, "params")
    tensors.update(tree_to_tensors(opt_state, "opt"))
    if best_params is not None:
        tensors.update(tree_to_tensors(best_params, "best"))
    write_safetensors(path, tensors, {"kind": "checkpoint", **meta})


def load_checkpoint(path, params_template, opt_template):
    tensors, meta = read_safetensors(path, kind="checkpoint")
    params = tensors_to_tree(params_template, tensors, "params", str(path))
    opt_state = tensors_to_tree(opt_template, tensors, "opt", str(path))
    return params, opt_state, meta


def load_best_params(path, params_template):
    """The best model's trainable leaves stored in a checkpoint, or None (older files)."""
    tensors, _ = read_safetensors(path, kind="checkpoint")
    if not any(name.startswith("best") for name in tensors):
        return None
    return tensors_to_tree(params_template, tensors, "best", str(path))


# ------------------------------------------------------------------------------ train


def is_better(accuracy: float, loss: float, best_accuracy: float, best_loss: float, *,
              top_accuracy: float | None = None, n_trials: int | None = None) -> bool:
    """Whether an evaluation (accuracy, loss) beats the best so far. A non-finite accuracy
    counts as the lowest (-1) and a non-finite loss as the highest, so a NaN evaluation never
    becomes the best.

    Without ``n_trials``: a higher accuracy, or the same accuracy with a lower loss. With
    ``n_trials`` (the evaluation's trials) and ``top_accuracy`` (the highest accuracy of the
    earlier evaluations): accuracies measured on ``n_trials`` fresh trials differ by about
    their binomial standard error ``se = sqrt(max(p (1 - p), 1 / n) / n)`` (p the top) by
    chance alone, so an accuracy more than ``se`` above the top wins, one more than ``se``
    below it loses, and within that band the lower loss wins. On a task whose accuracy is
    capped by its noise (every evaluation near the cap) the better-trained network, with the
    lower loss, is kept rather than the luckiest early evaluation; a collapse of accuracy is
    never kept."""
    acc = accuracy if math.isfinite(accuracy) else -1.0
    los = loss if math.isfinite(loss) else math.inf
    if n_trials is None or top_accuracy is None:
        if acc != best_accuracy:
            return acc > best_accuracy
        return los < best_loss
    p = min(max(top_accuracy, 0.0), 1.0)
    se = math.sqrt(max(p * (1.0 - p), 1.0 / n_trials) / n_trials)
    if acc > top_accuracy + se:
        return True
    if acc < top_accuracy - se:
        return False
    return los < best_loss


def _top_accuracy(history) -> float:
    """The highest finite accuracy of ``history`` (-1 without one)."""
    accs = [h.get("accuracy", math.nan) for h in history]
    return max((a for a in accs if math.isfinite(a)), default=-1.0)


def _best_from_history(history, n_trials=None) -> tuple[float, float, int | None]:
    """(accuracy, loss, step) of the best record of ``history`` (checkpoints written before
    the best step was stored)."""
    best = (-1.0, math.inf, None)
    for i, h in enumerate(history):
        if is_better(h.get("accuracy", math.nan), h.get("loss", math.nan), best[0], best[1],
                     top_accuracy=_top_accuracy(history[:i]), n_trials=n_trials):
            acc, los = h["accuracy"], h["loss"]
            best = (acc if math.isfinite(acc) else -1.0, los if math.isfinite(los) else math.inf,
                    int(h["step"]))
    return best


def _remove_stale_temporaries(out: Path) -> None:
    """Delete the temporary files a process killed during an atomic write left behind (the
    run's own files only; the finished files are never partial)."""
    for folder, name in ((out, "config.json"), (out, "history.jsonl"),
                         (out, "model.safetensors"), (out, "model_final.safetensors"),
                         (out, "best.json"), (out / "checkpoints", CHECKPOINT_NAME)):
        for tmp in folder.glob(f".{name}.*.tmp"):
            try:
                tmp.unlink()
            except OSError:
                pass


def _progress_enabled(progress: bool | None) -> bool:
    if progress is not None:
        return bool(progress)
    return sys.stderr.isatty()


def train(
    model: AbstractRNN,
    task: AbstractTask,
    *,
    key: PRNGKeyArray,
    steps: int = 2000,
    batch_size: int = 64,
    learning_rate: float | Callable[[int], float] = 1e-3,
    grad_clip: float | None = 1.0,
    l2_rates: float = 0.0,
    l2_weights: float = 0.0,
    optimizer: optax.GradientTransformation | None = None,
    eval_every: int = 100,
    eval_batch_size: int = 256,
    target_accuracy: float | None = None,
    out_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    progress: bool | None = None,
    run_config: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``model`` on ``task`` by backpropagation through time.

    Each step samples ``batch_size`` fresh trials inside the compiled step, runs the network
    (with its noise), and applies Adam (Optax) to the masked task loss (MSE or cross-entropy,
    as the task says) plus ``l2_rates * mean(rates^2) + l2_weights * sum_W mean(W^2)`` over the
    effective weight matrices, after global-norm clipping at ``grad_clip`` (None: off). Only the
    model's trainable leaves change; constraints hold exactly (they are a parametrisation).

    Every ``eval_every`` steps (and at the end) the model is scored on ``eval_batch_size`` fresh
    trials; training stops early once that accuracy reaches ``target_accuracy``.

    With ``out_dir``: ``config.json``, ``history.jsonl``, ``model.safetensors`` (the best
    evaluated model, see `TrainResult.best_model`), ``model_final.safetensors`` (the model at
    the last step), ``best.json`` (the best evaluation: ``step``, ``accuracy``, ``loss``, and
    the final one's), and an atomic checkpoint ``checkpoints/checkpoint.safetensors`` every ``checkpoint_every`` steps
    (default: every evaluation). ``resume=True`` continues from that checkpoint, to the same
    result as an uninterrupted run (step ``i`` always uses ``fold_in(key, i)``).

    A NaN or infinite loss stops training with `TrainingDiverged`. The parameters that gave it
    are discarded: the last good ones are those one step earlier (the last whose training loss
    was seen finite). The exception's ``result`` holds them (``result.steps`` counts their
    steps; evaluations after them are dropped from ``result.history``), and the checkpoint on
    disk holds the last good state: if the newest checkpoint held the discarded parameters, it
    is put back one step. ``resume=True`` with no checkpoint in ``out_dir`` starts the run
    from the beginning (so the same command can be re-run after any interruption).

    Args:
        model, task: what to train on what. ``model.dt`` must equal ``task.dt``.
        key: PRNG key; the same key gives the same result, bit for bit, on the same machine.
        steps: optimiser steps in total (a resumed run counts those already done).
        learning_rate: a float or an Optax schedule (step -> rate). Ignored with ``optimizer``.
        optimizer: any Optax transformation, replacing Adam + clipping.
        progress: show a progress bar (default: when stderr is a terminal).
        run_config: extra JSON-able entries for ``config.json`` (the CLI records the seed here).

    Returns: a `TrainResult`.
    """
    _check_pair(model, task)
    key = check_key(key)
    steps, batch_size, eval_every, eval_batch_size, l2_rates, l2_weights, target_accuracy = (
        check_loop_args(steps, batch_size, eval_every, eval_batch_size, l2_rates, l2_weights,
                        target_accuracy)
    )
    if out_dir is not None and Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ValueError(f"out_dir={str(out_dir)!r} is a file; give a directory for the run")
    if checkpoint_every is None:
        checkpoint_every = eval_every
    checkpoint_every = _check_int("checkpoint_every", checkpoint_every, 1)
    if resume and out_dir is None:
        raise ValueError("resume=True needs out_dir (where the checkpoint is)")
    if optimizer is None:
        optimizer = make_optimizer(learning_rate, grad_clip)

    hyper = {
        "steps": steps, "batch_size": batch_size,
        "learning_rate": learning_rate if not callable(learning_rate) else "schedule",
        "grad_clip": grad_clip, "l2_rates": l2_rates, "l2_weights": l2_weights,
        "eval_every": eval_every, "eval_batch_size": eval_batch_size,
        "target_accuracy": target_accuracy, "key": _key_data(key),
    }

    params, static = eqx.partition(model, model.trainable_filter())
    opt_state = optimizer.init(params)
    step_fn = jax.jit(
        make_train_step(
            static, task, optimizer, batch_size=batch_size, l2_rates=l2_rates,
            l2_weights=l2_weights,
        )
    )
    train_key, eval_key = jax.random.split(key)

    start = 0
    resumed_losses: list[float] = []
    finished = False
    history: list[dict[str, float]] = []
    wall_offset = 0.0
    # (accuracy, loss, model, step) of the best evaluation so far. A run that stops at a
    # target below 1 keeps the highest accuracy (normally the evaluation that reached it); a
    # run through all its steps treats accuracies within noise of the top as equal (see
    # `is_better`), so that a noise-capped task keeps its trained network.
    best = (-1.0, math.inf, model, None)
    band = eval_batch_size if target_accuracy is None or target_accuracy >= 1.0 else None
    ckpt_path = None
    out = None
    fingerprint = _fingerprint(model, task, hyper)
    if out_dir is not None:
        out = Path(out_dir)
        ckpt_path = out / "checkpoints" / CHECKPOINT_NAME
        if resume:
            _remove_stale_temporaries(out)
        if resume and ckpt_path.exists():
            params, opt_state, meta = load_checkpoint(ckpt_path, params, opt_state)
            if meta.get("fingerprint") != json.loads(json.dumps(fingerprint)):
                raise ValueError(
                    f"{ckpt_path}: the checkpoint was made with another model, task, key or "
                    "training settings; resume with the same ones (only `steps` may change)"
                )
            start = int(meta["step"])
            history = list(meta["history"])
            wall_offset = float(meta.get("wall_time", 0.0))
            # the training losses since the last evaluation, so that the next record's
            # train_loss averages the same steps as in an uninterrupted run
            resumed_losses = [float(x) for x in meta.get("losses_since_eval", [])]
            best_params = load_best_params(ckpt_path, params)
            if "best_step" in meta:
                b_acc, b_step = float(meta["best_accuracy"]), meta["best_step"]
                b_loss = math.inf if meta.get("best_loss") is None else float(meta["best_loss"])
            else:  # older checkpoints: the first record of the highest accuracy
                b_acc, b_loss, b_step = _best_from_history(history, band)
            best = (
                b_acc, b_loss,
                None if best_params is None else eqx.combine(best_params, static),
                b_step,
            )
            finished = meta.get("stopped") == "target_accuracy"
        elif (out / "config.json").exists() and not resume and ckpt_path.exists():
            raise FileExistsError(
                f"{out} already holds a run; pass resume=True (--resume) to continue it, "
                "or choose another output directory"
            )
        config = {
            "version": _version(),
            "task": fingerprint["task"],
            "model": fingerprint["model"],
            "training": {k: v for k, v in hyper.items()},
        }
        if run_config:
            config.update(run_config)
        atomic_write_json(out / "config.json", config)

    def current_model(p):
        return eqx.combine(p, static)

    bar = None
    if _progress_enabled(progress):
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=start, desc="training", unit="step", dynamic_ncols=True)

    def write_history():
        if out is not None:
            lines = "".join(json.dumps(h) + "\n" for h in history)
            atomic_write_text(out / "history.jsonl", lines)

    def checkpoint(step_done, p, o, wall, hist, losses):
        if ckpt_path is None:
            return
        meta = {
            "step": step_done, "history": hist, "wall_time": wall,
            "best_accuracy": best[0], "fingerprint": fingerprint, "stopped": stopped,
            "losses_since_eval": losses,
            "best_loss": None if not math.isfinite(best[1]) else best[1],
            "best_step": best[3],
        }
        best_p = None if best[2] is None else eqx.filter(best[2], model.trainable_filter())
        save_checkpoint(ckpt_path, p, o, meta, best_p)

    t0 = time.perf_counter()
    stopped = "steps"
    losses_since_eval: list[float] = resumed_losses
    # the last (params, opt_state, steps done) whose training loss was seen to be finite
    # (before the first step: the starting point, the best there is)
    last_good = (params, opt_state, start)
    step = start
    last_saved = start
    if finished:
        stopped = "target_accuracy"
    try:
        while step < steps and not finished:
            step_key = jax.random.fold_in(train_key, step)
            new_params, new_opt, loss = step_fn(params, opt_state, step_key)
            loss_value = float(loss)
            if not math.isfinite(loss_value):
                # `params` (after `step` updates) gave a non-finite loss: the last good
                # parameters are those of the previous step, whose loss was finite
                good_p, good_o, good_step = last_good
                history[:] = [h for h in history if h["step"] <= good_step]
                if ckpt_path is not None and last_saved > good_step:
                    # the checkpoint on disk holds the parameters that just failed: replace
                    # it by the last good ones
                    kept_losses = losses_since_eval[: max(len(losses_since_eval) - 1, 0)]
                    if history and history[-1]["step"] == good_step:
                        kept_losses = []
                    checkpoint(good_step, good_p, good_o, wall_offset + time.perf_counter() - t0,
                               history, kept_losses)
                    last_saved = good_step
                write_history()
                good = current_model(good_p)
                where = (
                    f"; the last good checkpoint (step {last_saved}) is kept at {ckpt_path}"
                    if ckpt_path is not None and ckpt_path.exists()
                    else ""
                )
                raise TrainingDiverged(
                    f"training diverged: the loss became {loss_value} at step {step + 1} (the "
                    f"parameters after {step} steps); the last good parameters are those after "
                    f"{good_step} steps{where}. Lower the learning rate, clip gradients harder "
                    "(grad_clip) or check the task's inputs.",
                    TrainResult(good, history, best[2] or good, good_step, "diverged",
                                best[3]),
                )
            last_good = (params, opt_state, step)
            params, opt_state = new_params, new_opt
            step += 1
            losses_since_eval.append(loss_value)
            if bar is not None:
                bar.update(1)
            is_eval = step % eval_every == 0 or step == steps
            reached = False
            if is_eval:
                m = current_model(params)
                k_eval = jax.random.fold_in(eval_key, step)
                scores = _evaluate_jit(m, task, k_eval, eval_batch_size)
                record = {"step": step, "train_loss": float(np.mean(losses_since_eval))}
                record.update({k: float(v) for k, v in scores.items()})
                record["wall_time"] = wall_offset + time.perf_counter() - t0
                history.append(record)
                losses_since_eval = []
                if is_better(record["accuracy"], record["loss"], best[0], best[1],
                             top_accuracy=_top_accuracy(history[:-1]), n_trials=band):
                    best = (record["accuracy"], record["loss"], m, step)
                if bar is not None:
                    bar.set_postfix(loss=f"{record['loss']:.4g}", acc=f"{record['accuracy']:.3f}")
                write_history()
                reached = target_accuracy is not None and record["accuracy"] >= target_accuracy
            if reached:
                stopped = "target_accuracy"
            if step % checkpoint_every == 0 or step == steps or reached:
                checkpoint(step, params, opt_state, wall_offset + time.perf_counter() - t0,
                           history, losses_since_eval)
                last_saved = step
            if reached:
                break
        if step >= steps and history and target_accuracy is not None:
            if history[-1]["accuracy"] >= target_accuracy:
                stopped = "target_accuracy"
    finally:
        if bar is not None:
            bar.close()

    final = current_model(params)
    if not history:  # resumed a finished run with nothing left to do
        k_eval = jax.random.fold_in(eval_key, step)
        scores = evaluate(final, task, key=k_eval, batch_size=eval_batch_size)
        history.append({"step": step, **scores, "wall_time": wall_offset})
    best_model = best[2] if best[2] is not None else final
    best_step = best[3] if best[2] is not None else None
    result = TrainResult(final, history, best_model, step, stopped, best_step)
    if out is not None:
        write_history()
        if _can_describe(final):
            save(out / "model.safetensors", best_model)
            save(out / "model_final.safetensors", final)
        rec = result.best_record
        atomic_write_json(out / "best.json", {
            "step": best_step,
            "accuracy": None if rec is None else rec["accuracy"],
            "loss": None if rec is None else rec["loss"],
            "final_step": step,
            "final_accuracy": history[-1]["accuracy"],
            "final_loss": history[-1]["loss"],
            "model": "model.safetensors", "final_model": "model_final.safetensors",
        })
    return result


def _version() -> str:
    from .. import __version__

    return __version__

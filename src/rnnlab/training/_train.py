"""BPTT training with Optax: masked losses, regularisers, evaluation, early stopping,
atomic checkpoints, resume, and divergence detection. `train` runs one network through the
chunked loop of `_runner.py` (the ensemble runs many through the same loop)."""

import dataclasses
import functools
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, PRNGKeyArray

from .._validate import positive_number
from ..io._model_io import save, tensors_to_tree, tree_to_tensors
from ..io._safe import atomic_write_json, read_safetensors, write_safetensors
from ..models._base import AbstractRNN
from ..tasks._base import AbstractTask, Trial
from . import _runner
from ._config import TrainConfig, make_config
from ._runner import CHECKPOINT_NAME as CHECKPOINT_NAME
from ._runner import Member
from ._runner import _best_from_history as _best_from_history
from ._runner import _top_accuracy as _top_accuracy
from ._runner import is_better as is_better


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
    model: AbstractRNN,
    task: AbstractTask,
    *,
    key: Any,  # one JAX PRNG key, checked here (a TypeError that says what a key is)
    batch_size: int = 512,
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


def make_optimizer(
    learning_rate: float | Callable, grad_clip: float | None
) -> optax.GradientTransformation:
    """Adam with the given learning rate (or Optax schedule), after global-norm clipping."""
    if not callable(learning_rate):
        positive_number("learning_rate", learning_rate)
    adam = optax.adam(learning_rate)
    if grad_clip is None:
        return adam
    positive_number("grad_clip", grad_clip)
    return optax.chain(optax.clip_by_global_norm(grad_clip), adam)


# ------------------------------------------------------------------------------ checkpoints


def save_checkpoint(path, params, opt_state, meta, best_params=None) -> None:
    """Write the trainable leaves, the optimiser state and (optionally) the trainable leaves
    of the best model so far to one atomic checkpoint file."""
    tensors = tree_to_tensors(params, "params")
    tensors.update(tree_to_tensors(opt_state, "opt"))
    if best_params is not None:
        tensors.update(tree_to_tensors(best_params, "best"))
    write_safetensors(path, tensors, {"kind": "checkpoint", **meta})


def load_best_params(path, params_template):
    """The best model's trainable leaves stored in a checkpoint, or None (older files)."""
    tensors, _ = read_safetensors(path, kind="checkpoint")
    if not any(name.startswith("best") for name in tensors):
        return None
    return tensors_to_tree(params_template, tensors, "best", str(path))


# ------------------------------------------------------------------------------ train


class SingleEngine:
    """Runs chunks of `train`'s steps for one network.

    Each step is the compiled `make_train_step`, dispatched asynchronously: a chunk queues
    its steps on the device and the host waits only once, at the chunk's end, for its
    losses. (A ``lax.fori_loop`` over the chunk compiles the step inside a loop body, where
    XLA fuses the noise generator differently: the last bits of noisy runs would change;
    dispatching the very program `train` has always compiled keeps every result identical.)
    """

    def __init__(self, step_fn, params, opt_state, static, task, train_key, eval_key,
                 eval_batch_size):
        self.step_fn, self.static, self.task = step_fn, static, task
        self.train_key, self.eval_key, self.eval_batch_size = train_key, eval_key, eval_batch_size
        self.params, self.opt_state = params, opt_state
        self.best_params = None
        self.pending: list[float] = []  # training losses since the last evaluation
        self.consumed: list[float] = []  # those the last evaluation averaged
        self._losses = []

    def snapshot(self):
        return self.params, self.opt_state

    def _steps(self, params, opt_state, start, stop, losses=None):
        for i in range(start, stop):
            params, opt_state, loss = self.step_fn(
                params, opt_state, jax.random.fold_in(self.train_key, i))
            if losses is not None:
                losses.append(loss)
        return params, opt_state

    def advance(self, start, stop):
        self._losses = []
        self.params, self.opt_state = self._steps(self.params, self.opt_state, start, stop,
                                                  self._losses)

    def sync(self, start, stop):
        values = [float(x) for x in jax.device_get(self._losses)]
        self._losses = []
        for j, value in enumerate(values):
            if not math.isfinite(value):
                self.pending.extend(values[:j])
                return [(start + j, value)]
            # (steps after a non-finite loss are discarded with their parameters)
        self.pending.extend(values)
        return [None]

    def restore(self, members, target, base):
        base_step, (params, opt_state) = base
        self.params, self.opt_state = self._steps(params, opt_state, base_step, target)

    def scores(self, stop, live):
        k_eval = jax.random.fold_in(self.eval_key, stop)
        out = _evaluate_jit(self.model(), self.task, k_eval, self.eval_batch_size)
        return {k: [float(v)] for k, v in out.items()}

    def train_loss(self, i):
        return float(np.mean(self.pending))

    def reset_losses(self, i):
        self.consumed, self.pending = self.pending, []

    def keep_best(self, members):
        self.best_params = self.params

    def freeze(self, members):
        pass

    def model(self, params=None):
        return eqx.combine(self.params if params is None else params, self.static)


def train(
    model: AbstractRNN,
    task: AbstractTask,
    *,
    key: Any,  # one JAX PRNG key, checked here (a TypeError that says what a key is)
    config: TrainConfig | None = None,
    **options: Any,
) -> TrainResult:
    """Train ``model`` on ``task`` by backpropagation through time.

    Each step samples ``batch_size`` fresh trials inside the compiled step, runs the network
    (with its noise), and applies Adam (Optax) to the masked task loss (MSE or cross-entropy,
    as the task says) plus ``l2_rates * mean(rates^2) + l2_weights * sum_W mean(W^2)`` over the
    effective weight matrices, after global-norm clipping at ``grad_clip`` (None: off). Only the
    model's trainable leaves change; constraints hold exactly (they are a parametrisation).

    The steps run in chunks on the device, with no host synchronisation inside a chunk; a chunk
    ends at every evaluation and checkpoint. Every ``eval_every`` steps (and at the end) the
    model is scored on ``eval_batch_size`` fresh trials; training stops early once that accuracy
    reaches ``target_accuracy``.

    With ``out_dir``: ``config.json``, ``history.jsonl``, ``model.safetensors`` (the best
    evaluated model, see `TrainResult.best_model`), ``model_final.safetensors`` (the model at
    the last step), ``best.json`` (the best evaluation: ``step``, ``accuracy``, ``loss``, and
    the final one's), and an atomic checkpoint ``checkpoints/checkpoint.safetensors`` every
    ``checkpoint_every`` steps (default: every evaluation). ``resume=True`` continues from that
    checkpoint, to the same result as an uninterrupted run (step ``i`` always uses
    ``fold_in(key, i)``).

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
        config: a `TrainConfig` (default: its defaults).
        **options: any `TrainConfig` field, replacing the config's: ``steps`` (2000),
            ``batch_size`` (64), ``learning_rate`` (1e-3; a float or an Optax schedule),
            ``grad_clip`` (1.0), ``l2_rates``, ``l2_weights`` (0), ``optimizer`` (any Optax
            transformation, replacing Adam + clipping), ``eval_every`` (100),
            ``eval_batch_size`` (256), ``target_accuracy`` (None), ``out_dir``,
            ``checkpoint_every``, ``resume``, ``progress`` (default: when stderr is a
            terminal), ``run_config`` (extra JSON-able entries for ``config.json``; the CLI
            records the seed here).

    Returns: a `TrainResult`.
    """
    _check_pair(model, task)
    key = check_key(key)
    cfg = make_config(config, options)
    if isinstance(cfg.learning_rate, tuple):
        raise ValueError("learning_rate must be one number or an Optax schedule for rl.train "
                         "(one rate per network is for rl.train_ensemble)")
    optimizer = cfg.optimizer or make_optimizer(cfg.learning_rate, cfg.grad_clip)
    hyper = cfg.hyper(_runner.key_data(key))

    fingerprint = {**_runner.describe(model, task),
                   "training": {k: v for k, v in hyper.items() if k != "steps"}}
    if cfg.optimizer is not None or callable(cfg.learning_rate):
        # resume must tell one custom optimizer or schedule from another (written only for
        # them, so that the checkpoints of runs with a plain rate stay resumable)
        fingerprint["training"]["optimizer"] = describe_optimizer(
            cfg.optimizer, cfg.learning_rate)
    lock = _runner.run_lock(cfg.out_dir)
    with lock:
        return _train_into(model, task, cfg, optimizer, hyper, fingerprint, key)


def _train_into(model, task, cfg, optimizer, hyper, fingerprint, key) -> "TrainResult":
    params, static = eqx.partition(model, model.trainable_filter())
    opt_state = optimizer.init(params)
    step_fn = jax.jit(
        make_train_step(
            static, task, optimizer, batch_size=cfg.batch_size, l2_rates=cfg.l2_rates,
            l2_weights=cfg.l2_weights,
        )
    )
    train_key, eval_key = jax.random.split(key)
    engine = SingleEngine(step_fn, params, opt_state, static, task, train_key, eval_key,
                          cfg.eval_batch_size)
    member = Member()
    start = 0
    wall_offset = 0.0
    band = (cfg.eval_batch_size
            if cfg.target_accuracy is None or cfg.target_accuracy >= 1.0 else None)
    out = ckpt_path = None
    if cfg.out_dir is not None:
        out = Path(cfg.out_dir)
        ckpt_path = out / "checkpoints" / CHECKPOINT_NAME
        # under the run's lock, a temporary file of the run is what a killed writer left
        _runner.remove_stale_temporaries(out)
        if cfg.resume and ckpt_path.exists():
            tensors, meta = read_safetensors(ckpt_path, kind="checkpoint")
            # the settings first: another optimizer has another state, which would fail to
            # load with a less helpful message
            if meta.get("fingerprint") != json.loads(json.dumps(fingerprint)):
                stored = meta.get("fingerprint")
                stored = stored.get("training", {}) if isinstance(stored, dict) else {}
                differ = [k for k in sorted(set(stored) | set(fingerprint["training"]))
                          if json.dumps(stored.get(k), sort_keys=True) != json.dumps(
                              fingerprint["training"].get(k), sort_keys=True, default=str)]
                what = (f" (the training settings differ in: {', '.join(differ)})"
                        if differ else "")
                raise ValueError(
                    f"{ckpt_path}: the checkpoint was made with another model, task, key or "
                    f"training settings{what}; resume with the same ones (only `steps` may "
                    "change)"
                )
            _check_checkpoint_meta(meta, ckpt_path)
            params = tensors_to_tree(params, tensors, "params", str(ckpt_path))
            opt_state = tensors_to_tree(opt_state, tensors, "opt", str(ckpt_path))
            start = int(meta["step"])
            engine.params, engine.opt_state = params, opt_state
            member.history = list(meta["history"])
            member.steps = start
            wall_offset = float(meta.get("wall_time", 0.0))
            # the training losses since the last evaluation, so that the next record's
            # train_loss averages the same steps as in an uninterrupted run
            engine.pending = [float(x) for x in meta.get("losses_since_eval", [])]
            engine.best_params = load_best_params(ckpt_path, params)
            if "best_step" in meta:
                member.best_accuracy, member.best_step = float(meta["best_accuracy"]), meta[
                    "best_step"]
                member.best_loss = (math.inf if meta.get("best_loss") is None
                                    else float(meta["best_loss"]))
            else:  # older checkpoints: the first record of the highest accuracy
                member.best_accuracy, member.best_loss, member.best_step = _best_from_history(
                    member.history, band)
            member.has_best = engine.best_params is not None
            if meta.get("stopped") == "target_accuracy":
                member.status = "target_accuracy"
        elif (out / "config.json").exists() and not cfg.resume and ckpt_path.exists():
            raise FileExistsError(
                f"{out} already holds a run; pass resume=True (--resume) to continue it, "
                "or choose another output directory"
            )
        config_json = {
            "version": _version(),
            "task": fingerprint["task"],
            "model": fingerprint["model"],
            "training": dict(hyper),
        }
        if cfg.run_config:
            config_json.update(cfg.run_config)
        atomic_write_json(out / "config.json", config_json)

    saved = {"step": start}

    def checkpoint(step_done, wall, params=None, opt_state=None, losses=None):
        meta = {
            "step": step_done, "history": member.history, "wall_time": wall,
            "best_accuracy": member.best_accuracy, "fingerprint": fingerprint,
            "stopped": "target_accuracy" if member.status == "target_accuracy" else "steps",
            "losses_since_eval": engine.pending if losses is None else losses,
            "best_loss": None if not math.isfinite(member.best_loss) else member.best_loss,
            "best_step": member.best_step,
        }
        save_checkpoint(ckpt_path, engine.params if params is None else params,
                        engine.opt_state if opt_state is None else opt_state, meta,
                        engine.best_params)
        saved["step"] = step_done

    def on_history(i):
        _runner.write_history(out, member.history)

    def on_diverged(i, good_step, wall):
        if ckpt_path is not None and saved["step"] > good_step:
            # the checkpoint on disk holds the parameters that just failed: replace it by
            # the last good ones, with the training losses that led to them
            if member.history and member.history[-1]["step"] == good_step:
                kept = []
            elif engine.pending:
                kept = engine.pending[:-1]
            else:  # the evaluation that consumed them was dropped
                kept = engine.consumed[:-1]
            checkpoint(good_step, wall, losses=kept)
        where = (
            f"; the last good checkpoint (step {saved['step']}) is kept at {ckpt_path}"
            if ckpt_path is not None and ckpt_path.exists()
            else ""
        )
        best_model = engine.model(engine.best_params) if member.has_best else None
        good = engine.model()
        raise TrainingDiverged(
            f"training diverged: the loss became {member.bad_loss} at step "
            f"{member.bad_step + 1} (the parameters after {member.bad_step} steps); the last "
            f"good parameters are those after {good_step} steps{where}. Lower the learning "
            "rate, clip gradients harder (grad_clip) or check the task's inputs.",
            TrainResult(good, member.history, best_model or good, good_step, "diverged",
                        member.best_step if member.has_best else None),
        )

    member.steps = start
    step = _runner.run(engine, cfg, [member], start, first=start,
                       checkpoint=checkpoint if ckpt_path is not None else None,
                       on_history=on_history, on_diverged=on_diverged, wall_offset=wall_offset,
                       checkpoint_file=ckpt_path)
    history = member.history
    stopped = "target_accuracy" if member.status == "target_accuracy" else "steps"
    if stopped == "steps" and history and cfg.target_accuracy is not None:
        if history[-1]["accuracy"] >= cfg.target_accuracy:
            stopped = "target_accuracy"
    final = engine.model()
    if not history:  # resumed a finished run with nothing left to do
        k_eval = jax.random.fold_in(eval_key, step)
        scores = evaluate(final, task, key=k_eval, batch_size=cfg.eval_batch_size)
        history.append({"step": step, **scores, "wall_time": wall_offset})
    best_model = engine.model(engine.best_params) if member.has_best else final
    best_step = member.best_step if member.has_best else None
    result = TrainResult(final, history, best_model, step, stopped, best_step)
    if out is not None:
        _runner.write_history(out, history)
        if _runner.can_describe(final):
            save(out / "model.safetensors", best_model)
            save(out / "model_final.safetensors", final)
        member.best_step = best_step
        _runner.write_best(out, member, step)
    return result


def _check_checkpoint_meta(meta: dict[str, Any], path: Path) -> None:
    """The entries of a checkpoint that resume reads, with their types (a `FileFormatError`
    naming the file otherwise)."""
    from ..io._safe import FileFormatError

    def number(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    problems = []
    if type(meta.get("step")) is not int or meta["step"] < 0:
        problems.append("'step' must be an integer >= 0")
    history = meta.get("history")
    if not isinstance(history, list) or not all(
            isinstance(h, dict) and type(h.get("step")) is int and number(h.get("loss"))
            and number(h.get("accuracy", 0.0)) for h in history):
        problems.append("'history' must be a list of evaluation records")
    losses = meta.get("losses_since_eval", [])
    if not isinstance(losses, list) or not all(number(x) for x in losses):
        problems.append("'losses_since_eval' must be a list of numbers")
    for k in ("wall_time", "best_accuracy"):
        if k in meta and not number(meta[k]):
            problems.append(f"{k!r} must be a number")
    if "best_loss" in meta and meta["best_loss"] is not None and not number(meta["best_loss"]):
        problems.append("'best_loss' must be a number or null")
    best_step = meta.get("best_step")
    if best_step is not None and type(best_step) is not int:
        problems.append("'best_step' must be an integer or null")
    if problems:
        raise FileFormatError(f"{path}: not a valid checkpoint ({'; '.join(problems)})")


def describe_callable(f: Any, depth: int = 0) -> Any:
    """A JSON-able description of a function built from closures (an Optax transformation or
    schedule): its qualified name and, recursively, the values it closes over (numbers,
    strings, arrays, other such functions), so two differently configured ones differ."""
    if depth > 6:
        return "..."
    if f is None or isinstance(f, (bool, int, str)):
        return f
    if isinstance(f, float):
        return f if math.isfinite(f) else str(f)
    if isinstance(f, (np.ndarray, jax.Array, np.generic)):
        a = np.asarray(f)
        return a.tolist() if a.size <= 64 else f"array{a.shape} sum {float(np.sum(a)):.17g}"
    if isinstance(f, (tuple, list)):
        return [describe_callable(x, depth + 1) for x in f]
    if isinstance(f, dict):
        return {str(k): describe_callable(v, depth + 1) for k, v in sorted(f.items(),
                                                                           key=lambda kv: str(kv[0]))}
    if hasattr(f, "_fields") and isinstance(f, tuple):  # pragma: no cover - NamedTuple
        return {k: describe_callable(getattr(f, k), depth + 1) for k in f._fields}
    if callable(f):
        code = getattr(f, "__code__", None)
        out: dict[str, Any] = {"fn": f"{getattr(f, '__module__', '?')}."
                                     f"{getattr(f, '__qualname__', type(f).__name__)}"}
        if code is not None and f.__closure__:
            cells = {}
            for name, cell in zip(code.co_freevars, f.__closure__):
                try:
                    cells[name] = describe_callable(cell.cell_contents, depth + 1)
                except ValueError:  # an empty cell
                    cells[name] = None
            out["closure"] = cells
        if isinstance(f, functools.partial):
            out["partial"] = [describe_callable(f.func, depth + 1),
                              describe_callable(list(f.args), depth + 1),
                              describe_callable(dict(f.keywords), depth + 1)]
        return out
    return type(f).__name__


def describe_optimizer(optimizer: Any, learning_rate: Any) -> dict[str, Any]:
    """What `train` stores in its checkpoints about a custom optimizer or learning-rate
    schedule, and compares on resume: the structure of the Optax transformation (its update
    function with the values it closes over) and the schedule's values at steps 0, 1, 10,
    100, 1000, 10000 along with its own structure."""
    out: dict[str, Any] = {}
    if optimizer is not None:
        out["optimizer"] = describe_callable(getattr(optimizer, "update", optimizer))
    if callable(learning_rate):
        values = []
        for step in (0, 1, 10, 100, 1000, 10000):
            try:
                values.append(float(np.asarray(learning_rate(step))))
            except Exception:  # a schedule that cannot be called outside a trace  # noqa: BLE001
                values.append(None)
        out["schedule"] = {"values": [v if v is None or math.isfinite(v) else str(v)
                                      for v in values],
                           "fn": describe_callable(learning_rate)}
    return json.loads(json.dumps(out, default=str))


def _version() -> str:
    from .. import __version__

    return __version__

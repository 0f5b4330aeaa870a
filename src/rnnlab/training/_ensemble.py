"""Train a stack of networks in one compiled program (`jax.vmap` over networks), each with its
own learning rate, noise level, early stopping and divergence handling, through the chunked
loop `train` uses (`_runner.py`): checkpoints, atomic writes and resume alike."""

import dataclasses
import json
import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array

from ..io._model_io import save, tensors_to_tree, tree_to_tensors
from ..io._safe import atomic_write_json, read_safetensors, write_safetensors
from ..models._base import AbstractRNN
from ..tasks._base import AbstractTask
from . import _runner
from ._config import TrainConfig, make_config
from ._runner import CHECKPOINT_NAME, Member
from ._train import (
    TrainResult,
    _check_pair,
    _evaluate_jit,
    _version,
    batch_loss,
    check_key,
    make_optimizer,
)

@dataclasses.dataclass
class EnsembleResult:
    """What `train_ensemble` returns.

    Attributes:
        results: one `TrainResult` per network, in the order given (``model``, ``history``,
            ``best_model``, ``steps`` taken by that network, ``stopped`` in ``"steps"``,
            ``"target_accuracy"`` or ``"diverged"``).
        compile_time: seconds spent compiling the training and evaluation programs.
        run_time: seconds spent running them (all networks together), compile excluded.
    """

    results: list[TrainResult]
    compile_time: float
    run_time: float

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i: int) -> TrainResult:
        return self.results[i]

    def __iter__(self) -> Iterator[TrainResult]:
        return iter(self.results)

    @property
    def models(self) -> list[AbstractRNN]:
        return [r.model for r in self.results]

    @property
    def final_accuracies(self) -> np.ndarray:
        """[n_networks] accuracy at each network's last evaluation."""
        return np.array([r.final_accuracy for r in self.results])

    @property
    def steps(self) -> np.ndarray:
        """[n_networks] optimiser steps each network took."""
        return np.array([r.steps for r in self.results])


# ------------------------------------------------------------------------------ stacking


def _split_models(models: Sequence[AbstractRNN]):
    """(stacked arrays [n, ...], the shared non-array part, n). Networks of one structure
    stack leaf by leaf: weights, and data such as the noise levels, may differ."""
    if isinstance(models, AbstractRNN):
        raise TypeError("models must be a sequence of rnnlab models (a list), not one model")
    models = list(models)
    if not models:
        raise ValueError("models must hold at least one network")
    for i, m in enumerate(models):
        if not isinstance(m, AbstractRNN):
            raise TypeError(f"models[{i}] must be an rnnlab model, got {type(m).__name__}")
    parts = [eqx.partition(m, eqx.is_array) for m in models]
    rest0 = parts[0][1]
    struct0 = jax.tree.structure(parts[0][0])
    for i, (arrays, rest) in enumerate(parts[1:], start=1):
        same = jax.tree.structure(arrays) == struct0 and jax.tree.structure(
            rest
        ) == jax.tree.structure(rest0)
        if same:
            same = all(
                a.shape == b.shape and a.dtype == b.dtype
                for a, b in zip(jax.tree.leaves(arrays), jax.tree.leaves(parts[0][0]))
            )
        if not same:
            raise ValueError(
                f"models[{i}] has another structure than models[0] (class, sizes, activation, "
                "constraints or other settings); an ensemble stacks networks of one structure "
                "that may differ in their weights and noise levels"
            )
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *[p[0] for p in parts])
    return stacked, rest0, len(models)


def _index(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


# ------------------------------------------------------------------------------ train


def _learning_rates(learning_rate, n: int) -> np.ndarray:
    """One rate per network from a validated `TrainConfig.learning_rate` (number or tuple)."""
    if not isinstance(learning_rate, tuple):
        return np.full((n,), learning_rate, np.float32)
    lrs = np.asarray(learning_rate, dtype=np.float64)
    if lrs.shape != (n,):
        raise ValueError(
            f"learning_rate must be a number or one number per network ({n}), got shape "
            f"{lrs.shape}"
        )
    return lrs.astype(np.float32)


def _network_keys(key, n: int) -> Array:
    if not isinstance(key, (jax.Array, np.ndarray)):
        check_key(key)  # a TypeError naming what a key is
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    single_ndim = 0 if typed else 1
    if key.ndim == single_ndim:
        return jax.random.split(check_key(key), n)
    if key.ndim == single_ndim + 1 and key.shape[0] == n:
        return key
    raise ValueError(
        f"key must be one PRNG key or a stack of {n} keys (one per network), got shape "
        f"{key.shape}"
    )


def _keep(flag, new, old):
    """``new`` where the per-network ``flag`` [n] is set, else ``old`` (leaves stacked on
    axis 0)."""
    return jax.tree.map(
        lambda a, b: jnp.where(jnp.reshape(flag, (-1,) + (1,) * (a.ndim - 1)), a, b),
        new, old,
    )


def _mask(n: int, members) -> Array:
    flag = np.zeros(n, bool)
    flag[list(members)] = True
    return jnp.asarray(flag)


class EnsembleEngine:
    """Runs chunks of steps for a stack of networks: one compiled program per chunk, a
    ``lax.fori_loop`` over the steps of a ``jax.vmap``-ed training step, then an evaluation
    of every network at the chunk's end. A network stops changing once it is inactive
    (stopped early or diverged)."""

    def __init__(self, compiled, arrays, opt_state, n):
        self.compiled, self.n = compiled, n
        self.arrays, self.opt_state = arrays, opt_state
        self.best_arrays = arrays
        self.active = np.ones(n, bool)
        self.loss_sum = np.zeros(n, np.float32)  # training losses since the last evaluation
        self.n_done = np.zeros(n, np.int32)
        self.run_time = 0.0
        self._out = None
        self._scores = None

    def snapshot(self):
        return self.arrays, self.opt_state

    def advance(self, start, stop):
        self._t = time.perf_counter()
        self._out = self.compiled(self.arrays, self.opt_state, jnp.asarray(self.active),
                                  jnp.asarray(self.loss_sum), jnp.asarray(self.n_done),
                                  jnp.int32(start), jnp.int32(stop))

    def sync(self, start, stop):
        arrays, opt_state, new_active, loss_sum, n_done, scores = self._out
        self._out = None
        new_active, loss_sum, n_done, self._scores = jax.device_get(
            (new_active, loss_sum, n_done, scores))
        self.run_time += time.perf_counter() - self._t
        bad = [None] * self.n
        for i in np.flatnonzero(self.active & ~new_active):
            # the chunk counted its good steps: the next one had a non-finite loss
            bad[i] = (start + int(n_done[i] - self.n_done[i]), math.nan)
        self.arrays, self.opt_state = arrays, opt_state
        self.active = np.array(new_active)
        self.loss_sum, self.n_done = np.array(loss_sum), np.array(n_done)
        return bad

    def restore(self, members, target, base):
        """The networks ``members`` put back to their state after ``target`` steps: re-run
        from ``base`` (the start of the chunk holding that step) by the same compiled
        program, only these networks active (their lanes compute what they computed)."""
        t = time.perf_counter()
        base_step, (base_arrays, base_opt) = base
        mask = _mask(self.n, members)
        zeros_f = jnp.zeros((self.n,), jnp.float32)
        zeros_i = jnp.zeros((self.n,), jnp.int32)
        out = self.compiled(base_arrays, base_opt, mask, zeros_f, zeros_i,
                            jnp.int32(base_step), jnp.int32(target))
        self.arrays = _keep(mask, out[0], self.arrays)
        self.opt_state = _keep(mask, out[1], self.opt_state)
        jax.block_until_ready(self.arrays)
        self.run_time += time.perf_counter() - t

    def scores(self, stop, live):
        return self._scores

    def train_loss(self, i):
        return float(self.loss_sum[i] / max(self.n_done[i], 1))

    def reset_losses(self, i):
        self.loss_sum[i], self.n_done[i] = 0.0, 0

    def keep_best(self, members):
        self.best_arrays = _keep(_mask(self.n, members), self.arrays, self.best_arrays)

    def freeze(self, members):
        self.active[list(members)] = False


def train_ensemble(
    models: Sequence[AbstractRNN],
    task: AbstractTask,
    *,
    key: Any,  # one JAX PRNG key or a stack of them, checked here (a TypeError that says what
    # a key is)
    config: TrainConfig | None = None,
    **options: Any,
) -> EnsembleResult:
    """Train a stack of networks on ``task`` in one compiled program.

    The networks must share one structure (class, sizes, activation, constraints, time
    constants' layout); they may differ in their weights (seeds, initial gain, ...), in
    their noise levels (``noise_std``, ``input_noise_std``: data, stacked like the weights)
    and in the learning rate (``learning_rate`` may give one
    value per network). All are stepped together by a ``jax.vmap``-ed training step, compiled
    once; the steps between two evaluations (or checkpoints) run inside one compiled loop, with
    no host synchronisation.

    Each network has its own early stopping, best model and divergence handling: once its
    evaluation accuracy reaches ``target_accuracy`` its parameters and optimiser state stop
    changing (the others go on), and a network whose loss becomes NaN/inf returns to its last
    good parameters (those one step before, whose loss was finite, as in `rnnlab.train`) and
    stops with ``stopped="diverged"`` instead of stopping the ensemble.

    Network ``i`` is trained exactly as ``rl.train(models[i], task, key=keys[i], ...)`` with the
    same settings would train it (same batches, same noise, same evaluations, same stopping
    step; equal to float rounding), where ``keys = jax.random.split(key, n)`` or ``key`` is
    already a stack of ``n`` keys.

    With ``out_dir``: ``config.json`` (the ensemble's settings and every network's model),
    ``checkpoints/checkpoint.safetensors`` (all networks stacked, written atomically every
    ``checkpoint_every`` steps, default every evaluation) and one folder per network,
    ``network_<i>/``, laid out as a `rnnlab.train` run (``config.json``, ``history.jsonl``,
    ``model.safetensors`` = its best model, ``model_final.safetensors``, ``best.json``).
    ``resume=True`` continues from the checkpoint to the same result, bit for bit, as an
    uninterrupted run.

    Args:
        models: the networks, a list of rnnlab models of one structure.
        task: the task; ``model.dt`` must equal ``task.dt``.
        key: one PRNG key, or a stack of one key per network.
        config: a `TrainConfig` (default: its defaults).
        **options: any `TrainConfig` field, as in `rnnlab.train`; ``learning_rate`` may be
            one number per network (Adam's rate; with ``optimizer=`` or a schedule, every
            network uses that).

    Returns: an `EnsembleResult` with one `TrainResult` per network.
    """
    stacked, rest, n = _split_models(models)
    models = list(models)
    for m in models:
        _check_pair(m, task)
    cfg = make_config(config, options)
    # the run directory is held by an OS lock for the whole write, as `rl.train` holds it: a
    # second writer is refused at once, a killed writer's lock is taken over
    with _runner.run_lock(cfg.out_dir):
        return _train_into(models, stacked, rest, n, task, cfg, key)


def _train_into(models, stacked, rest, n, task, cfg, key) -> EnsembleResult:
    keys = _network_keys(key, n)
    split = jax.vmap(jax.random.split)(keys)
    train_keys, eval_keys = split[:, 0], split[:, 1]
    batch_size, eval_batch_size = cfg.batch_size, cfg.eval_batch_size
    l2_rates, l2_weights, grad_clip = cfg.l2_rates, cfg.l2_weights, cfg.grad_clip

    filt = eqx.combine(_index(stacked, 0), rest).trainable_filter()

    def member(arrays):
        return eqx.combine(arrays, rest)

    if cfg.optimizer is not None or callable(cfg.learning_rate):
        # one optimizer for every network (a schedule, or the caller's transformation)
        optimizer = cfg.optimizer or make_optimizer(cfg.learning_rate, grad_clip)
        lrs = None
        opt_state = jax.vmap(lambda a: optimizer.init(eqx.filter(member(a), filt)))(stacked)
    else:
        lrs = _learning_rates(cfg.learning_rate, n)
        adam = optax.inject_hyperparams(optax.adam)

        def make_opt(lr):
            inner = adam(learning_rate=lr)
            return inner if grad_clip is None else optax.chain(
                optax.clip_by_global_norm(grad_clip), inner
            )

        # the update reads each network's rate from its state
        optimizer = make_opt(float(lrs[0]))

        def init_one(arrays, lr):
            params = eqx.filter(member(arrays), filt)
            return make_opt(lr).init(params)

        opt_state = jax.vmap(init_one)(stacked, jnp.asarray(lrs))

    def step_one(arrays, opt, key):
        model = member(arrays)
        params, static = eqx.partition(model, filt)
        k_trial, k_noise = jax.random.split(key)
        trial = task.sample_batch(k_trial, batch_size)

        def objective(p):
            model = eqx.combine(p, static)
            return batch_loss(model, task, trial, k_noise, l2_rates, l2_weights)[0]

        loss, grads = jax.value_and_grad(objective)(params)
        updates, new_opt = optimizer.update(grads, opt, params)
        new_params = eqx.apply_updates(params, updates)
        new_arrays = eqx.filter(eqx.combine(new_params, static), eqx.is_array)
        return new_arrays, new_opt, loss

    def chunk(arrays, opt, active, loss_sum, n_done, start, stop):
        """Steps start..stop-1 for every network still active; then evaluate at `stop`."""

        def body(i, carry):
            arrays, opt, active, loss_sum, n_done = carry
            step_keys = jax.vmap(lambda k: jax.random.fold_in(k, i))(train_keys)
            new_arrays, new_opt, loss = jax.vmap(step_one)(arrays, opt, step_keys)
            ok = active & jnp.isfinite(loss)
            arrays = _keep(ok, new_arrays, arrays)
            opt = _keep(ok, new_opt, opt)
            loss_sum = loss_sum + jnp.where(ok, loss, 0.0)
            n_done = n_done + ok.astype(jnp.int32)
            diverged = active & ~jnp.isfinite(loss)
            return arrays, opt, active & ~diverged, loss_sum, n_done

        arrays, opt, active, loss_sum, n_done = jax.lax.fori_loop(
            start, stop, body, (arrays, opt, active, loss_sum, n_done)
        )
        eval_k = jax.vmap(lambda k: jax.random.fold_in(k, stop))(eval_keys)
        scores = jax.vmap(
            lambda a, k: _evaluate_jit(member(a), task, k, eval_batch_size)
        )(arrays, eval_k)
        return arrays, opt, active, loss_sum, n_done, scores

    t0 = time.perf_counter()
    compiled = jax.jit(chunk).lower(
        stacked, opt_state, jnp.ones((n,), bool), jnp.zeros((n,), jnp.float32),
        jnp.zeros((n,), jnp.int32), jnp.int32(0), jnp.int32(1)
    ).compile()
    compile_time = time.perf_counter() - t0
    engine = EnsembleEngine(compiled, stacked, opt_state, n)
    members = [Member() for _ in range(n)]

    # ---- the run directory (under the lock `train_ensemble` holds)
    hyper = cfg.hyper(_runner.key_data(keys))
    lr = hyper["learning_rate"]
    net_lrs = lr if isinstance(lr, list) else [lr] * n
    described = [_runner.describe(m, task) for m in models]
    fingerprint = {"models": [d["model"] for d in described], "task": described[0]["task"],
                   "training": {k: v for k, v in hyper.items() if k != "steps"}}
    out = ckpt_path = None
    start = 0
    wall_offset = 0.0
    net_dirs: list[Path | None] = [None] * n
    if cfg.out_dir is not None:
        out = Path(cfg.out_dir)
        ckpt_path = out / "checkpoints" / CHECKPOINT_NAME
        net_dirs = [out / f"network_{i}" for i in range(n)]
        if cfg.resume:
            _runner.remove_stale_temporaries(out)
            for d in net_dirs:
                _runner.remove_stale_temporaries(d)
        if cfg.resume and ckpt_path.exists():
            tensors, meta = read_safetensors(ckpt_path, kind="checkpoint")
            if meta.get("fingerprint") != json.loads(json.dumps(fingerprint)):
                raise ValueError(
                    f"{ckpt_path}: the checkpoint was made with other models, task, keys or "
                    "training settings; resume with the same ones (only `steps` may change)"
                )
            where = str(ckpt_path)
            engine.arrays = tensors_to_tree(stacked, tensors, "params", where)
            engine.opt_state = tensors_to_tree(opt_state, tensors, "opt", where)
            engine.best_arrays = tensors_to_tree(stacked, tensors, "best", where)
            members = [Member.from_meta(x) for x in meta["members"]]
            engine.active = np.array([m.active for m in members])
            engine.loss_sum = np.asarray(meta["loss_sum"], np.float32)
            engine.n_done = np.asarray(meta["n_done"], np.int32)
            start = int(meta["step"])
            wall_offset = float(meta.get("wall_time", 0.0))
        elif (out / "config.json").exists() and not cfg.resume and ckpt_path.exists():
            raise FileExistsError(
                f"{out} already holds a run; pass resume=True (--resume) to continue it, "
                "or choose another output directory"
            )
        version = _version()
        config_json = {"version": version, "task": fingerprint["task"],
                       "models": fingerprint["models"], "networks": n,
                       "training": dict(hyper)}
        if cfg.run_config:
            config_json.update(cfg.run_config)
        atomic_write_json(out / "config.json", config_json)
        for i, d in enumerate(net_dirs):
            training = {**hyper, "key": hyper["key"][i], "learning_rate": net_lrs[i]}
            atomic_write_json(d / "config.json", {
                "version": version, "task": fingerprint["task"],
                "model": fingerprint["models"][i], "training": training,
                "ensemble": {"network": i, "networks": n},
                **(cfg.run_config or {})})

    def checkpoint(step_done, wall):
        meta = {"kind": "checkpoint", "step": step_done, "wall_time": wall,
                "fingerprint": fingerprint, "members": [m.to_meta() for m in members],
                "loss_sum": [float(x) for x in engine.loss_sum],
                "n_done": [int(x) for x in engine.n_done]}
        tensors = tree_to_tensors(engine.arrays, "params")
        tensors.update(tree_to_tensors(engine.opt_state, "opt"))
        tensors.update(tree_to_tensors(engine.best_arrays, "best"))
        write_safetensors(ckpt_path, tensors, meta)

    def on_history(i):
        _runner.write_history(net_dirs[i], members[i].history)

    step = _runner.run(engine, cfg, members, start, first=start,
                       checkpoint=checkpoint if ckpt_path is not None else None,
                       on_history=on_history, bar_desc="training", wall_offset=wall_offset,
                       checkpoint_file=ckpt_path)

    results = []
    for i, m in enumerate(members):
        final = member(_index(engine.arrays, i))
        best = member(_index(engine.best_arrays, i)) if m.has_best else final
        results.append(TrainResult(final, m.history, best, m.steps, m.status,
                                   m.best_step if m.has_best else None))
        if net_dirs[i] is not None:
            d = net_dirs[i]
            _runner.write_history(d, m.history)
            if _runner.can_describe(final):
                save(d / "model.safetensors", best)
                save(d / "model_final.safetensors", final)
            _runner.write_best(d, m, m.steps)
    return EnsembleResult(results, compile_time, engine.run_time)

"""Train a stack of networks in one compiled program (`jax.vmap` over networks), each with its
own learning rate, noise level, early stopping and divergence handling."""

import copy
import dataclasses
import time
from collections.abc import Iterator, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, PRNGKeyArray

from ..models._base import AbstractRNN
from ..models._ctrnn import CTRNN
from ..tasks._base import AbstractTask
from ._train import (
    TrainResult,
    _check_float,
    _check_pair,
    _evaluate_jit,
    _progress_enabled,
    batch_loss,
    check_loop_args,
    weight_penalty,
)

_NOISE_FIELDS = ("noise_std", "input_noise_std")


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


def _with_fields(model: AbstractRNN, values: dict[str, Any]) -> AbstractRNN:
    out = copy.copy(model)
    for name, value in values.items():
        object.__setattr__(out, name, value)
    return out


def _split_models(models: Sequence[AbstractRNN]):
    """(stacked arrays, shared non-array part, (per-network noise levels [n, 2], which of
    the two differ) or None, n)."""
    if isinstance(models, AbstractRNN):
        raise TypeError("models must be a sequence of rnnlab models (a list), not one model")
    models = list(models)
    if not models:
        raise ValueError("models must hold at least one network")
    for i, m in enumerate(models):
        if not isinstance(m, AbstractRNN):
            raise TypeError(f"models[{i}] must be an rnnlab model, got {type(m).__name__}")
    noise = None
    if all(isinstance(m, CTRNN) for m in models):
        levels = np.array([[getattr(m, f) for f in _NOISE_FIELDS] for m in models], float)
        differs = tuple(bool(np.any(levels[:, j] != levels[0, j])) for j in range(2))
        if any(differs):
            # members differ in their noise levels: these become per-network numbers (the
            # static fields get one common placeholder, restored in the results)
            noise = (jnp.asarray(levels, jnp.float32), differs)
            marker = {f: 1.0 for f, d in zip(_NOISE_FIELDS, differs) if d}
            models = [_with_fields(m, marker) for m in models]
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
                "that may differ in their weights (and, for CTRNN, in noise_std / "
                "input_noise_std)"
            )
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *[p[0] for p in parts])
    return stacked, rest0, noise, len(models)


def _index(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


# ------------------------------------------------------------------------------ loss


def _noisy_unroll(model, inputs, key, noise):
    """`CTRNN.unroll_batch` with this member's noise levels (a row of `noise`)."""
    from ..models._ctrnn_fast import ctrnn_unroll_batch

    levels, differs = noise
    return ctrnn_unroll_batch(
        model, inputs, model.initial_state(), key=key,
        noise_std=levels[0] if differs[0] else None,
        input_noise_std=levels[1] if differs[1] else None,
    )


def _member_loss(model, task, trial, key, noise, l2_rates, l2_weights):
    """`batch_loss`, with per-network noise levels passed as numbers when they differ."""
    if noise is None:
        return batch_loss(model, task, trial, key, l2_rates, l2_weights)[0]
    states = _noisy_unroll(model, trial.inputs, key, noise)
    total = task.loss(model.readout_all(states), trial)
    if l2_rates:
        total = total + l2_rates * jnp.mean(model.rates_all(states) ** 2)
    if l2_weights:
        total = total + l2_weights * weight_penalty(model)
    return total


def _member_eval(model, task, key, batch_size, noise):
    if noise is None:
        return _evaluate_jit(model, task, key, batch_size)
    k_trial, k_noise = jax.random.split(key)
    trial = task.sample_batch(k_trial, batch_size)
    states = _noisy_unroll(model, trial.inputs, k_noise, noise)
    return task.evaluate(model.readout_all(states), trial)


# ------------------------------------------------------------------------------ train


def _learning_rates(learning_rate, n: int) -> np.ndarray:
    if np.ndim(learning_rate) == 0:
        lr = _check_float("learning_rate", learning_rate, 0.0, strict=True)
        return np.full((n,), lr, np.float32)
    lrs = np.asarray(learning_rate, dtype=np.float64)
    if lrs.shape != (n,):
        raise ValueError(
            f"learning_rate must be a number or one number per network ({n}), got shape "
            f"{lrs.shape}"
        )
    if not np.all(np.isfinite(lrs) & (lrs > 0)):
        raise ValueError("learning_rate must hold positive finite numbers")
    return lrs.astype(np.float32)


def _network_keys(key, n: int) -> Array:
    if not isinstance(key, (jax.Array, np.ndarray)):
        raise TypeError(
            f"key must be one JAX PRNG key (e.g. jax.random.PRNGKey(seed)) or a stack of {n} "
            f"keys, got {type(key).__name__}"
        )
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    single_ndim = 0 if typed else 1
    if key.ndim == single_ndim:
        return jax.random.split(key, n)
    if key.ndim == single_ndim + 1 and key.shape[0] == n:
        return key
    raise ValueError(
        f"key must be one PRNG key or a stack of {n} keys (one per network), got shape "
        f"{key.shape}"
    )


def train_ensemble(
    models: Sequence[AbstractRNN],
    task: AbstractTask,
    *,
    key: PRNGKeyArray,
    steps: int = 2000,
    batch_size: int = 64,
    learning_rate: float | Sequence[float] = 1e-3,
    grad_clip: float | None = 1.0,
    l2_rates: float = 0.0,
    l2_weights: float = 0.0,
    eval_every: int = 100,
    eval_batch_size: int = 256,
    target_accuracy: float | None = None,
    progress: bool | None = None,
) -> EnsembleResult:
    """Train a stack of networks on ``task`` in one compiled program.

    The networks must share one structure (class, sizes, activation, constraints, time
    constants' layout); they may differ in their weights (seeds, initial gain, ...), in
    ``noise_std`` / ``input_noise_std`` and in the learning rate (``learning_rate`` may give one
    value per network). All are stepped together by a ``jax.vmap``-ed training step, compiled
    once; ``eval_every`` steps run inside one compiled loop between evaluations.

    Each network has its own early stopping and divergence handling: once its evaluation
    accuracy reaches ``target_accuracy`` its parameters and optimiser state stop changing (the
    others go on), and a network whose loss becomes NaN/inf returns to its last good parameters
    (those one step before, whose loss was finite, as in `rnnlab.train`) and
    stops with ``stopped="diverged"`` instead of stopping the ensemble.

    Network ``i`` is trained exactly as ``rl.train(models[i], task, key=keys[i], ...)`` with the
    same settings would train it (same batches, same noise, same evaluations, same stopping
    step; equal to float rounding), where ``keys = jax.random.split(key, n)`` or ``key`` is
    already a stack of ``n`` keys.

    Args:
        models: the networks, a list of rnnlab models of one structure.
        task: the task; ``model.dt`` must equal ``task.dt``.
        key: one PRNG key, or a stack of one key per network.
        steps, batch_size, grad_clip, l2_rates, l2_weights, eval_every, eval_batch_size,
            target_accuracy: as in `rnnlab.train`.
        learning_rate: Adam's learning rate, one number or one per network.
        progress: show a progress bar (default: when stderr is a terminal).

    Returns: an `EnsembleResult` with one `TrainResult` per network.
    """
    stacked, rest, noise, n = _split_models(models)
    for i, m in enumerate(models):
        _check_pair(m, task)
    steps, batch_size, eval_every, eval_batch_size, l2_rates, l2_weights, target_accuracy = (
        check_loop_args(steps, batch_size, eval_every, eval_batch_size, l2_rates, l2_weights,
                        target_accuracy)
    )
    if grad_clip is not None:
        grad_clip = _check_float("grad_clip", grad_clip, 0.0, strict=True)
    lrs = _learning_rates(learning_rate, n)
    keys = _network_keys(key, n)
    split = jax.vmap(jax.random.split)(keys)
    train_keys, eval_keys = split[:, 0], split[:, 1]

    adam = optax.inject_hyperparams(optax.adam)
    # (with per-network noise, `rest` carries placeholder noise levels: build from it)
    filt = eqx.combine(_index(stacked, 0), rest).trainable_filter()

    def make_opt(lr):
        inner = adam(learning_rate=lr)
        return inner if grad_clip is None else optax.chain(
            optax.clip_by_global_norm(grad_clip), inner
        )

    optimizer = make_opt(float(lrs[0]))  # the update reads each network's rate from its state

    def member(arrays):
        return eqx.combine(arrays, rest)

    def init_one(arrays, lr):
        params = eqx.filter(member(arrays), filt)
        return make_opt(lr).init(params)

    opt_state = jax.vmap(init_one)(stacked, jnp.asarray(lrs))

    def step_one(arrays, opt, key, noise_i):
        model = member(arrays)
        params, static = eqx.partition(model, filt)
        k_trial, k_noise = jax.random.split(key)
        trial = task.sample_batch(k_trial, batch_size)

        def objective(p):
            return _member_loss(
                eqx.combine(p, static), task, trial, k_noise, noise_i, l2_rates, l2_weights
            )

        loss, grads = jax.value_and_grad(objective)(params)
        updates, new_opt = optimizer.update(grads, opt, params)
        new_params = eqx.apply_updates(params, updates)
        new_arrays = eqx.filter(eqx.combine(new_params, static), eqx.is_array)
        return new_arrays, new_opt, loss

    def keep(flag, new, old):
        return jax.tree.map(
            lambda a, b: jnp.where(jnp.reshape(flag, (-1,) + (1,) * (a.ndim - 1)), a, b),
            new, old,
        )

    # per-network noise rows are vmapped; which fields differ stays static
    noise_arg = noise[0] if noise is not None else jnp.zeros((n, 0))
    noise_axis = 0

    def member_noise(row):
        return None if noise is None else (row, noise[1])

    def chunk(arrays, opt, active, loss_sum, n_done, start, stop):
        """Steps start..stop-1 for every network still active; then evaluate at `stop`."""

        def body(i, carry):
            arrays, opt, active, loss_sum, n_done = carry
            step_keys = jax.vmap(lambda k: jax.random.fold_in(k, i))(train_keys)
            new_arrays, new_opt, loss = jax.vmap(
                lambda a, o, k, z: step_one(a, o, k, member_noise(z)),
                in_axes=(0, 0, 0, noise_axis),
            )(arrays, opt, step_keys, noise_arg)
            ok = active & jnp.isfinite(loss)
            arrays = keep(ok, new_arrays, arrays)
            opt = keep(ok, new_opt, opt)
            loss_sum = loss_sum + jnp.where(ok, loss, 0.0)
            n_done = n_done + ok.astype(jnp.int32)
            diverged = active & ~jnp.isfinite(loss)
            return arrays, opt, active & ~diverged, loss_sum, n_done

        arrays, opt, active, loss_sum, n_done = jax.lax.fori_loop(
            start, stop, body, (arrays, opt, active, loss_sum, n_done)
        )
        eval_k = jax.vmap(lambda k: jax.random.fold_in(k, stop))(eval_keys)
        scores = jax.vmap(
            lambda a, k, z: _member_eval(
                member(a), task, k, eval_batch_size, member_noise(z)
            ),
            in_axes=(0, 0, noise_axis),
        )(arrays, eval_k, noise_arg)
        return arrays, opt, active, loss_sum, n_done, scores

    chunk_jit = jax.jit(chunk)
    active = jnp.ones((n,), bool)
    zeros_f = jnp.zeros((n,), jnp.float32)
    zeros_i = jnp.zeros((n,), jnp.int32)
    t0 = time.perf_counter()
    compiled = chunk_jit.lower(
        stacked, opt_state, active, zeros_f, zeros_i, jnp.int32(0), jnp.int32(1)
    ).compile()
    compile_time = time.perf_counter() - t0

    def replay(starts, target, members):
        """The (arrays, opt_state) of ``members`` after ``target`` steps, re-run from the
        saved start of the chunk holding that step (the same compiled program, only these
        members active: their lanes compute exactly what they computed before)."""
        base_step, base_arrays, base_opt = max(
            (entry for entry in starts if entry[0] <= target), key=lambda entry: entry[0]
        )
        mask = np.zeros(n, bool)
        mask[members] = True
        out = compiled(base_arrays, base_opt, jnp.asarray(mask), zeros_f, zeros_i,
                       jnp.int32(base_step), jnp.int32(target))
        return out[0], out[1]

    histories: list[list[dict[str, float]]] = [[] for _ in range(n)]
    status = ["steps"] * n
    taken = np.zeros(n, dtype=int)
    best_acc = np.full(n, -1.0)
    best_arrays = stacked
    arrays = stacked
    # (step, arrays, opt_state) at the start of the last two chunks: a network whose loss
    # turns non-finite at step s is put back to its state after s - 1 steps by a replay
    starts = [(0, stacked, opt_state)]
    bar = None
    if _progress_enabled(progress):
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=f"training {n} networks", unit="step", dynamic_ncols=True)
    run_time = 0.0
    step = 0
    try:
        while step < steps and bool(np.any(np.asarray(active))):
            stop = min(steps, (step // eval_every + 1) * eval_every)
            t1 = time.perf_counter()
            starts = [*starts[-1:], (step, arrays, opt_state)]
            arrays, opt_state, new_active, loss_sum, n_done, scores = compiled(
                arrays, opt_state, active, zeros_f, zeros_i, jnp.int32(step), jnp.int32(stop)
            )
            scores = {k: np.asarray(v) for k, v in scores.items()}
            run_time += time.perf_counter() - t1
            was_active = np.asarray(active)
            new_active = np.array(new_active)
            loss_sum, n_done = np.asarray(loss_sum), np.asarray(n_done)
            acc = scores["accuracy"]
            improved = was_active & new_active & (acc > best_acc)
            best_acc = np.where(improved, acc, best_acc)
            best_arrays = keep(jnp.asarray(improved), arrays, best_arrays)
            for i in np.flatnonzero(was_active):
                taken[i] = step + int(n_done[i])
                if not new_active[i]:
                    # back to the state one step before the non-finite loss; its later
                    # evaluations are dropped (as `rnnlab.train` does)
                    status[i] = "diverged"
                    taken[i] = max(taken[i] - 1, 0)
                    histories[i] = [h for h in histories[i] if h["step"] <= taken[i]]
                    continue
                record = {"step": stop, "train_loss": float(loss_sum[i] / max(n_done[i], 1))}
                record.update({k: float(v[i]) for k, v in scores.items()})
                record["wall_time"] = run_time + compile_time
                histories[i].append(record)
                if target_accuracy is not None and record["accuracy"] >= target_accuracy:
                    status[i] = "target_accuracy"
                    new_active[i] = False
            # networks that diverged in this chunk: back to their last good state
            gone = [i for i in np.flatnonzero(was_active) if status[i] == "diverged"]
            t1 = time.perf_counter()
            for target in sorted({int(taken[i]) for i in gone}):
                members = [int(i) for i in gone if taken[i] == target]
                back_arrays, back_opt = replay(starts, target, members)
                chosen = np.zeros(n, bool)
                chosen[members] = True
                arrays = keep(jnp.asarray(chosen), back_arrays, arrays)
                opt_state = keep(jnp.asarray(chosen), back_opt, opt_state)
            if gone:
                jax.block_until_ready(arrays)
                run_time += time.perf_counter() - t1
            active = jnp.asarray(new_active)
            if bar is not None:
                bar.update(stop - step)
                bar.set_postfix(active=int(new_active.sum()),
                                acc=f"{float(np.mean(acc)):.3f}")
            step = stop
    finally:
        if bar is not None:
            bar.close()

    results = []
    for i in range(n):
        final = _restore(models[i], member(_index(arrays, i)))
        best = _restore(models[i], member(_index(best_arrays, i))) if best_acc[i] >= 0 else final
        results.append(TrainResult(final, histories[i], best, int(taken[i]), status[i]))
    return EnsembleResult(results, compile_time, run_time)


def _restore(original: AbstractRNN, trained: AbstractRNN) -> AbstractRNN:
    """The trained arrays in the original member's own (static) configuration."""
    leaves = jax.tree.leaves(eqx.filter(trained, eqx.is_array))
    arrays = jax.tree.unflatten(jax.tree.structure(eqx.filter(original, eqx.is_array)), leaves)
    return eqx.combine(arrays, eqx.filter(original, eqx.is_array, inverse=True))


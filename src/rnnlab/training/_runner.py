"""The training loop `train` and `train_ensemble` share: chunks of steps run on the device with
no host synchronisation inside; evaluation, best-model keeping, early stopping, divergence
checks, progress and checkpoints happen at chunk boundaries (every ``eval_every`` and
``checkpoint_every`` steps).

What runs a chunk is an *engine* (`SingleEngine` in `_train.py`, `EnsembleEngine` in
`_ensemble.py`); this module holds the host-side bookkeeping, one network or many alike.
"""

import contextlib
import dataclasses
import os
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..io._model_io import model_meta
from ..io._safe import atomic_write_json, atomic_write_text
from ..tasks._base import registered_name
from .. import _interrupt as interrupt
from ._config import TrainConfig

CHECKPOINT_NAME = "checkpoint.safetensors"


# ------------------------------------------------------------------------------ best model


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


# ------------------------------------------------------------------------------ bookkeeping


@dataclasses.dataclass
class Member:
    """The host-side record of one network: its history, best evaluation and status."""

    history: list[dict[str, float]] = dataclasses.field(default_factory=list)
    status: str = "steps"  # "steps", "target_accuracy" or "diverged"
    steps: int = 0  # optimiser steps taken (frozen once the network stops)
    best_accuracy: float = -1.0
    best_loss: float = math.inf
    best_step: int | None = None
    has_best: bool = False  # best parameters are stored (else the start is the best)
    bad_step: int | None = None  # the step index whose loss was not finite
    bad_loss: float = math.nan

    @property
    def active(self) -> bool:
        return self.status == "steps"

    def to_meta(self) -> dict[str, Any]:
        return {
            "history": self.history, "status": self.status, "steps": self.steps,
            "best_accuracy": self.best_accuracy,
            "best_loss": None if not math.isfinite(self.best_loss) else self.best_loss,
            "best_step": self.best_step, "has_best": self.has_best,
        }

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> "Member":
        return cls(
            history=list(meta["history"]), status=meta["status"], steps=int(meta["steps"]),
            best_accuracy=float(meta["best_accuracy"]),
            best_loss=math.inf if meta.get("best_loss") is None else float(meta["best_loss"]),
            best_step=meta["best_step"], has_best=bool(meta["has_best"]),
        )



def run_lock(out_dir: "str | os.PathLike | None"):
    """The lock a training holds on its run directory for the whole write (a second writer is
    refused at once; a killed writer's lock is taken over), after refusing an empty or root
    ``out_dir``; a null context without one."""
    if out_dir is None:
        return contextlib.nullcontext()
    from ..io._lock import RunLock

    path = Path(out_dir)
    if not str(out_dir).strip() or path.resolve() == Path(path.resolve().anchor):
        raise ValueError(f"out_dir={str(out_dir)!r} is empty or the file-system root; "
                         "give a directory for the run")
    return RunLock(out_dir)

def key_data(key) -> list:
    """A PRNG key (or a stack of them) as nested lists of integers, for JSON."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    arr = np.asarray(key)
    return arr.ravel().tolist() if arr.ndim <= 1 else arr.reshape(arr.shape[0], -1).tolist()


def can_describe(model) -> bool:
    try:
        model.config()
        return True
    except ValueError:
        return False


def task_config(task) -> Any:
    try:
        return json.loads(json.dumps(task.config()))
    except (TypeError, ValueError):
        return type(task).__name__


def describe(model, task) -> dict[str, Any]:
    return {
        "model": model_meta(model) if can_describe(model) else type(model).__name__,
        "task": {"name": registered_name(task), "params": task_config(task)},
    }


def remove_stale_temporaries(out: Path, names=()) -> None:
    """Delete the temporary files a process killed during an atomic write left behind (the
    run's own files only; the finished files are never partial)."""
    own = ("config.json", "history.jsonl", "model.safetensors", "model_final.safetensors",
           "best.json")
    for folder, name in [(out, n) for n in (*own, *names)] + [
            (out / "checkpoints", CHECKPOINT_NAME)]:
        for tmp in folder.glob(f".{name}.*.tmp"):
            try:
                tmp.unlink()
            except OSError:
                pass


def progress_enabled(progress: bool | None) -> bool:
    """Whether to show a progress bar: as asked, else on a terminal or in a notebook."""
    if progress is not None:
        return bool(progress)
    return sys.stderr.isatty() or "ipykernel" in sys.modules


def progress_lines(progress: bool | None) -> bool:
    """Whether to print one line per evaluation instead of a bar: by default, when stderr is
    neither a terminal nor a notebook (batch jobs, piped logs)."""
    return progress is None and not progress_enabled(None)


def write_history(folder: Path | None, history) -> None:
    if folder is not None:
        atomic_write_text(folder / "history.jsonl",
                          "".join(json.dumps(h) + "\n" for h in history))


def write_best(folder: Path, member: Member, final_step: int) -> None:
    rec = next((h for h in member.history if h["step"] == member.best_step), None)
    if not member.has_best:
        rec = None
    last = member.history[-1] if member.history else {}
    atomic_write_json(folder / "best.json", {
        "step": member.best_step if member.has_best else None,
        "accuracy": None if rec is None else rec["accuracy"],
        "loss": None if rec is None else rec["loss"],
        "final_step": final_step,
        "final_accuracy": last.get("accuracy"),
        "final_loss": last.get("loss"),
        "model": "model.safetensors", "final_model": "model_final.safetensors",
    })


# ------------------------------------------------------------------------------ the loop


def next_boundary(step: int, cfg: TrainConfig, checkpointing: bool) -> int:
    """The end of the chunk that starts at ``step``: the next evaluation, checkpoint or the
    last step, whichever comes first."""
    stop = (step // cfg.eval_every + 1) * cfg.eval_every
    if checkpointing:
        every = cfg.checkpoint_interval
        stop = min(stop, (step // every + 1) * every)
    return min(stop, cfg.steps)


def run(engine, cfg: TrainConfig, members: list[Member], start: int, *, first: int,
        checkpoint=None, on_history=None, on_diverged=None, bar_desc: str = "training",
        wall_offset: float = 0.0, checkpoint_file: Path | None = None) -> int:
    """Advance ``engine`` from step ``start`` to ``cfg.steps`` in chunks; returns the step
    reached. ``first`` is the step this process started from (divergence there has no
    earlier state to go back to). ``checkpoint(step, wall)`` writes a checkpoint,
    ``on_history(i)`` network ``i``'s history, ``on_diverged(i, good_step, wall)`` is told of
    a divergence (it may raise).

    An interrupt inside `graceful_interrupts` stops the loop at the next boundary: the
    checkpoint is written there and `TrainingInterrupted` raised (``checkpoint_file`` named
    in it)."""
    n = len(members)
    band = (cfg.eval_batch_size
            if cfg.target_accuracy is None or cfg.target_accuracy >= 1.0 else None)
    bar = None
    if progress_enabled(cfg.progress):
        from tqdm.auto import tqdm

        desc = bar_desc if n == 1 else f"{bar_desc} {n} networks"
        bar = tqdm(total=cfg.steps, initial=start, desc=desc, unit="step", dynamic_ncols=True)
    lines = progress_lines(cfg.progress)
    t0 = time.perf_counter()
    # the state at the start of the last two chunks: a network whose loss turns non-finite
    # at the first step of a chunk goes back to a state inside the chunk before
    starts = [(start, engine.snapshot())]
    step = start
    try:
        while step < cfg.steps and any(m.active for m in members):
            stop = next_boundary(step, cfg, checkpoint is not None)
            was_active = np.array([m.active for m in members])
            engine.advance(step, stop)
            bad = engine.sync(step, stop)  # the one host synchronisation of the chunk
            is_eval = stop % cfg.eval_every == 0 or stop == cfg.steps
            gone = []
            for i in np.flatnonzero(was_active):
                m = members[i]
                if bad[i] is None:
                    m.steps = stop
                    continue
                s, loss = bad[i]
                # the parameters after `s` steps gave a non-finite loss: the last good ones
                # are those one step earlier (unless `s` is where this run started)
                good = s - 1 if s > first else s
                m.status, m.steps, m.bad_step, m.bad_loss = "diverged", good, s, loss
                m.history[:] = [h for h in m.history if h["step"] <= good]
                gone.append(i)
            for target in sorted({members[i].steps for i in gone}):
                chosen = [i for i in gone if members[i].steps == target]
                base = max((e for e in starts if e[0] <= target), key=lambda e: e[0])
                engine.restore(chosen, target, base)
            reached = False
            if is_eval:
                live = [i for i in np.flatnonzero(was_active) if members[i].active]
                if live:
                    scores = engine.scores(stop, live)
                    wall = wall_offset + time.perf_counter() - t0
                    improved = []
                    for i in live:
                        m = members[i]
                        record = {"step": stop, "train_loss": engine.train_loss(i)}
                        record.update({k: float(v[i]) for k, v in scores.items()})
                        record["wall_time"] = wall
                        m.history.append(record)
                        engine.reset_losses(i)
                        if is_better(record["accuracy"], record["loss"], m.best_accuracy,
                                     m.best_loss, top_accuracy=_top_accuracy(m.history[:-1]),
                                     n_trials=band):
                            m.best_accuracy, m.best_loss = record["accuracy"], record["loss"]
                            m.best_step, m.has_best = stop, True
                            improved.append(i)
                        if (cfg.target_accuracy is not None
                                and record["accuracy"] >= cfg.target_accuracy):
                            m.status = "target_accuracy"
                            reached = True
                        if on_history is not None:
                            on_history(i)
                    if improved:
                        engine.keep_best(improved)
                    if bar is not None:
                        acc = np.mean([members[i].history[-1]["accuracy"] for i in live])
                        post = {"acc": f"{acc:.3f}"}
                        if n == 1:
                            post["loss"] = f"{members[0].history[-1]['loss']:.4g}"
                        else:
                            post["active"] = sum(m.active for m in members)
                        bar.set_postfix(**post)
                    if lines:
                        h = [members[i].history[-1] for i in live]
                        text = (f"loss {h[0]['loss']:.4g} accuracy {h[0]['accuracy']:.4f}"
                                if n == 1 else
                                f"mean accuracy {np.mean([r['accuracy'] for r in h]):.4f} "
                                f"({len(live)} of {n} networks training)")
                        print(f"{bar_desc}: step {stop}/{cfg.steps} {text} elapsed "
                              f"{wall:.1f} s", file=sys.stderr, flush=True)
            stopped = [i for i in np.flatnonzero(was_active) if not members[i].active]
            if stopped:
                engine.freeze(stopped)
            if bar is not None:
                bar.update(stop - step)
            for i in gone:
                if on_history is not None:
                    on_history(i)  # (its evaluations after the good step are gone)
                if on_diverged is not None:
                    on_diverged(i, members[i].steps, wall_offset + time.perf_counter() - t0)
            step = stop
            starts = [*starts[-1:], (step, engine.snapshot())]
            stopping = interrupt.requested() and step < cfg.steps
            if checkpoint is not None and (
                step % cfg.checkpoint_interval == 0 or step == cfg.steps or reached or gone
                or stopping
            ):
                checkpoint(step, wall_offset + time.perf_counter() - t0)
            if stopping and any(m.active for m in members):
                raise interrupt.TrainingInterrupted(
                    step, checkpoint_file if checkpoint is not None else None)
    finally:
        if bar is not None:
            bar.close()
    return step

"""`TrainConfig`: the options `train` and `train_ensemble` share, validated once."""

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optax

from .._validate import Number, integer, number, positive_number


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train: one set of options for `rnnlab.train` and `rnnlab.train_ensemble`.

    Building one checks every option (a ``ValueError`` naming the option); the numbers are
    stored normalised (Python ``int`` / ``float``). ``train(model, task, key=k, steps=100)`` and
    ``train(model, task, key=k, config=TrainConfig(steps=100))`` are the same call.

    Attributes:
        steps: optimiser steps in total (a resumed run counts those already done). Default 2000.
        batch_size: trials per step, sampled inside the compiled step. Default 64.
        learning_rate: Adam's rate: a number, an Optax schedule (step -> rate), or (ensembles
            only) one number per network. Ignored with ``optimizer``. Default 1e-3.
        grad_clip: global-norm clipping before Adam (None: off). Default 1.0.
        l2_rates: weight of ``mean(rates^2)`` in the loss. Default 0.
        l2_weights: weight of ``sum_W mean(W^2)`` over the effective weight matrices. Default 0.
        optimizer: any Optax transformation, replacing Adam + clipping. Default None.
        eval_every: steps between evaluations (and the end of every compiled chunk).
            Default 100.
        eval_batch_size: fresh trials per evaluation. Default 256.
        target_accuracy: stop (a network, in an ensemble) once an evaluation reaches it.
            Default None (run all steps).
        out_dir: the run directory (config, history, models, checkpoint). Default None.
        checkpoint_every: steps between checkpoints (default: ``eval_every``).
        resume: continue from ``out_dir``'s checkpoint (a fresh start without one).
        progress: show a progress bar (default: when stderr is a terminal).
        run_config: extra JSON-able entries for ``config.json``.
    """

    # validated and normalised (to int / float) by __post_init__
    steps: int | Number = 2000
    batch_size: int | Number = 64
    # a number (a 0-d array too), a schedule, or one number per network
    learning_rate: float | Number | Callable[[int], Any] | Sequence[float] = 1e-3
    grad_clip: float | Number | None = 1.0
    l2_rates: float | Number = 0.0
    l2_weights: float | Number = 0.0
    optimizer: optax.GradientTransformation | None = None
    eval_every: int | Number = 100
    eval_batch_size: int | Number = 256
    target_accuracy: float | Number | None = None
    out_dir: str | os.PathLike | None = None
    checkpoint_every: int | Number | None = None
    resume: bool = False
    progress: bool | None = None
    run_config: dict[str, Any] | None = None

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        put("steps", integer("steps", self.steps, 1))
        put("batch_size", integer("batch_size", self.batch_size, 1))
        put("eval_every", integer("eval_every", self.eval_every, 1))
        put("eval_batch_size", integer("eval_batch_size", self.eval_batch_size, 1))
        put("l2_rates", number("l2_rates", self.l2_rates))
        put("l2_weights", number("l2_weights", self.l2_weights))
        if self.target_accuracy is not None:
            target = number("target_accuracy", self.target_accuracy)
            if target > 1:
                raise ValueError(f"target_accuracy must be in [0, 1], got {target}")
            put("target_accuracy", target)
        lr = self.learning_rate
        if not callable(lr):
            if np.ndim(lr) == 0:
                put("learning_rate", number("learning_rate", lr, 0.0, strict=True))
            else:
                lrs = np.asarray(lr, dtype=np.float64)
                if lrs.ndim != 1 or not np.all(np.isfinite(lrs) & (lrs > 0)):
                    raise ValueError(
                        "learning_rate must be a positive finite number, an Optax schedule, "
                        f"or (ensembles) one positive number per network, got {lr!r}"
                    )
                put("learning_rate", tuple(float(x) for x in lrs))
        if self.grad_clip is not None:
            put("grad_clip", positive_number("grad_clip", self.grad_clip))
        if self.optimizer is not None and not isinstance(
            self.optimizer, optax.GradientTransformation
        ):
            raise TypeError(
                f"optimizer must be an Optax GradientTransformation, got "
                f"{type(self.optimizer).__name__}"
            )
        if self.out_dir is not None:
            if Path(self.out_dir).exists() and not Path(self.out_dir).is_dir():
                raise ValueError(
                    f"out_dir={str(self.out_dir)!r} is a file; give a directory for the run"
                )
        if self.checkpoint_every is not None:
            put("checkpoint_every", integer("checkpoint_every", self.checkpoint_every, 1))
        if self.resume and self.out_dir is None:
            raise ValueError("resume=True needs out_dir (where the checkpoint is)")
        put("resume", bool(self.resume))
        if self.run_config is not None and not isinstance(self.run_config, dict):
            raise TypeError(f"run_config must be a dict, got {type(self.run_config).__name__}")

    @property
    def checkpoint_interval(self) -> int:
        """``checkpoint_every``, or ``eval_every`` when it is None."""
        return self.eval_every if self.checkpoint_every is None else self.checkpoint_every

    def hyper(self, key_data: list[int] | list[list[int]]) -> dict[str, Any]:
        """The JSON-able training settings recorded in ``config.json`` and checkpoints."""
        lr = self.learning_rate
        return {
            "steps": self.steps, "batch_size": self.batch_size,
            "learning_rate": "schedule" if callable(lr) else (
                list(lr) if isinstance(lr, tuple) else lr),
            "grad_clip": self.grad_clip, "l2_rates": self.l2_rates,
            "l2_weights": self.l2_weights, "eval_every": self.eval_every,
            "eval_batch_size": self.eval_batch_size, "target_accuracy": self.target_accuracy,
            "key": key_data,
        }


def make_config(config: TrainConfig | None, options: dict[str, Any]) -> TrainConfig:
    """``config`` (default: `TrainConfig()`) with ``options`` (keyword arguments named as its
    fields) replacing its values; an unknown name is a TypeError."""
    if config is not None and not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise TypeError(
            f"unknown training option(s) {', '.join(unknown)}; the options are "
            f"{', '.join(sorted(names))}"
        )
    if config is None:
        return TrainConfig(**options)
    return dataclasses.replace(config, **options) if options else config

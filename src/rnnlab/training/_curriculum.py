"""Curriculum training (`train_curriculum`): train through the stages of a
`rnnlab.tasks.Curriculum`, each until the network's accuracy crosses its threshold (PsychRNN's
default 0.9), then the next."""

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import jax
from jaxtyping import PRNGKeyArray

from .._validate import positive_int
from ..tasks._base import registered_name
from ..tasks._curriculum import Curriculum, _jsonable


@dataclasses.dataclass
class CurriculumResult:
    """What `train_curriculum` returns.

    Attributes:
        model: the model after the last stage trained.
        stages: one `TrainResult` per stage trained (fewer than the curriculum's stages when
            the step budget ran out).
        passed: per stage trained, whether it crossed its threshold.
        completed: whether every stage was passed.
    """

    model: Any
    stages: list
    passed: list[bool]
    completed: bool

    @property
    def steps(self) -> int:
        return sum(r.steps for r in self.stages)


def train_curriculum(
    model,
    curriculum: Curriculum,
    *,
    key: PRNGKeyArray,
    steps: int = 10000,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    **train_kwargs,
) -> CurriculumResult:
    """Train ``model`` through the stages of ``curriculum`` with `rnnlab.train`.

    Each stage trains until its accuracy reaches the curriculum's threshold (checked every
    ``eval_every`` steps), then the next stage starts from the trained network with fresh
    optimiser state. ``steps`` is the budget for the whole curriculum (as PsychRNN's
    training iterations): when it runs out before a stage is passed, training stops there
    and ``completed`` is False. Stage ``i`` uses ``jax.random.fold_in(key, i)``.

    With ``out_dir``: each stage is a run directory ``stage_<i>``; the top level gets
    ``curriculum.json`` (per stage: task, steps, accuracy, passed), ``model.safetensors`` (the
    final model) and ``config.json`` (the last stage's, so ``rnnlab evaluate`` works on it).
    ``resume=True`` continues an interrupted curriculum (finished stages are not retrained).

    Other keyword arguments go to `rnnlab.train` (``batch_size``, ``learning_rate``, ...);
    ``target_accuracy`` is set by the curriculum.
    """
    from ..io import save
    from ._train import train

    if not isinstance(curriculum, Curriculum):
        raise TypeError(f"curriculum must be a Curriculum, got {type(curriculum).__name__}")
    steps = positive_int("steps", steps)
    if "target_accuracy" in train_kwargs:
        raise ValueError("target_accuracy is set by the curriculum (use Curriculum.threshold)")
    out = Path(out_dir) if out_dir is not None else None
    results, passed = [], []
    used = 0
    for i, task in enumerate(curriculum.stages):
        remaining = steps - used
        if remaining < 1:
            break
        thr = curriculum.stage_threshold(i)
        stage_dir = out / f"stage_{i}" if out is not None else None
        res = train(model, task, key=jax.random.fold_in(key, i), steps=remaining,
                    target_accuracy=thr, out_dir=stage_dir,
                    resume=resume and stage_dir is not None, **train_kwargs)
        model = res.model
        results.append(res)
        ok = res.stopped == "target_accuracy"
        passed.append(ok)
        used += res.steps
        if out is not None:
            _write_summary(out, curriculum, results, passed)
        if not ok:
            break
    completed = len(passed) == len(curriculum.stages) and all(passed)
    if out is not None:
        _write_summary(out, curriculum, results, passed)
        last_cfg = out / f"stage_{len(results) - 1}" / "config.json"
        if last_cfg.exists():
            cfg = json.loads(last_cfg.read_text())
            cfg["curriculum"] = json.loads((out / "curriculum.json").read_text())
            from ..io._safe import atomic_write_json

            atomic_write_json(out / "config.json", cfg)
        try:
            save(out / "model.safetensors", model)
        except ValueError:
            pass  # a model that cannot describe itself (callable activation) is not saved
    return CurriculumResult(model, results, passed, completed)


def _write_summary(out: Path, curriculum: Curriculum, results, passed) -> None:
    from ..io._safe import atomic_write_json

    stages = []
    for i, task in enumerate(curriculum.stages):
        entry: dict[str, Any] = {"task": registered_name(task), "params": _jsonable(task),
                                 "threshold": curriculum.stage_threshold(i)}
        if i < len(results):
            r = results[i]
            entry.update(steps=r.steps, accuracy=r.final_accuracy, passed=passed[i],
                         wall_time=r.history[-1].get("wall_time") if r.history else None)
        stages.append(entry)
    atomic_write_json(out / "curriculum.json", {"stages": stages})



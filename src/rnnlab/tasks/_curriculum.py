"""Curriculum training: a list of tasks (or of settings of one task), each trained until the
network's accuracy crosses a threshold (PsychRNN's default 0.9), then the next."""

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
from jaxtyping import PRNGKeyArray

from .._validate import as_number, positive_int
from ._base import AbstractTask, make, registered_name


@dataclasses.dataclass(frozen=True)
class Curriculum:
    """Stages of training, in order.

    Attributes:
        stages: the tasks, easiest first. All must have the same ``n_in``, ``n_out`` and
            ``dt`` (the same network trains on all of them).
        threshold: accuracy (on fresh trials, as `rnnlab.train` evaluates it) at which a
            stage is passed; PsychRNN's default 0.9. ``None``: each stage's own
            ``target_accuracy``.
    """

    stages: tuple[AbstractTask, ...]
    threshold: float | None = 0.9

    def __post_init__(self):
        stages = tuple(self.stages)
        object.__setattr__(self, "stages", stages)
        if not stages or not all(isinstance(s, AbstractTask) for s in stages):
            raise TypeError("stages must be a non-empty sequence of rnnlab tasks")
        first = stages[0]
        for i, s in enumerate(stages[1:], 1):
            for attr in ("n_in", "n_out"):
                if getattr(s, attr) != getattr(first, attr):
                    raise ValueError(
                        f"stage {i} has {attr}={getattr(s, attr)} but stage 0 has "
                        f"{getattr(first, attr)}: every stage must fit the same network")
            if not math.isclose(s.dt, first.dt):
                raise ValueError(f"stage {i} has dt={s.dt} but stage 0 has dt={first.dt}")
        t = self.threshold
        v = None if t is None else as_number(t)
        if t is not None and (v is None or not 0 <= v <= 1):
            raise ValueError(f"threshold must be in [0, 1] or None, got {t!r}")

    @classmethod
    def from_settings(cls, name: str, settings: Sequence[Mapping[str, Any]],
                      threshold: float | None = 0.9, **common) -> "Curriculum":
        """Stages that are settings of one registered task: ``make(name, **common, **s)``
        for each ``s`` in ``settings``."""
        if isinstance(settings, Mapping) or not settings:
            raise ValueError("settings must be a non-empty list of parameter dicts")
        return cls(tuple(make(name, **{**common, **dict(s)}) for s in settings), threshold)

    def stage_threshold(self, i: int) -> float:
        return self.stages[i].target_accuracy if self.threshold is None else self.threshold


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
    from ..training import train

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
            (out / "config.json").write_text(json.dumps(cfg, indent=2))
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


def _jsonable(task):
    try:
        return json.loads(json.dumps(task.config()))
    except (TypeError, ValueError):
        return type(task).__name__


def parse_curriculum_spec(spec: str, task_name: str, common: Mapping[str, Any],
                          threshold: float | None) -> Curriculum:
    """Build a `Curriculum` from the ``--curriculum`` option of ``rnnlab train``.

    ``spec`` is JSON (inline, or the path of a JSON file): a list of stages, each either a
    dict of parameter settings of ``task_name`` (merged over ``common``, the ``--task-param``
    values) or ``{"task": NAME, "params": {...}}`` for another registered task. It may also
    be an object ``{"stages": [...], "threshold": 0.9}``.
    """
    text = spec
    if not spec.lstrip().startswith(("[", "{")):
        path = Path(spec)
        if not path.is_file():
            raise ValueError(f"--curriculum {spec!r} is neither JSON nor a JSON file")
        text = path.read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"--curriculum is not valid JSON ({e})") from None
    if isinstance(data, dict):
        if "threshold" in data and threshold is None:
            threshold = data["threshold"]
        data = data.get("stages")
    if not isinstance(data, list) or not data:
        raise ValueError("--curriculum must be a non-empty JSON list of stages (parameter "
                         'dicts, or {"task": NAME, "params": {...}})')
    stages = []
    for i, st in enumerate(data):
        if not isinstance(st, dict):
            raise ValueError(f"--curriculum stage {i} must be a JSON object, got {st!r}")
        if "task" in st:
            params = st.get("params") or {}
            stages.append(make(st["task"], **_tuples(params)))
        else:
            stages.append(make(task_name, **{**dict(common), **_tuples(st)}))
    return Curriculum(tuple(stages), 0.9 if threshold is None else threshold)


def _tuples(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}

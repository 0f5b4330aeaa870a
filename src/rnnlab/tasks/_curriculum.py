"""Curricula: a list of tasks (or of settings of one task), each trained until the network's
accuracy crosses a threshold (PsychRNN's default 0.9), then the next. Training through one is
`rnnlab.training.train_curriculum`."""

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._validate import as_number
from ._base import AbstractTask, make


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

"""Shared helpers for CLI commands: run directories, model builders."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._app import CLIError

# name -> builder(n_in, n_hidden, n_out, *, key, dt, **options) -> model.
# Other model families register here so `rnnlab train --model NAME` can build them.
MODEL_BUILDERS: dict[str, Callable[..., Any]] = {}


def register_model_builder(name: str, builder: Callable[..., Any]) -> None:
    MODEL_BUILDERS[name] = builder


def read_run_config(run: Path) -> dict[str, Any]:
    path = Path(run) / "config.json"
    if not path.is_file():
        raise CLIError(f"{run} is not a run directory (no config.json)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CLIError(f"{path} is not valid JSON ({e})") from None


def task_from_config(config: dict[str, Any]):
    from .. import tasks

    spec = config.get("task") or {}
    name = spec.get("name")
    if not name:
        raise CLIError("the run's task is not a registered task; it cannot be rebuilt")
    return tasks.make(name, **(spec.get("params") or {}))

"""Shared helpers for CLI commands: run directories, model builders."""

from collections.abc import Callable
from typing import Any

# name -> builder(n_in, n_hidden, n_out, *, key, dt, **options) -> model.
# Other model families register here so `rnnlab train --model NAME` can build them.
MODEL_BUILDERS: dict[str, Callable[..., Any]] = {}


def register_model_builder(name: str, builder: Callable[..., Any]) -> None:
    MODEL_BUILDERS[name] = builder

"""Argument checks shared by every layer: one definition of "a positive finite number",
"a positive integer", ... so that every public function rejects bad input with the same clear
message, naming the argument and what would be right.

Each check returns the value normalised (a Python ``float`` or ``int``), so callers write
``dt = positive_number("dt", dt)``. A 0-d numpy/JAX array counts as a number; ``bool`` never
does (``True`` is not a step size).
"""

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from jaxtyping import ArrayLike

__all__ = [
    "ArrayInput",
    "Number",
    "as_number",
    "integer",
    "nonnegative_number",
    "number",
    "positive_int",
    "positive_number",
]

# What an argument that the function passes through ``np.asarray``/``jnp.asarray`` accepts: an
# array or scalar (jaxtyping's ``ArrayLike``) or a (nested) list/tuple of numbers. Functions that
# check the shape and dtype themselves take this, so that a wrong value gets their own clear
# ValueError rather than a runtime type-check error.
ArrayInput = ArrayLike | Sequence

# A number as the checks below take it: Python or numpy scalar, or a 0-d array. An argument that
# one of them normalises is annotated ``int | Number`` (or ``float | Number``): the intended kind,
# while the check, not a runtime type check, rejects a wrong one (``1.5`` steps) with its
# ValueError naming the argument.
Number = ArrayLike


def as_number(value: Any) -> float | None:
    """``value`` as a float when it is a real number (Python, numpy scalar or 0-d array, not a
    bool), else None."""
    if isinstance(value, bool) or isinstance(value, np.bool_):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape == () and dtype is not None and (
        np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)
    ):
        return float(value)
    return None


def number(name: str, value: Any, minimum: float = 0.0, *, strict: bool = False) -> float:
    """A finite number ``>= minimum`` (``> minimum`` with ``strict``)."""
    v = as_number(value)
    ok = v is not None and math.isfinite(v) and (v > minimum if strict else v >= minimum)
    if not ok:
        rel = ">" if strict else ">="
        raise ValueError(f"{name} must be a finite number {rel} {minimum}, got {value!r}")
    return v


def positive_number(name: str, value: Any, *, allow_none: bool = False) -> float | None:
    """A finite number > 0 (None passes through with ``allow_none``)."""
    if value is None and allow_none:
        return None
    v = as_number(value)
    if v is None or not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


def nonnegative_number(name: str, value: Any) -> float:
    """A finite number >= 0."""
    v = as_number(value)
    if v is None or not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a non-negative finite number, got {value!r}")
    return v


def integer(name: str, value: Any, minimum: int) -> int:
    """An integer ``>= minimum`` (Python or numpy integer, not a bool or a float)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def positive_int(name: str, value: Any) -> int:
    """An integer >= 1."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)

"""Trials of a task for a set of keys, compiled and drawn once per test module and kept."""

import jax

_BATCHES: dict = {}


def batch(task, keys):
    """``jax.vmap(task.sample)`` over ``keys``, compiled once per (task, number of keys, first
    key) in the process."""
    cache = (task, len(keys), int(keys[0, 0]))
    if cache not in _BATCHES:
        _BATCHES[cache] = jax.jit(jax.vmap(task.sample))(keys)
    return _BATCHES[cache]

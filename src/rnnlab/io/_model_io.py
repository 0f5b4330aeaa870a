"""Saving and loading models: one .safetensors file, the configuration as JSON metadata."""

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..models._base import AbstractRNN, model_class
from ._safe import FileFormatError, read_safetensors, write_safetensors


def tree_to_tensors(tree: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """Flatten the array leaves of a pytree to {key path: numpy array}."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if leaf is None:
            continue
        out[prefix + jax.tree_util.keystr(path)] = np.asarray(leaf)
    return out


def tensors_to_tree(
    template: Any,
    tensors: dict[str, np.ndarray],
    prefix: str,
    where: str,
    *,
    keep: frozenset[str] = frozenset(),
) -> Any:
    """Replace the array leaves of ``template`` by ``tensors`` (the inverse of tree_to_tensors).

    Leaves named in ``keep`` (key paths) that have no tensor keep the template's value.
    """
    flat, treedef = jax.tree_util.tree_flatten_with_path(template)
    leaves = []
    for path, leaf in flat:
        name = prefix + jax.tree_util.keystr(path)
        if name not in tensors and name in keep:
            leaves.append(leaf)
            continue
        if name not in tensors:
            raise FileFormatError(f"{where}: missing tensor {name!r}")
        arr = tensors[name]
        ref = np.asarray(leaf)
        if ref.shape == () and arr.shape == (1,):  # safetensors stores scalars as [1]
            arr = arr.reshape(())
        if arr.shape != ref.shape:
            raise FileFormatError(
                f"{where}: tensor {name!r} has shape {arr.shape}, expected {ref.shape}"
            )
        leaves.append(jnp.asarray(arr, dtype=ref.dtype) if hasattr(leaf, "dtype") else arr)
    return jax.tree_util.tree_unflatten(treedef, leaves)


def model_meta(model: AbstractRNN) -> dict[str, Any]:
    from .. import __version__

    return {"class": type(model).__name__, "config": model.config(), "version": __version__}


def model_from_meta(meta: dict[str, Any], where: str) -> AbstractRNN:
    try:
        cls = model_class(meta["class"])
        return cls.from_config(meta["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise FileFormatError(f"{where}: cannot rebuild the model from its metadata ({e})") from None


def _config_keys(model: AbstractRNN) -> frozenset[str]:
    """Key paths of the array fields whose values the model's ``config()`` records."""
    return frozenset(f".{name}" for name in type(model).config_fields)


def model_tensors(model: AbstractRNN) -> dict[str, np.ndarray]:
    """The tensors `save` writes: every array leaf except the `config_fields` (noise levels),
    which the metadata's configuration carries (so files keep the layout of earlier releases)."""
    keys = _config_keys(model)
    return {k: v for k, v in tree_to_tensors(model).items() if k not in keys}


def save(path: str | os.PathLike, model: AbstractRNN) -> None:
    """Save ``model`` to one ``.safetensors`` file (weights + configuration as JSON metadata).

    The write is atomic. Models with a custom activation callable cannot be saved.
    """
    if not isinstance(model, AbstractRNN):
        raise TypeError(f"model must be an rnnlab model, got {type(model).__name__}")
    meta = {"kind": "model", **model_meta(model)}
    write_safetensors(path, model_tensors(model), meta)


def load(path: str | os.PathLike) -> AbstractRNN:
    """Load a model saved by `save`; outputs are bit-identical to the saved model's.

    Raises FileNotFoundError for a missing file and a ValueError naming the file for a
    truncated, corrupted or foreign one.
    """
    tensors, meta = read_safetensors(path, kind="model")
    template = model_from_meta(meta, str(path))
    # the noise levels come from the configuration (the template), the arrays from the tensors
    keys = _config_keys(template)
    tensors = {k: v for k, v in tensors.items() if k not in keys}
    return tensors_to_tree(template, tensors, "", str(path), keep=keys)

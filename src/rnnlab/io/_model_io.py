"""Saving and loading models: one .safetensors file, the configuration as JSON metadata.

Loading checks before it builds: the metadata's structure, the sizes it asks for against the
tensors in the file (so a tiny file cannot make the reader allocate gigabytes), then builds the
model and checks that every stored tensor has the shape and dtype of the model's field and
that the model describes itself with the stored configuration (a field of the wrong type or out
of range is refused, not coerced). Every refusal is a one-line `FileFormatError` naming the file.
"""

import math
import os
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..models._base import AbstractRNN, model_class
from ._safe import FileFormatError, canonical_json, read_safetensors, write_safetensors

# The largest layer a model file may ask for (units per side); the tensors bound it further.
MAX_UNITS = 1 << 20


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
    strict_dtype: bool = False,
) -> Any:
    """Replace the array leaves of ``template`` by ``tensors`` (the inverse of tree_to_tensors).

    Leaves named in ``keep`` (key paths) that have no tensor keep the template's value. Leaves
    may be arrays or `jax.ShapeDtypeStruct` (a template built with ``eqx.filter_eval_shape``).
    With ``strict_dtype`` a tensor must have the leaf's dtype exactly.
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
        if hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
            shape, dtype = tuple(leaf.shape), np.dtype(leaf.dtype)
        else:
            ref = np.asarray(leaf)
            shape, dtype = ref.shape, ref.dtype
        if shape == () and arr.shape == (1,):  # safetensors stores scalars as [1]
            arr = arr.reshape(())
        if arr.shape != shape:
            raise FileFormatError(
                f"{where}: tensor {name!r} has shape {arr.shape}, expected {shape}"
            )
        if strict_dtype and arr.dtype != dtype:
            raise FileFormatError(
                f"{where}: tensor {name!r} has dtype {arr.dtype}, expected {dtype}"
            )
        is_array = hasattr(leaf, "dtype") or isinstance(leaf, jax.ShapeDtypeStruct)
        leaves.append(jnp.asarray(arr, dtype=dtype) if is_array else arr)
    return jax.tree_util.tree_unflatten(treedef, leaves)


def model_meta(model: AbstractRNN) -> dict[str, Any]:
    from .. import __version__

    return {"class": type(model).__name__, "config": model.config(), "version": __version__}


def _class_and_config(meta: dict[str, Any], where: str) -> tuple[type, dict[str, Any]]:
    name, config = meta.get("class"), meta.get("config")
    if not isinstance(name, str):
        raise FileFormatError(f"{where}: metadata 'class' must be a model class name, got "
                              f"{type(name).__name__}")
    try:
        cls = model_class(name)
    except ValueError as e:
        raise FileFormatError(f"{where}: {str(e)[:300]}") from None
    if not isinstance(config, dict):
        raise FileFormatError(f"{where}: metadata 'config' must be an object, got "
                              f"{type(config).__name__}")
    return cls, config


def model_from_meta(meta: dict[str, Any], where: str) -> AbstractRNN:
    """A model of the structure the metadata describes (array values arbitrary)."""
    cls, config = _class_and_config(meta, where)
    try:
        return cls.from_config(config)
    except (KeyError, TypeError, ValueError) as e:
        raise FileFormatError(
            f"{where}: cannot rebuild the model from its metadata ({_one_line(e)})") from None


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


def _check_sizes(config: dict[str, Any], tensors: dict[str, np.ndarray], where: str) -> None:
    """The sizes the configuration asks for are positive integers no larger than the largest
    dimension of a stored tensor (checked before anything is allocated from them)."""
    largest = max((d for t in tensors.values() for d in t.shape), default=0)
    for name in ("n_in", "n_hidden", "n_out"):
        if name not in config:
            continue
        value = config[name]
        if type(value) is not int or not 1 <= value <= MAX_UNITS:
            raise FileFormatError(f"{where}: config {name} must be a positive integer, got "
                                  f"{str(value)[:40]}")
        if value > largest:
            raise FileFormatError(f"{where}: config {name}={value} does not match the stored "
                                  f"tensors (the largest dimension is {largest})")


# Templates by (class, canonical configuration): a model loaded again is not traced again.
_TEMPLATES: dict[tuple[type, str], tuple[Any, dict[str, np.ndarray]]] = {}


def _template(cls: type, config: dict[str, Any], where: str
              ) -> tuple[AbstractRNN, dict[str, np.ndarray]]:
    """The model's structure, and the values of the leaves that follow from the configuration
    alone (E/I signs, default masks, noise levels), by key path.

    Where the constructor allows it the model is only traced (``eqx.filter_make_jaxpr``): no
    initialiser runs and nothing is compiled, so loading is fast; the leaves the constructor
    makes from constants are read off the trace. Otherwise the model is built.
    """
    try:
        try:
            closed, dynamic, static = eqx.filter_make_jaxpr(cls.from_config)(config)
        except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError,
                jax.errors.TracerBoolConversionError, jax.errors.TracerIntegerConversionError):
            model = cls.from_config(config)
            return model, {jax.tree_util.keystr(p): np.asarray(leaf) for p, leaf in
                           jax.tree_util.tree_flatten_with_path(model)[0]}
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise FileFormatError(
            f"{where}: cannot rebuild the model from its metadata ({_one_line(e)})") from None
    from jax.extend import core as jcore

    consts = dict(zip(closed.jaxpr.constvars, closed.consts))
    known = {}
    paths = jax.tree_util.tree_flatten_with_path(dynamic)[0]
    for (path, _), var in zip(paths, closed.jaxpr.outvars):
        value = var.val if isinstance(var, jcore.Literal) else consts.get(var)
        if value is not None:
            known[jax.tree_util.keystr(path)] = np.asarray(value)
    return eqx.combine(dynamic, static), known


def _same(stored: Any, rebuilt: Any) -> bool:
    """Whether a stored configuration value means exactly the rebuilt model's (a bool stays a
    bool, numbers compare by value, containers element by element)."""
    if isinstance(rebuilt, bool):
        return isinstance(stored, bool) and stored == rebuilt
    if isinstance(rebuilt, (int, float)):
        return (isinstance(stored, (int, float)) and not isinstance(stored, bool)
                and (stored == rebuilt or (math.isnan(stored) and math.isnan(rebuilt))))
    if isinstance(rebuilt, (list, tuple)):
        return (isinstance(stored, list) and len(stored) == len(rebuilt)
                and all(_same(a, b) for a, b in zip(stored, rebuilt)))
    if isinstance(rebuilt, dict):
        return (isinstance(stored, dict) and set(stored) == set(rebuilt)
                and all(_same(stored[k], rebuilt[k]) for k in rebuilt))
    return type(stored) is type(rebuilt) and stored == rebuilt


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

    The write is atomic, and the same model gives the same bytes. Models with a custom
    activation callable cannot be saved.
    """
    if not isinstance(model, AbstractRNN):
        raise TypeError(f"model must be an rnnlab model, got {type(model).__name__}")
    meta = {"kind": "model", **model_meta(model)}
    write_safetensors(path, model_tensors(model), meta)


def load(path: str | os.PathLike) -> AbstractRNN:
    """Load a model saved by `save`; outputs are bit-identical to the saved model's.

    Raises FileNotFoundError for a missing file and a `FileFormatError` (a ValueError) with a
    one-line message naming the file for a truncated, corrupted, tampered or foreign one: the
    checksum covers the metadata and the tensors; the sizes the metadata asks for are checked
    against the tensors before the model is built; every tensor must have its field's shape and
    dtype, every weight must be finite, and the model must describe itself with the stored
    configuration.
    """
    where = str(path)
    tensors, meta = read_safetensors(path, kind="model")
    cls, config = _class_and_config(meta, where)
    _check_sizes(config, tensors, where)
    for name, arr in tensors.items():
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise FileFormatError(f"{where}: tensor {name!r} holds NaN or inf")
    key = (cls, canonical_json(config))
    if key in _TEMPLATES:
        template, known = _TEMPLATES[key]
    else:
        template, known = _template(cls, config, where)
        if len(_TEMPLATES) >= 32:
            _TEMPLATES.pop(next(iter(_TEMPLATES)))
        _TEMPLATES[key] = (template, known)
    keys = _config_keys(template)
    extra = sorted(set(tensors) - {jax.tree_util.keystr(p) for p, _ in
                                   jax.tree_util.tree_flatten_with_path(template)[0]})
    if extra:
        raise FileFormatError(f"{where}: unexpected tensor(s) {', '.join(extra)[:200]}")
    tensors = {k: v for k, v in tensors.items() if k not in keys}
    model = tensors_to_tree(template, tensors, "", where, keep=keys, strict_dtype=True)
    # integer tensors (E/I signs) follow from the configuration alone
    for name, value in known.items():
        if name in tensors and value.dtype.kind in "iu" and not np.array_equal(
                value, tensors[name].reshape(value.shape)):
            raise FileFormatError(f"{where}: tensor {name!r} is not what the configuration "
                                  "gives")
    # the config fields (noise levels) come from the configuration
    for name in type(model).config_fields:
        leaf = getattr(model, name, None)
        if isinstance(leaf, jax.ShapeDtypeStruct):
            value = known.get(f".{name}")
            if value is None:
                raise FileFormatError(f"{where}: config {name} is not a number")
            model = eqx.tree_at(lambda m: getattr(m, name), model,
                                jnp.asarray(value, dtype=leaf.dtype))
    try:
        rebuilt = model.config()
    except (TypeError, ValueError) as e:
        raise FileFormatError(f"{where}: the stored model does not describe itself "
                              f"({_one_line(e)})") from None
    for k, v in config.items():
        if k not in rebuilt or not _same(v, rebuilt[k]):
            raise FileFormatError(f"{where}: config {k}={str(v)[:60]} is not what the model "
                                  f"it describes has ({str(rebuilt.get(k))[:60]})")
    return model

"""Atomic, checksummed safetensors files with JSON metadata (never pickle)."""

import hashlib
import json
import os
import stat
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load as _st_load
from safetensors.numpy import save as _st_save

FORMAT_KEY = "rnnlab"


class FileFormatError(ValueError):
    """A file that is missing, truncated, tampered with, or not what was expected."""


def current_umask() -> int:
    """The process's file-mode creation mask (read without changing it where the OS allows)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore at once
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, fsync, rename.

    A crash leaves either the old file or the new one, never a partial one. The file gets the
    mode any new file would (0666 less the umask), or keeps the mode of the file it replaces.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mode = 0o666 & ~current_umask()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)  # mkstemp makes 0600 whatever the umask
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if hasattr(obj, "__array__"):
        return np.asarray(obj).tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _digest(tensors: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        h.update(name.encode())
        h.update(str(arr.dtype).encode())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def write_safetensors(
    path: str | os.PathLike, tensors: dict[str, np.ndarray], meta: dict[str, Any]
) -> None:
    """Write ``tensors`` and the JSON-able ``meta`` to ``path`` atomically, with a checksum."""
    tensors = {k: np.ascontiguousarray(np.asarray(v)) for k, v in tensors.items()}
    header = {FORMAT_KEY: json.dumps(meta, default=_json_default), "sha256": _digest(tensors)}
    atomic_write_bytes(path, _st_save(tensors, metadata=header))


def read_safetensors(
    path: str | os.PathLike, *, kind: str | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by `write_safetensors`; verify its checksum.

    Raises `FileFormatError` (a ValueError) naming the file when it is missing, truncated, not a
    safetensors file, has no rnnlab metadata, fails its checksum, or (with ``kind``) holds
    something else than a ``kind``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    data = path.read_bytes()
    if len(data) < 8:
        raise FileFormatError(f"{path}: file is truncated or not a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise FileFormatError(f"{path}: file is truncated (header says {n} bytes)")
    try:
        header = json.loads(data[8 : 8 + n])
        meta_raw = header.get("__metadata__", {}) or {}
        tensors = _st_load(data)
    except Exception as e:  # safetensors' own errors are not ValueErrors
        raise FileFormatError(f"{path}: not a valid safetensors file ({e})") from None
    if FORMAT_KEY not in meta_raw or "sha256" not in meta_raw:
        raise FileFormatError(f"{path}: not an rnnlab file (no rnnlab metadata)")
    if _digest(tensors) != meta_raw["sha256"]:
        raise FileFormatError(f"{path}: checksum mismatch; the file was modified or corrupted")
    try:
        meta = json.loads(meta_raw[FORMAT_KEY])
    except json.JSONDecodeError:
        raise FileFormatError(f"{path}: rnnlab metadata is not valid JSON") from None
    if kind is not None and meta.get("kind") != kind:
        raise FileFormatError(
            f"{path}: holds a {meta.get('kind')!r}, expected a {kind!r}"
        )
    return tensors, meta

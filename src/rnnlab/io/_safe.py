"""Atomic, checksummed safetensors files with JSON metadata (never pickle), and bounded JSON
reading.

File format 2 (written since the integrity check covers the metadata): a standard safetensors
file whose ``__metadata__`` holds ``rnnlab`` (the metadata as canonical JSON: sorted keys, no
spaces), ``format`` ("2") and ``sha256``, the digest of the metadata text *and* every tensor
(name, dtype, shape, bytes). The header is written by rnnlab itself with sorted keys, so the
same content always gives the same bytes. Format 1 files (no ``format`` entry: the digest
covered the tensors only) are still read; their metadata is then checked field by field only.
"""

import hashlib
import json
import math
import os
import stat
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_KEY = "rnnlab"
FORMAT_VERSION = 2
# What a file may ask of the reader before anything is allocated from it.
MAX_HEADER_BYTES = 64 * 2**20
MAX_JSON_BYTES = 256 * 2**20


class FileFormatError(ValueError):
    """A file that is missing, truncated, tampered with, or not what was expected. The message
    is one line that starts with the file's path."""


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
    """Write ``data`` to ``path`` atomically: a temporary file with a random name in the same
    folder, fsync, rename.

    A crash leaves either the old file or the new one, never a partial one; a failure (a full
    disk) removes the temporary file and raises. The file gets the mode any new file would
    (0666 less the umask), or keeps the mode of the file it replaces.
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
        _discard(tmp)
        raise
    _sync_directory(path.parent)


def _discard(tmp: str) -> None:
    """Remove a temporary file a failed write left (if it is there)."""
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass


def _sync_directory(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: some file systems refuse)."""
    try:
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def atomic_write_with(path: str | os.PathLike, write) -> None:
    """Atomically create ``path`` by calling ``write(tmp_path)``, for writers that want a file
    name (matplotlib's ``savefig``): the temporary file has a random name next to ``path``
    (same suffix, so writers that look at it pick the right format) and is removed if ``write``
    fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mode = 0o666 & ~current_umask()
    try:
        write(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        _discard(tmp)
        raise
    _sync_directory(path.parent)


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


def canonical_json(obj: Any) -> str:
    """``obj`` as JSON with sorted keys and no spaces: the same content, the same text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


# ------------------------------------------------------------------------------ bounded JSON


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def loads_json(text: str | bytes, where: str) -> Any:
    """Parse JSON text read from ``where``; any defect (not UTF-8, bad syntax, nesting too
    deep, a number too long, duplicate keys) is a one-line `FileFormatError` naming it."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError:
        raise FileFormatError(f"{where}: not UTF-8 text") from None
    except RecursionError:
        raise FileFormatError(f"{where}: JSON nested too deeply") from None
    except ValueError as e:  # JSONDecodeError, int too long, duplicate keys
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FileFormatError(f"{where}: not valid JSON ({msg[:200]})") from None


def read_json(path: str | os.PathLike, *, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """The JSON value in the file ``path`` (bounded: at most ``max_bytes``).

    FileNotFoundError for a missing file, `FileFormatError` naming the file for anything else.
    """
    path = Path(path)
    return loads_json(_read_bytes(path, max_bytes=max_bytes, what="a JSON file"), str(path))


def _read_bytes(path: Path, *, max_bytes: int | None = None, what: str = "a file") -> bytes:
    """The bytes of ``path``: FileNotFoundError when missing, `FileFormatError` naming the
    file for a directory, an unreadable file or one larger than ``max_bytes``."""
    try:
        if max_bytes is not None:
            size = path.stat().st_size
            if size > max_bytes:
                raise FileFormatError(f"{path}: {size} bytes, more than the {max_bytes} "
                                      f"{what} of rnnlab may have")
        return path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise FileFormatError(f"{path}: is a directory, not a file") from None
    except OSError as e:
        raise FileFormatError(f"{path}: cannot be read ({e.strerror or e})") from None


# ------------------------------------------------------------------------------ safetensors

_DTYPES = {
    np.dtype(np.bool_): "BOOL", np.dtype(np.uint8): "U8", np.dtype(np.int8): "I8",
    np.dtype(np.uint16): "U16", np.dtype(np.int16): "I16", np.dtype(np.uint32): "U32",
    np.dtype(np.int32): "I32", np.dtype(np.uint64): "U64", np.dtype(np.int64): "I64",
    np.dtype(np.float16): "F16", np.dtype(np.float32): "F32", np.dtype(np.float64): "F64",
}
_NP_DTYPES = {v: k for k, v in _DTYPES.items()}


def _digest_v1(tensors: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        h.update(name.encode())
        h.update(str(arr.dtype).encode())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def _digest(meta_text: str, tensors: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    h.update(b"rnnlab format 2\0")
    h.update(meta_text.encode("utf-8"))
    h.update(b"\0")
    h.update(_digest_v1(tensors).encode())
    return h.hexdigest()


def encode_safetensors(tensors: dict[str, np.ndarray], meta: dict[str, Any]) -> bytes:
    """The bytes of a format-2 file holding ``tensors`` and ``meta`` (deterministic)."""
    arrays = {}
    for k, v in tensors.items():
        arr = np.ascontiguousarray(np.asarray(v))
        if arr.dtype.newbyteorder("=") not in _DTYPES:
            raise TypeError(f"tensor {k!r}: dtype {arr.dtype} cannot be stored")
        arrays[k] = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    meta_text = canonical_json(meta)
    header: dict[str, Any] = {"__metadata__": {
        FORMAT_KEY: meta_text, "format": str(FORMAT_VERSION),
        "sha256": _digest(meta_text, arrays)}}
    offset = 0
    for name in sorted(arrays):
        arr = arrays[name]
        header[name] = {"dtype": _DTYPES[arr.dtype.newbyteorder("=")], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return b"".join([struct.pack("<Q", len(text)), text,
                     *(arrays[n].tobytes() for n in sorted(arrays))])


def write_safetensors(
    path: str | os.PathLike, tensors: dict[str, np.ndarray], meta: dict[str, Any]
) -> None:
    """Write ``tensors`` and the JSON-able ``meta`` to ``path`` atomically, with a checksum
    covering both; the same content gives the same bytes."""
    atomic_write_bytes(path, encode_safetensors(tensors, meta))


def _tensors_from(data: bytes, header: dict[str, Any], start: int, where: str
                  ) -> dict[str, np.ndarray]:
    """The tensors a parsed header describes, each checked against the data before it is
    read (dtype known, shape of non-negative ints, offsets inside the data and contiguous)."""
    out = {}
    spans = []
    n_data = len(data) - start
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "data_offsets"}:
            raise FileFormatError(f"{where}: tensor {name!r} has a malformed header entry")
        dtype = _NP_DTYPES.get(spec["dtype"]) if isinstance(spec["dtype"], str) else None
        shape, offs = spec["shape"], spec["data_offsets"]
        if dtype is None:
            raise FileFormatError(f"{where}: tensor {name!r} has unknown dtype {spec['dtype']!r}")
        if not (isinstance(shape, list) and len(shape) <= 8 and all(
                type(d) is int and 0 <= d < 2**40 for d in shape)):
            raise FileFormatError(f"{where}: tensor {name!r} has an invalid shape")
        if not (isinstance(offs, list) and len(offs) == 2 and all(
                type(o) is int for o in offs) and 0 <= offs[0] <= offs[1] <= n_data):
            raise FileFormatError(f"{where}: tensor {name!r} lies outside the file (truncated?)")
        count = math.prod(shape)
        if count * dtype.itemsize != offs[1] - offs[0]:
            raise FileFormatError(f"{where}: tensor {name!r}: shape {tuple(shape)} does not "
                                  "match its byte range")
        spans.append((offs[0], offs[1]))
        arr = np.frombuffer(data, dtype=dtype.newbyteorder("<"), count=count,
                            offset=start + offs[0]).reshape(shape)
        out[name] = arr.astype(dtype)  # native byte order, and a writable copy
    spans.sort()
    pos = 0
    for a, b in spans:
        if a != pos:
            raise FileFormatError(f"{where}: tensor data overlap or leave gaps")
        pos = b
    if pos != n_data:
        raise FileFormatError(f"{where}: {n_data - pos} bytes after the last tensor")
    return out


def read_safetensors(
    path: str | os.PathLike, *, kind: str | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by `write_safetensors`; verify its checksum.

    Raises FileNotFoundError for a missing file and `FileFormatError` (a ValueError) with a
    one-line message naming the file when it is truncated, not a safetensors file, has no
    rnnlab metadata, fails its checksum, comes from an unknown format version, or (with
    ``kind``) holds something else than a ``kind``.
    """
    path = Path(path)
    where = str(path)
    data = _read_bytes(path)
    if len(data) < 8:
        raise FileFormatError(f"{where}: file is truncated or not a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8 or n > MAX_HEADER_BYTES:
        raise FileFormatError(f"{where}: file is truncated or not a safetensors file (header "
                              f"says {n} bytes)")
    header = loads_json(data[8:8 + n], f"{where} (safetensors header)")
    if not isinstance(header, dict):
        raise FileFormatError(f"{where}: not a safetensors file (header is not an object)")
    meta_raw = header.get("__metadata__")
    if not isinstance(meta_raw, dict) or not isinstance(meta_raw.get(FORMAT_KEY), str) or \
            not isinstance(meta_raw.get("sha256"), str):
        raise FileFormatError(f"{where}: not an rnnlab file (no rnnlab metadata)")
    version = meta_raw.get("format", "1")
    if version not in ("1", str(FORMAT_VERSION)):
        raise FileFormatError(
            f"{where}: written in file format {str(version)[:20]!r}, which this rnnlab "
            f"(format {FORMAT_VERSION}) cannot read; upgrade rnnlab")
    tensors = _tensors_from(data, header, 8 + n, where)
    if version == "1":
        ok = _digest_v1(tensors) == meta_raw["sha256"]
    else:
        ok = _digest(meta_raw[FORMAT_KEY], tensors) == meta_raw["sha256"]
    if not ok:
        raise FileFormatError(f"{where}: checksum mismatch; the file was modified or corrupted")
    meta = loads_json(meta_raw[FORMAT_KEY], f"{where} (rnnlab metadata)")
    if not isinstance(meta, dict):
        raise FileFormatError(f"{where}: rnnlab metadata must be a JSON object, got "
                              f"{type(meta).__name__}")
    if kind is not None and meta.get("kind") != kind:
        shown = meta.get("kind")
        shown = repr(shown)[:40] if isinstance(shown, str) else "nothing known"
        raise FileFormatError(f"{where}: holds {shown}, expected a {kind!r}")
    return tensors, meta

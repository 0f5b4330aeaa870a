"""Writing figures to disk."""

import os
from pathlib import Path

from ..io._safe import atomic_write_with
from ._style import paper_style


def save_figure(fig, path: str | os.PathLike, *, formats=("png", "svg"), close: bool = True):
    """Save ``fig`` as ``path.png`` and ``path.svg`` (``path`` without a suffix, or with one of
    ``formats``, which is dropped); returns the written paths. Closes the figure by default."""
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.suffix.lstrip(".") in formats:
        path = path.with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    out = []
    with paper_style():
        for fmt in formats:
            target = path.with_name(path.name + "." + fmt)
            # the one atomic writer: a random temporary name, removed if drawing fails
            atomic_write_with(target, lambda tmp, fmt=fmt: fig.savefig(
                tmp, format=fmt, metadata=_metadata(fmt)))
            out.append(target)
    if close:
        plt.close(fig)
    return out


def _metadata(fmt):
    # Reproducible files: no creation date in SVG/PNG metadata.
    if fmt == "svg":
        return {"Date": None}
    if fmt == "png":
        return {"Software": "rnnlab (matplotlib)"}
    return None

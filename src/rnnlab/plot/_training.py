"""Training curves from a run's history."""

import os
from pathlib import Path
from typing import Any

import numpy as np

from ._style import new_figure, paper_style


def read_history(source: Any) -> list[dict[str, float]]:
    """The evaluation history as a list of dicts (``step``, ``loss``, ``accuracy``, ...).

    ``source``: a list of dicts, a `TrainResult`, a run directory, or a ``history.jsonl`` path.
    """
    if hasattr(source, "history") and not isinstance(source, (str, os.PathLike)):
        source = source.history
    if isinstance(source, (str, os.PathLike)):
        from ..runs._run import HISTORY, read_history as read_run_history

        path = Path(source)
        if path.is_dir():
            path = path / HISTORY
        # the run layer's reader: size bound, UTF-8, one JSON object per line with an
        # integer step and a numeric loss, errors naming the file and line
        return read_run_history(path)
    if isinstance(source, (list, tuple)) and all(isinstance(h, dict) for h in source):
        return list(source)
    raise TypeError(
        "history must be a list of dicts, a TrainResult, a run directory or a history.jsonl "
        f"path, got {type(source).__name__}"
    )


def training_curves(history: Any, *, target_accuracy: float | None = None):
    """Loss (log scale) and accuracy against optimiser step.

    Args:
        history: a list of evaluation dicts (``TrainResult.history``), a `TrainResult`, a run
            directory or its ``history.jsonl``. Each entry needs ``step`` and ``loss``;
            ``accuracy`` (and ``r2`` for regression tasks) is drawn when present.
        target_accuracy: draws the early-stopping threshold as a dashed line.

    Returns: the matplotlib Figure (two panels: loss, accuracy).
    """
    hist = read_history(history)
    if not hist:
        raise ValueError("history is empty: nothing to plot")
    if any("step" not in h or "loss" not in h for h in hist):
        raise ValueError("every history entry needs 'step' and 'loss'")
    step = np.array([h["step"] for h in hist], float)
    loss = np.array([h["loss"] for h in hist], float)
    acc = np.array([h.get("accuracy", np.nan) for h in hist], float)
    r2 = np.array([h.get("r2", np.nan) for h in hist], float)
    with paper_style():
        fig, axes = new_figure(1, 2, figsize=(7.0, 2.6))
        ax = axes[0, 0]
        ax.plot(step, loss, color="C0", marker="o", ms=2.5)
        if np.all(loss > 0) and loss.max() / max(loss.min(), 1e-300) > 10:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title("loss")
        ax = axes[0, 1]
        if np.any(np.isfinite(acc)):
            ax.plot(step, acc, color="C2", marker="o", ms=2.5, label="accuracy")
        if np.any(np.isfinite(r2)):
            ax.plot(step, r2, color="C4", marker="s", ms=2.5, label="$R^2$")
        if target_accuracy is not None:
            ax.axhline(target_accuracy, color="0.4", ls="--", lw=1, label="target")
        lo = np.nanmin(np.concatenate([acc, r2, [0.0]]))
        ax.set_ylim(max(lo, -1.0) - 0.02, 1.02)
        ax.set_xlabel("step")
        ax.set_ylabel("accuracy")
        ax.set_title("task performance")
        if ax.get_legend_handles_labels()[0]:  # a history of losses alone has nothing here
            ax.legend(loc="lower right")
        else:
            ax.text(0.5, 0.5, "no accuracy or $R^2$ in the history", ha="center",
                    va="center", transform=ax.transAxes, color="0.4")
    return fig

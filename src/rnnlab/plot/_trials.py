"""Trials: inputs, outputs against targets, and the loss mask."""

from typing import Any

import jax
import numpy as np

from .._validate import positive_int
from ..figdata import describe_trial, sample_trials
from ._style import new_figure, paper_style

_MAX_SEPARATE_OUTPUTS = 4


def trials(
    task,
    model=None,
    *,
    trials: Any = None,
    key=None,
    n_trials: int = 3,
    condition: str | None = None,
    outputs: Any = None,
):
    """Inputs and outputs against targets for a few trials, with the loss mask shaded.

    One column per trial: the top row shows the input channels; below, the outputs (solid) and
    targets (dashed, same colour), one row per output channel when ``n_out <= 4`` (so a
    per-channel mask can be shaded exactly), else all channels in one row. Grey bands mark the
    steps the loss ignores (mask 0). For cross-entropy tasks the outputs are shown as softmax
    probabilities. Time is in ms (steps times ``task.dt``).

    Args:
        task: an rnnlab task.
        model: the network whose outputs to show (run noise-free on the trials' inputs); without
            it only inputs and targets are drawn.
        trials: a batched `Trial` to show; default: ``n_trials`` sampled from ``key``, spread
            over the values of ``condition``.
        key: PRNG key for sampling trials (default ``PRNGKey(0)``).
        n_trials: number of trials (columns) when sampling. Default 3.
        condition: the condition to spread the sampled trials over (default: the task's main
            condition, e.g. ``signed_coherence``).
        outputs: precomputed outputs [B, T, n_out] instead of running ``model``.

    Returns: the matplotlib Figure.
    """
    from .._simulate import simulate

    n_trials = positive_int("n_trials", n_trials)
    if trials is None:
        if key is None:
            key = jax.random.PRNGKey(0)
        trials = sample_trials(task, key=key, n_trials=n_trials, condition=condition)
    inputs = np.asarray(trials.inputs)
    if inputs.ndim == 2:
        trials = jax.tree.map(lambda a: a[None], trials)
        inputs = inputs[None]
    targets, mask = np.asarray(trials.targets), np.asarray(trials.mask)
    conds = {k: np.asarray(v) for k, v in trials.conditions.items()}
    if inputs.shape[-1] != task.n_in or targets.shape[-1] != task.n_out:
        raise ValueError(
            f"trials have {inputs.shape[-1]} inputs and {targets.shape[-1]} outputs, but the "
            f"task has n_in={task.n_in}, n_out={task.n_out}"
        )
    if outputs is None and model is not None:
        outputs = simulate(model, trials.inputs).outputs
    if outputs is not None:
        outputs = np.asarray(outputs)
        if outputs.shape != targets.shape:
            raise ValueError(f"outputs must have shape {targets.shape}, got {outputs.shape}")
        if task.loss_type == "cross_entropy":
            outputs = np.asarray(jax.nn.softmax(outputs, axis=-1))
    n_cols, n_steps, n_out = inputs.shape[0], inputs.shape[1], targets.shape[-1]
    separate = n_out <= _MAX_SEPARATE_OUTPUTS
    n_rows = 1 + (n_out if separate else 1)
    t = np.arange(n_steps) * float(task.dt)
    colors = [f"C{i % 10}" for i in range(max(task.n_in, n_out))]
    with paper_style():
        fig, axes = new_figure(
            n_rows, n_cols, figsize=(2.8 * n_cols + 0.6, 1.0 + 1.15 * n_rows), sharex=True,
        )
        for c in range(n_cols):
            ax = axes[0, c]
            for j in range(inputs.shape[-1]):
                ax.plot(t, inputs[c, :, j], color=colors[j], lw=1.0, label=f"input {j + 1}")
            title = describe_trial(conds, c)
            ax.set_title(title if title else f"trial {c + 1}", fontsize=9)
            if c == 0:
                ax.set_ylabel("input")
            groups = [[j] for j in range(n_out)] if separate else [list(range(n_out))]
            for r, chans in enumerate(groups, start=1):
                ax = axes[r, c]
                off = np.all(mask[c][:, chans] == 0, axis=-1)
                _shade(ax, t, off, float(task.dt))
                for j in chans:
                    ax.plot(t, targets[c, :, j], color=colors[j], ls="--", lw=1.2, alpha=0.9,
                            label=f"target {j + 1}")
                    if outputs is not None:
                        ax.plot(t, outputs[c, :, j], color=colors[j], lw=1.5,
                                label=f"output {j + 1}")
                if task.loss_type == "cross_entropy":
                    ax.set_ylim(-0.05, 1.05)
                if c == 0:
                    ax.set_ylabel(f"output {chans[0] + 1}" if separate else "output")
            axes[-1, c].set_xlabel("time (ms)")
        for row in axes:  # one y scale per row, so trials compare at a glance
            lo = min(ax.get_ylim()[0] for ax in row)
            hi = max(ax.get_ylim()[1] for ax in row)
            for ax in row:
                ax.set_ylim(lo, hi)
        handles = [
            _legend_line("output", "-"), _legend_line("target", "--"),
            _legend_patch("loss ignores (mask 0)"),
        ]
        if outputs is None:
            handles.pop(0)
        fig.legend(handles=handles, loc="outside upper center", ncols=len(handles))
    return fig


def _shade(ax, t, off, dt):
    """Grey bands over runs of True in ``off`` (steps the loss ignores)."""
    if not np.any(off):
        return
    edges = np.flatnonzero(np.diff(np.concatenate([[0], off.astype(int), [0]])))
    for start, stop in zip(edges[::2], edges[1::2]):
        ax.axvspan(t[start] - dt / 2, t[stop - 1] + dt / 2, color="0.88", lw=0, zorder=0)


def _legend_line(label, ls):
    from matplotlib.lines import Line2D

    return Line2D([], [], color="0.2", ls=ls, label=label)


def _legend_patch(label):
    from matplotlib.patches import Patch

    return Patch(color="0.88", label=label)

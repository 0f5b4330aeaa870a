"""LFADS figures: inferred against true rates (a raster with rates), factors in principal
components, inferred against true inputs. Each takes an evaluated fit folder (``rnnlab lfads
fit`` then ``rnnlab lfads evaluate``) or the `rnnlab.figdata` object read from one."""

import os
from typing import Any

from ._style import new_figure, paper_style


def _fit(fit: Any):
    from ..figdata._lfads import LFADSFit, load_lfads_fit

    if isinstance(fit, LFADSFit):
        return fit
    if isinstance(fit, (str, os.PathLike)):
        return load_lfads_fit(fit)
    raise TypeError("fit must be an LFADS fit folder (a path) or the LFADSFit read from one "
                    f"(rnnlab.figdata's load_lfads_fit), got {type(fit).__name__}")


def lfads_rates(fit: Any, *, trial: int = 0, n_traces: int = 6):
    """One validation trial: the spike raster (held-out neurons below the line) and, for
    ``n_traces`` neurons, the inferred rate (solid) against the true rate (dashed, when the
    data has truth); forward-predicted bins shaded. Returns the matplotlib Figure."""
    import numpy as np

    from ..figdata._lfads import raster_data

    r = raster_data(_fit(fit), trial)
    n = r.counts.shape[1]
    with paper_style():
        fig, axes = new_figure(1, 2, figsize=(7.6, 3.2))
        ax = axes[0, 0]
        t, dt = r.time, (r.time[1] - r.time[0]) if len(r.time) > 1 else 1.0
        ax.imshow(r.counts.T, aspect="auto", cmap="Greys", interpolation="nearest",
                  origin="lower", extent=(t[0] - dt / 2, t[-1] + dt / 2, -0.5, n - 0.5),
                  gid="raster")
        if r.n_heldin < n:
            ax.axhline(r.n_heldin - 0.5, color="C3", lw=0.8)
        from matplotlib.ticker import MaxNLocator

        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(r.time_label)
        ax.set_ylabel("neuron (by inferred rate)")
        ax.set_title(f"spike counts, validation trial {r.trial}")
        ax = axes[0, 1]
        k = min(n_traces, n)
        peak = max(float(np.nanmax(r.inferred_rates[:, :k])), 1e-9)
        for i in range(k):
            off = i * peak * 1.1
            ax.plot(t, r.inferred_rates[:, i] + off, color=f"C{i % 10}", lw=1.3,
                    gid="inferred")
            if r.true_rates is not None:
                ax.plot(t, r.true_rates[:, i] + off, color=f"C{i % 10}", lw=1.0, ls="--",
                        gid="true")
        if r.n_obs < len(t):
            ax.axvspan(t[r.n_obs] - dt / 2, t[-1] + dt / 2, color="0.9", zorder=0)
        ax.set_yticks([])
        ax.set_xlabel(r.time_label)
        ax.set_title(f"rates ({r.units}): inferred solid"
                     + (", true dashed" if r.true_rates is not None else ""))
    return fig


def lfads_factors(fit: Any):
    """The validation trials' inferred factors in their first two principal components
    (coloured by each trial's mean true input when known), next to the true latent states in
    theirs. Returns the matplotlib Figure."""
    from ..figdata._lfads import factors_data

    f = factors_data(_fit(fit), n_components=2)
    panels = [("inferred factors", f.factors, f.explained)]
    if f.states is not None:
        panels.append(("true states", f.states, None))
    with paper_style():
        fig, axes = new_figure(1, len(panels), figsize=(3.6 * len(panels), 3.2))
        import matplotlib as mpl

        for ax, (title, z, explained) in zip(axes[0], panels):
            norm = None if f.color is None else mpl.colors.Normalize(f.color.min(),
                                                                     f.color.max())
            cmap = mpl.colormaps["coolwarm"]
            for i in range(z.shape[0]):
                c = "k" if f.color is None else cmap(norm(f.color[i]))
                ax.plot(z[i, :, 0], z[i, :, min(1, z.shape[2] - 1)], color=c, lw=0.8,
                        alpha=0.7, gid="trajectory")
                ax.plot(z[i, 0, 0], z[i, 0, min(1, z.shape[2] - 1)], "o", color=c, ms=2)
            label = "PC{} ({:.0%})" if explained is not None else "PC{}"
            ax.set_xlabel(label.format(1, *([] if explained is None else [explained[0]])))
            ax.set_ylabel(label.format(2, *([] if explained is None or len(explained) < 2
                                              else [explained[1]])))
            ax.set_title(title)
        if f.color is not None:
            fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes[0, -1],
                         label=f.color_label)
    return fig


def lfads_inputs(fit: Any, *, n_trials: int = 4):
    """Inferred inputs (through the best affine map onto the true ones) against the true
    inputs for ``n_trials`` validation trials, with the R^2 over all of them. Returns the
    matplotlib Figure; a ValueError when the fit infers no inputs or the data has no true
    ones."""
    from ..figdata._lfads import inputs_data

    import numpy as np

    fit = _fit(fit)
    data = inputs_data(fit)
    if data is None:
        raise ValueError("this fit has no inferred inputs (co_dim 0) or its data no true "
                         "inputs to compare them with")
    d = fit.dataset
    t = (d.bin_size or 1.0) * np.arange(d.n_time)
    with paper_style():
        fig, axes = new_figure(1, 1, figsize=(4.4, 3.0))
        ax = axes[0, 0]
        for i in range(min(n_trials, data.true.shape[0])):
            ax.plot(t, data.true[i, :, 0], color=f"C{i}", ls="--", lw=1.0, gid="true")
            ax.plot(t, data.mapped[i, :, 0], color=f"C{i}", lw=1.3, gid="inferred")
        ax.set_xlabel("time (s)" if d.bin_size else "time (bins)")
        ax.set_ylabel("input")
        ax.set_title(f"inferred (solid) vs true (dashed) input, R² = {data.r2:.3f}")
    return fig

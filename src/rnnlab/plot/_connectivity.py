"""Connectivity: effective weight matrices with E/I blocks, and the spectrum of w_rec."""

import numpy as np

from ..figdata import excitatory_count, model_weights, recurrent_blocks, symmetric_limit
from ._style import new_figure, paper_style


def connectivity(model):
    """The effective weight matrices and the eigenvalues of ``w_rec``.

    Panels: ``W_in`` [N, n_in], ``W_rec`` [N, N] (rows postsynaptic, columns presynaptic) and
    ``W_out`` [n_out, N] on one diverging colour scale centred at 0 (red excitatory/positive,
    blue negative); with Dale's law the E and I blocks are separated by lines and labelled.
    The last panel shows the eigenvalues of ``W_rec`` in the complex plane with the unit circle
    and the spectral radius in the title (for a CT-RNN with f'(0) = 1 the zero state is
    unstable when an eigenvalue has real part > 1, drawn dashed). Gated models (GRU, LSTM)
    stack one [N, N] matrix per gate in ``W_rec``: the blocks are separated by lines and each
    block's eigenvalues get their own colour.

    Returns: the matplotlib Figure.
    """
    w = model_weights(model)
    w_rec, w_in, w_out = w["w_rec"], w["w_in"], w["w_out"]
    n = w_rec.shape[1]
    blocks = recurrent_blocks(w_rec)
    n_exc = excitatory_count(model)
    lim = symmetric_limit(w_rec, w_in, w_out, quantile=0.99)
    eigs = [np.linalg.eigvals(b.astype(np.float64)) for b in blocks]
    radius = float(max(np.max(np.abs(e)) for e in eigs))
    with paper_style():
        fig, axes = new_figure(
            1, 4, figsize=(10.5, 3.0),
            gridspec_kw={"width_ratios": [max(0.6, 2.2 * w_in.shape[1] / n + 0.25), 3.0,
                                          max(0.6, 2.2 * w_out.shape[0] / n + 0.25), 3.0]},
        )
        ax_in, ax_rec, ax_out, ax_eig = axes[0]
        kw = {"cmap": "RdBu_r", "vmin": -lim, "vmax": lim, "interpolation": "nearest"}
        ax_in.imshow(w_in, aspect="auto", **kw)
        ax_in.set_title("$W_{in}$")
        ax_in.set_xlabel("input")
        ax_in.set_ylabel("unit")
        im = ax_rec.imshow(w_rec, aspect="equal" if len(blocks) == 1 else "auto", **kw)
        for i in range(1, len(blocks)):  # gated models: one block per gate
            for ax in (ax_rec, ax_in):
                ax.axhline(i * n - 0.5, color="k", lw=1.0)
        ax_rec.set_title("$W_{rec}$")
        ax_rec.set_xlabel("presynaptic unit")
        ax_rec.set_ylabel("postsynaptic unit")
        ax_out.imshow(w_out.T, aspect="auto", **kw)
        ax_out.set_title("$W_{out}^T$")
        ax_out.set_xlabel("output")
        ax_out.set_ylabel("unit")
        for ax in (ax_in, ax_rec, ax_out):
            for side in ("top", "right"):
                ax.spines[side].set_visible(True)
        if n_exc is not None and 0 < n_exc < n:
            b = n_exc - 0.5
            ax_rec.axvline(b, color="k", lw=1.0)
            ax_rec.axhline(b, color="k", lw=1.0)
            for ax in (ax_in, ax_out):
                ax.axhline(b, color="k", lw=1.0)
            ax_rec.set_xticks([n_exc / 2 - 0.5, (n + n_exc) / 2 - 0.5], ["E", "I"])
            ax_rec.set_yticks([n_exc / 2 - 0.5, (n + n_exc) / 2 - 0.5], ["E", "I"])
        fig.colorbar(im, ax=[ax_in, ax_rec, ax_out], shrink=0.8, label="weight")
        theta = np.linspace(0, 2 * np.pi, 400)
        ax_eig.plot(np.cos(theta), np.sin(theta), color="0.5", lw=0.8, label="unit circle")
        if getattr(model, "is_continuous", False):
            ax_eig.axvline(1.0, color="0.5", lw=0.8, ls="--", label="Re = 1")
        for i, eig in enumerate(eigs):
            ax_eig.scatter(eig.real, eig.imag, s=9, color="k" if len(eigs) == 1 else f"C{i}",
                           lw=0, label="eigenvalues" if len(eigs) == 1 else f"block {i + 1}")
        ax_eig.axhline(0, color="0.85", lw=0.6, zorder=0)
        ax_eig.axvline(0, color="0.85", lw=0.6, zorder=0)
        ax_eig.set_aspect("equal", adjustable="datalim")
        ax_eig.set_xlabel(r"Re $\lambda$")
        ax_eig.set_ylabel(r"Im $\lambda$")
        ax_eig.set_title(f"eigenvalues of $W_{{rec}}$ (radius {radius:.2f})")
        ax_eig.legend(loc="upper left", fontsize=7)
    return fig

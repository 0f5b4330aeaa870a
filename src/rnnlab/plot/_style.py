"""The matplotlib look of rnnlab figures: a paper style and a figure factory. What the figures
show (colours, markers, labels, projections) is `rnnlab.figdata`, shared with the report."""

import contextlib

from ..figdata import require_matplotlib

_RC = {
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "lines.linewidth": 1.4,
    "svg.fonttype": "none",
}


@contextlib.contextmanager
def paper_style():
    """rcParams for figures that look right in a paper without user styling."""
    mpl = require_matplotlib()
    with mpl.rc_context(_RC):
        yield


def new_figure(nrows=1, ncols=1, *, figsize=None, **kwargs):
    """A pyplot Figure (so ``plt.show()`` shows it) and a 2-D array of its axes."""
    require_matplotlib()
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, axes

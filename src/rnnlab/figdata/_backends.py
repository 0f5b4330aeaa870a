"""The optional drawing libraries (the ``rnnlab[viz]`` extra), imported only when needed."""

VIZ_HINT = "install the plotting extra: pip install 'rnnlab[viz]'"


def require_matplotlib():
    """Import matplotlib (Agg-safe) or raise ImportError naming the `rnnlab[viz]` extra."""
    try:
        import matplotlib
        import matplotlib.pyplot  # noqa: F401
    except ImportError as e:  # pragma: no cover - exercised only without matplotlib
        raise ImportError(f"rnnlab.plot needs matplotlib, which is not installed; {VIZ_HINT}") from e
    return matplotlib


def require_plotly():
    """Import plotly or raise ImportError naming the `rnnlab[viz]` extra."""
    try:
        import plotly
        import plotly.graph_objects  # noqa: F401
    except ImportError as e:  # pragma: no cover - exercised only without plotly
        raise ImportError(f"the HTML report needs plotly, which is not installed; {VIZ_HINT}") from e
    return plotly

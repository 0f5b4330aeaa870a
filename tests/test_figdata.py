"""rnnlab.figdata: one source of figure data for the matplotlib figures and the plotly report."""

import ast
import types
from pathlib import Path

import jax
import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("plotly")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

import rnnlab as rl  # noqa: E402
from _plot_fixtures import (  # noqa: E402
    STABILITY_COUNTS,
    flipflop_fixed_points,
    flipflop_trajectories,
)
from rnnlab import figdata  # noqa: E402
from rnnlab.report import _figures as report_figures  # noqa: E402

SRC = Path(rl.__file__).parent


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _imports_from(package: str):
    """(file, module, name) of every ``from ..X import name`` / ``from rnnlab.X import name``
    in the files of ``rnnlab.<package>``."""
    out = []
    for path in sorted((SRC / package).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.level == 2 or node.module.startswith("rnnlab."):
                    module = node.module.removeprefix("rnnlab.")
                    out.extend((path.name, module, a.name) for a in node.names)
    return out


def test_report_and_plot_import_only_public_figure_data():
    report = _imports_from("report")
    # the report reads from plot/ only its public names (the run loader)
    assert {m for _, m, _ in report if m.split(".")[0] == "plot"} <= {"plot"}
    for package in ("report", "plot"):
        names = [(f, n) for f, m, n in _imports_from(package) if m == "figdata"]
        assert names, package
        assert [(f, n) for f, n in names if n.startswith("_")] == []
        assert all(hasattr(figdata, n) for _, n in names)
    # and figdata itself draws nothing: no matplotlib/plotly drawing module at import
    for path in (SRC / "figdata").glob("*.py"):
        text = path.read_text()
        assert "pyplot" not in text.replace("import matplotlib.pyplot  # noqa: F401", "")
        assert "graph_objects" not in text.replace("import plotly.graph_objects  # noqa: F401",
                                                   "")


def _with_slow_points(n_slow=2):
    """The flip-flop's 27 roots with ``n_slow`` of the stable ones relabelled slow points (a
    FixedPoints-like object: the figures read only these fields)."""
    fp = flipflop_fixed_points()
    labels = list(fp.stability)
    stable = [i for i, s in enumerate(labels) if s == "stable"][:n_slow]
    for i in stable:
        labels[i] = "slow"
    fields = ("states", "eigenvalues", "right_eigenvectors", "n_unstable", "speeds", "outputs",
              "inputs", "is_continuous", "dt")
    return types.SimpleNamespace(stability=labels, **{k: getattr(fp, k) for k in fields})


def test_both_backends_draw_each_stability_class_with_one_style():
    fp = _with_slow_points(2)
    counts = dict(STABILITY_COUNTS, stable=STABILITY_COUNTS["stable"] - 2, slow=2)
    _, traj = flipflop_trajectories()
    ax = rl.plot.state_space(traj, fixed_points=fp).axes[0]
    drawn = {c.get_gid().removeprefix("fixed_points_"): c for c in ax.collections
             if (c.get_gid() or "").startswith("fixed_points_")}
    assert {k: len(c.get_offsets()) for k, c in drawn.items()} == counts
    for kind, c in drawn.items():
        style = figdata.STABILITY_STYLES[kind]
        assert mcolors.to_hex(c.get_edgecolors()[0]) == style.color
        face = "#ffffff" if style.hollow else style.color
        assert mcolors.to_hex(c.get_facecolors()[0]) == face
    for three_d in (True, False):
        fig = report_figures.state_space_figure(
            np.asarray(traj.states), None, "", fp, n_components=3 if three_d else 2)
        markers = {t.name: t.marker for t in fig.data if t.mode == "markers"}
        assert len(markers) == len(counts)
        for kind, n in counts.items():
            style = figdata.STABILITY_STYLES[kind]
            name = ("slow points (|F| < tol)" if kind == "slow" else f"{kind} fixed points")
            m = markers[f"{name} ({n})"]
            assert m.color == style.color
            assert m.symbol == (style.symbol_3d if three_d else style.symbol_2d)
            assert m.symbol.endswith("-open") or not style.hollow
        # slow points are small: no fixed point looks like them
        slow = markers["slow points (|F| < tol) (2)"].size
        assert all(m.size > slow for k, m in markers.items() if not k.startswith("slow"))


def test_fit_logistic_recovers_an_exact_logistic():
    x = np.linspace(-3.0, 3.0, 13)
    n = np.full(13, 1000)
    for bias, scale in ((0.4, 0.7), (-1.0, -1.5)):  # rising and falling
        p = 1 / (1 + np.exp(-(x - bias) / scale))
        b, s = figdata.fit_logistic(x, p, n)
        assert b == pytest.approx(bias, abs=1e-4) and s == pytest.approx(scale, rel=1e-4)
        np.testing.assert_allclose(figdata.logistic(x, b, s), p, atol=1e-5)


def _integrator_for_decisions(task):
    """One perfectly integrating unit: x accumulates (u1 - u2); logits (-100, x, -x)."""
    return rl.CTRNN.from_weights(
        [[1.0]], [[0.0, 1.0, -1.0]], [[0.0], [1.0], [-1.0]], b_out=[-100.0, 0.0, 0.0],
        activation="linear", dt=task.dt, tau=100.0,
    )


def test_psychometric_curves_are_the_same_in_both_backends():
    task = rl.tasks.make("perceptual_decision_making", stimulus=500)
    model = _integrator_for_decisions(task)
    key = jax.random.PRNGKey(3)
    curves = figdata.psychometric_curves(model, task, key=key, n_trials=300)
    # the counts and fractions are those of rnnlab.tasks.psychometric for the same trials
    raw = rl.tasks.psychometric(model, task, key=key, n_trials=300)
    np.testing.assert_array_equal(curves.n, raw["n"])
    np.testing.assert_array_equal(curves.p_choice, raw["p_choice"])
    assert curves.n.sum() == 300 and not curves.split
    p, n = curves.p_choice[0], curves.n[0]
    np.testing.assert_allclose(curves.standard_errors[0], np.sqrt(p * (1 - p) / n))
    # matplotlib
    ax = rl.plot.psychometric(model, task, key=key, n_trials=300).axes[0]
    (points,) = ax.containers
    np.testing.assert_allclose(points.lines[0].get_xdata(), curves.x)
    np.testing.assert_allclose(points.lines[0].get_ydata(), p)
    (fit,) = [ln for ln in ax.get_lines() if ln.get_gid() == "fit"]
    xs, ys = curves.fit_curve(0)
    np.testing.assert_allclose(fit.get_ydata(), ys)
    # plotly: same points, same fit, the task's own axis labels (P(right) rises with x)
    fig = report_figures.psychometric_figure(model, task, key=key, n_trials=300)
    (pts,) = [t for t in fig.data if t.mode == "markers"]
    (line,) = [t for t in fig.data if t.mode == "lines"]
    np.testing.assert_allclose(pts.x, curves.x)
    np.testing.assert_allclose(pts.y, p)
    np.testing.assert_allclose(pts.error_y.array, curves.standard_errors[0])
    np.testing.assert_allclose(line.y, ys)
    assert fig.layout.xaxis.title.text == ax.get_xlabel() == "signed coherence (%, + = right)"
    assert fig.layout.yaxis.title.text == ax.get_ylabel() == "P(right)"
    assert np.all(np.diff(ys) > 0)


def test_psychometric_curves_need_a_task_with_psychometrics():
    task = rl.tasks.make("flipflop")
    model = rl.CTRNN(task.n_in, 4, task.n_out, key=jax.random.PRNGKey(0), dt=task.dt)
    with pytest.raises(TypeError, match="decision task"):
        figdata.psychometric_curves(model, task)
    with pytest.raises(ValueError, match="n_trials must be an integer >= 2"):
        figdata.psychometric_curves(model, rl.tasks.make("perceptual_decision_making"),
                                    n_trials=1)

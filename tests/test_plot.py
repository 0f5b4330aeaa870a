"""rl.plot: each figure on real rnnlab objects draws what it should."""

import types

import jax
import numpy as np
import pytest

pytest.importorskip("matplotlib")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from scipy.stats import norm  # noqa: E402

import rnnlab as rl  # noqa: E402
from _plot_fixtures import (  # noqa: E402
    N_UNSTABLE_DIRECTIONS,
    STABILITY_COUNTS,
    X_STAR,
    flipflop_fixed_points,
    flipflop_network,
    flipflop_trajectories,
)
from rnnlab.plot import STABILITY_COLORS  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _lines(ax, gid=None):
    return [ln for ln in ax.get_lines() if gid is None or ln.get_gid() == gid]


def _collections(ax, gid):
    return [c for c in ax.collections if c.get_gid() == gid]


def _hex(rgba):
    return mcolors.to_hex(rgba)


def _runs_of_zero(m):
    """Number of maximal runs of True in a boolean vector (independent of the plot code)."""
    m = np.asarray(m, bool)
    return int(np.sum(m[1:] & ~m[:-1]) + (1 if m[0] else 0))


# ------------------------------------------------------------------------------ trials


def test_trials_flipflop_outputs_targets_and_mask():
    task, model = flipflop_network()
    trials = task.sample_batch(jax.random.PRNGKey(3), 3)
    fig = rl.plot.trials(task, model, trials=trials)
    axes = np.array(fig.axes).reshape(4, 3)  # input row + one row per output channel
    outputs = np.asarray(rl.simulate(model, trials.inputs).outputs)
    t = np.arange(task.n_steps) * task.dt
    for c in range(3):
        assert len(_lines(axes[0, c])) == task.n_in
        np.testing.assert_allclose(_lines(axes[0, c])[1].get_ydata(), trials.inputs[c, :, 1])
        for j in range(3):
            ax = axes[1 + j, c]
            target, output = _lines(ax)
            assert target.get_linestyle() == "--" and output.get_linestyle() == "-"
            np.testing.assert_allclose(target.get_xdata(), t)
            np.testing.assert_allclose(target.get_ydata(), trials.targets[c, :, j])
            np.testing.assert_allclose(output.get_ydata(), outputs[c, :, j], rtol=1e-6)
            # one grey band per run of steps where this channel's loss mask is 0
            off = np.asarray(trials.mask[c, :, j]) == 0
            assert len(ax.patches) == _runs_of_zero(off)
        assert axes[-1, c].get_xlabel() == "time (ms)"
    assert axes[0, 0].get_ylabel() == "input"
    assert axes[2, 0].get_ylabel() == "output 2"


def test_analytic_flipflop_network_solves_the_task():
    # the fixture network is a real flip-flop solver, so its trial figure shows a solution
    task, model = flipflop_network()
    trials = task.sample_batch(jax.random.PRNGKey(0), 64)
    out = rl.simulate(model, trials.inputs).outputs
    assert float(task.accuracy(out, trials)) > 0.97


def test_trials_cross_entropy_shows_probabilities_and_spreads_conditions():
    task = rl.tasks.make("perceptual_decision_making")
    model = rl.CTRNN(3, 16, 3, key=jax.random.PRNGKey(0), dt=task.dt)
    fig = rl.plot.trials(task, model, n_trials=4, key=jax.random.PRNGKey(2))
    axes = np.array(fig.axes).reshape(4, 4)
    for c in range(4):
        probs = np.stack([_lines(axes[1 + j, c])[1].get_ydata() for j in range(3)])
        np.testing.assert_allclose(probs.sum(axis=0), 1.0, rtol=1e-5)  # softmax of logits
    titles = [axes[0, c].get_title() for c in range(4)]
    assert len(set(titles)) == 4 and all("signed_coherence" in s for s in titles)
    # variable stimulus durations: the steps after a short trial's end are masked, one grey
    # band per run of mask 0 of that channel
    trials = task.sample_batch(jax.random.PRNGKey(5), 4)
    axes = np.array(rl.plot.trials(task, model, trials=trials).axes).reshape(4, 4)
    for c in range(4):
        for j in range(3):
            off = np.asarray(trials.mask[c, :, j]) == 0
            assert len(axes[1 + j, c].patches) == _runs_of_zero(off)


def test_trials_without_model_draws_targets_only_and_checks_arguments():
    task, _ = flipflop_network()
    fig = rl.plot.trials(task, n_trials=2)
    assert all(len(_lines(ax)) == 1 for ax in np.array(fig.axes).reshape(4, 2)[1:].ravel())
    with pytest.raises(ValueError, match="n_trials"):
        rl.plot.trials(task, n_trials=0)
    with pytest.raises(ValueError, match="condition"):
        rl.plot.trials(task, n_trials=2, condition="nope")


# ------------------------------------------------------------------------------ training


def test_training_curves_from_a_real_run_directory(tmp_path):
    task = rl.tasks.make("flipflop", n_bits=2, n_steps=40)
    model = rl.CTRNN(2, 8, 2, key=jax.random.PRNGKey(0), dt=task.dt)
    result = rl.train(model, task, key=jax.random.PRNGKey(1), steps=30, batch_size=8,
                      eval_every=10, eval_batch_size=16, learning_rate=1e-2, out_dir=tmp_path,
                      progress=False)
    fig = rl.plot.training_curves(tmp_path, target_accuracy=0.99)
    ax_loss, ax_acc = fig.axes
    (loss_line,) = _lines(ax_loss)
    np.testing.assert_allclose(loss_line.get_xdata(), [h["step"] for h in result.history])
    np.testing.assert_allclose(loss_line.get_ydata(), [h["loss"] for h in result.history])
    acc_line, r2_line, target = _lines(ax_acc)
    np.testing.assert_allclose(acc_line.get_ydata(), [h["accuracy"] for h in result.history])
    np.testing.assert_allclose(r2_line.get_ydata(), [h["r2"] for h in result.history])
    np.testing.assert_allclose(target.get_ydata(), [0.99, 0.99])
    assert ax_loss.get_ylabel() == "loss" and ax_acc.get_xlabel() == "step"
    # the same figure from the TrainResult itself
    fig2 = rl.plot.training_curves(result)
    np.testing.assert_allclose(_lines(fig2.axes[0])[0].get_ydata(), loss_line.get_ydata())


def test_training_curves_read_history_files_through_the_checked_reader(tmp_path):
    """A history file is read as the run layer reads it: a bad line is an error naming the
    file and the line (it used to be any JSON, a negative step or a string loss accepted)."""
    hist = tmp_path / "history.jsonl"
    hist.write_text('{"step": 0, "loss": 1.5}\n\n{"step": 10, "loss": 0.5}\n')
    fig = rl.plot.training_curves(tmp_path)
    np.testing.assert_allclose(_lines(fig.axes[0])[0].get_ydata(), [1.5, 0.5])
    for bad in ('{"step": -1, "loss": 1}', '{"step": 0, "loss": "x"}', '[1, 2]', '{"step": 0'):
        hist.write_text('{"step": 0, "loss": 1.5}\n' + bad + "\n")
        with pytest.raises(rl.io.FileFormatError, match=r"history\.jsonl:2"):
            rl.plot.training_curves(hist)
    with pytest.raises(FileNotFoundError, match="no training history"):
        rl.plot.training_curves(tmp_path / "elsewhere")


def test_training_curves_log_scale_only_over_a_decade():
    hist = [{"step": s, "loss": 10.0 ** -s, "accuracy": 0.5} for s in range(4)]
    assert rl.plot.training_curves(hist).axes[0].get_yscale() == "log"
    hist = [{"step": s, "loss": 1.0 + 0.1 * s, "accuracy": 0.5} for s in range(4)]
    assert rl.plot.training_curves(hist).axes[0].get_yscale() == "linear"
    with pytest.raises(ValueError, match="empty"):
        rl.plot.training_curves([])
    with pytest.raises(TypeError, match="history"):
        rl.plot.training_curves(3.0)


# ------------------------------------------------------------------------------ connectivity


def test_connectivity_shows_effective_weights_ei_blocks_and_spectrum():
    model = rl.CTRNN(3, 20, 2, key=jax.random.PRNGKey(4), dt=10.0, dale=True)
    w = model.effective_weights()
    fig = rl.plot.connectivity(model)
    ax_in, ax_rec, ax_out, ax_eig = fig.axes[:4]
    np.testing.assert_array_equal(ax_rec.images[0].get_array(), np.asarray(w["w_rec"]))
    np.testing.assert_array_equal(ax_in.images[0].get_array(), np.asarray(w["w_in"]))
    np.testing.assert_array_equal(ax_out.images[0].get_array(), np.asarray(w["w_out"]).T)
    # one colour scale centred on zero
    lo, hi = ax_rec.images[0].get_clim()
    assert lo == -hi and ax_in.images[0].get_clim() == (lo, hi)
    # E/I boundary after the 16 excitatory units, on both axes, and E/I tick labels
    n_exc = model.n_excitatory
    assert n_exc == 16
    bounds = [ln.get_xdata()[0] for ln in ax_rec.get_lines()] + [
        ln.get_ydata()[0] for ln in ax_rec.get_lines()]
    assert bounds.count(n_exc - 0.5) >= 2
    assert [t.get_text() for t in ax_rec.get_xticklabels()] == ["E", "I"]
    # eigenvalues of W_rec, against numpy
    (pts,) = ax_eig.collections
    got = pts.get_offsets()
    want = np.linalg.eigvals(np.asarray(w["w_rec"], np.float64))
    np.testing.assert_allclose(np.sort_complex(got[:, 0] + 1j * got[:, 1]),
                               np.sort_complex(want), rtol=1e-5, atol=1e-6)
    assert f"{np.max(np.abs(want)):.2f}" in ax_eig.get_title()
    assert ax_eig.get_xlabel() == r"Re $\lambda$"


def test_connectivity_of_a_gated_model_shows_one_block_per_gate():
    model = rl.GRU(2, 6, 1, key=jax.random.PRNGKey(0))
    w_rec = np.asarray(model.effective_weights()["w_rec"])
    assert w_rec.shape == (18, 6)
    fig = rl.plot.connectivity(model)
    ax_rec, ax_eig = fig.axes[1], fig.axes[3]
    assert sorted(ln.get_ydata()[0] for ln in ax_rec.get_lines()) == [5.5, 11.5]
    assert len(ax_eig.collections) == 3
    for k, coll in enumerate(ax_eig.collections):
        got = coll.get_offsets()
        want = np.linalg.eigvals(w_rec[6 * k:6 * (k + 1)].astype(np.float64))
        np.testing.assert_allclose(np.sort_complex(got[:, 0] + 1j * got[:, 1]),
                                   np.sort_complex(want), rtol=1e-5, atol=1e-6)


def test_connectivity_without_dale_has_no_blocks_and_rejects_foreign_objects():
    model = rl.CTRNN(2, 10, 2, key=jax.random.PRNGKey(0), dt=10.0)
    fig = rl.plot.connectivity(model)
    assert _lines(fig.axes[1]) == []
    with pytest.raises(TypeError, match="effective_weights"):
        rl.plot.connectivity(object())


# ------------------------------------------------------------------------------ psychometric


def _integrator_for_decisions(task):
    """One perfectly integrating linear unit: x accumulates (u1 - u2); logits (-100, x, -x).

    Its choice is sign(sum of the stimulus difference), so P(choice 1) = Phi(c / s) with
    c = signed coherence: the difference per step has mean c/100 and std sqrt(2) sigma/sqrt(dt),
    so over n stimulus steps s = 100 sqrt(2 / n) sigma / sqrt(dt)."""
    return rl.CTRNN.from_weights(
        [[1.0]], [[0.0, 1.0, -1.0]], [[0.0], [1.0], [-1.0]], b_out=[-100.0, 0.0, 0.0],
        activation="linear", dt=task.dt, tau=100.0,
    )


def test_psychometric_matches_the_analytic_curve_of_a_perfect_integrator():
    task = rl.tasks.make("perceptual_decision_making", stimulus=2000)  # fixed duration
    model = _integrator_for_decisions(task)
    n_trials = 3000
    fig = rl.plot.psychometric(model, task, key=jax.random.PRNGKey(5), n_trials=n_trials)
    ax = fig.axes[0]
    (points,) = [c for c in ax.containers]  # the errorbar container
    x, p = points.lines[0].get_xdata(), points.lines[0].get_ydata()
    np.testing.assert_allclose(np.sort(x), np.sort(np.unique(np.concatenate(
        [np.array(task.coherences), -np.array(task.coherences)]))))
    # The integrator chooses output 1 (channel 1, "right") when the summed evidence is
    # positive; the curve is P(right) = Phi(c / s) (issue 12: it rises with the x axis).
    n_stim = task.epochs["stimulus"][1] - task.epochs["stimulus"][0]
    s = np.sqrt(2.0 * n_stim) * task.sigma / np.sqrt(task.dt) * 100.0 / n_stim
    expected = norm.cdf(x / s)
    n_per_point = n_trials / (2 * len(task.coherences)) * np.where(x == 0, 2, 1)
    se = np.sqrt(expected * (1 - expected) / n_per_point) + 1e-3
    assert np.all(np.abs(p - expected) < 4.5 * se), (p, expected)
    assert ax.get_xlabel() == "signed coherence (%, + = right)"
    assert ax.get_ylabel() == "P(right)"
    (fit,) = _lines(ax, "fit")  # the logistic fit rises through 0.5 near 0
    y = fit.get_ydata()
    assert np.all(np.diff(y) > 0)
    assert abs(np.interp(0.5, y, fit.get_xdata())) < 2.0
    # its slope matches the probit's: logistic scale ~ s / 1.7 (the usual probit-logit ratio)
    from rnnlab.figdata import fit_logistic

    bias, scale = fit_logistic(x, p, np.full(len(x), n_per_point))
    assert s / 1.7 * 0.8 < scale < s / 1.7 * 1.25


def test_psychometric_curves_per_context():
    task = rl.tasks.make("context_decision_making")
    model = rl.CTRNN(task.n_in, 8, task.n_out, key=jax.random.PRNGKey(0), dt=task.dt)
    fig = rl.plot.psychometric(model, task, n_trials=256)
    ax = fig.axes[0]
    n_groups = len(np.unique(np.asarray(task.sample_batch(jax.random.PRNGKey(0), 256)
                                        .conditions[task.psychometric_by])))
    assert len(ax.containers) == n_groups >= 2
    assert len(ax.get_legend().get_texts()) == n_groups
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["motion context",
                                                                    "colour context"]
    assert ax.get_ylabel() == "P(right)" and "%" not in ax.get_xlabel()


def test_psychometric_rejects_tasks_without_decisions():
    task, model = flipflop_network()
    with pytest.raises(TypeError, match="decisions"):
        rl.plot.psychometric(model, task)


# ------------------------------------------------------------------------------ state space


def test_fixed_point_fixture_has_the_analytic_answer():
    fp = flipflop_fixed_points()
    assert {k: fp.stability.count(k) for k in STABILITY_COUNTS} == STABILITY_COUNTS
    stable = np.asarray(fp.states)[[s == "stable" for s in fp.stability]]
    np.testing.assert_allclose(np.sort(np.abs(stable).ravel()), X_STAR, rtol=1e-6)


def _numpy_pca(x, k):
    x = x.reshape(-1, x.shape[-1])
    mean = x.mean(0)
    vals, vecs = np.linalg.eigh(np.cov((x - mean).T))
    return mean, vecs[:, ::-1][:, :k].T, vals[::-1][:k] / vals.sum()


def test_state_space_marks_fixed_points_by_stability():
    fp = flipflop_fixed_points()
    trials, traj = flipflop_trajectories()
    fig = rl.plot.state_space(traj, conditions=trials.conditions, fixed_points=fp)
    ax = fig.axes[0]
    # one line per trial, coloured by the condition (final bits): same value, same colour
    lines = _lines(ax, "trajectory")
    assert len(lines) == trials.inputs.shape[0]
    bits = [tuple(b) for b in np.asarray(trials.conditions["final_bits"]).tolist()]
    colours = [ln.get_color() for ln in lines]
    for i in range(len(bits)):
        for j in range(len(bits)):
            assert (colours[i] == colours[j]) == (bits[i] == bits[j])
    # points and styles per stability
    for kind, n in STABILITY_COUNTS.items():
        (coll,) = _collections(ax, f"fixed_points_{kind}")
        assert len(coll.get_offsets()) == n
        edge = _hex(coll.get_edgecolors()[0])
        assert edge == STABILITY_COLORS[kind]
        face = _hex(coll.get_facecolors()[0])
        assert face == ("#ffffff" if kind == "saddle" else STABILITY_COLORS[kind])
    # PCs against an independent numpy PCA (signs are arbitrary)
    mean, comps, ratio = _numpy_pca(np.asarray(traj.states, float), 2)
    (stable,) = _collections(ax, "fixed_points_stable")
    states = np.asarray(fp.states)[[s == "stable" for s in fp.stability]]
    want = (states - mean) @ comps.T
    got = np.asarray(stable.get_offsets())
    np.testing.assert_allclose(np.abs(got), np.abs(want), rtol=1e-5, atol=1e-6)
    assert ax.get_xlabel() == f"PC1 ({100 * ratio[0]:.0f}%)"
    assert ax.get_ylabel().startswith("PC2")


def test_signed_coherence_colours_follow_the_value():
    task = rl.tasks.make("perceptual_decision_making")
    model = rl.CTRNN(3, 8, 3, key=jax.random.PRNGKey(0), dt=task.dt)
    trials = task.sample_batch(jax.random.PRNGKey(1), 40)
    traj = rl.simulate(model, trials.inputs)
    ax = rl.plot.state_space(traj, conditions=trials.conditions).axes[0]
    coh = np.asarray(trials.conditions["signed_coherence"])
    rgb = np.array([mcolors.to_rgb(ln.get_color()) for ln in _lines(ax, "trajectory")])
    red_minus_blue = rgb[:, 0] - rgb[:, 2]
    assert np.all(red_minus_blue[coh > 0] > 0.2) and np.all(red_minus_blue[coh < 0] < -0.2)
    assert np.all(np.ptp(rgb[coh == 0], axis=1) < 1e-6)  # zero coherence: grey
    # colour order follows value order: red - blue strictly increases with the coherence
    values = np.unique(coh[coh != 0])
    per_value = [red_minus_blue[coh == v][0] for v in values]
    assert np.all(np.diff(per_value) > 0)
    legend = [t.get_text() for t in fig_legend_texts(ax.figure)]
    assert legend[:3] == ["-51.2", "-25.6", "-12.8"]


def fig_legend_texts(fig):
    return [t for leg in fig.legends for t in leg.get_texts()]


def test_saddles_show_their_unstable_directions_as_segments():
    fp = flipflop_fixed_points()
    _, traj = flipflop_trajectories()
    fig = rl.plot.state_space(traj, fixed_points=fp)
    ax = fig.axes[0]
    segs = _lines(ax, "unstable_direction")
    assert len(segs) == N_UNSTABLE_DIRECTIONS
    mean, comps, _ = _numpy_pca(np.asarray(traj.states, float), 2)
    saddles = np.asarray(fp.states)[[s == "saddle" for s in fp.stability]]
    centres = (saddles - mean) @ comps.T
    for seg in segs:
        a = np.array([seg.get_xdata()[0], seg.get_ydata()[0]])
        b = np.array([seg.get_xdata()[1], seg.get_ydata()[1]])
        mid = (a + b) / 2
        # centred on a saddle ...
        assert np.min(np.linalg.norm(np.abs(centres) - np.abs(mid), axis=1)) < 1e-6
        # ... along the projection of a unit axis: the unstable modes are the units at 0
        d = (b - a) / 2
        cand = [np.abs(comps[:, k]) for k in range(3)]
        cos = [abs(np.abs(d) @ c) / (np.linalg.norm(d) * np.linalg.norm(c) + 1e-30)
               for c in cand]
        assert max(cos) > 1 - 1e-6


def test_state_space_3d_and_manifolds():
    fp = flipflop_fixed_points()
    trials, traj = flipflop_trajectories()
    theta = np.linspace(0, 2 * np.pi, 50, endpoint=False)
    ring = types.SimpleNamespace(kind="ring", dimension=1, length=2 * np.pi,
                                 states=np.stack([np.cos(theta), np.sin(theta),
                                                  np.zeros_like(theta)], 1))
    fig = rl.plot.state_space(traj, conditions=trials.conditions, fixed_points=fp,
                              manifolds=[ring], n_components=3)
    ax = fig.axes[0]
    assert ax.name == "3d" and ax.get_zlabel().startswith("PC3")
    (curve,) = _lines(ax, "manifold")
    assert len(curve.get_data_3d()[0]) == 51  # a ring is drawn closed
    assert len(_lines(ax, "trajectory")) == trials.inputs.shape[0]
    with pytest.raises(ValueError, match="n_components"):
        rl.plot.state_space(traj, n_components=4)
    with pytest.raises(ValueError, match="conditions"):
        rl.plot.state_space(traj, conditions=np.zeros(3))


def test_line_attractor_is_drawn_as_a_curve_and_flip_flop_has_none():
    from rnnlab.analysis import find_fixed_points
    from rnnlab.plot._run import continuous_attractors

    # linear CT-RNN, dx/dt = (0, -y / 2) / tau: every point of y = 0 is a (marginal) fixed point
    model = rl.CTRNN.from_weights([[1.0, 0.0], [0.0, 0.5]], np.zeros((2, 1)), np.eye(2),
                                  activation="linear", dt=10.0, tau=100.0)
    cand = np.stack([np.linspace(-2, 2, 40), np.full(40, 0.3)], 1)
    fp = find_fixed_points(model, np.zeros(1), cand)
    (line,) = continuous_attractors(fp)
    assert line.kind == "line"
    traj = rl.simulate(model, np.zeros((4, 30, 1)),
                       initial_state=np.array([[-1.5, 1.0], [-0.5, -1.0], [0.5, 1.0],
                                               [1.5, -1.0]]))
    ax = rl.plot.state_space(traj, fixed_points=fp, manifolds=[line]).axes[0]
    (curve,) = _lines(ax, "manifold")
    assert len(curve.get_xdata()) == len(line.states)
    (marginal,) = _collections(ax, "fixed_points_marginal")
    assert len(marginal.get_offsets()) == len(fp)
    assert _hex(marginal.get_facecolors()[0]) == "#ffffff"  # hollow diamonds
    # the flip-flop's isolated fixed points are no continuous attractor
    assert continuous_attractors(flipflop_fixed_points()) == []


def _two_parallel_lines():
    """Fixed points of a linear CT-RNN at two inputs: W = diag(1, 0.5), W_in = I, so at input
    (0, c) the line of fixed points is y = 2 c. The inputs c = 0 and 0.05 give two parallel
    lines 0.1 apart, closer than the points along each line: pooled, they would be linked into
    one surface. Returns (the points per input, all of them)."""
    from rnnlab.analysis import find_fixed_points

    model = rl.CTRNN.from_weights([[1.0, 0.0], [0.0, 0.5]], np.eye(2), np.eye(2),
                                  activation="linear", dt=10.0, tau=100.0)
    cand = np.stack([np.linspace(-2, 2, 40), np.full(40, 0.3)], 1)
    parts = [find_fixed_points(model, np.array([0.0, c]), cand) for c in (0.0, 0.05)]
    return parts, rl.FixedPoints.concatenate(parts)


def test_continuous_attractors_are_searched_per_input():
    from rnnlab.plot._run import continuous_attractors

    _, fp = _two_parallel_lines()
    lines = continuous_attractors(fp)
    assert [m.kind for m in lines] == ["line", "line"]
    heights = sorted(float(np.mean(m.states[:, 1])) for m in lines)
    np.testing.assert_allclose(heights, [0.0, 0.1], atol=2e-8)  # |F| = |y - 2c| / 2 tau <= 1e-10
    for m in lines:  # indices refer to the pooled points, one input each
        np.testing.assert_allclose(np.asarray(fp.states)[m.indices], m.states)
        assert len(np.unique(np.asarray(fp.inputs)[m.indices], axis=0)) == 1


# ------------------------------------------------------------------------------ spectra


def test_eigenspectra_continuous_boundary_and_counts():
    fp = flipflop_fixed_points()
    fig = rl.plot.eigenspectra(fp)
    ax = fig.axes[0]
    # the system that runs is the Euler map: its boundary |1 + dt lambda| = 1 is the circle of
    # radius 1/dt around -1/dt; the ODE's Re = 0 beside it
    (boundary,) = _lines(ax, "boundary")
    dt = fp.dt
    np.testing.assert_allclose(np.hypot(boundary.get_xdata() + 1 / dt, boundary.get_ydata()),
                               1 / dt, rtol=1e-12)
    (ode,) = _lines(ax, "ode_boundary")
    assert list(ode.get_xdata()) == [0, 0]
    assert "Euler map, dt=10 ms" in ax.get_title()
    # the limits follow the eigenvalues, not the (100 times larger) circle
    assert ax.get_xlim()[0] > -0.1 / dt
    n = fp.n_states
    for kind, count in STABILITY_COUNTS.items():
        (coll,) = _collections(ax, f"eigenvalues_{kind}")
        pts = coll.get_offsets()
        assert len(pts) == count * n
        assert _hex(coll.get_edgecolors()[0]) == STABILITY_COLORS[kind]
    # analytic eigenvalues: (-1 + G (1 - tanh^2 x)) / tau at x in {0, +-X_STAR}
    (stable,) = _collections(ax, "eigenvalues_stable")
    want = (-1 + 2 * (1 - np.tanh(X_STAR) ** 2)) / 100.0
    np.testing.assert_allclose(np.asarray(stable.get_offsets())[:, 0], want, rtol=1e-6)
    (unstable,) = _collections(ax, "eigenvalues_unstable")
    np.testing.assert_allclose(np.asarray(unstable.get_offsets())[:, 0], 1 / 100.0, rtol=1e-6)
    assert ax.get_xlabel() == r"Re $\lambda$" and ax.get_ylabel() == r"Im $\lambda$"


def test_eigenspectra_map_has_unit_circle():
    # h <- tanh(2 h) per unit: fixed points 0 (|mu| = 2) and +-0.9575 (|mu| < 1)
    model = rl.VanillaRNN.from_weights(2.0 * np.eye(2), np.zeros((2, 1)), np.eye(2))
    cand = np.array([[0.96, 0.96], [0.0, 0.96], [0.0, 0.0]])
    from rnnlab.analysis import AdamDescent, FixedPointSolver, find_fixed_points

    # Newton from near the roots (no descent steps)
    fp = find_fixed_points(model, np.zeros(1), cand,
                           solver=FixedPointSolver(descent=AdamDescent(max_iters=0)))
    assert not fp.is_continuous and sorted(fp.stability) == ["saddle", "stable", "unstable"]
    ax = rl.plot.eigenspectra(fp).axes[0]
    (circle,) = _lines(ax, "boundary")
    x, y = circle.get_xdata(), circle.get_ydata()
    np.testing.assert_allclose(x**2 + y**2, 1.0, rtol=1e-12)
    (unstable,) = _collections(ax, "eigenvalues_unstable")
    np.testing.assert_allclose(np.asarray(unstable.get_offsets())[:, 0], 2.0, rtol=1e-6)
    with pytest.raises(ValueError, match="which"):
        rl.plot.eigenspectra(fp, which=[99])


# ------------------------------------------------------------------------------ topology


def test_topology_graph_nodes_edges_and_colours():
    from rnnlab.analysis import topology

    task, model = flipflop_network()
    fp = flipflop_fixed_points()
    g = topology(model, fp, key=jax.random.PRNGKey(0))
    # the analytic answer: corners keep their neighbourhood, the origin and every saddle flow
    # out to corners only
    stable = {i for i, s in enumerate(fp.stability) if s == "stable"}
    for u, v, d in g.edges(data=True):
        assert (u == v) == (u in stable) and v in stable
    ax = rl.plot.topology(g, fixed_points=fp).axes[0]
    arrows = [t for t in ax.texts if t.get_gid() == "edge"]
    non_self = [(u, v) for u, v in g.edges if u != v]
    assert len(arrows) == len(non_self) >= 12 * 2 + 6 * 4  # self-loops are not drawn
    # arrow width grows with the transition probability
    probs = [g.edges[u, v]["probability"] for u, v in non_self]
    widths = [a.arrow_patch.get_linewidth() for a in arrows]
    assert np.all(np.diff(np.array(widths)[np.argsort(probs)]) >= -1e-12)
    for kind, n in STABILITY_COUNTS.items():
        (coll,) = _collections(ax, f"nodes_{kind}")
        assert len(coll.get_offsets()) == n
        assert _hex(coll.get_edgecolors()[0]) == STABILITY_COLORS[kind]
    assert ax.get_xlabel() == "PC1 of fixed points"
    with pytest.raises(TypeError, match="DiGraph"):
        rl.plot.topology({"not": "a graph"})


def test_save_figure_writes_png_and_svg(tmp_path):
    task, model = flipflop_network()
    paths = rl.plot.save_figure(rl.plot.connectivity(model), tmp_path / "conn")
    assert [p.name for p in paths] == ["conn.png", "conn.svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import xml.etree.ElementTree as ET

    assert ET.parse(paths[1]).getroot().tag.endswith("svg")


def test_import_is_lazy_and_missing_matplotlib_names_the_extra(monkeypatch):
    import subprocess
    import sys

    code = ("import sys, rnnlab; import rnnlab.plot, rnnlab.report; "
            "print('matplotlib' in sys.modules, 'plotly' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"rnnlab\[viz\]"):
        rl.plot.training_curves([{"step": 0, "loss": 1.0}])


# ------------------------------------------------------------------------------ slow points


def _flipflop_with_slow_points(n_slow=5):
    """The fixture's 27 roots plus ``n_slow`` points off the roots (converged False): slow
    points, whose eigenvalues (near a stable corner) say "stable" but which are no fixed point."""
    from rnnlab.analysis._fixed_points import _assemble

    _, model = flipflop_network()
    fp = flipflop_fixed_points()
    corner = np.asarray(fp.states)[fp.stability.index("stable")]
    off = corner + 0.05 * np.random.default_rng(3).normal(size=(n_slow, 3))
    slow = _assemble(model, off, np.zeros((n_slow, 3)), np.zeros(n_slow), np.zeros(n_slow, bool),
                     np.zeros(n_slow, int), np.zeros(n_slow, int), np.ones(n_slow, int),
                     fp.marginal_tol)
    return rl.FixedPoints.concatenate([fp, slow])


def test_slow_points_have_their_own_marker_and_are_never_counted_as_fixed_points():
    fp = _flipflop_with_slow_points(5)
    assert fp.map_stability[-5:] == ("stable",) * 5  # their eigenvalues alone say stable
    assert fp.stability[-5:] == ("slow",) * 5
    _, traj = flipflop_trajectories()
    fig = rl.plot.state_space(traj, fixed_points=fp)
    ax = fig.axes[0]
    (slow,) = _collections(ax, "fixed_points_slow")
    assert len(slow.get_offsets()) == 5
    assert _hex(slow.get_facecolors()[0]) == STABILITY_COLORS["slow"]
    (stable,) = _collections(ax, "fixed_points_stable")
    assert len(stable.get_offsets()) == STABILITY_COUNTS["stable"]
    assert max(slow.get_sizes()) < min(stable.get_sizes())  # small dots
    texts = [t.get_text() for t in fig_legend_texts(fig)]
    assert "fixed point: stable (8)" in texts and "fixed point: saddle (18)" in texts
    assert "slow point (|F| < tol) (5)" in texts
    assert [leg.get_title().get_text() for leg in fig.legends] == [
        "stability (Euler map, dt=10 ms)"]
    # spectra: the slow points' eigenvalues in their own class
    ax = rl.plot.eigenspectra(fp).axes[0]
    (slow_eigs,) = _collections(ax, "eigenvalues_slow")
    assert len(slow_eigs.get_offsets()) == 5 * fp.n_states
    (stable_eigs,) = _collections(ax, "eigenvalues_stable")
    assert len(stable_eigs.get_offsets()) == STABILITY_COUNTS["stable"] * fp.n_states
    assert "slow point (|F| < tol) (5)" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_state_space_one_panel_per_input():
    """Fixed points of two constant inputs are points of two systems: one panel each, titled
    with the input's name, showing that input's points and manifold only; with ``ax`` the
    pooled points are refused by name."""
    from rnnlab.plot._run import continuous_attractors

    parts, fp = _two_parallel_lines()
    lines = continuous_attractors(fp)
    traj = np.random.default_rng(0).normal(size=(4, 30, 2))
    names = {"low": [0.0, 0.0], "high": [0.0, 0.05]}
    fig = rl.plot.state_space(traj, fixed_points=fp, manifolds=lines, inputs=names,
                              conditions=np.array([0, 1, 0, 1]),
                              value_names={0: "motion context", 1: "colour context"})
    axes = [a for a in fig.axes if a.get_visible()]
    assert [a.get_title() for a in axes] == ["state space: low", "state space: high"]
    for a, c in zip(axes, (0.0, 0.05)):
        pts = np.concatenate([np.asarray(coll.get_offsets()) for coll in a.collections
                              if (coll.get_gid() or "").startswith("fixed_points")])
        # only this input's points
        assert len(pts) == sum(np.allclose(np.asarray(fp.inputs)[i], [0.0, c])
                               for i in range(len(fp)))
        manifold = [ln for ln in a.get_lines() if ln.get_gid() == "manifold"]
        assert len(manifold) == 1
    legend_texts = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert "motion context" in legend_texts and "colour context" in legend_texts
    assert "attractor line (2)" in legend_texts
    plt.close(fig)
    fig2, ax = plt.subplots()
    with pytest.raises(ValueError, match="2 different inputs"):
        rl.plot.state_space(traj, fixed_points=fp, ax=ax)
    # one input's points on a given axes are fine, an unnamed input is titled by its vector
    rl.plot.state_space(traj, fixed_points=parts[1], ax=ax)
    assert ax.get_title() == "state space: input [0, 0.05]"
    plt.close(fig2)


def test_connectivity_of_a_model_without_weights_is_a_clear_error():
    model = rl.FunctionModel(vector_field=lambda x, u: -x + u, state_size=2, n_in=2, dt=1.0)
    with pytest.raises(TypeError, match="FunctionModel has no w_rec, w_in, w_out weights"):
        rl.plot.connectivity(model)

"""PCA, linearisation, candidate sampling, topology graph and `rnnlab analyze`."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnlab as rl
from rnnlab.cli import main

TAU, DT = 100.0, 10.0


def decoupled_tanh(w=2.0):
    return rl.CTRNN.from_weights(
        np.diag([w, w]), np.zeros((2, 1)), np.eye(2), activation="tanh", dt=DT, tau=TAU
    )


def test_pca_matches_covariance_eigendecomposition():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 50, 5)) @ np.diag([3.0, 2.0, 1.0, 0.5, 0.1]) + 4.0
    p = rl.analysis.pca(x, 3)
    flat = x.reshape(-1, 5)
    cov = np.cov(flat.T)
    vals, vecs = np.linalg.eigh(cov)
    vals, vecs = vals[::-1], vecs[:, ::-1]
    np.testing.assert_allclose(p.explained_variance, vals[:3], rtol=1e-10)
    np.testing.assert_allclose(p.explained_variance_ratio, vals[:3] / vals.sum(), rtol=1e-10)
    np.testing.assert_allclose(np.abs(p.components @ vecs[:, :3]), np.eye(3), atol=1e-8)
    z = p.transform(x)
    assert z.shape == (6, 50, 3)
    full = rl.analysis.pca(x)
    np.testing.assert_allclose(full.inverse_transform(full.transform(flat)), flat, atol=1e-10)
    np.testing.assert_allclose(p.transform_vectors(p.components), np.eye(3), atol=1e-12)
    np.testing.assert_allclose(p.cumulative_explained_variance[-1], vals[:3].sum() / vals.sum())
    with pytest.raises(ValueError, match="n_components"):
        rl.analysis.pca(x, 9)


def test_linearize_linear_model_is_exact():
    w = np.array([[0.5, 0.2], [-0.3, 0.1]])
    model = rl.CTRNN.from_weights(w, np.eye(2), np.eye(2), activation="linear", dt=DT, tau=TAU)
    lin = rl.analysis.linearize(model, np.array([0.3, -0.2]), np.array([0.1, 0.0]))
    inputs = np.random.default_rng(1).normal(size=(30, 2))
    x0 = np.array([1.0, -1.0])
    ref = np.asarray(rl.simulate(model, inputs, initial_state=x0).states)
    np.testing.assert_allclose(lin.simulate(inputs, x0), ref, atol=1e-5)
    w32 = np.asarray(model.effective_weights()["w_rec"], np.float64)
    np.testing.assert_allclose(np.sort(lin.eigenvalues.real),
                               np.sort(np.linalg.eigvals((w32 - np.eye(2)) / TAU).real))


def test_linearize_at_fixed_point_second_order_error():
    model = decoupled_tanh()
    fps = rl.find_fixed_points(model, np.zeros(1), np.array([[1.5, 2.5], [-2.0, 1.0]]))
    x_star = np.asarray(fps.states)[0]
    lin = rl.analysis.linearize(model, x_star, np.zeros(1))
    assert np.linalg.norm(lin.f0) <= 1e-10
    errs = []
    for eps in (1e-2, 5e-3):
        d = eps * np.array([1.0, -1.0])
        with jax.enable_x64(True):
            m64 = rl.analysis._fixed_points.to_float64(model)
            true = np.asarray(m64.vector_field(jnp.asarray(x_star + d), jnp.zeros(1)))
        errs.append(np.linalg.norm(lin.vector_field(x_star + d, np.zeros(1)) - true))
    assert errs[0] / errs[1] == pytest.approx(4.0, rel=0.1)  # O(eps^2) remainder


def test_sample_states_draws_trajectory_states():
    states = np.random.default_rng(2).normal(size=(4, 30, 3)).astype(np.float32)
    mask = np.zeros((4, 30), bool)
    mask[1, 10:20] = True
    s = rl.analysis.sample_states(states, 50, key=jax.random.PRNGKey(0), mask=mask)
    allowed = states[1, 10:20]
    for row in np.asarray(s):
        assert np.min(np.abs(allowed - row).sum(axis=1)) == 0.0
    again = rl.analysis.sample_states(states, 50, key=jax.random.PRNGKey(0), mask=mask)
    np.testing.assert_array_equal(np.asarray(s), np.asarray(again))
    noisy = rl.analysis.sample_states(states, 4000, key=jax.random.PRNGKey(1), noise_std=0.5)
    clean = rl.analysis.sample_states(states, 4000, key=jax.random.PRNGKey(1))
    assert np.std(np.asarray(noisy) - np.asarray(clean)) == pytest.approx(0.5, rel=0.05)
    with pytest.raises(ValueError, match="mask"):
        rl.analysis.sample_states(states, 5, key=jax.random.PRNGKey(0), mask=np.ones((4, 3)))
    with pytest.raises(ValueError, match="n must"):
        rl.analysis.sample_states(states, 0, key=jax.random.PRNGKey(0))


def test_topology_of_two_bistable_units():
    model = decoupled_tanh()
    g = np.linspace(-3, 3, 7)
    starts = np.array([(a, b) for a in g for b in g])
    fps = rl.find_fixed_points(model, np.zeros(1), starts)
    graph = rl.analysis.topology(model, fps, key=jax.random.PRNGKey(0), n_starts=64,
                                 noise_std=0.1, n_steps=800)
    states = np.asarray(fps.states)
    for i, lab in enumerate(fps.stability):
        out = {j: d["probability"] for j, d in graph[i].items()}
        assert sum(out.values()) == pytest.approx(1.0)
        if lab == "stable":
            assert out == {i: 1.0}  # returns to itself
        elif lab == "saddle":
            # one coordinate at 0 (unstable), flows to the two stable corners sharing the other
            targets = {j for j in out if j != "unsettled"}
            assert len(targets) == 2 and "unsettled" not in out
            zero = int(np.argmin(np.abs(states[i])))
            for j in targets:
                assert fps.stability[j] == "stable"
                assert np.sign(states[j][1 - zero]) == np.sign(states[i][1 - zero])
            assert min(out.values()) > 0.25
        else:  # the unstable origin spreads to the four corners
            assert {fps.stability[j] for j in out} == {"stable"} and len(out) == 4
    assert graph.nodes[0]["stability"] == fps.stability[0]


def test_cli_analyze(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "flipflop", "--out", str(run), "--hidden", "16", "--steps", "20",
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["analyze", str(run), "--n-initial", "64", "--n-trials", "16",
                 "--topology-starts", "4", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    fps = rl.FixedPoints.load(run / "analysis" / "fixed_points.safetensors")
    assert summary["total"]["n_points"] == len(fps) >= 1
    # the flip-flop's own neutral input (no pulse), from task.fixed_point_inputs()
    assert summary["inputs"][0]["name"] == "no pulse"
    assert np.all(np.asarray(fps.inputs) == 0.0)
    topo = json.loads((run / "analysis" / "topology.json").read_text())
    # slow points are searched by default; the topology graph is over the roots only
    n_roots = int(np.sum(np.asarray(fps.converged)))
    assert len([n for n in topo["nodes"] if n["id"] != "unsettled"]) == n_roots
    assert (run / "analysis" / "pca.safetensors").is_file()
    # with slow points, the topology graph is over the roots only, under their file indices
    # an analysis with other settings is not replaced without --force
    assert main(["analyze", str(run), "--n-initial", "64", "--n-trials", "16",
                 "--topology-starts", "4", "--slow-tol", "1e-2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--force" in err and "slow_tol" in err and len(err.splitlines()) == 1
    assert main(["analyze", str(run), "--n-initial", "64", "--n-trials", "16",
                 "--topology-starts", "4", "--slow-tol", "1e-2", "--force"]) == 0
    fps = rl.FixedPoints.load(run / "analysis" / "fixed_points.safetensors")
    assert np.sum(~np.asarray(fps.converged)) > 0
    topo = json.loads((run / "analysis" / "topology.json").read_text())
    ids = sorted(n["id"] for n in topo["nodes"] if n["id"] != "unsettled")
    assert ids == np.nonzero(np.asarray(fps.converged))[0].tolist()
    for n in topo["nodes"]:
        if n["id"] != "unsettled":
            np.testing.assert_allclose(n["state"], np.asarray(fps.states)[n["id"]])
    assert main(["analyze", str(run), "--inputs", "[[1, 2]]"]) == 2
    assert "--inputs" in capsys.readouterr().err
    for opt, value in (("--tol", "0"), ("--slow-tol", "1e-12"), ("--noise", "-1")):
        assert main(["analyze", str(run), opt, value]) == 2
        err = capsys.readouterr().err.strip()
        assert opt in err and len(err.splitlines()) == 1
    assert main(["analyze", str(tmp_path / "nope")]) == 2


@pytest.mark.slow
def test_flipflop_published_result():
    """Sussillo & Barak 2013: a 3-bit flip-flop network has 8 stable fixed points whose
    readouts sit near the corners of the output cube, with saddles between them."""
    task = rl.tasks.make("flipflop")
    model = rl.CTRNN(3, 64, 3, key=jax.random.PRNGKey(0))
    res = rl.train(model, task, key=jax.random.PRNGKey(1), steps=600, learning_rate=1e-2,
                   target_accuracy=0.99, progress=False)
    assert res.history[-1]["accuracy"] >= 0.99
    trials = task.sample_batch(jax.random.PRNGKey(2), 64)
    traj = rl.simulate(res.model, trials.inputs)
    x0 = rl.analysis.sample_states(traj, 1024, key=jax.random.PRNGKey(3))
    fps = rl.find_fixed_points(res.model, np.zeros(3), x0)
    lab = np.array(fps.stability)
    stable = np.asarray(fps.outputs)[lab == "stable"]
    assert len(stable) == 8
    corners = {tuple(c) for c in np.sign(stable).astype(int)}
    assert corners == {(a, b, c) for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)}
    assert np.all(np.abs(np.abs(stable) - 1.0) < 0.3)
    assert np.sum(lab == "saddle") >= 7  # at least the saddles that separate the corners
    assert np.all(np.asarray(fps.speeds) <= 1e-10)
    # the saddles between neighbouring corners have one unstable mode
    assert np.sum((lab == "saddle") & (np.asarray(fps.n_unstable) == 1)) >= 7

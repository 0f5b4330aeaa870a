"""Stability labels describe the system that runs (issue 12, item 1): a CT-RNN is simulated as
its Euler map x -> x + dt F(x), so a point labelled stable is returned to from small
perturbations by that simulation and a saddle or unstable point is left; the ODE's view is kept
as ``ode_stability`` and ``views_differ`` flags where the two disagree."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnlab as rl
from rnnlab.analysis._fixed_points import to_float64

FIXTURES = Path(__file__).parent / "fixtures"


def _simulate_from(model, x_stars, u, *, n_perturb=8, size=1e-5, n_steps=400, seed=0):
    """Distances from each point of Euler-map (or map) trajectories started ``size`` away from
    it, [T+1, n_points, n_perturb] (float64, one scan over all points)."""
    x_stars = np.atleast_2d(np.asarray(x_stars, np.float64))
    rng = np.random.default_rng(seed)
    d = rng.standard_normal((x_stars.shape[0], n_perturb, x_stars.shape[1]))
    d *= size / np.linalg.norm(d, axis=-1, keepdims=True)
    with jax.enable_x64(True):
        m = to_float64(model)
        uu = jnp.asarray(u, jnp.float64)
        centre = jnp.asarray(x_stars)[:, None, :]
        step = jax.vmap(jax.vmap(lambda x: m.step(x, uu)))

        def body(x, _):
            x = step(x)
            return x, jnp.linalg.norm(x - centre, axis=-1)

        _, dist = jax.jit(lambda x: jax.lax.scan(body, x, None, length=n_steps))(
            jnp.asarray(x_stars[:, None, :] + d))
        return np.concatenate([np.linalg.norm(d, axis=-1)[None], np.asarray(dist)])


def _focus(dt):
    # linear CT-RNN whose Jacobian (W - I) / tau has eigenvalues -0.0117 +- 0.048i per ms (the
    # sine-wave network's focus of the issue): stable as an ODE; its Euler map at dt = 10 ms
    # has |1 + dt lambda| = 1.005 (unstable), at dt = 1 ms 0.9887 (stable)
    w = np.array([[1 - 1.17, 4.8], [-4.8, 1 - 1.17]])
    return rl.CTRNN.from_weights(w, np.zeros((2, 1)), np.eye(2), activation="linear",
                                 dt=dt, tau=100.0)


def test_oscillatory_focus_label_is_the_euler_maps_and_simulation_agrees():
    u = np.zeros(1)
    for dt, label in ((10.0, "unstable"), (1.0, "stable")):
        model = _focus(dt)
        fps = rl.find_fixed_points(model, u, np.random.default_rng(0).normal(size=(8, 2)))
        assert len(fps) == 1 and bool(np.asarray(fps.converged)[0])
        np.testing.assert_allclose(np.asarray(fps.states)[0], 0.0, atol=1e-12)
        lam = np.asarray(fps.eigenvalues)[0]
        np.testing.assert_allclose(sorted(lam.imag), [-0.048, 0.048], rtol=1e-6)  # float32 W
        np.testing.assert_allclose(lam.real, -0.0117, rtol=1e-6)
        np.testing.assert_allclose(np.abs(np.asarray(fps.map_eigenvalues)[0]),
                                   np.abs(1 + dt * lam), rtol=1e-12)
        assert fps.stability[0] == label and fps.ode_stability[0] == "stable"
        assert bool(np.asarray(fps.views_differ)[0]) == (label != "stable")
        assert int(np.asarray(fps.n_unstable)[0]) == (2 if label == "unstable" else 0)
        dist = _simulate_from(model, np.asarray(fps.states)[0], u, n_steps=2000)[:, 0]
        if label == "stable":
            assert np.all(dist[-1] < 1e-3 * dist[0])
        else:
            assert np.all(dist[-1] > 10 * dist[0])


def test_every_root_of_a_trained_flipflop_is_labelled_as_simulation_shows():
    model = rl.load(FIXTURES / "flipflop3_ctrnn64.safetensors")
    task = rl.tasks.make("flipflop")
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    traj = rl.simulate(model, task.sample_batch(k1, 64).inputs)
    x0 = np.asarray(rl.analysis.sample_states(traj, 256, key=k2, noise_std=0.3))
    u = np.zeros(3)
    fps = rl.find_fixed_points(model, u, x0)
    roots = np.nonzero(np.asarray(fps.converged))[0]
    assert len(roots) >= 20
    mu = np.abs(np.asarray(fps.map_eigenvalues))
    dists = _simulate_from(model, np.asarray(fps.states)[roots], u, n_steps=600)
    for j, i in enumerate(roots):
        label = fps.stability[i]
        assert label in ("stable", "saddle", "unstable")
        dist = dists[:, j]
        if label == "stable":
            assert np.all(dist[-1] < dist[0]), (i, mu[i].max())
            assert mu[i].max() < 1
        else:
            # left: some perturbation grows at least tenfold
            assert np.any(dist.max(axis=0) > 10 * dist[0]), (i, label, mu[i].max())
            assert int(np.asarray(fps.n_unstable)[i]) == int(np.sum(mu[i] > 1))


@pytest.mark.parametrize("dt", [10.0, 1.0])
def test_summary_counts_the_simulated_view(dt):
    fps = rl.find_fixed_points(_focus(dt), np.zeros(1), np.ones((4, 2)))
    s = fps.summary()
    if dt == 10.0:
        assert s["unstable"] == 1 and s["stable"] == 0 and s["views_differ"] == 1
    else:
        assert s["stable"] == 1 and s["views_differ"] == 0

"""Fixed points against analytic answers, scipy, jacfwd / finite differences and invariants."""

import itertools
import logging
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import rnnlab as rl
from rnnlab.models import AbstractRNN

TAU, DT = 100.0, 10.0
NO_OUTLIER_RULE = rl.analysis.PostProcessing(outlier_distance_scale=None)


def decoupled_tanh(w=2.0):
    """Two uncoupled units tau dx/dt = -x + w tanh(x): 9 fixed points in closed form."""
    return rl.CTRNN.from_weights(
        np.diag([w, w]), np.zeros((2, 1)), np.eye(2), activation="tanh", dt=DT, tau=TAU
    )


def root_of_x_eq_w_tanh(w):
    return scipy.optimize.brentq(lambda x: -x + w * np.tanh(x), 0.5, 10.0)


def grid_starts(lim=3.0, n=7):
    g = np.linspace(-lim, lim, n)
    return np.array(list(itertools.product(g, g)))


# ------------------------------------------------------------------ analytic systems


def test_decoupled_tanh_all_stability_types():
    model = decoupled_tanh(2.0)
    fps = rl.find_fixed_points(model, np.zeros(1), grid_starts())
    a = root_of_x_eq_w_tanh(2.0)
    expected = {(s1 * a, s2 * a) for s1 in (-1, 0, 1) for s2 in (-1, 0, 1)}
    assert len(fps) == 9
    for x in np.asarray(fps.states):
        assert min(np.hypot(*(x - np.array(e))) for e in expected) < 1e-9
    assert np.all(np.asarray(fps.converged))
    assert np.all(np.asarray(fps.speeds) <= 1e-10)
    for i, x in enumerate(np.asarray(fps.states)):
        # lambda_i = (-1 + w sech^2(x_i)) / tau, sorted by real part, largest first
        lam = np.sort((-1 + 2.0 / np.cosh(x) ** 2) / TAU)[::-1]
        np.testing.assert_allclose(np.asarray(fps.eigenvalues)[i].real, lam, atol=1e-12)
        n_zero = int(np.sum(np.abs(x) < 1e-6))
        assert int(fps.n_unstable[i]) == n_zero
        label = {0: "stable", 1: "saddle", 2: "unstable"}[n_zero]
        assert fps.stability[i] == label
        # the Euler map's view: mu = 1 + alpha * (tau lambda)
        np.testing.assert_allclose(
            np.asarray(fps.map_eigenvalues)[i].real, 1 + (DT / TAU) * TAU * lam, atol=1e-12
        )
    s = fps.summary()
    assert (s["stable"], s["saddle"], s["unstable"], s["marginal"]) == (4, 4, 1, 0)
    assert s["saddles_by_index"] == {"1": 4}
    assert fps.map_stability == fps.stability  # alpha < 1: both views agree here


def test_linear_network_closed_form_and_inputs():
    w = np.array([[0.5, 0.2], [-0.3, 0.1]])
    w_in = np.array([[1.0, 0.0], [0.5, -1.0]])
    b = np.array([0.2, -0.1])
    model = rl.CTRNN.from_weights(w, w_in, np.eye(2), b_rec=b, activation="linear", dt=DT,
                                  tau=TAU)
    u = np.array([0.3, -0.7])
    w32 = np.asarray(model.effective_weights()["w_rec"], np.float64)
    win32 = np.asarray(model.effective_weights()["w_in"], np.float64)
    b32 = np.asarray(model.effective_weights()["b_rec"], np.float64)
    x_star = np.linalg.solve(np.eye(2) - w32, win32 @ u + b32)
    fps = rl.find_fixed_points(model, u, np.random.default_rng(0).normal(size=(20, 2)))
    assert len(fps) == 1
    np.testing.assert_allclose(np.asarray(fps.states)[0], x_star, atol=1e-12)
    lam = np.linalg.eigvals((w32 - np.eye(2)) / TAU)
    np.testing.assert_allclose(np.sort(np.asarray(fps.eigenvalues)[0].real),
                               np.sort(lam.real), atol=1e-14)
    np.testing.assert_allclose(np.asarray(fps.input_jacobians)[0], win32 / TAU, atol=1e-15)
    np.testing.assert_allclose(np.asarray(fps.outputs)[0], x_star, atol=1e-12)
    np.testing.assert_allclose(np.asarray(fps.inputs)[0], u)
    assert fps.stability == ("stable",)
    assert int(fps.counts[0]) == 20


def test_unstable_linear_and_time_constants():
    model = rl.CTRNN.from_weights(np.diag([3.0, 1.5]), np.zeros((2, 1)), np.eye(2),
                                  activation="linear", dt=DT, tau=TAU)
    fps = rl.find_fixed_points(model, np.zeros(1), np.random.default_rng(1).normal(size=(5, 2)))
    assert fps.stability == ("unstable",)
    np.testing.assert_allclose(np.asarray(fps.states), 0.0, atol=1e-14)
    np.testing.assert_allclose(np.asarray(fps.time_constants)[0], [-TAU / 2.0, -TAU / 0.5])


def test_line_attractor_marginal_and_manifold():
    # W = diag(1, 0.5), linear: every (c, 0) is a fixed point; eigenvalues 0 and -0.5 / tau.
    model = rl.CTRNN.from_weights(np.diag([1.0, 0.5]), np.zeros((2, 1)), np.eye(2),
                                  activation="linear", dt=DT, tau=TAU)
    starts = np.stack([np.linspace(-2, 2, 41), np.linspace(-1, 1, 41) ** 2], axis=1)
    fps = rl.find_fixed_points(model, np.zeros(1), starts, tol_unique=1e-3)
    st = np.asarray(fps.states)
    assert len(fps) == 41  # each start moves straight down onto the line
    # speed |F| = 0.5 |y| / tau <= tol = 1e-10 (J is exactly singular here: LM's job)
    assert np.all(np.abs(st[:, 1]) <= 1e-10 * TAU / 0.5)
    assert np.all(np.asarray(fps.converged))
    np.testing.assert_allclose(np.sort(st[:, 0]), np.linspace(-2, 2, 41), atol=1e-9)
    assert set(fps.stability) == {"marginal"}
    np.testing.assert_allclose(np.asarray(fps.eigenvalues).real,
                               np.tile([0.0, -0.5 / TAU], (41, 1)), atol=1e-14)
    (line,) = rl.analysis.attractor_manifolds(fps)
    assert line.kind == "line" and line.dimension == 1
    assert line.length == pytest.approx(4.0, rel=1e-6)
    assert line.near_zero_tangent
    np.testing.assert_allclose(np.abs(line.tangent_eigenvalues), 0.0, atol=1e-14)
    xs = line.states[:, 0]
    assert np.all(np.diff(xs) > 0) or np.all(np.diff(xs) < 0)  # ordered along the line


class RingField(AbstractRNN):
    """dx/dt = x (1 - |x|^2): a ring of fixed points at |x| = 1 (tangent eigenvalue 0, radial
    -2) and an unstable node at 0. A model outside the CTRNN family, using the default
    (jacfwd) Jacobians of the model contract."""

    is_continuous: ClassVar[bool] = True
    n_in: int = eqx.field(static=True, default=1)
    n_hidden: int = eqx.field(static=True, default=2)
    n_out: int = eqx.field(static=True, default=2)
    dt: float = eqx.field(static=True, default=0.05)

    def vector_field(self, state, input):
        return state * (1.0 - jnp.sum(state**2)) + 0.0 * input[0]

    def step(self, state, input, *, key=None):
        return state + self.dt * self.vector_field(state, input)

    def readout(self, state):
        return state

    def rates(self, state):
        return state

    def initial_state(self):
        return jnp.zeros(2)

    def config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls()


def test_ring_attractor():
    angles = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    radius = 1.0 + 0.3 * np.random.default_rng(2).uniform(-1, 1, 60)
    starts = np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)
    fps = rl.find_fixed_points(RingField(), np.zeros(1), starts)
    origin = np.linalg.norm(np.asarray(fps.states), axis=1) < 1e-9
    assert origin.sum() <= 1  # the unstable node at 0 (some starts overshoot into it)
    if origin.any():
        assert fps[origin].stability == ("unstable",)
        np.testing.assert_allclose(np.asarray(fps[origin].eigenvalues)[0], [1.0, 1.0])
    fps = fps[~origin]
    assert len(fps) > 30
    st = np.asarray(fps.states)
    np.testing.assert_allclose(np.linalg.norm(st, axis=1), 1.0, atol=1e-10)
    assert set(fps.stability) == {"marginal"}
    np.testing.assert_allclose(np.asarray(fps.eigenvalues)[:, 1].real, -2.0, atol=1e-8)
    (ring,) = rl.analysis.attractor_manifolds(fps)
    assert ring.kind == "ring" and ring.dimension == 1
    assert ring.length == pytest.approx(2 * np.pi, rel=0.02)
    assert ring.near_zero_tangent
    assert np.median(ring.tangent_alignment) > 0.99
    # ordered along the ring: consecutive angles differ by small steps
    ang = np.unwrap(np.arctan2(ring.states[:, 1], ring.states[:, 0]))
    assert np.all(np.abs(np.diff(ang)) < 0.5)


class HalfMap(AbstractRNN):
    """A discrete map h -> A h + c with known fixed point (I - A)^-1 c."""

    is_continuous: ClassVar[bool] = False
    a: jax.Array
    c: jax.Array
    n_in: int = eqx.field(static=True, default=1)
    n_hidden: int = eqx.field(static=True, default=2)
    n_out: int = eqx.field(static=True, default=2)

    def step(self, state, input, *, key=None):
        return self.a @ state + self.c + input[0]

    def vector_field(self, state, input):
        return self.step(state, input) - state

    def readout(self, state):
        return state

    def rates(self, state):
        return state

    def initial_state(self):
        return jnp.zeros(2)

    def config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        raise NotImplementedError


def test_discrete_map_eigenvalues_are_the_maps():
    a = np.array([[0.5, 0.3], [0.0, 1.5]])
    model = HalfMap(jnp.asarray(a), jnp.asarray([1.0, -1.0]))
    fps = rl.find_fixed_points(model, np.zeros(1), np.random.default_rng(3).normal(size=(8, 2)))
    assert len(fps) == 1 and not fps.is_continuous
    a32 = np.asarray(model.a, np.float64)
    np.testing.assert_allclose(np.asarray(fps.states)[0],
                               np.linalg.solve(np.eye(2) - a32, [1.0, -1.0]), atol=1e-10)
    np.testing.assert_allclose(np.asarray(fps.jacobians)[0], a32, atol=1e-15)
    np.testing.assert_allclose(np.asarray(fps.eigenvalues)[0], [1.5, 0.5], atol=1e-14)
    assert fps.stability == ("saddle",) and int(fps.n_unstable[0]) == 1
    np.testing.assert_allclose(np.asarray(fps.map_eigenvalues), np.asarray(fps.eigenvalues))


# ------------------------------------------------------------------ independent root finder


def _numpy_field(model):
    w = {k: np.asarray(v, np.float64) for k, v in model.effective_weights().items()}
    tau = np.asarray(model.tau, np.float64)

    def f(x, u):
        return (-x + w["w_rec"] @ np.tanh(x) + w["w_in"] @ u + w["b_rec"]) / tau

    def jac(x, u):
        return (-np.eye(len(x)) + w["w_rec"] * (1 - np.tanh(x) ** 2)[None, :]) / tau[:, None]

    return f, jac


@pytest.mark.parametrize("seed", [0, 1])
def test_agrees_with_scipy_root(seed):
    n = 12
    model = rl.CTRNN(1, n, 1, key=jax.random.PRNGKey(seed), gain=2.0)
    f, jac = _numpy_field(model)
    u = np.array([0.1])
    starts = np.random.default_rng(seed).normal(scale=1.5, size=(60, n))
    fps = rl.find_fixed_points(model, u, starts, post=NO_OUTLIER_RULE)
    ours = np.asarray(fps.states)
    # every point reported converged is a root by an independent float64 evaluation
    for x, c in zip(ours, np.asarray(fps.converged)):
        assert c
        assert np.linalg.norm(f(x, u)) <= 1e-10
    # every root scipy finds from the same starts is among ours
    scipy_roots = []
    for x0 in starts:
        sol = scipy.optimize.root(f, x0, args=(u,), jac=jac, method="hybr", tol=1e-14)
        if sol.success and np.linalg.norm(f(sol.x, u)) <= 1e-10:
            scipy_roots.append(sol.x)
    assert scipy_roots
    for r in scipy_roots:
        assert np.min(np.linalg.norm(ours - r, axis=1)) < 1e-6


# ------------------------------------------------------------------ Jacobians, eigenvectors


@pytest.mark.parametrize(
    "kwargs",
    [
        {"activation": "tanh"},
        {"activation": "softplus", "form": "rate"},
        {"activation": "tanh", "tau": np.linspace(20.0, 200.0, 6)},
        {"activation": "sigmoid", "dale": True, "autapses": False},
    ],
)
def test_jacobians_match_jacfwd_and_finite_differences(kwargs):
    model = rl.CTRNN(2, 6, 1, key=jax.random.PRNGKey(4), **kwargs)
    model = eqx.tree_at(lambda m: m.b_rec, model, jnp.linspace(-0.3, 0.3, 6))
    x = jax.random.normal(jax.random.PRNGKey(5), (6,))
    u = jnp.array([0.4, -0.2])
    j = model.jacobian(x, u)
    np.testing.assert_allclose(j, jax.jacfwd(model.vector_field)(x, u), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(model.input_jacobian(x, u),
                               jax.jacfwd(model.vector_field, argnums=1)(x, u),
                               rtol=1e-5, atol=1e-7)
    # central differences in float64
    with jax.enable_x64(True):
        m64 = rl.analysis._fixed_points.to_float64(model)
        x64, u64 = jnp.asarray(x, jnp.float64), jnp.asarray(u, jnp.float64)
        h = 1e-6
        fd = np.stack([
            (np.asarray(m64.vector_field(x64 + h * e, u64))
             - np.asarray(m64.vector_field(x64 - h * e, u64))) / (2 * h)
            for e in np.eye(6)
        ], axis=1)
        np.testing.assert_allclose(np.asarray(m64.jacobian(x64, u64)), fd, rtol=1e-6, atol=1e-9)


def test_eigenvectors_biorthogonal_and_fps_jacobians():
    model = rl.CTRNN(1, 10, 2, key=jax.random.PRNGKey(7), gain=1.8)
    starts = np.random.default_rng(7).normal(size=(40, 10))
    fps = rl.find_fixed_points(model, np.zeros(1), starts)
    assert len(fps) >= 1
    for i in range(len(fps)):
        jmat = np.asarray(fps.jacobians)[i]
        lam = np.asarray(fps.eigenvalues)[i]
        r = np.asarray(fps.right_eigenvectors)[i]
        lft = np.asarray(fps.left_eigenvectors)[i]
        np.testing.assert_allclose(lft @ r, np.eye(10), atol=1e-9)
        np.testing.assert_allclose(jmat @ r, r * lam[None, :], atol=1e-12)
        np.testing.assert_allclose(lft @ jmat, lam[:, None] * lft, atol=1e-9)
        assert np.all(np.diff(lam.real) <= 1e-15)  # sorted, largest real part first
        x = np.asarray(fps.states)[i]
        np.testing.assert_allclose(
            jmat, jax.jacfwd(model.vector_field)(jnp.asarray(x, jnp.float32), jnp.zeros(1)),
            rtol=1e-4, atol=1e-6,
        )
        np.testing.assert_allclose(np.asarray(fps.outputs)[i],
                                   model.readout(jnp.asarray(x, jnp.float32)), atol=1e-5)


# ------------------------------------------------------------------ API behaviour


def test_save_load_roundtrip_and_selection(tmp_path):
    fps = rl.find_fixed_points(decoupled_tanh(), np.zeros(1), grid_starts())
    fps.save(tmp_path / "fps.safetensors")
    back = rl.FixedPoints.load(tmp_path / "fps.safetensors")
    assert len(back) == len(fps) and back.stability == fps.stability
    for f in ("states", "eigenvalues", "left_eigenvectors", "converged", "input_jacobians"):
        np.testing.assert_array_equal(np.asarray(getattr(back, f)), np.asarray(getattr(fps, f)))
    assert back.summary() == fps.summary()
    stable = fps[np.array(fps.stability) == "stable"]
    assert len(stable) == 4 and set(stable.stability) == {"stable"}
    both = rl.FixedPoints.concatenate([stable, stable])
    assert len(both) == 8
    assert np.all(np.diff(np.asarray(fps.speeds)) >= 0)  # slowest first
    with pytest.raises(ValueError, match="fixed_points"):
        rl.load(tmp_path / "fps.safetensors")  # a FixedPoints file is not a model


def test_slow_points_and_tolerance_sweep():
    # tau dx/dt = -x + w tanh(x) with w slightly below 1: one root at 0 and very slow flow
    # near it (a ghost line); slow points appear only at loose tolerances.
    model = rl.CTRNN.from_weights(np.diag([0.99, 0.2]), np.zeros((2, 1)), np.eye(2),
                                  activation="tanh", dt=DT, tau=TAU)
    starts = np.stack([np.linspace(-0.3, 0.3, 31), np.zeros(31)], axis=1)
    sweep = rl.analysis.tolerance_sweep(model, np.zeros(1), starts, [1e-10, 1e-5])
    tight, loose = sweep[1e-10], sweep[1e-5]
    assert len(tight) == 1 and np.allclose(np.asarray(tight.states), 0.0, atol=1e-9)
    assert len(loose) > 5
    assert np.sum(~np.asarray(loose.converged)) == len(loose) - 1
    assert np.all(np.asarray(loose.speeds) <= 1e-5)
    f, _ = _numpy_field(model)
    for x, s in zip(np.asarray(loose.states), np.asarray(loose.speeds)):
        assert np.linalg.norm(f(x, np.zeros(1))) == pytest.approx(s, rel=1e-6, abs=1e-15)


def test_outliers_excluded():
    model = rl.CTRNN.from_weights(np.diag([0.5, 0.5]), np.eye(2), np.eye(2),
                                  activation="linear", dt=DT, tau=TAU)
    # the root (2u) lies far from a tight cloud of starts: excluded with the FPF rule
    starts = 1e-3 * np.random.default_rng(0).normal(size=(10, 2))
    assert len(rl.find_fixed_points(model, np.array([10.0, 0.0]), starts)) == 0
    assert len(rl.find_fixed_points(model, np.array([10.0, 0.0]), starts,
                                    post=NO_OUTLIER_RULE)) == 1


def test_per_candidate_inputs_are_kept_apart():
    model = rl.CTRNN.from_weights(np.diag([0.5, 0.5]), np.eye(2), np.eye(2),
                                  activation="linear", dt=DT, tau=TAU)
    u = np.array([[0.1, 0.0]] * 5 + [[0.0, 0.1]] * 5)
    fps = rl.find_fixed_points(model, u, np.zeros((10, 2)), post=NO_OUTLIER_RULE)
    assert len(fps) == 2
    got = {tuple(np.round(x, 9)) for x in np.asarray(fps.states)}
    assert got == {(0.2, 0.0), (0.0, 0.2)}


def test_bad_arguments():
    model = decoupled_tanh()
    with pytest.raises(ValueError, match="initial_states"):
        rl.find_fixed_points(model, np.zeros(1), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="inputs"):
        rl.find_fixed_points(model, np.zeros(2), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="inputs"):
        rl.find_fixed_points(model, np.zeros((3, 1)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="tol"):
        rl.find_fixed_points(model, np.zeros(1), np.zeros((4, 2)), tol=-1.0)
    with pytest.raises(ValueError, match="slow_tol"):
        rl.find_fixed_points(model, np.zeros(1), np.zeros((4, 2)), slow_tol=1e-12)
    with pytest.raises(TypeError, match="model"):
        rl.find_fixed_points("net", np.zeros(1), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="NaN"):
        rl.find_fixed_points(model, np.zeros(1), np.full((4, 2), np.nan))


def test_global_x64_flag_untouched():
    rl.find_fixed_points(decoupled_tanh(), np.zeros(1), grid_starts(n=3))
    assert jnp.zeros(1).dtype == jnp.float32


# ------------------------------------------------------------------ compilation, stage 2


def _compiled_functions(caplog):
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("Compiling")]


def test_second_call_does_not_recompile(caplog):
    model = rl.CTRNN(1, 12, 1, key=jax.random.PRNGKey(3), gain=2.0)
    u = np.array([0.1])
    starts = np.random.default_rng(0).normal(scale=1.5, size=(60, 12))
    first = rl.find_fixed_points(model, u, starts)
    caplog.set_level(logging.WARNING)
    with jax.log_compiles(True):
        again = rl.find_fixed_points(model, u, starts)
    assert _compiled_functions(caplog) == []
    np.testing.assert_array_equal(np.asarray(again.states), np.asarray(first.states))
    # New candidates of the same shape (and another stage-1 stopping level): stage 1, the
    # costly compilation, is not compiled again.
    caplog.clear()
    other = np.random.default_rng(1).normal(scale=1.5, size=(60, 12))
    with jax.log_compiles(True):
        rl.find_fixed_points(
            model, u, other,
            solver=rl.analysis.FixedPointSolver(
                descent=rl.analysis.AdamDescent(handoff_speed=3e-3)))
    assert not [m for m in _compiled_functions(caplog) if "_adam_chunk" in m]
    # a sanity check that the log does show compilations: a new model size compiles
    caplog.clear()
    with jax.log_compiles(True):
        rl.find_fixed_points(rl.CTRNN(1, 5, 1, key=jax.random.PRNGKey(0)), u,
                             np.zeros((8, 5)))
    assert [m for m in _compiled_functions(caplog) if "_adam_chunk" in m]


def test_captured_starts_are_in_their_roots_newton_basin():
    """Stage 2 assigns most starts to a root by a contracting chord iteration instead of
    iterating them: an independent float64 Newton iteration (numpy) from each such start
    must end at the root it was assigned to."""
    from rnnlab.analysis import _fixed_points as fpm
    from rnnlab.analysis import _solvers

    model = rl.CTRNN(1, 12, 1, key=jax.random.PRNGKey(0), gain=2.0)
    f, jac = _numpy_field(model)
    u = np.array([0.1])
    rng = np.random.default_rng(0)
    roots = np.asarray(rl.find_fixed_points(model, u, rng.normal(scale=1.5, size=(60, 12)),
                                            post=NO_OUTLIER_RULE).states)
    # starts scattered around the roots at several distances
    starts = np.concatenate([r + s * rng.normal(size=(20, 12)) for r in roots
                             for s in (0.02, 0.1, 0.3)])
    k = len(starts)
    with jax.enable_x64(True):
        res = _solvers.polish(
            fpm.to_float64(model), starts, np.tile(u, (k, 1)), DT, 1e-10, np.full(k, 50),
            np.ones(k, bool), merge_tol=1e-4, wave_radius=0.5,
        )
    own = np.asarray(res.n_iter) == 0  # assigned without an iteration of their own
    assert own.sum() > k // 2  # most starts are captured (the point of the mechanism)
    for x0, xr in zip(starts[own], np.asarray(res.x)[own]):
        x = x0.copy()
        for _ in range(30):
            x = x - np.linalg.solve(jac(x, u), f(x, u))
        # the same root: the search stops at |F| < 1e-10, which fixes a root of this network
        # to about 5e-8 (the smallest singular values of its Jacobians are 2e-3 to 4e-3); its
        # five roots are more than 3 apart
        assert np.linalg.norm(x - xr) < 1e-7


def test_one_initial_state_is_not_an_outlier():
    # tau dx/dt = -x + 2 tanh(x) per unit: from (1, 1) the search reaches the stable corner
    # (a, a), a = 2 tanh(a). One start (or copies of one) gives the outlier rule no spread.
    model = decoupled_tanh(2.0)
    a = root_of_x_eq_w_tanh(2.0)
    for starts in (np.ones((1, 2)), np.ones((5, 2))):
        fps = rl.find_fixed_points(model, np.zeros(1), starts)
        assert len(fps) == 1
        np.testing.assert_allclose(np.asarray(fps.states)[0], [a, a], atol=1e-12)


def test_waves_grow_where_no_root_captures(monkeypatch):
    # tau dx/dt = (eps, -y): no root anywhere, every start is a ghost (|F| = eps / tau after
    # y -> 0). Stage 2 must not poll one start per host round: waves at least double.
    eps = 1e-3
    model = rl.CTRNN.from_weights(np.diag([1.0, 0.0]), np.zeros((2, 1)), np.eye(2),
                                  b_rec=np.array([eps, 0.0]), activation="linear", dt=DT,
                                  tau=TAU)
    rng = np.random.default_rng(0)
    starts = np.stack([np.linspace(-5, 5, 1000), rng.normal(scale=0.1, size=1000)], axis=1)
    from rnnlab.analysis import _solvers

    calls = []
    orig = _solvers._newton_directions
    monkeypatch.setattr(_solvers, "_newton_directions",
                        lambda *a, **k: calls.append(a[1].shape[0]) or orig(*a, **k))
    fps = rl.find_fixed_points(model, np.zeros(1), starts,
                               solver=rl.analysis.FixedPointSolver(descent=None),
                               post=rl.analysis.PostProcessing(exclude_unconverged=False))
    assert not np.any(np.asarray(fps.converged))
    np.testing.assert_allclose(np.asarray(fps.speeds), eps / TAU, rtol=1e-6)
    # A spread-out cover alone is ~9 of these starts per wave: one host round per wave (each
    # start stops at its singular Jacobian), ~100 rounds (measured 84), then
    # Levenberg-Marquardt. Doubling waves need log2(1000 / 16) + 1 = 7 (measured 11 in all).
    assert len(calls) <= 30, len(calls)

"""Result codes of `find_fixed_points`: a candidate of each code on a system built to produce it
(with the analytic end state where there is one), the candidate record's invariants, stability
codes and labels through save/load (files of the previous format included), and the grouped
options against the deprecated keywords they replace."""

from pathlib import Path
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest

import rnnlab as rl
from rnnlab.analysis import (
    AdamDescent,
    FixedPointSolver,
    NewtonPolish,
    PostProcessing,
    Result,
    Stability,
)
from rnnlab.io._safe import read_safetensors, write_safetensors
from rnnlab.models import AbstractRNN

FIXTURES = Path(__file__).parent / "fixtures"
TAU, DT = 100.0, 10.0


class Field(AbstractRNN):
    """dx/dt = F(x) on two units, with F chosen by ``kind`` (``c`` a constant):

    - ``"offset_square"``: F = (x^2 + c, -y): no root; |F|^2 has its minimum c^2 at the origin
      (a local minimum that is no root: slow for small c, a stall for c = 1);
    - ``"square"``: F = (x^2, -y): a double root at the origin; overflows float64 for |x| >
      1.3e154;
    - ``"cube"``: F = (x^3, -y): a triple root at the origin, where Newton only shrinks x by
      2/3 per step.
    """

    kind: str = eqx.field(static=True)
    c: float = eqx.field(static=True, default=0.0)
    is_continuous: ClassVar[bool] = True
    n_in: int = eqx.field(static=True, default=1)
    n_hidden: int = eqx.field(static=True, default=2)
    n_out: int = eqx.field(static=True, default=2)
    dt: float = eqx.field(static=True, default=1.0)

    def vector_field(self, state, input):
        x, y = state[0], state[1]
        if self.kind == "offset_square":
            fx = x**2 + self.c
        elif self.kind == "square":
            fx = x**2
        else:
            fx = x**3
        return jnp.stack([fx, -y]) + 0.0 * input[0]

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


def leak(b=(0.0, 0.0)):
    """tau dx/dt = -x + b: one stable root at b."""
    return rl.CTRNN.from_weights(np.zeros((2, 2)), np.zeros((2, 1)), np.eye(2),
                                 b_rec=np.asarray(b), activation="linear", dt=DT, tau=TAU)


def decoupled_tanh(w=2.0):
    """tau dx/dt = -x + w tanh(x) per unit: roots 0 and +-a with a = w tanh(a)."""
    return rl.CTRNN.from_weights(np.diag([w, w]), np.zeros((2, 1)), np.eye(2),
                                 activation="tanh", dt=DT, tau=TAU)


def codes(fps, rows=None):
    c = fps.candidates
    labels = np.asarray(c.labels)
    return labels if rows is None else labels[rows]


def check_record(fps, k):
    """Invariants of the candidate record of a search from k initial states."""
    c = fps.candidates
    m = len(c)
    assert m % k == 0 and m // k in (1, 2, 3)
    np.testing.assert_array_equal(np.asarray(c.initial), np.tile(np.arange(k), m // k))
    np.testing.assert_array_equal(np.asarray(c.path), np.repeat(np.arange(m // k), k))
    point = np.asarray(c.point)
    code = np.asarray(c.codes)
    assert np.all((point >= -1) & (point < len(fps)))
    # every point is some row's point; a row with a point is a root, slow point, duplicate
    # of a root, or an unconverged point kept on request; rows without one are not
    assert set(point[point >= 0]) == set(range(len(fps)))
    kept_codes = {Result.root, Result.slow, Result.captured, Result.stalled, Result.max_iters}
    assert all(Result(v) in kept_codes for v in code[point >= 0])
    assert all(Result(v) not in (Result.root, Result.captured) for v in code[point < 0])
    # a root row is its point (up to the final Newton steps at the unique roots), a captured
    # row lies within tol_unique of a converged point
    st, pst = np.asarray(c.states), np.asarray(fps.states)
    conv = np.asarray(fps.converged)
    for i in np.nonzero((code == Result.root) | (code == Result.captured))[0]:
        assert conv[point[i]]
        assert np.linalg.norm(st[i] - pst[point[i]]) <= 1e-3
    # counts: initial states whose main route became the point
    main = point[:k]
    np.testing.assert_array_equal(np.asarray(fps.counts),
                                  np.bincount(main[main >= 0], minlength=len(fps)))
    # one row per root point is its representative
    assert np.sum(code == Result.root) == int(np.sum(conv))


# ------------------------------------------------------------------ one system per code


def test_root_and_captured_on_a_linear_system():
    """x' = -x / tau: every candidate ends at the one root 0; one row represents it, every
    other row is a duplicate of it."""
    x0 = np.random.default_rng(0).normal(size=(6, 2))
    fps = rl.find_fixed_points(leak(), np.zeros(1), x0)
    assert len(fps) == 1
    np.testing.assert_allclose(np.asarray(fps.states)[0], 0.0, atol=1e-14)
    check_record(fps, 6)
    labels = codes(fps)
    assert list(labels).count("root") == 1
    assert set(labels) == {"root", "captured"}
    np.testing.assert_array_equal(np.asarray(fps.candidates.point), 0)
    assert fps.candidates.counts(None) == {**dict.fromkeys(rl.analysis.RESULT_LABELS, 0),
                                           "root": 1, "captured": 11}


def test_captured_candidates_share_their_roots_point():
    """Per unit tau dx/dt = -x + 2 tanh(x): two candidates in the basin of (a, a), one in the
    basin of (-a, a): two roots, one of the basin-mates a duplicate of the other's root (the
    polish from raw initial states is off, so these three rows are all there is)."""
    a = 1.9150080481545695  # a = 2 tanh(a)
    x0 = np.array([[1.5, 1.2], [2.5, 1.6], [-1.5, 1.4]])
    fps = rl.find_fixed_points(decoupled_tanh(), np.zeros(1), x0,
                               solver=FixedPointSolver(polish=NewtonPolish(polish_initial=False)))
    check_record(fps, 3)
    assert len(fps.candidates) == 3
    main = codes(fps)
    assert sorted(main[:2]) == ["captured", "root"] and main[2] == "root"
    point = np.asarray(fps.candidates.point)
    assert point[0] == point[1] != point[2]
    np.testing.assert_allclose(np.asarray(fps.states)[point[0]], [a, a], atol=1e-12)
    np.testing.assert_allclose(np.asarray(fps.states)[point[2]], [-a, a], atol=1e-12)
    assert int(np.asarray(fps.counts)[point[0]]) == 2


def test_slow_point_in_a_slow_region():
    """F = (x^2 + c, -y), c = 1e-6: no root; around the origin the speed is about c. With
    slow_tol = 1e-4 the candidates end as slow points there, with their true speed."""
    c = 1e-6
    model = Field("offset_square", c=c)
    x0 = np.random.default_rng(1).uniform(-0.5, 0.5, size=(8, 2))
    fps = rl.find_fixed_points(model, np.zeros(1), x0, slow_tol=1e-4)
    check_record(fps, 8)
    assert len(fps) >= 1 and not np.any(np.asarray(fps.converged))
    assert set(codes(fps, slice(0, 8))) == {"slow"}
    assert set(fps.stability) == {"slow"}
    st = np.asarray(fps.states)
    speed = np.hypot(st[:, 0] ** 2 + c, st[:, 1])
    np.testing.assert_allclose(np.asarray(fps.speeds), speed, rtol=1e-12)
    assert np.all(speed <= 1e-4) and np.all(speed >= c)
    assert np.all(np.abs(st[:, 0]) <= 1e-2)  # x^2 <= 1e-4


def test_stalled_at_a_local_minimum_of_the_speed_that_is_no_root():
    """F = (x^2 + 1, -y): the gradient of |F|^2 vanishes at the origin, where |F| = 1. Each
    candidate stalls there (not at its iteration cap), and no point is reported."""
    model = Field("offset_square", c=1.0)
    x0 = np.random.default_rng(2).uniform(-0.5, 0.5, size=(5, 2))
    fps = rl.find_fixed_points(model, np.zeros(1), x0)
    assert len(fps) == 0
    check_record(fps, 5)
    assert set(codes(fps, slice(0, 5))) == {"stalled"}
    main = slice(0, 5)
    np.testing.assert_allclose(np.asarray(fps.candidates.states)[main], 0.0, atol=1e-3)
    np.testing.assert_allclose(np.asarray(fps.candidates.speeds)[main], 1.0, atol=1e-6)
    # the same candidates, kept on request, are points with their speeds
    kept = rl.find_fixed_points(model, np.zeros(1), x0,
                                post=PostProcessing(exclude_unconverged=False))
    assert len(kept) >= 1 and set(kept.stability) == {"slow"}
    assert set(codes(kept, slice(0, 5))) == {"stalled"}
    assert np.all(np.asarray(kept.candidates.point)[:5] >= 0)


def test_diverged_where_the_field_overflows():
    """F = (x^2, -y): from x = 1e160 the residual is not finite (1e320 overflows float64); the
    candidates near the origin converge to the root at 0 (a double root: |x| <= 1e-5)."""
    model = Field("square")
    x0 = np.array([[1e160, 0.0], [0.5, 0.3], [-0.4, -0.2]])
    fps = rl.find_fixed_points(model, np.zeros(1), x0)
    check_record(fps, 3)
    labels = codes(fps)
    assert labels[0] == "diverged"
    assert not np.isfinite(np.asarray(fps.candidates.speeds)[0])
    assert set(labels[1:3]) <= {"captured", "root"} and list(labels).count("root") == 1
    assert len(fps) == 1
    np.testing.assert_allclose(np.asarray(fps.states)[0], 0.0, atol=1e-5)
    # the polish from the raw far state diverges too
    assert labels[3] == "diverged"


def test_max_iters_when_the_iteration_cap_is_hit():
    """Descent alone (FixedPointFinder), 3 iterations, on x' = -x / tau from far away: Adam
    moves each coordinate by about its learning rate per step, so the candidates are still
    far from the root when the cap stops them. Polish alone, 3 Newton (+3 Levenberg-Marquardt)
    iterations, on F = (x^3, -y): Newton shrinks x by exactly 2/3 per step."""
    x0 = np.random.default_rng(3).uniform(50.0, 80.0, size=(4, 2))
    only_descent = FixedPointSolver(descent=AdamDescent(max_iters=3), polish=None)
    fps = rl.find_fixed_points(leak(), np.zeros(1), x0, solver=only_descent)
    assert len(fps) == 0
    c = fps.candidates
    assert len(c) == 4 and set(c.labels) == {"max_iters"}
    np.testing.assert_array_equal(np.asarray(c.n_descent_iters), 3)
    np.testing.assert_allclose(np.abs(np.asarray(c.states) - x0), 3.0, rtol=0.05)

    only_polish = FixedPointSolver(descent=None, polish=NewtonPolish(max_iters=3))
    x0 = np.array([[1.0, 0.5], [-0.9, 0.2]])
    fps = rl.find_fixed_points(Field("cube"), np.zeros(1), x0, solver=only_polish)
    c = fps.candidates
    assert len(c) == 2 and set(c.labels) == {"max_iters"}
    assert np.all(np.asarray(c.speeds) > 1e-10)
    # Newton: 3 steps of x -> 2x/3 (then LM, which only shrinks |F| further)
    assert np.all(np.abs(np.asarray(c.states)[:, 0]) <= (2 / 3) ** 3 * np.abs(x0[:, 0]) + 1e-12)
    # the same polish with its default cap converges
    ok = rl.find_fixed_points(Field("cube"), np.zeros(1), x0,
                              solver=FixedPointSolver(descent=None))
    assert set(ok.candidates.labels) <= {"root", "captured"}


def test_outlier_far_from_the_initial_states():
    """tau dx/dt = -x + (20, 0): the root (20, 0) lies far beyond 10 times the spread of a tight
    cloud of starts: every candidate reaches it, and it is dropped as an outlier."""
    x0 = 1e-3 * np.random.default_rng(0).normal(size=(10, 2))
    fps = rl.find_fixed_points(leak((20.0, 0.0)), np.zeros(1), x0)
    assert len(fps) == 0
    check_record(fps, 10)
    assert set(codes(fps)) == {"outlier"}
    np.testing.assert_allclose(np.asarray(fps.candidates.states), [[20.0, 0.0]] * 20,
                               atol=1e-8)
    kept = rl.find_fixed_points(leak((20.0, 0.0)), np.zeros(1), x0,
                                post=PostProcessing(outlier_distance_scale=None))
    assert len(kept) == 1 and set(codes(kept)) == {"root", "captured"}


# ------------------------------------------------------------------ record and stability codes


def test_slow_search_record_and_selection():
    """tau dx/dt = -x + 0.99 tanh(x) (first unit): a ghost line near the root at 0. With
    slow_tol the descent's end points are rows too (path 2); selecting points keeps the record,
    renumbering the points; concatenation shifts the indices."""
    model = rl.CTRNN.from_weights(np.diag([0.99, 0.2]), np.zeros((2, 1)), np.eye(2),
                                  activation="tanh", dt=DT, tau=TAU)
    x0 = np.stack([np.linspace(-0.3, 0.3, 31), np.zeros(31)], axis=1)
    fps = rl.find_fixed_points(model, np.zeros(1), x0, slow_tol=1e-5)
    check_record(fps, 31)
    c = fps.candidates
    assert len(c) == 93 and set(c.path_labels) == {"main", "polish_initial", "descent"}
    assert c.counts(None)["slow"] > 5 and c.counts(None)["root"] == 1
    slow = fps[~np.asarray(fps.converged)]
    point = np.asarray(slow.candidates.point)
    old = np.asarray(c.point)
    root = int(np.nonzero(np.asarray(fps.converged))[0][0])
    np.testing.assert_array_equal(point == -1, (old == root) | (old == -1))
    for i in np.nonzero(point >= 0)[0]:
        np.testing.assert_array_equal(np.asarray(slow.states)[point[i]],
                                      np.asarray(fps.states)[old[i]])
    both = rl.FixedPoints.concatenate([fps, slow])
    bp = np.asarray(both.candidates.point)
    np.testing.assert_array_equal(bp[:93], old)
    np.testing.assert_array_equal(bp[93:], np.where(point >= 0, point + len(fps), -1))
    np.testing.assert_array_equal(np.asarray(both.candidates.initial)[93:],
                                  np.asarray(c.initial) + 31)


def test_stability_codes_are_the_labels():
    fps = rl.find_fixed_points(decoupled_tanh(), np.zeros(1),
                               np.random.default_rng(4).uniform(-3, 3, size=(40, 2)))
    assert len(fps) == 9
    codes_ = np.asarray(fps.stability_codes)
    assert codes_.dtype == np.int8
    assert fps.stability == tuple(Stability(int(v)).name for v in codes_)
    assert fps.stability == tuple(rl.analysis.STABILITY_LABELS[v] for v in codes_)
    assert sorted(fps.stability) == sorted(["stable"] * 4 + ["saddle"] * 4 + ["unstable"])


def _search_with_roots_and_slow_points():
    """Roots (stable and saddle) and slow points (a ghost line) in one FixedPoints."""
    model = rl.CTRNN.from_weights(np.diag([0.99, 2.0]), np.zeros((2, 1)), np.eye(2),
                                  activation="tanh", dt=DT, tau=TAU)
    x0 = np.stack([np.linspace(-0.3, 0.3, 21), np.linspace(-3, 3, 21)], axis=1)
    return rl.find_fixed_points(model, np.zeros(1), x0, slow_tol=1e-5)


def test_codes_and_labels_survive_save_and_load(tmp_path):
    fps = _search_with_roots_and_slow_points()
    assert {"stable", "saddle", "slow"} <= set(fps.stability)
    assert {"root", "captured", "slow"} <= set(fps.candidates.labels)
    fps.save(tmp_path / "fps.safetensors")
    back = rl.FixedPoints.load(tmp_path / "fps.safetensors")
    assert back.stability == fps.stability and back.ode_stability == fps.ode_stability
    np.testing.assert_array_equal(np.asarray(back.stability_codes),
                                  np.asarray(fps.stability_codes))
    for f in ("states", "speeds", "codes", "point", "initial", "path", "inputs", "n_iters",
              "n_descent_iters"):
        np.testing.assert_array_equal(np.asarray(getattr(back.candidates, f)),
                                      np.asarray(getattr(fps.candidates, f)))
    assert back.candidates.labels == fps.candidates.labels
    assert back.summary() == fps.summary()
    # the file stores codes with their label tables: a file whose tables are ordered
    # differently (another version) loads to the same labels
    tensors, meta = read_safetensors(tmp_path / "fps.safetensors")
    perm_s = [4, 2, 0, 3, 1]  # file position -> our code
    perm_r = [6, 5, 4, 3, 2, 1, 0]
    meta["stability_labels"] = [rl.analysis.STABILITY_LABELS[i] for i in perm_s]
    meta["result_labels"] = [rl.analysis.RESULT_LABELS[i] for i in perm_r]
    for f in ("stability_codes", "ode_stability_codes"):
        tensors[f] = np.argsort(perm_s)[tensors[f]].astype(np.int8)
    tensors["candidates.codes"] = np.argsort(perm_r)[tensors["candidates.codes"]].astype(np.int8)
    write_safetensors(tmp_path / "perm.safetensors", tensors, meta)
    other = rl.FixedPoints.load(tmp_path / "perm.safetensors")
    assert other.stability == fps.stability and other.ode_stability == fps.ode_stability
    assert other.candidates.labels == fps.candidates.labels


def test_file_of_the_previous_format_loads():
    """tests/fixtures/fixed_points_v2.safetensors was written by the release before stability
    codes (labels_version 2, labels as JSON lists, no candidate record): the decoupled tanh
    network's 9 roots from a 7 x 7 grid of starts. It loads with the labels it held, and they
    are those of a search today."""
    old = rl.FixedPoints.load(FIXTURES / "fixed_points_v2.safetensors")
    assert old.candidates is None
    g = np.linspace(-3.0, 3.0, 7)
    new = rl.find_fixed_points(decoupled_tanh(), np.zeros(1),
                               np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2))
    assert len(old) == len(new) == 9
    # the points are ordered by their speed, which at a root is round-off (it differs with
    # XLA's code generation): pair each stored point with the one found today
    gap = np.abs(np.asarray(old.states)[:, None] - np.asarray(new.states)[None]).max(-1)
    pair = gap.argmin(1)
    assert sorted(pair) == list(range(9))
    new = new[pair]
    np.testing.assert_allclose(np.asarray(old.states), np.asarray(new.states), atol=1e-12)
    assert old.stability == new.stability and old.ode_stability == new.ode_stability
    np.testing.assert_array_equal(np.asarray(old.stability_codes),
                                  np.asarray(new.stability_codes))
    # every count equal; the largest speed is round-off in both
    mine, theirs = old.summary(), new.summary()
    assert max(mine.pop("max_speed"), theirs.pop("max_speed")) < 1e-15
    assert mine == theirs
    # selection and concatenation of a part without a record
    both = rl.FixedPoints.concatenate([old, new])
    assert len(both.candidates) == len(new.candidates)
    np.testing.assert_array_equal(np.asarray(both.candidates.point),
                                  np.asarray(new.candidates.point) + 9)


def test_file_without_labels_version_gets_its_labels_recomputed(tmp_path):
    """A file from before the labels described the system that runs (no labels_version; the
    labels in it were the ODE's): every label and count is recomputed from the eigenvalues."""
    tensors, meta = read_safetensors(FIXTURES / "fixed_points_v2.safetensors")
    for f in ("n_unstable", "ode_n_unstable", "views_differ"):
        tensors.pop(f)
    del meta["labels_version"]
    meta["stability"] = ["stable"] * len(meta["stability"])  # stale: must not be used
    write_safetensors(tmp_path / "v1.safetensors", tensors, meta)
    v1 = rl.FixedPoints.load(tmp_path / "v1.safetensors")
    v2 = rl.FixedPoints.load(FIXTURES / "fixed_points_v2.safetensors")
    assert v1.stability == v2.stability and v1.ode_stability == v2.ode_stability
    for f in ("n_unstable", "ode_n_unstable", "views_differ", "stability_codes"):
        np.testing.assert_array_equal(np.asarray(getattr(v1, f)), np.asarray(getattr(v2, f)))


# ------------------------------------------------------------------ options


def test_deprecated_keywords_map_onto_the_objects():
    model = decoupled_tanh()
    x0 = np.random.default_rng(5).uniform(-3, 3, size=(20, 2))
    with pytest.warns(DeprecationWarning) as record:
        old = rl.find_fixed_points(model, np.zeros(1), x0, max_iters=0, newton_iters=30,
                                   outlier_distance_scale=None)
    said = " ".join(str(w.message) for w in record)
    for replacement in ("AdamDescent(max_iters=", "NewtonPolish(max_iters=",
                        "PostProcessing(outlier_distance_scale="):
        assert replacement in said
    new = rl.find_fixed_points(
        model, np.zeros(1), x0,
        solver=FixedPointSolver(descent=AdamDescent(max_iters=0),
                                polish=NewtonPolish(max_iters=30)),
        post=PostProcessing(outlier_distance_scale=None))
    np.testing.assert_array_equal(np.asarray(old.states), np.asarray(new.states))
    np.testing.assert_array_equal(np.asarray(old.candidates.codes),
                                  np.asarray(new.candidates.codes))
    # descent=None is the same search as a descent of no iterations
    none = rl.find_fixed_points(model, np.zeros(1), x0,
                                solver=FixedPointSolver(descent=None,
                                                        polish=NewtonPolish(max_iters=30)),
                                post=PostProcessing(outlier_distance_scale=None))
    np.testing.assert_array_equal(np.asarray(none.states), np.asarray(new.states))
    with pytest.raises(TypeError, match="solver"):
        rl.find_fixed_points(model, np.zeros(1), x0, solver=FixedPointSolver(), max_iters=0)
    with pytest.raises(TypeError, match="unexpected keyword"):
        rl.find_fixed_points(model, np.zeros(1), x0, max_iter=3)


def test_default_objects_are_fixed_point_finders_defaults():
    d = AdamDescent()
    assert d.hyperparameters() == rl.analysis._solvers.FPF_DEFAULTS
    solver = FixedPointSolver()
    assert isinstance(solver.descent, AdamDescent) and isinstance(solver.polish, NewtonPolish)
    assert solver.polish.max_iters == 50 and solver.polish.polish_initial
    post = PostProcessing()
    assert (post.outlier_distance_scale, post.exclude_unconverged, post.marginal_tol) == (
        10.0, True, 1e-8)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: AdamDescent(learning_rate=0.0), "learning_rate"),
        (lambda: AdamDescent(max_iters=-1), "max_iters"),
        (lambda: AdamDescent(max_iters=2.5), "max_iters"),
        (lambda: AdamDescent(lr_decrease=1.5), "lr_decrease"),
        (lambda: NewtonPolish(max_iters=0), "max_iters"),
        (lambda: NewtonPolish(cluster_radius=-1.0), "cluster_radius"),
        (lambda: PostProcessing(outlier_distance_scale=float("nan")), "outlier_distance"),
        (lambda: PostProcessing(marginal_tol=0.0), "marginal_tol"),
        (lambda: FixedPointSolver(descent=None, polish=None), "descent or a polish"),
    ],
)
def test_bad_options_name_themselves(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_option_types():
    with pytest.raises(TypeError, match="descent"):
        FixedPointSolver(descent=NewtonPolish())
    with pytest.raises(TypeError, match="solver"):
        rl.find_fixed_points(leak(), np.zeros(1), np.zeros((2, 2)), solver=AdamDescent())
    with pytest.raises(TypeError, match="post"):
        rl.find_fixed_points(leak(), np.zeros(1), np.zeros((2, 2)), post={"marginal_tol": 1})

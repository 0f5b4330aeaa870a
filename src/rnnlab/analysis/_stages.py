"""The fixed-point solver as objects: a descent stage, a polish stage, and the solver that runs
both and reports every end point it reached.

Each stage is an immutable `equinox.Module` holding its own options (validated when it is
built) and one method that runs it; `FixedPointSolver` joins them. The numerics live in
`_solvers`.
"""

import abc

import equinox as eqx
import jax
import numpy as np

from .._validate import integer, positive_int, positive_number
from . import _solvers
from ._linear import map_scale, to_float64
from ._selection import unique_indices

# Where an end point of the search came from (`SearchResult.path`, `Candidates.path`).
PATH_MAIN = 0  # the candidate's route: descent, then polish (or whichever of the two runs)
PATH_POLISH_INITIAL = 1  # polish started from the raw initial state (`polish_initial`)
PATH_DESCENT = 2  # the descent's end point itself (kept as a slow point with ``slow_tol``)
PATH_LABELS = ("main", "polish_initial", "descent")


class DescentResult(eqx.Module):
    """Stage-1 end points (numpy): ``x`` [K, N] float64, ``q`` [K] (1/2 |s F|^2 there),
    ``n_iter`` [K], ``reason`` [K] (``_solvers.STOP_*``)."""

    x: np.ndarray
    q: np.ndarray
    n_iter: np.ndarray
    reason: np.ndarray


class SearchResult(eqx.Module):
    """Every end point of one search, M rows (M = K, 2K or 3K for K initial states), rows
    ``path * K + i`` for initial state ``i``: ``states`` [M, N] float64, ``speeds`` [M] (|F|,
    float64), ``converged`` [M] (speed <= tol), ``reasons`` [M] (why the last stage that ran
    stopped, ``_solvers.STOP_*``), ``n_iters`` [M] (stage 2), ``n_descent_iters`` [M],
    ``inputs`` [M, n_in], ``initial`` [M] (initial-state index), ``path`` [M] (``PATH_*``)."""

    states: np.ndarray
    speeds: np.ndarray
    converged: np.ndarray
    reasons: np.ndarray
    n_iters: np.ndarray
    n_descent_iters: np.ndarray
    inputs: np.ndarray
    initial: np.ndarray
    path: np.ndarray


# ------------------------------------------------------------------------------ stage 1


class AbstractDescent(eqx.Module):
    """Stage 1: moves every candidate downhill on ``q = 1/2 |s F|^2`` (``s = dt`` for
    continuous-time models, 1 for maps) until it is slow enough to hand over to the polish
    stage.

    Subclasses declare ``max_iters`` (0 skips the stage) and implement `handoff` and
    `descend`."""

    max_iters: eqx.AbstractVar[int]

    @abc.abstractmethod
    def handoff(self, scale: float) -> float:
        """The speed |F| at which a candidate is handed to the polish stage (``scale`` is
        ``s`` above)."""

    @abc.abstractmethod
    def descend(self, model, states: np.ndarray, inputs: np.ndarray, *, scale: float,
                stop_speed: float) -> DescentResult:
        """Run the stage from ``states`` [K, N] at ``inputs`` [K, n_in]; a candidate stops
        once its speed |F| is below ``stop_speed`` (or by the stage's own rules)."""


class AdamDescent(AbstractDescent):
    """FixedPointFinder's optimisation (Golub & Sussillo 2018) with its published defaults:
    Adam (``adam_eps`` 0.01, ``adam_b1`` 0.9, ``adam_b2`` 0.999) on ``q = 1/2 |s F|^2`` in
    float32, jitted, all candidates at once; adaptive learning rate (start ``learning_rate``
    1.0, times ``lr_decrease`` 0.95 after ``lr_patience`` 5 worsening steps, divided by it
    after 5 improving ones, floor ``lr_min`` 1e-3); adaptive clipping of the gradient norm at
    the ``clip_percentile`` 95th percentile of the last ``clip_window`` 128 norms; a candidate
    stops at ``q < tol_q`` (1e-12), ``dq < tol_dq * lr`` (1e-20) or after ``max_iters``
    (5000; 0 skips the stage).

    One difference from FixedPointFinder: each candidate has its own learning rate and stops
    on its own (FixedPointFinder shares one over the batch mean), and a candidate also stops
    once its speed is below ``handoff_speed`` (default ``1e-2 / s``, i.e. |s F| = 1e-2), where
    the polish stage takes over.

    ``learning_rate``: Adam's first step moves every coordinate by about this much, so lower
    it for models whose states are small or saturate (e.g. gated units in [-1, 1]).
    """

    learning_rate: float
    tol_q: float
    tol_dq: float
    max_iters: int
    handoff_speed: float | None
    lr_min: float
    lr_patience: int
    lr_decrease: float
    adam_eps: float
    adam_b1: float
    adam_b2: float
    clip_window: int
    clip_percentile: float

    def __init__(
        self,
        *,
        learning_rate: float = 1.0,
        tol_q: float = 1e-12,
        tol_dq: float = 1e-20,
        max_iters: int | float = 5000,  # an integer; a float gets integer()'s ValueError
        handoff_speed: float | None = None,
        lr_min: float = 1e-3,
        lr_patience: int = 5,
        lr_decrease: float = 0.95,
        adam_eps: float = 0.01,
        adam_b1: float = 0.9,
        adam_b2: float = 0.999,
        clip_window: int = 128,
        clip_percentile: float = 95.0,
    ):
        self.learning_rate = positive_number("learning_rate", learning_rate)
        self.tol_q = positive_number("tol_q", tol_q)
        self.tol_dq = positive_number("tol_dq", tol_dq)
        self.max_iters = integer("max_iters", max_iters, 0)
        self.handoff_speed = positive_number("handoff_speed", handoff_speed, allow_none=True)
        self.lr_min = positive_number("lr_min", lr_min)
        self.lr_patience = positive_int("lr_patience", lr_patience)
        self.lr_decrease = _fraction("lr_decrease", lr_decrease)
        self.adam_eps = positive_number("adam_eps", adam_eps)
        self.adam_b1 = _fraction("adam_b1", adam_b1, allow_zero=True)
        self.adam_b2 = _fraction("adam_b2", adam_b2, allow_zero=True)
        self.clip_window = positive_int("clip_window", clip_window)
        self.clip_percentile = positive_number("clip_percentile", clip_percentile)
        if self.clip_percentile > 100:
            raise ValueError(
                f"clip_percentile must be in (0, 100], got {clip_percentile!r}"
            )

    def hyperparameters(self) -> dict:
        """The options as the stage-1 kernel takes them (``_solvers.FPF_DEFAULTS`` keys)."""
        return {
            "tol_q": self.tol_q, "tol_dq": self.tol_dq, "max_iters": self.max_iters,
            "lr_init": self.learning_rate, "lr_min": self.lr_min,
            "lr_patience": self.lr_patience, "lr_decrease": self.lr_decrease,
            "lr_increase": 1.0 / self.lr_decrease, "adam_eps": self.adam_eps,
            "adam_b1": self.adam_b1, "adam_b2": self.adam_b2,
            "clip_window": self.clip_window, "clip_percentile": self.clip_percentile,
        }

    def handoff(self, scale: float) -> float:
        return 1e-2 / scale if self.handoff_speed is None else self.handoff_speed

    def descend(self, model, states, inputs, *, scale, stop_speed):
        hp = self.hyperparameters()
        q_stop = 0.5 * (scale * stop_speed) ** 2
        # host float32 copies: the stage's bookkeeping runs on the host (see adam_stage)
        st = _solvers.adam_stage(model, np.asarray(states, np.float32),
                                 np.asarray(inputs, np.float32), scale, hp, q_stop)
        return DescentResult(
            x=np.asarray(st.x, np.float64),
            q=np.asarray(st.q, np.float64),
            n_iter=np.asarray(st.n_iter, np.int64),
            reason=_solvers.descent_reasons(st, hp, q_stop),
        )


def _fraction(name, value, *, allow_zero=False):
    v = positive_number(name, value) if not allow_zero or value != 0 else 0.0
    if v >= 1:
        raise ValueError(f"{name} must be a number in {'[0' if allow_zero else '(0'}, 1), "
                         f"got {value!r}")
    return v


# ------------------------------------------------------------------------------ stage 2


class AbstractPolish(eqx.Module):
    """Stage 2: takes starts (the descent's end points and, with ``polish_initial``, the raw
    initial states) to roots at float64 precision.

    Subclasses declare ``polish_initial`` and implement `polish`, which gets every start and
    returns, per start, its end point, speed, convergence flag, iteration count and why it
    stopped (a `_solvers.HostResult`). `NewtonPolish` drives its iteration from the host
    (measured faster on CPU); a device-resident implementation (one jitted loop) fits the same
    method."""

    polish_initial: eqx.AbstractVar[bool]

    @abc.abstractmethod
    def polish(self, model, starts: np.ndarray, inputs: np.ndarray, *, primary: np.ndarray,
               priority: np.ndarray, initial_states: np.ndarray, scale: float, tol: float,
               tol_unique: float) -> _solvers.HostResult:
        """Polish ``starts`` [S, N] at ``inputs`` [S, n_in] (float64 numpy; ``model`` in its
        own precision). ``primary`` [S]: the candidates' main route (False for the extra starts
        from raw initial states); ``priority`` [S]: lower first (stage-1 q, inf for raw
        starts); ``initial_states`` [K, N]: the search's initial states (their spread is a
        length scale); a start converges at ``|F| <= tol``; points closer than ``tol_unique``
        are one point in the end."""


class NewtonPolish(AbstractPolish):
    """Safeguarded Newton with the model's analytic `jacobian`, then Levenberg-Marquardt,
    float64, driven from the host (measured faster on CPU than a jitted loop).

    Newton: the full step unless it is non-finite or multiplies |F| by more than 10, else the
    best of the fractions 1/2 ... 1/16 that lowers |F|; a start stops at ``|F| <= tol``, when
    its best |F| has not shrunk by 10% for ``newton_patience`` (4) iterations, or after
    ``max_iters`` (50; raw initial states at most 20). Then Levenberg-Marquardt with damping
    ``theta |r|^2`` (quadratically convergent even on continua of roots) from the best point of
    each main-route start that Newton left unconverged (stopping after ``lm_patience`` (3)
    iterations without a 10% gain, or at the cap). A small jitted call evaluates residuals and
    Jacobians of the unfinished starts only, and numpy's LAPACK solves the linear systems.

    Most starts end at a root another one has reached and are not iterated: the Jacobian at
    every root found is inverted once, and a start whose chord iteration with it (``z <- z -
    J(x*)^-1 F(z)``, at most 8 steps) keeps contracting (each step at most half the previous
    one) and comes within ``min(cluster_radius, tol_unique) / 10`` of the root is *captured* by
    it. Starts run in waves (a spread-out subset first, lowest q first), so roots are known
    before most starts would need Newton steps of their own. Starts closer than
    ``cluster_radius`` (default 1e-2; None: ``tol_unique``) share one polished result (the one
    from the start with the lowest q).

    ``polish_initial`` (default True): also polish the raw initial states (Newton only):
    Newton reaches roots whose basins the descent leaves, which an independent root finder
    (scipy's ``root``) started at the same states also reaches.
    """

    max_iters: int
    cluster_radius: float | None
    polish_initial: bool
    newton_patience: int
    lm_patience: int

    def __init__(self, *, max_iters: int = 50, cluster_radius: float | None = 1e-2,
                 polish_initial: bool = True, newton_patience: int = 4, lm_patience: int = 3):
        self.max_iters = positive_int("max_iters", max_iters)
        self.cluster_radius = positive_number("cluster_radius", cluster_radius,
                                              allow_none=True)
        if not isinstance(polish_initial, (bool, np.bool_)):
            raise TypeError(f"polish_initial must be True or False, got {polish_initial!r}")
        self.polish_initial = bool(polish_initial)
        self.newton_patience = positive_int("newton_patience", newton_patience)
        self.lm_patience = positive_int("lm_patience", lm_patience)

    def polish(self, model, starts, inputs, *, primary, priority, initial_states, scale, tol,
               tol_unique):
        cluster_radius = tol_unique if self.cluster_radius is None else self.cluster_radius
        # Polish one representative (the lowest priority) of each group of starts closer than
        # cluster_radius and share its result: trajectory states crowd around the attractors,
        # so this shrinks the Newton batch several-fold; distinct roots closer than that are
        # rare (and points closer than tol_unique are merged at the end anyway).
        rep_of = np.empty(starts.shape[0], dtype=int)
        _, group = np.unique(inputs, axis=0, return_inverse=True)
        group = np.asarray(group).reshape(-1)
        for g in np.unique(group):
            members = np.nonzero(group == g)[0]
            order = members[np.argsort(np.nan_to_num(priority[members], nan=np.inf),
                                       kind="stable")]
            _, owner = unique_indices(starts, order, cluster_radius)
            rep_of[members] = owner[members]
        reps, inverse = np.unique(rep_of, return_inverse=True)
        # Main-route starts: Newton, then Levenberg-Marquardt for what Newton leaves. Raw
        # initial states: plain (safeguarded) Newton only, its job being to reach roots in
        # their basins. One call for both. Waves: starts at least a fifth of the spread of the
        # initial states apart. The raw starts take their places in the waves like the others
        # (lowest q first, so mostly after them), and are not held back to be captured where
        # they stand: a chord iteration with a known root's Jacobian can contract from a raw
        # start that Newton takes to another root, and when that start was the only way to it
        # the root was lost (a face saddle of a trained flip-flop, 25 of the 26 roots Newton
        # and scipy reach from the same 256 candidates; issue 12 item 9).
        first = np.asarray(primary, bool)[reps]
        caps = np.where(first, self.max_iters, min(self.max_iters, 20))
        x0 = initial_states
        spread = np.sqrt(np.mean(np.sum((x0 - x0.mean(axis=0)) ** 2, axis=1)))
        with jax.enable_x64(True):
            res = _solvers.polish(
                to_float64(model), starts[reps], inputs[reps], scale, tol, caps, first,
                merge_tol=0.1 * min(cluster_radius, tol_unique),
                wave_radius=max(cluster_radius, 0.2 * spread),
                newton_patience=self.newton_patience, lm_patience=self.lm_patience,
            )
        # A start reports its representative's result.
        return _solvers.HostResult(
            x=np.asarray(res.x)[inverse], speed=np.asarray(res.speed)[inverse],
            converged=np.asarray(res.converged)[inverse],
            n_iter=np.asarray(res.n_iter, np.int64)[inverse],
            reason=np.asarray(res.reason)[inverse],
        )


# ------------------------------------------------------------------------------ both


class FixedPointSolver(eqx.Module):
    """The two-stage search: ``descent`` (default `AdamDescent()`, FixedPointFinder's
    algorithm) brings every candidate near a root or slow region, ``polish`` (default
    `NewtonPolish()`) takes it to a root at float64 precision. Either may be None (not both):
    ``descent=None`` polishes the initial states directly; ``polish=None`` is
    FixedPointFinder alone (the descent then runs down to ``tol``, or ``slow_tol``).

    Example::

        solver = FixedPointSolver(descent=AdamDescent(learning_rate=0.1),
                                  polish=NewtonPolish(max_iters=100))
        fps = find_fixed_points(model, u, x0, solver=solver)
    """

    descent: AbstractDescent | None
    polish: AbstractPolish | None

    def __init__(self, descent: AbstractDescent | None = AdamDescent(),
                 polish: AbstractPolish | None = NewtonPolish()):
        if descent is not None and not isinstance(descent, AbstractDescent):
            raise TypeError(
                f"descent must be an AbstractDescent (e.g. AdamDescent()) or None, got "
                f"{type(descent).__name__}"
            )
        if polish is not None and not isinstance(polish, AbstractPolish):
            raise TypeError(
                f"polish must be an AbstractPolish (e.g. NewtonPolish()) or None, got "
                f"{type(polish).__name__}"
            )
        if descent is None and polish is None:
            raise ValueError("a FixedPointSolver needs a descent or a polish stage (or both)")
        self.descent = descent
        self.polish = polish

    def search(self, model, initial_states, inputs, *, tol: float, slow_tol: float | None,
               tol_unique: float) -> SearchResult:
        """Run both stages from ``initial_states`` [K, N] (float64 numpy) at ``inputs``
        [K, n_in]; return every end point (see `SearchResult`)."""
        x0, u = initial_states, inputs
        k = x0.shape[0]
        scale = map_scale(model)
        descent, polish = self.descent, self.polish
        zeros = np.zeros(k, np.int64)
        if descent is not None and descent.max_iters > 0:
            if slow_tol is not None:
                # Stage 1 runs until a candidate is slow by that standard: stopping at a
                # higher hand-off level would drop points that only need more descent.
                stop = slow_tol
            else:
                stop = tol if polish is None else descent.handoff(scale)
            d = descent.descend(model, x0, u, scale=scale, stop_speed=stop)
            x1, it1, q1, why1 = d.x, d.n_iter, d.q, d.reason
            ran = True
        else:
            x1, it1, q1 = x0, zeros, np.zeros(k)
            why1 = np.full(k, _solvers.STOP_MAX_ITERS, np.int8)
            ran = False
        initial = np.arange(k)
        if polish is None:
            speed1 = _speeds(model, x1, u)
            return SearchResult(
                states=x1, speeds=speed1, converged=speed1 <= tol, reasons=why1,
                n_iters=zeros, n_descent_iters=it1, inputs=u, initial=initial,
                path=np.full(k, PATH_MAIN, np.int8),
            )
        # Stage 2 starts from the stage-1 points and (by default) from the initial states too:
        # Newton reaches roots whose basins Adam's descent on q leaves (checked against scipy).
        starts, start_u, prio = [x1], [u], [q1]
        start_it1, paths = [it1], [np.full(k, PATH_MAIN, np.int8)]
        if polish.polish_initial and ran:
            starts.append(x0)
            start_u.append(u)
            prio.append(np.full(k, np.inf))
            start_it1.append(zeros)
            paths.append(np.full(k, PATH_POLISH_INITIAL, np.int8))
        starts, start_u = np.concatenate(starts), np.concatenate(start_u)
        primary = np.arange(starts.shape[0]) < k
        res = polish.polish(model, starts, start_u, primary=primary,
                            priority=np.concatenate(prio), initial_states=x0, scale=scale,
                            tol=tol, tol_unique=tol_unique)
        xs, sp, cv = [np.asarray(res.x)], [np.asarray(res.speed)], [np.asarray(res.converged)]
        why, i2 = [np.asarray(res.reason, np.int8)], [np.asarray(res.n_iter, np.int64)]
        if slow_tol is not None:
            speed1 = _speeds(model, x1, u)
            xs.append(x1)
            sp.append(speed1)
            cv.append(speed1 <= tol)
            why.append(why1)
            i2.append(zeros)
            start_it1.append(it1)
            start_u = np.concatenate([start_u, u])
            paths.append(np.full(k, PATH_DESCENT, np.int8))
        paths = np.concatenate(paths)
        return SearchResult(
            states=np.concatenate(xs), speeds=np.concatenate(sp),
            converged=np.concatenate(cv), reasons=np.concatenate(why),
            n_iters=np.concatenate(i2), n_descent_iters=np.concatenate(start_it1),
            inputs=start_u, initial=np.tile(initial, paths.size // k), path=paths,
        )


def _speeds(model, xs, us) -> np.ndarray:
    """|F| at the rows of xs (float64)."""
    with jax.enable_x64(True):
        f = _solvers._padded_call(_solvers._res, to_float64(model),
                                  np.asarray(xs, np.float64), np.asarray(us, np.float64), 1.0)
    return np.linalg.norm(f, axis=-1)

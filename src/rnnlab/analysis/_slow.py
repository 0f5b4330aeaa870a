"""A slow-point tolerance that means something for each network: its own extent and trial time."""

import dataclasses
from typing import Any

import numpy as np
from jaxtyping import ArrayLike
from scipy.spatial.distance import cdist

from .._simulate import Trajectory
from .._validate import positive_number
from ..models import AbstractRNN

# Calibrated on trained runs (`rnnlab train integrator --steps 800`, `rnnlab train
# perceptual_decision_making --steps 600`, `rnnlab train flipflop`, 64 units, 1024 candidates),
# fractions 0.003 / 0.01 / 0.03 / 0.1: the integrator's slow points form one line from 0.03 on
# (155 points, length 3.4; at 0.01 the line came out in two pieces, at 0.003 only 17 points),
# its tolerance there is 5.4e-5 /ms, of the order of the hand-picked 1e-4 a user needed; the
# perceptual network's slow points lie on a line (96% of their variance on one axis) from 0.01
# on; the flip-flop keeps its 8 stable corners and 19 saddles as roots at every fraction and
# shows no manifold. 0.03 is the smallest fraction at which the integrator's line is whole.
DEFAULT_FRACTION = 3e-2


@dataclasses.dataclass(frozen=True)
class SlowPointTolerance:
    """The speed below which a state counts as a slow point, and how it was derived.

    ``tol = fraction * extent / duration``: a slow point moves less than ``fraction`` of the
    task trajectories' extent over one trial.

    Fields:
        tol: the tolerance on the speed |F| (state units per unit time of ``dt`` for
            continuous-time models, per step for maps).
        extent: root-mean-square distance of the trajectories' states from their mean (state
            units).
        duration: one trial's duration: ``n_steps * dt`` for continuous-time models (``dt`` in
            the model's time unit, ms for a CT-RNN), ``n_steps`` for maps (steps).
        fraction: the fraction of the extent a slow point may move over a trial.
        n_steps: time steps per trial of the trajectories.
        time_unit: ``"ms"`` (continuous-time models with a ``dt``), ``"time"`` (without one)
            or ``"step"`` (maps): the unit of ``duration``; speeds are per this unit.
    """

    tol: float
    extent: float
    duration: float
    fraction: float
    n_steps: int
    time_unit: str

    def __float__(self) -> float:
        return float(self.tol)

    @property
    def rule(self) -> str:
        """The rule in words, with its numbers."""
        return (f"|F| < {self.fraction:g} x extent {self.extent:.4g} (RMS distance of the "
                f"task trajectories from their mean) / trial duration {self.duration:g} "
                f"{self.time_unit}{'s' if self.time_unit == 'step' else ''} = {self.tol:.3g}"
                f" per {self.time_unit}")

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "rule": self.rule}


def slow_point_tolerance(
    model: AbstractRNN,
    trajectories: Trajectory | ArrayLike,
    *,
    fraction: float = DEFAULT_FRACTION,
) -> SlowPointTolerance:
    """The slow-point tolerance of ``model``: moving less than ``fraction`` of its task
    trajectories' extent over a trial.

    ``tol = fraction * extent / duration`` with ``extent`` the RMS distance of the trajectory
    states from their mean and ``duration`` a trial's length (``n_steps * dt`` for
    continuous-time models, whose speeds |F| = |dx/dt| are per unit time; ``n_steps`` for
    maps, whose speeds |step(h) - h| are per step). A line or ring attractor is a set of
    points that barely move on the task's time scale, so its members fall below this
    tolerance whatever the network's size, scale or time step, while an isolated fixed point
    is still polished to a root.

    Args:
        model: any rnnlab model (``is_continuous`` and ``dt`` are read).
        trajectories: a `Trajectory` (its ``states``) or states [..., T, state] of the model
            on the task's trials (any leading axes are pooled; T is the trial length).
        fraction: the fraction of the extent moved per trial (default 0.03, calibrated on
            trained integrator, perceptual-decision and flip-flop runs).

    Returns: a `SlowPointTolerance` (``float()`` of it is the tolerance).
    """
    states = trajectories.states if isinstance(trajectories, Trajectory) else trajectories
    states = np.asarray(states, dtype=np.float64)
    if states.ndim < 2 or states.shape[-2] < 1 or states.shape[-1] < 1:
        raise ValueError(
            f"trajectories must hold states of shape [..., T, state], got shape {states.shape}"
        )
    fraction = positive_number("fraction", fraction)
    n = getattr(model, "state_size", None)
    if n is not None and states.shape[-1] != n:
        raise ValueError(
            f"trajectories have states of size {states.shape[-1]}, the model's state_size is {n}"
        )
    flat = states.reshape(-1, states.shape[-1])
    if not np.all(np.isfinite(flat)):
        raise ValueError("trajectories contain NaN or inf states (did the simulation diverge?)")
    extent = float(np.sqrt(np.mean(np.sum((flat - flat.mean(axis=0)) ** 2, axis=1))))
    if not extent > 0:
        raise ValueError("trajectories do not move (zero extent): no speed scale to derive "
                         "a slow-point tolerance from; pass one explicitly")
    n_steps = int(states.shape[-2])
    if getattr(model, "is_continuous", False):
        dt = getattr(model, "dt", None)
        duration = n_steps * (float(dt) if dt is not None else 1.0)
        unit = "ms" if dt is not None else "time"
    else:
        duration, unit = float(n_steps), "step"
    return SlowPointTolerance(tol=float(fraction) * extent / duration, extent=extent,
                              duration=float(duration), fraction=float(fraction),
                              n_steps=n_steps, time_unit=unit)


# Gap filling (`fill_ring_gaps`): at most this many extra candidates per constant input,
# spaced about this fraction of the candidate ring's length apart inside each gap, in at most
# this many rounds (each a slow-point search from the seeds of the gaps still open).
GAP_SEEDS = 256
GAP_SPACING = 0.02
GAP_ROUNDS = 3


@dataclasses.dataclass(frozen=True)
class GapFill:
    """What `fill_ring_gaps` did.

    Fields:
        points: the slow points (and roots) found inside the gaps, to be added to the search's
            points (a `FixedPoints`, possibly empty).
        n_gaps: gaps seeded, all rounds together.
        n_seeds: candidates placed in them.
        n_landed: of the search's end points, those that stayed inside a gap (slow by the
            tolerance and not run off to the gap's ends): ``len(points)`` after
            deduplication.
        rounds: searches run.
    """

    points: Any
    n_gaps: int
    n_seeds: int
    n_landed: int
    rounds: int

    def as_dict(self) -> dict[str, Any]:
        return {"gaps": self.n_gaps, "seeds": self.n_seeds, "landed": self.n_landed,
                "rounds": self.rounds}


def fill_ring_gaps(
    model: AbstractRNN,
    inputs: ArrayLike,
    points: Any,
    *,
    slow_tol: float,
    tol: float = 1e-10,
    max_seeds: int = GAP_SEEDS,
    spacing: float = GAP_SPACING,
    rounds: int = GAP_ROUNDS,
    min_gap: float = 0.05,
    tol_unique: float = 1e-3,
) -> GapFill:
    """Decide the gaps of a candidate ring with the dynamics: search for slow points inside
    them.

    Slow points found from trajectory samples crowd near a ring's fixed points (candidates
    settle where the flow is slowest), leaving gaps that `attractor_manifolds` cannot tell
    from the opening of an arc. `ring_gaps` gives the gaps of the candidate cycle; each gets
    candidates on the segment between its two ends (about ``spacing`` x the cycle's length
    apart), searched exactly as the slow points are (`find_fixed_points` with ``slow_tol``:
    descent until slow, roots polished). On a ring the gap holds slow points, and the seeds
    stop there; across the opening of an arc the flow is fast, and the seeds run on to the
    arc's ends or are not slow at all. A gap's new points (slow or roots, not within
    ``tol_unique`` of a point already there, projecting inside the segment and nearer to it
    than half its length, some onto its middle 80%) are kept when they fill it: the path from
    one end through them (in order along the segment) to the other has no step longer than
    ``min_gap`` x the cycle's length (the size `ring_gaps` calls a gap). Repeated while gaps
    remain, at most ``rounds`` times and ``max_seeds`` candidates in all. Deterministic: no
    random numbers.

    Args:
        model: the network.
        inputs: the constant input [n_in] at which ``points`` were found.
        points: a `FixedPoints` found with ``slow_tol`` at ``inputs``.
        slow_tol: the slow-point tolerance of ``points`` (speed |F|).
        tol: the root tolerance.
        max_seeds: candidates in all (default 256).
        spacing: seed spacing as a fraction of the cycle's length (default 0.02).
        rounds: most searches (default 3).
        min_gap: a step longer than this fraction of the cycle's length is a gap (0.05).
        tol_unique: new points closer than this to a point already there are not new (1e-3).

    Returns: a `GapFill` (``points``: the new points only).
    """
    from ._fixed_points import find_fixed_points
    from ._manifolds import ring_gaps
    from ._points import FixedPoints

    slow_tol = positive_number("slow_tol", slow_tol)
    spacing = positive_number("spacing", spacing)
    min_gap = positive_number("min_gap", min_gap)
    tol_unique = positive_number("tol_unique", tol_unique)
    if isinstance(max_seeds, bool) or not isinstance(max_seeds, (int, np.integer)) \
            or max_seeds < 0:
        raise ValueError(f"max_seeds must be a non-negative integer, got {max_seeds!r}")
    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 0:
        raise ValueError(f"rounds must be a non-negative integer, got {rounds!r}")
    u = np.asarray(inputs, np.float64).reshape(-1)
    current, new = points, []
    n_gaps = n_seeds = n_rounds = 0
    for _ in range(rounds):
        budget = max_seeds - n_seeds
        gaps = (ring_gaps(current, min_gap=min_gap) if budget > 0 and len(current) >= 6
                else [])
        if not gaps:
            break
        counts = [max(1, int(np.ceil(np.linalg.norm(b - a) / (spacing * length))) - 1)
                  for a, b, length in gaps]
        if sum(counts) > budget:  # thin every gap alike
            counts = [max(1, int(c * budget / sum(counts))) for c in counts]
            while sum(counts) > budget and len(counts):
                counts.pop()
        gaps = gaps[:len(counts)]
        if not gaps:
            break
        seeds, which = [], []
        for g, ((a, b, _), c) in enumerate(zip(gaps, counts)):
            t = (np.arange(1, c + 1) / (c + 1))[:, None]
            seeds.append(a + t * (b - a))
            which.append(np.full(c, g))
        seeds = np.concatenate(seeds)
        found = find_fixed_points(model, u, seeds, tol=tol, slow_tol=slow_tol)
        n_gaps += len(gaps)
        n_seeds += seeds.shape[0]
        n_rounds += 1
        xs = np.asarray(found.states, np.float64)
        old = np.asarray(current.states, np.float64)
        fresh = cdist(xs, old).min(axis=1) > tol_unique if old.size else np.ones(len(xs), bool)
        inside = np.zeros(xs.shape[0], bool)
        for a, b, length in gaps:
            ab = b - a
            w = float(ab @ ab)
            lam = (xs - a) @ ab / w
            off = np.linalg.norm(xs - a - lam[:, None] * ab, axis=1)
            sel = np.flatnonzero(fresh & (lam > 0) & (lam < 1) & (off < 0.5 * np.sqrt(w)))
            if not np.any((lam[sel] > 0.1) & (lam[sel] < 0.9)):
                continue
            # filled: from one end through the points, in order, to the other, no step is
            # still a gap (a few stray slow points in a fast gap, near a saddle, are not)
            chain = np.concatenate([a[None], xs[sel[np.argsort(lam[sel])]], b[None]])
            if np.linalg.norm(np.diff(chain, axis=0), axis=1).max() <= min_gap * length:
                inside[sel] = True
        if not np.any(inside):
            break
        kept = found[np.flatnonzero(inside)]
        new.append(kept)
        current = FixedPoints.concatenate([current, kept])
    landed = FixedPoints.concatenate(new) if new else points[np.zeros(0, np.int64)]
    return GapFill(points=landed, n_gaps=n_gaps, n_seeds=n_seeds, n_landed=len(landed),
                   rounds=n_rounds)

"""After the search: which end points are kept (outlier rule, roots and slow points only) and
which are one point (deduplication), with the options grouped in `PostProcessing`."""

import equinox as eqx
import numpy as np
from scipy.spatial import cKDTree

from .._validate import positive_number


class PostProcessing(eqx.Module):
    """What happens to the search's end points after both stages.

    Fields:
        outlier_distance_scale: drop points farther from the centroid of the initial states
            than this many times the initial states' mean distance to it (FixedPointFinder's
            rule, default 10; skipped when the initial states have no spread); None keeps all.
            Dropped points get the result code ``outlier``.
        exclude_unconverged: keep only roots and slow points (default). With False every
            finite end point is kept (speeds tell them apart).
        marginal_tol: |Re(lambda)| (continuous) or ||mu| - 1| (maps) at or below which a mode
            counts as marginal when the points are classified. Default 1e-8.

    Deduplication (points closer than ``tol_unique`` are one) is set by `find_fixed_points`'s
    ``tol_unique``.
    """

    outlier_distance_scale: float | None
    exclude_unconverged: bool
    marginal_tol: float

    def __init__(self, *, outlier_distance_scale: float | None = 10.0,
                 exclude_unconverged: bool = True, marginal_tol: float = 1e-8):
        self.outlier_distance_scale = positive_number(
            "outlier_distance_scale", outlier_distance_scale, allow_none=True)
        if not isinstance(exclude_unconverged, (bool, np.bool_)):
            raise TypeError(
                f"exclude_unconverged must be True or False, got {exclude_unconverged!r}")
        self.exclude_unconverged = bool(exclude_unconverged)
        self.marginal_tol = positive_number("marginal_tol", marginal_tol)

    def outliers(self, states: np.ndarray, initial_states: np.ndarray) -> np.ndarray:
        """[M] True where a row of ``states`` lies beyond the outlier distance of the initial
        states [K, N] (all False when the rule is off or the initial states have no spread)."""
        far = np.zeros(states.shape[0], bool)
        if self.outlier_distance_scale is None:
            return far
        centre = initial_states.mean(axis=0)
        avg = np.mean(np.linalg.norm(initial_states - centre, axis=1))
        # Initial states without spread (one state, or copies of one) give the rule no
        # scale: it is skipped rather than dropping every point that moved.
        if avg > 1e-12 * (1.0 + np.linalg.norm(centre)):
            dist = np.linalg.norm(states - centre, axis=1)
            far = ~(dist <= self.outlier_distance_scale * avg) & np.isfinite(dist)
        return far


def unique_indices(
    states: np.ndarray, order: np.ndarray, tol: float
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy deduplication: walk ``order`` and keep a state unless it lies within ``tol``
    (Euclidean) of one already kept (then it joins the nearest kept one). Returns (kept
    indices, for every state the kept index it was merged into; -1 for states not in order)."""
    states = np.asarray(states)
    order = np.asarray(order, dtype=int)
    owner = np.full(states.shape[0], -1)
    if order.size == 0:
        return np.zeros(0, dtype=int), owner
    # Exact copies (stage 2 gives every start captured by a root that root's point) follow
    # their first occurrence in the walk: the greedy rule treats them identically.
    _, first, inverse = np.unique(states[order], axis=0, return_index=True, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    lead = np.sort(first)  # positions in order of each distinct state's first occurrence
    walk = order[lead]
    # Candidate neighbours from a k-d tree (the greedy walk itself is unchanged); a state
    # with no other state within tol is kept without a walk step.
    if np.all(np.isfinite(states[walk])):
        pairs = cKDTree(states[walk]).query_ball_point(states[walk], tol)
    else:
        pairs = [range(walk.size)] * walk.size
    kept: list[int] = []
    is_kept = np.zeros(states.shape[0], bool)
    for pos, i in enumerate(walk):
        if len(pairs[pos]) > 1:
            near = [walk[p] for p in pairs[pos] if is_kept[walk[p]]]
            if near:
                d = np.linalg.norm(states[near] - states[i], axis=1)
                j = int(np.argmin(d))
                if d[j] <= tol:
                    owner[i] = near[j]
                    continue
        kept.append(int(i))
        is_kept[i] = True
        owner[i] = i
    # every position takes the owner of the first occurrence of its state
    lead_of = np.empty(first.size, dtype=int)
    lead_of[np.arange(first.size)] = order[first]
    owner[order] = owner[lead_of[inverse]]
    return np.asarray(kept, dtype=int), owner


def deduplicate(
    states: np.ndarray, speeds: np.ndarray, inputs: np.ndarray, keep: np.ndarray, tol: float
) -> tuple[np.ndarray, np.ndarray]:
    """Deduplicate the rows marked ``keep`` within groups of equal input, slowest first.

    Returns (the kept rows, ordered by speed then index; for every row the kept row it
    became, -1 for rows not marked)."""
    owner = np.full(states.shape[0], -1)
    idx = np.nonzero(keep)[0]
    kept: list[int] = []
    if idx.size:
        _, group = np.unique(inputs[idx], axis=0, return_inverse=True)
        group = np.asarray(group).reshape(-1)
        for g in np.unique(group):
            members = idx[group == g]
            order = members[np.argsort(speeds[members], kind="stable")]
            local_kept, local_owner = unique_indices(states, order, tol)
            kept.extend(local_kept.tolist())
            owner[members] = local_owner[members]
    kept = np.asarray(sorted(kept, key=lambda i: (speeds[i], i)), dtype=int)
    return kept, owner

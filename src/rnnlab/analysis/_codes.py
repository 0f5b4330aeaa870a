"""What became of every candidate of a fixed-point search: result codes and the record of the
search's end points (`Candidates`), kept on `FixedPoints` so nothing is silently lost."""

import enum

import equinox as eqx
import numpy as np
from jaxtyping import ArrayLike, Float, Int

from . import _solvers
from ._stages import PATH_LABELS


class Result(enum.IntEnum):
    """Result code of one end point of a fixed-point search (stored as int8; the label is the
    member's name).

    ``root``: |F| <= tol, kept as a point (``point`` is its index). ``slow``: not a root but
    |F| <= slow_tol: a slow point (its own or, after deduplication, the one it merged into).
    ``captured``: merged into a kept root (a duplicate of it: converged to the same root, or
    a slow end point within ``tol_unique`` of it). ``stalled``: stopped before its iteration
    cap without reaching tol (or slow_tol): no further progress, e.g. at a local minimum of
    |F|^2 that is no root, or where the Jacobian is singular. ``max_iters``: stopped at its
    iteration cap without reaching tol (or slow_tol). ``diverged``: its state or speed is not
    finite (the model overflowed on the way). ``outlier``: a root or slow point farther from
    the initial states than the outlier rule allows (dropped).
    """

    root = 0
    slow = 1
    captured = 2
    stalled = 3
    max_iters = 4
    diverged = 5
    outlier = 6


RESULT_LABELS = tuple(r.name for r in Result)
_RESULT_ARRAY = np.asarray(RESULT_LABELS, dtype=object)


class Candidates(eqx.Module):
    """Every end point of the search that produced a `FixedPoints` (``fps.candidates``), M rows.

    Rows ``0 .. K-1`` are the K initial states' main routes (descent, then polish), one per
    initial state in order, so ``fps.candidates.codes[:K]`` says what became of each
    candidate. Further rows, when the search made them: the polish started from each raw
    initial state (``path`` 1, with ``polish_initial``) and the descent's own end points (``path``
    2, kept as slow points with ``slow_tol``).

    Fields: ``states`` [M, N] (end state, float64, before the final refinement of kept roots);
    ``speeds`` [M] (|F| there); ``codes`` [M] (int8, `Result`; ``labels`` gives the names);
    ``point`` [M] (index of the `FixedPoints` point the row became or was merged into, -1 for
    none); ``initial`` [M] (index of its initial state); ``path`` [M] (0 main route, 1 polish
    from the initial state, 2 descent end point; `PATH_LABELS`); ``inputs`` [M, n_in];
    ``n_iters`` [M] (polish iterations); ``n_descent_iters`` [M].
    """

    # numpy arrays as `find_fixed_points` builds them (float64 states)
    states: Float[ArrayLike, "M N"]
    speeds: Float[ArrayLike, " M"]
    codes: Int[ArrayLike, " M"]
    point: Int[ArrayLike, " M"]
    initial: Int[ArrayLike, " M"]
    path: Int[ArrayLike, " M"]
    inputs: Float[ArrayLike, "M n_in"]
    n_iters: Int[ArrayLike, " M"]
    n_descent_iters: Int[ArrayLike, " M"]

    def __len__(self) -> int:
        return int(np.shape(self.codes)[0])

    @property
    def labels(self) -> tuple[str, ...]:
        """Result labels of the rows (`RESULT_LABELS`)."""
        return tuple(_RESULT_ARRAY[np.asarray(self.codes, np.int64)].tolist())

    @property
    def path_labels(self) -> tuple[str, ...]:
        return tuple(np.asarray(PATH_LABELS, dtype=object)[np.asarray(self.path, np.int64)])

    @property
    def n_initial(self) -> int:
        """Number of initial states the rows come from."""
        return int(np.max(self.initial)) + 1 if len(self) else 0

    def counts(self, path: int | None = 0) -> dict[str, int]:
        """{result label: number of rows} over the rows of ``path`` (default 0: one per
        initial state; None: every row), every label present (zeros included)."""
        codes = np.asarray(self.codes, np.int64)
        if path is not None:
            codes = codes[np.asarray(self.path) == path]
        n = np.bincount(codes, minlength=len(Result))
        return {lab: int(c) for lab, c in zip(RESULT_LABELS, n)}

    def remap(self, new_index: np.ndarray) -> "Candidates":
        """The record with ``point`` passed through ``new_index`` (old point -> new, -1 for a
        point not kept)."""
        point = np.asarray(self.point)
        mapped = np.where(point >= 0, np.asarray(new_index)[np.maximum(point, 0)], -1)
        return eqx.tree_at(lambda c: c.point, self, mapped.astype(np.int64))

    @classmethod
    def concatenate(cls, parts, point_offsets) -> "Candidates":
        """Join records; each part's ``point`` is shifted by its offset and ``initial`` by the
        number of initial states before it."""
        fields = {f: [] for f in _FIELDS}
        n_init = 0
        for c, off in zip(parts, point_offsets):
            for f in _FIELDS:
                a = np.asarray(getattr(c, f))
                if f == "point":
                    a = np.where(a >= 0, a + off, -1)
                elif f == "initial":
                    a = a + n_init
                fields[f].append(a)
            n_init += c.n_initial
        return cls(**{f: np.concatenate(v) for f, v in fields.items()})

    def to_tensors(self, prefix: str) -> dict[str, np.ndarray]:
        return {prefix + f: np.ascontiguousarray(np.asarray(getattr(self, f)))
                for f in _FIELDS}

    @classmethod
    def from_tensors(cls, tensors: dict, prefix: str) -> "Candidates | None":
        if prefix + "codes" not in tensors:
            return None
        return cls(**{f: np.asarray(tensors[prefix + f]) for f in _FIELDS})


_FIELDS = ("states", "speeds", "codes", "point", "initial", "path", "inputs", "n_iters",
           "n_descent_iters")


def result_codes(
    *, finite: np.ndarray, converged: np.ndarray, slow: np.ndarray, wanted: np.ndarray,
    far: np.ndarray, owner: np.ndarray, reasons: np.ndarray,
) -> np.ndarray:
    """int8 `Result` code of every end point [M] from: ``finite`` (state and speed finite),
    ``converged`` (|F| <= tol), ``slow`` (|F| <= slow_tol), ``wanted`` (would be kept but for
    the outlier rule), ``far`` (beyond the outlier distance), ``owner`` (the kept row it
    became, -1 for none) and ``reasons`` (why its last stage stopped, ``_solvers.STOP_*``)."""
    m = owner.shape[0]
    rows = np.arange(m)
    has = owner >= 0
    merged = has & (owner != rows)
    into_root = np.zeros(m, bool)
    into_root[has] = converged[owner[has]]
    unfinished = np.where(reasons == _solvers.STOP_MAX_ITERS, Result.max_iters, Result.stalled)
    code = np.where(
        ~finite, Result.diverged,
        np.where(wanted & far, Result.outlier,
                 np.where(merged & into_root, Result.captured,
                          np.where(converged, Result.root,
                                   np.where(slow, Result.slow, unfinished)))))
    return code.astype(np.int8)

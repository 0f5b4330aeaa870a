"""Fixed and slow points of recurrent networks: the public entry points `find_fixed_points` and
`tolerance_sweep`.

The work is split by job: `_stages` (the solver objects: descent, polish, both), `_solvers` (their
numerics), `_selection` (outliers, deduplication, post-processing options), `_codes` (result
codes and the candidate record), `_classify` (stability codes and labels), `_linear` (the one
linearisation, shared with `linearize`), `_points` (the `FixedPoints` container).
"""

import warnings
from collections.abc import Sequence

import jax
import numpy as np
from jaxtyping import ArrayLike

from .._validate import positive_number
from ..models._base import AbstractRNN
from . import _solvers
from ._classify import ROOT_LABELS as ROOT_LABELS
from ._classify import STABILITY_LABELS as STABILITY_LABELS
from ._classify import Stability as Stability
from ._classify import classify as classify
from ._classify import stability_view_name as stability_view_name
from ._classify import stability_views as stability_views
from ._codes import Candidates, result_codes
from ._codes import Result as Result
from ._linear import check_model
from ._linear import eigendecompose as eigendecompose
from ._linear import map_scale as map_scale
from ._linear import to_float64 as to_float64
from ._points import FixedPoints as FixedPoints
from ._points import assemble
from ._selection import PostProcessing, deduplicate
from ._selection import unique_indices as unique_indices
from ._stages import PATH_MAIN, AdamDescent, FixedPointSolver, NewtonPolish

# Names older code imported from here.
_check_model = check_model
_assemble = assemble


def _as_float_array(value, name: str) -> np.ndarray:
    if value is None:
        raise TypeError(f"{name} must be an array of numbers, got None")
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be an array of numbers, got {type(value).__name__}"
        ) from None


def _as_inputs(model, inputs, k: int, name: str = "inputs") -> np.ndarray:
    u = _as_float_array(inputs, name)
    if u.ndim == 0:
        u = np.full((model.n_in,), float(u))
    if u.ndim == 1:
        if u.shape[0] != model.n_in:
            raise ValueError(
                f"{name} must have n_in={model.n_in} entries (or shape [K, {model.n_in}]), "
                f"got shape {u.shape}"
            )
        u = np.broadcast_to(u, (k, model.n_in))
    elif u.ndim == 2:
        if u.shape != (k, model.n_in):
            raise ValueError(
                f"{name} must have shape ({model.n_in},) or ({k}, {model.n_in}) (one per "
                f"initial state), got {u.shape}"
            )
    else:
        raise ValueError(f"{name} must be a vector [n_in] or a matrix [K, n_in], got {u.shape}")
    if not np.all(np.isfinite(u)):
        raise ValueError(f"{name} contains NaN or inf")
    return np.ascontiguousarray(u)


def _as_states(model, states, name: str = "initial_states") -> np.ndarray:
    x = _as_float_array(states, name)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != model.state_size or x.shape[0] < 1:
        raise ValueError(
            f"{name} must have shape [K, {model.state_size}] (K >= 1), got {np.shape(states)}"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or inf")
    return x


# The keywords of the flat signature before the options were grouped: keyword -> (object,
# field). Still accepted (mapped onto the objects) with a DeprecationWarning.
_DEPRECATED = {
    "tol_q": ("descent", "tol_q"),
    "tol_dq": ("descent", "tol_dq"),
    "max_iters": ("descent", "max_iters"),
    "learning_rate": ("descent", "learning_rate"),
    "handoff_speed": ("descent", "handoff_speed"),
    "newton_iters": ("polish", "max_iters"),
    "polish_initial": ("polish", "polish_initial"),
    "cluster_radius": ("polish", "cluster_radius"),
    "outlier_distance_scale": ("post", "outlier_distance_scale"),
    "marginal_tol": ("post", "marginal_tol"),
    "exclude_unconverged": ("post", "exclude_unconverged"),
}
_OBJECTS = {"descent": ("solver", "FixedPointSolver(descent=AdamDescent({}=...))"),
            "polish": ("solver", "FixedPointSolver(polish=NewtonPolish({}=...))"),
            "post": ("post", "PostProcessing({}=...)")}


def _options(solver, post, old: dict) -> tuple[FixedPointSolver, PostProcessing]:
    unknown = sorted(set(old) - set(_DEPRECATED))
    if unknown:
        raise TypeError(f"find_fixed_points() got an unexpected keyword argument {unknown[0]!r}")
    if solver is not None and not isinstance(solver, FixedPointSolver):
        raise TypeError(f"solver must be a FixedPointSolver, got {type(solver).__name__}")
    if post is not None and not isinstance(post, PostProcessing):
        raise TypeError(f"post must be a PostProcessing, got {type(post).__name__}")
    groups: dict[str, dict] = {"descent": {}, "polish": {}, "post": {}}
    for name, value in old.items():
        obj, field = _DEPRECATED[name]
        groups[obj][field] = value
    for obj, given in (("descent", solver), ("polish", solver), ("post", post)):
        if groups[obj] and given is not None:
            names = sorted(k for k, (o, _) in _DEPRECATED.items() if o == obj and k in old)
            raise TypeError(
                f"{', '.join(names)} cannot be combined with {_OBJECTS[obj][0]}=: set "
                f"{'it' if len(names) == 1 else 'them'} on the {_OBJECTS[obj][0]} object"
            )
    # Build the objects first (a bad value is a ValueError naming the keyword), then warn.
    if solver is None:
        solver = FixedPointSolver(descent=AdamDescent(**groups["descent"]),
                                  polish=NewtonPolish(**groups["polish"]))
    if post is None:
        post = PostProcessing(**groups["post"])
    for name in old:
        obj, field = _DEPRECATED[name]
        warnings.warn(
            f"find_fixed_points({name}=...) is deprecated: pass "
            f"{_OBJECTS[obj][0]}={_OBJECTS[obj][1].format(field)}",
            DeprecationWarning, stacklevel=3,
        )
    return solver, post


def find_fixed_points(
    model: AbstractRNN,
    inputs: ArrayLike,
    initial_states: ArrayLike,
    *,
    solver: FixedPointSolver | None = None,
    post: PostProcessing | None = None,
    tol: float = 1e-10,
    slow_tol: float | None = None,
    tol_unique: float = 1e-3,
    **deprecated,
) -> FixedPoints:
    """Find the fixed points (and, on request, slow points) of ``model`` at constant input.

    The object is the model's `vector_field` F: dx/dt for continuous-time models (a CT-RNN's
    ``(-x + W f(x) + W_in u + b) / tau``, per unit time of ``dt``), ``step(h) - h`` for maps, so
    every model family goes through the same code.

    The search is ``solver`` (default `FixedPointSolver()`): stage 1, `AdamDescent`
    (FixedPointFinder's algorithm and defaults, float32, jitted, all candidates at once, on
    q = 1/2 |s F|^2 with s = dt for continuous-time models: the Euler-map residual that
    FixedPointFinder minimises), hands each candidate over once its speed is below the
    hand-off level; stage 2, `NewtonPolish` (safeguarded Newton, then Levenberg-Marquardt,
    float64 inside ``jax.enable_x64``; the caller's global config is untouched), polishes the
    stage-1 points and (by default) the initial states themselves to ``|F| <= tol``; most of
    them are captured by roots found from other starts rather than iterated. Then
    (``post``, default `PostProcessing()`): slow points (with ``slow_tol``), exclusion of
    outliers, deduplication, ordering by speed, a last Newton step at each unique root,
    linearisation (`linear_terms`, the computation `linearize` uses), eigen-decomposition
    (numpy, float64) of the unique points only, stability.

    Every end point of the search gets a result code (`Result`: root, slow, captured,
    stalled, max_iters, diverged, outlier), kept with the index of the point it became in
    ``fps.candidates`` (rows ``0 .. K-1``: one per initial state).

    Args:
        model: any rnnlab model.
        inputs: the constant input u*, [n_in] (shared) or [K, n_in] (one per initial state).
        initial_states: candidates [K, state_size], e.g. from `sample_states`.
        solver: a `FixedPointSolver` (its stages' options: `AdamDescent`, `NewtonPolish`).
        post: a `PostProcessing` (outlier rule, whether unconverged points are kept, the
            marginal band of the classification).
        tol: speed |F| at which a point counts as a root (converged). Default 1e-10.
        slow_tol: also keep slow points, candidates whose speed is at most ``slow_tol`` without
            being roots; stage 1 then stops each candidate as soon as it is that slow, so slow
            points spread along line and ring attractors (the polished roots are kept too).
        tol_unique: points closer than this (Euclidean) are one point. Default 1e-3.
        **deprecated: the options of the flat signature before they were grouped, each
            mapped onto its object with a DeprecationWarning: ``tol_q``, ``tol_dq``,
            ``max_iters``, ``learning_rate``, ``handoff_speed`` (`AdamDescent`);
            ``newton_iters`` (`NewtonPolish` ``max_iters``), ``polish_initial``,
            ``cluster_radius`` (`NewtonPolish`); ``outlier_distance_scale``,
            ``marginal_tol``, ``exclude_unconverged`` (`PostProcessing`).

    Returns: a `FixedPoints`, slowest first, with the candidate record.

    Example::

        fps = find_fixed_points(
            model, u, x0, tol=1e-10,
            solver=FixedPointSolver(descent=AdamDescent(learning_rate=0.1)),
            post=PostProcessing(outlier_distance_scale=None),
        )
        fps.candidates.counts()  # {"root": 3, "captured": 1010, ..., "diverged": 0, ...}
    """
    check_model(model)
    x0 = _as_states(model, initial_states)
    k = x0.shape[0]
    u = _as_inputs(model, inputs, k)
    tol = positive_number("tol", tol)
    slow_tol = positive_number("slow_tol", slow_tol, allow_none=True)
    if slow_tol is not None and slow_tol < tol:
        raise ValueError(f"slow_tol ({slow_tol}) must be >= tol ({tol})")
    tol_unique = positive_number("tol_unique", tol_unique)
    solver, post = _options(solver, post, deprecated)
    # A candidate that overflows (or meets NaN) is reported with the code "diverged", not
    # warned about on the way.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        found = solver.search(model, x0, u, tol=tol, slow_tol=slow_tol, tol_unique=tol_unique)
        return _select(model, found, x0, post, tol=tol, slow_tol=slow_tol,
                       tol_unique=tol_unique)


def _select(model, found, x0, post: PostProcessing, *, tol, slow_tol, tol_unique):
    """The `FixedPoints` of the search's end points: outliers, deduplication, codes,
    refinement of the unique roots, linearisation."""
    xs, sp, cv, us = found.states, found.speeds, found.converged, found.inputs
    finite = np.isfinite(sp) & np.all(np.isfinite(xs), axis=1)
    level = slow_tol if slow_tol is not None else tol
    below = finite & (sp <= level)
    slow = below & ~cv if slow_tol is not None else np.zeros_like(cv)
    wanted = finite & (cv | below) if post.exclude_unconverged else finite
    far = post.outliers(xs, x0)
    kept, owner = deduplicate(xs, sp, us, wanted & ~far, tol_unique)
    # counts: each initial state once, by its main route
    main = np.nonzero((found.path == PATH_MAIN) & (owner >= 0))[0]
    counts = np.bincount(owner[main], minlength=xs.shape[0])
    rank = np.full(xs.shape[0], -1)
    rank[kept] = np.arange(kept.size)
    candidates = Candidates(
        states=xs, speeds=sp,
        codes=result_codes(finite=finite, converged=cv, slow=slow, wanted=wanted, far=far,
                           owner=owner, reasons=found.reasons),
        point=np.where(owner >= 0, rank[np.maximum(owner, 0)], -1).astype(np.int64),
        initial=np.asarray(found.initial, np.int64), path=np.asarray(found.path, np.int8),
        inputs=us, n_iters=np.asarray(found.n_iters, np.int64),
        n_descent_iters=np.asarray(found.n_descent_iters, np.int64),
    )
    states = xs[kept].copy()
    roots = np.nonzero(cv[kept])[0]
    if roots.size:  # one more Newton step at each unique root: |F| to round-off
        with jax.enable_x64(True):
            states[roots] = _solvers.refine(
                to_float64(model), states[roots], us[kept][roots], map_scale(model)
            )
    fps = assemble(
        model, states, us[kept], sp[kept], cv[kept], found.n_iters[kept],
        found.n_descent_iters[kept], counts[kept], post.marginal_tol, candidates=candidates,
    )
    if roots.size:  # the refined speeds may reorder points at round-off level
        fps = fps[np.argsort(np.asarray(fps.speeds), kind="stable")]
    return fps


def tolerance_sweep(
    model: AbstractRNN,
    inputs: ArrayLike,
    initial_states: ArrayLike,
    tolerances: Sequence[float],
    **kwargs,
) -> dict[float, FixedPoints]:
    """Fixed and slow points at several speed tolerances in one call.

    Returns ``{tol: find_fixed_points(..., slow_tol=tol)}`` for each tolerance (loose
    tolerances reveal slow points along line and ring attractors; tight ones only the roots).
    Each level is its own search: stage 1 stops a candidate as soon as its speed is below the
    level's ``slow_tol``, so the slow points of a tight level are not a subset of a loose
    level's (filtering one loose search by speed would leave tight levels nearly empty: on a
    line attractor the loose search stops every candidate at the loose speed). Compilation is
    shared, so the later levels cost only their iterations. A tolerance below ``tol`` (default
    1e-10) keeps only roots. Keyword arguments are those of `find_fixed_points` (not
    ``slow_tol``).
    """
    if isinstance(tolerances, (str, bytes)) or np.ndim(tolerances) != 1:
        raise TypeError(
            f"tolerances must be a sequence of positive numbers, got {type(tolerances).__name__}"
        )
    tols = [positive_number("tolerances", t) for t in tolerances]
    if not tols:
        raise ValueError("tolerances must hold at least one positive number")
    if "slow_tol" in kwargs:
        raise TypeError("tolerance_sweep sets slow_tol itself (one level per tolerance)")
    tol = kwargs.get("tol", 1e-10)
    out = {}
    for t in tols:
        level = max(t, tol) if isinstance(tol, (int, float)) else t
        out[t] = find_fixed_points(
            model, inputs, initial_states, slow_tol=level, **kwargs
        ).with_speed_below(t)
    return out

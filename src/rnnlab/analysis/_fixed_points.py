"""Fixed and slow points of recurrent networks: search, linearisation, stability."""

import os
from collections import Counter
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Complex, Float, Int
from scipy.spatial import cKDTree

from ..io._safe import read_safetensors, write_safetensors
from ..models._base import AbstractRNN
from . import _solvers

STABILITY_LABELS = ("stable", "saddle", "unstable", "marginal", "slow")
# The labels a root can have (a point that is not a root is "slow").
ROOT_LABELS = STABILITY_LABELS[:4]


# --------------------------------------------------------------------------------- helpers


def to_float64(model: AbstractRNN) -> AbstractRNN:
    """``model`` with every floating-point array leaf cast to float64.

    Call it inside ``jax.enable_x64(True)``; outside that context JAX would silently keep float32.
    """
    # Cast on the host and transfer: an eager astype compiles one small program per leaf shape.
    return jax.tree.map(
        lambda a: jnp.asarray(np.asarray(a, np.float64)) if eqx.is_inexact_array(a) else a,
        model,
    )


def map_scale(model: AbstractRNN) -> float:
    """``dt`` for continuous-time models (F scaled to the Euler-map residual), 1 for maps."""
    if model.is_continuous:
        dt = getattr(model, "dt", None)
        return float(dt) if dt is not None else 1.0
    return 1.0


def _check_model(model) -> None:
    if not isinstance(model, AbstractRNN):
        raise TypeError(
            f"model must be an rnnlab model (AbstractRNN), got {type(model).__name__}"
        )


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


def _positive(name, value, *, allow_none=False):
    if value is None and allow_none:
        return None
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if not ok or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


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


def classify(
    eigenvalues: np.ndarray, is_continuous: bool, marginal_tol: float
) -> tuple[np.ndarray, list[str]]:
    """Unstable-mode counts and stability labels from eigenvalues [K, N].

    Continuous time: a mode is unstable when Re(lambda) > marginal_tol, marginal when
    |Re(lambda)| <= marginal_tol. Maps: unstable when |mu| > 1 + marginal_tol, marginal when
    ||mu| - 1| <= marginal_tol. Labels: ``stable`` (every mode decays), ``saddle`` (some but not
    all modes unstable), ``unstable`` (all unstable), ``marginal`` (none unstable, some marginal).
    """
    growth = eigenvalues.real if is_continuous else np.abs(eigenvalues) - 1.0
    n_unstable = np.sum(growth > marginal_tol, axis=-1).astype(np.int64)
    n_marginal = np.sum(np.abs(growth) <= marginal_tol, axis=-1)
    n = eigenvalues.shape[-1]
    labels = []
    for nu, nm in zip(n_unstable, n_marginal):
        if nu == n:
            labels.append("unstable")
        elif nu > 0:
            labels.append("saddle")
        elif nm > 0:
            labels.append("marginal")
        else:
            labels.append("stable")
    return n_unstable, labels


def stability_views(
    eigenvalues: np.ndarray,
    converged: np.ndarray,
    *,
    is_continuous: bool,
    dt: float | None,
    marginal_tol: float,
) -> dict[str, Any]:
    """The stability of the system that runs and of the ODE, from eigenvalues [K, N].

    The system that runs is the Euler map ``x -> x + dt F(x)`` for a continuous-time model
    with a ``dt`` (multipliers ``mu = 1 + dt lambda``, marginal band ``dt * marginal_tol`` on
    ``|mu| - 1``), the ODE itself for a continuous-time model without ``dt``, and the map for
    discrete-time models. Points that are not converged get the label ``"slow"`` (their
    eigenvalues describe no equilibrium); their unstable-mode counts are kept.

    Returns a dict with ``n_unstable`` [K], ``stability`` (K labels), ``ode_n_unstable``,
    ``ode_stability`` and ``views_differ`` [K] (roots whose ODE label or unstable count
    differs from the simulated system's).
    """
    lam = np.asarray(eigenvalues)
    conv = np.asarray(converged, bool)
    if is_continuous:
        ode_nu, ode_lab = classify(lam, True, marginal_tol)
        if dt is not None:
            nu, lab = classify(1.0 + dt * lam, False, dt * marginal_tol)
        else:
            nu, lab = ode_nu, ode_lab
    else:
        nu, lab = classify(lam, False, marginal_tol)
        ode_nu, ode_lab = nu, lab
    differ = conv & ((np.asarray(ode_nu) != np.asarray(nu))
                     | (np.asarray(ode_lab, dtype=object) != np.asarray(lab, dtype=object)))

    def mark(labels):
        return tuple(s if c else "slow" for s, c in zip(labels, conv))

    return {
        "n_unstable": np.asarray(nu, np.int64),
        "stability": mark(lab),
        "ode_n_unstable": np.asarray(ode_nu, np.int64),
        "ode_stability": mark(ode_lab),
        "views_differ": np.asarray(differ, bool).reshape(conv.shape),
    }


def eigendecompose(jacobians: np.ndarray):
    """Eigenvalues sorted by real part (largest first), right eigenvectors (columns) and left
    eigenvectors (rows of the inverse of the right ones, so ``L @ R = I``), complex128."""
    k, n = jacobians.shape[0], jacobians.shape[-1]
    vals = np.zeros((k, n), np.complex128)
    right = np.zeros((k, n, n), np.complex128)
    left = np.zeros((k, n, n), np.complex128)
    # One BLAS thread per problem: OpenBLAS threading makes many small eigenproblems 10x
    # slower on a busy few-core machine (measured); independent problems run in parallel
    # threads instead (LAPACK releases the GIL).

    def run(rows):
        for i in rows:
            vals[i], right[i], left[i] = _eig_one(jacobians[i])

    with _solvers.one_blas_thread():
        _solvers.parallel_rows(run, k)
    return vals, right, left


def _eig_one(jac):
    w, r = np.linalg.eig(jac)
    order = np.lexsort((-w.imag, -w.real))
    w, r = w[order], r[:, order]
    try:
        lft = np.linalg.inv(r)
    except np.linalg.LinAlgError:  # defective matrix: best effort
        lft = np.linalg.pinv(r)
    return w, r, lft


_POINT_BLOCK = 16


@eqx.filter_jit
def _point_quantities(model, xs, us):
    def one(x, u):
        f = model.vector_field(x, u)
        jac = model.jacobian(x, u)
        jin = model.input_jacobian(x, u)
        if not model.is_continuous:  # the map h -> h + F(h): report its Jacobians
            jac = jac + jnp.eye(jac.shape[0], dtype=jac.dtype)
        return f, jac, jin, model.readout(x)

    return jax.vmap(one)(xs, us)


# --------------------------------------------------------------------------------- FixedPoints


class FixedPoints(eqx.Module):
    """Fixed (and optionally slow) points of one network, with their linearisation.

    Array fields (K points, N = state size, float64 / complex128):
        states [K, N]; speeds [K] = |F(x*)| (for a CT-RNN in state units per time unit of ``dt``,
        i.e. 1/ms); q [K] = 1/2 speeds^2; converged [K] (speed <= the search's ``tol``: a
        root; the others are slow points);
        n_iters [K] (Newton/LM iterations) and n_adam_iters [K] (stage-1 iterations);
        counts [K] (how many initial states' polished stage-1 end points merged into the
        point: a basin-size estimate);
        inputs [K, n_in]; outputs [K, n_out] (readout at the point);
        jacobians [K, N, N]: dF/dx for continuous-time models, the map Jacobian dG/dh for maps;
        input_jacobians [K, N, n_in]: dF/du;
        eigenvalues [K, N] of ``jacobians``, sorted by real part, largest first;
        right_eigenvectors [K, N, N] (columns, ``J R = R diag(lambda)``);
        left_eigenvectors [K, N, N] (rows, ``L J = diag(lambda) L``, ``L R = I``);
        n_unstable [K], ode_n_unstable [K], views_differ [K] (see below).
    Static fields: ``stability`` and ``ode_stability`` (K labels each, among
    `STABILITY_LABELS`), ``is_continuous``, ``dt`` (the model's Euler step, or None),
    ``marginal_tol``.

    Three views of stability:

    - ``stability`` / ``n_unstable``: the **system that runs**. A CT-RNN with a ``dt`` is
      trained and simulated as its Euler map ``x -> x + dt F(x)``, so a mode with eigenvalue
      lambda is stable iff ``|1 + dt lambda| < 1`` (a disc of radius ``1/dt`` around
      ``-1/dt``, not the half-plane Re lambda < 0); marginal when ``||mu| - 1| <= dt *
      marginal_tol``. A continuous-time model without ``dt`` is labelled by its ODE; maps
      (GRU, LSTM, vanilla, ESN) by ``|mu|`` of the map Jacobian. Labels of roots: ``stable``
      (every mode decays), ``saddle`` (some modes unstable), ``unstable`` (all),
      ``marginal`` (none unstable, some marginal); a point that is not converged is
      ``"slow"`` (it is no equilibrium, whatever its eigenvalues). ``n_unstable`` counts the
      unstable modes of every point, slow ones included.
    - ``ode_stability`` / ``ode_n_unstable``: the ODE ``dx/dt = F(x)`` (Re lambda vs
      ``marginal_tol``), what a finely integrated network would do; equal to ``stability``
      / ``n_unstable`` for maps and for models without ``dt``.
    - `map_stability`: the Euler map's (or map's) labels from the eigenvalues of *every*
      point, slow points included (no ``"slow"`` label).

    ``views_differ[i]`` is True for a root whose ODE label or unstable count differs from
    the simulated system's: the network's function there depends on its step size.

    Points are ordered by speed (slowest first). `map_eigenvalues` gives ``mu = 1 + dt lambda``
    (the Euler map's view of a continuous-time model), `time_constants` the decay time of each
    mode.
    """

    states: Float[Array, "K N"]
    speeds: Float[Array, " K"]
    q: Float[Array, " K"]
    converged: Bool[Array, " K"]
    n_iters: Int[Array, " K"]
    n_adam_iters: Int[Array, " K"]
    counts: Int[Array, " K"]
    inputs: Float[Array, "K n_in"]
    outputs: Float[Array, "K n_out"]
    jacobians: Float[Array, "K N N"]
    input_jacobians: Float[Array, "K N n_in"]
    eigenvalues: Complex[Array, "K N"]
    right_eigenvectors: Complex[Array, "K N N"]
    left_eigenvectors: Complex[Array, "K N N"]
    n_unstable: Int[Array, " K"]
    ode_n_unstable: Int[Array, " K"]
    views_differ: Bool[Array, " K"]
    stability: tuple[str, ...] = eqx.field(static=True)
    ode_stability: tuple[str, ...] = eqx.field(static=True)
    is_continuous: bool = eqx.field(static=True)
    dt: float | None = eqx.field(static=True)
    marginal_tol: float = eqx.field(static=True)

    def __len__(self) -> int:
        return int(self.states.shape[0])

    @property
    def n_states(self) -> int:
        return int(self.states.shape[1])

    @property
    def map_eigenvalues(self) -> Complex[Array, "K N"]:
        """Eigenvalues of the discrete map: for a continuous-time model with Euler step ``dt``,
        ``mu = 1 + dt * lambda`` (with scalar tau, ``1 + alpha * lambda'``, lambda' of tau J);
        for maps, `eigenvalues` themselves."""
        if not self.is_continuous:
            return self.eigenvalues
        if self.dt is None:
            raise ValueError("this model has no dt, so it has no Euler map")
        return 1.0 + self.dt * self.eigenvalues

    @property
    def map_stability(self) -> tuple[str, ...]:
        """Stability labels of the Euler map (|mu| < 1), the discrete view FixedPointFinder uses,
        for every point from its eigenvalues (slow points included: no ``"slow"`` label).

        For a continuous-time model the marginal band is ``dt * marginal_tol`` on ``|mu| - 1``
        (``|1 + dt lambda| - 1 ~ dt Re(lambda)``), so a mode that the ODE view calls marginal
        is marginal here too rather than unstable or stable by the change of units alone. For
        roots of a model with ``dt`` (or of a map) these are the labels of `stability`."""
        tol = self.marginal_tol * (self.dt if self.is_continuous else 1.0)
        _, labels = classify(np.asarray(self.map_eigenvalues), False, tol)
        return tuple(labels)

    @property
    def time_constants(self) -> Float[Array, "K N"]:
        """Per-mode time constants: ``-1 / Re(lambda)`` (time units) for continuous-time models,
        ``-1 / log|mu|`` (steps) for maps. Positive: decay time; negative: growth time."""
        with np.errstate(divide="ignore"):
            if self.is_continuous:
                return -1.0 / np.asarray(self.eigenvalues).real
            return -1.0 / np.log(np.abs(np.asarray(self.eigenvalues)))

    @property
    def stability_view(self) -> str:
        """Which system `stability` describes: ``"Euler map, dt=10 ms"``, ``"ODE"`` or
        ``"map"``."""
        return stability_view_name(self.is_continuous, self.dt)

    def summary(self) -> dict[str, Any]:
        """Counts: ``n_points``; ``stable``, ``saddle``, ``unstable``, ``marginal`` (roots only,
        labels of the system that runs); ``slow`` (points that are not roots);
        ``saddles_by_index`` ({number of unstable modes: count of saddle roots});
        ``converged`` (roots); ``max_speed``; ``is_continuous``; ``views_differ`` (roots whose
        ODE label or unstable count differs); ``ode`` ({stable, saddle, unstable, marginal} of
        the roots in the ODE view); ``stability_view`` (see `stability_view`)."""
        labels = Counter(self.stability)
        ode = Counter(self.ode_stability)
        by_index = Counter(
            int(n) for n, s in zip(np.asarray(self.n_unstable), self.stability) if s == "saddle"
        )
        conv = np.asarray(self.converged, bool)
        return {
            "n_points": len(self),
            **{lab: labels.get(lab, 0) for lab in ROOT_LABELS},
            "slow": int((~conv).sum()),
            "saddles_by_index": {str(k): v for k, v in sorted(by_index.items())},
            "converged": int(conv.sum()),
            "max_speed": float(np.max(np.asarray(self.speeds))) if len(self) else 0.0,
            "is_continuous": self.is_continuous,
            "views_differ": int(np.sum(np.asarray(self.views_differ, bool))),
            "ode": {lab: ode.get(lab, 0) for lab in ROOT_LABELS},
            "stability_view": self.stability_view,
        }

    def __getitem__(self, index) -> "FixedPoints":
        """Select points (an integer array, a boolean mask or a slice)."""
        idx = np.arange(len(self))[index]
        idx = np.atleast_1d(idx)
        arrays = {
            f: np.asarray(getattr(self, f))[idx] for f in _ARRAY_FIELDS
        }
        return FixedPoints(
            **arrays,
            stability=tuple(self.stability[i] for i in idx),
            ode_stability=tuple(self.ode_stability[i] for i in idx),
            is_continuous=self.is_continuous, dt=self.dt, marginal_tol=self.marginal_tol,
        )

    def with_speed_below(self, tol: float) -> "FixedPoints":
        """The points whose speed |F| is at most ``tol`` (one level of a tolerance sweep)."""
        tol = _positive("tol", tol)
        return self[np.asarray(self.speeds) <= tol]

    @classmethod
    def concatenate(cls, parts: Sequence["FixedPoints"]) -> "FixedPoints":
        """Join results of searches at several inputs into one (same model)."""
        parts = list(parts)
        if not parts:
            raise ValueError("parts must hold at least one FixedPoints")
        for p in parts:
            if not isinstance(p, FixedPoints):
                raise TypeError(f"parts must hold FixedPoints, got {type(p).__name__}")
        first = parts[0]

        def kind(p):
            return (p.is_continuous, p.dt, p.n_states, np.shape(p.inputs)[1],
                    np.shape(p.outputs)[1])

        for p in parts[1:]:
            if kind(p) != kind(first):
                raise ValueError("cannot concatenate fixed points of different models")
            # the labels were computed with each part's own marginal band
            if p.marginal_tol != first.marginal_tol:
                raise ValueError(
                    f"cannot concatenate fixed points classified with different marginal_tol "
                    f"({first.marginal_tol} and {p.marginal_tol})"
                )
        arrays = {
            f: np.concatenate([np.asarray(getattr(p, f)) for p in parts])
            for f in _ARRAY_FIELDS
        }
        return cls(
            **arrays, stability=tuple(s for p in parts for s in p.stability),
            ode_stability=tuple(s for p in parts for s in p.ode_stability),
            is_continuous=first.is_continuous, dt=first.dt, marginal_tol=first.marginal_tol,
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write to one ``.safetensors`` file (arrays; labels and flags as JSON metadata),
        atomically and checksummed. Complex arrays are stored as real and imaginary parts."""
        tensors = {}
        for f in _ARRAY_FIELDS:
            a = np.asarray(getattr(self, f))
            if np.iscomplexobj(a):
                tensors[f + ".real"] = np.ascontiguousarray(a.real)
                tensors[f + ".imag"] = np.ascontiguousarray(a.imag)
            else:
                tensors[f] = a.astype(np.uint8) if a.dtype == bool else a
        meta = {
            "kind": "fixed_points",
            # 2: stability of the system that runs, slow points labelled "slow", ODE view
            # stored beside it (version 1 files held the ODE labels of continuous models).
            "labels_version": 2,
            "stability": list(self.stability),
            "ode_stability": list(self.ode_stability),
            "is_continuous": self.is_continuous,
            "dt": self.dt,
            "marginal_tol": self.marginal_tol,
            "n_points": len(self),
        }
        write_safetensors(path, tensors, meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FixedPoints":
        """Read a file written by `save` (checksum verified). Files written before the labels
        described the system that runs (no ``labels_version``) get every label and count
        recomputed from their eigenvalues, ``dt``, ``marginal_tol`` and ``converged``."""
        tensors, meta = read_safetensors(path, kind="fixed_points")
        is_continuous = bool(meta["is_continuous"])
        dt, marginal_tol = meta["dt"], float(meta["marginal_tol"])
        arrays = {}
        for f in _ARRAY_FIELDS:
            if f in _LABEL_ARRAYS and meta.get("labels_version", 1) < 2:
                continue
            if f in tensors:
                a = tensors[f]
            elif f + ".real" in tensors:
                a = tensors[f + ".real"] + 1j * tensors[f + ".imag"]
            else:
                raise ValueError(f"{path}: missing array {f!r}")
            if f in ("converged", "views_differ"):
                a = a.astype(bool)
            arrays[f] = a
        if meta.get("labels_version", 1) < 2:
            views = stability_views(arrays["eigenvalues"], arrays["converged"],
                                    is_continuous=is_continuous, dt=dt,
                                    marginal_tol=marginal_tol)
            arrays.update({f: views[f] for f in _LABEL_ARRAYS})
            labels, ode_labels = views["stability"], views["ode_stability"]
        else:
            labels, ode_labels = tuple(meta["stability"]), tuple(meta["ode_stability"])
        # Keep float64 / complex128 as stored (jnp would truncate them without x64).
        return cls(
            **arrays, stability=labels, ode_stability=ode_labels, is_continuous=is_continuous,
            dt=dt, marginal_tol=marginal_tol,
        )

    def __repr__(self) -> str:
        s = self.summary()
        differ = f", {s['views_differ']} differ from the ODE" if s["views_differ"] else ""
        return (
            f"FixedPoints({s['n_points']} points: {s['stable']} stable, {s['saddle']} saddle, "
            f"{s['unstable']} unstable, {s['marginal']} marginal, {s['slow']} slow; "
            f"stability of the {s['stability_view']}{differ})"
        )


def stability_view_name(is_continuous: bool, dt: float | None) -> str:
    """``"Euler map, dt=10 ms"`` (continuous time with ``dt``), ``"ODE"`` or ``"map"``."""
    if not is_continuous:
        return "map"
    if dt is None:
        return "ODE"
    return f"Euler map, dt={float(dt):g} ms"


# the arrays derived from the eigenvalues (recomputed when an old file is loaded)
_LABEL_ARRAYS = ("n_unstable", "ode_n_unstable", "views_differ")
_ARRAY_FIELDS = (
    "states", "speeds", "q", "converged", "n_iters", "n_adam_iters", "counts", "inputs",
    "outputs", "jacobians", "input_jacobians", "eigenvalues", "right_eigenvectors",
    "left_eigenvectors", *_LABEL_ARRAYS,
)


# --------------------------------------------------------------------------------- search


def _search(
    model, x0, u, *, tol, slow_tol, tol_q, tol_dq, max_iters, handoff_speed, newton_iters,
    tol_unique, polish_initial, cluster_radius, learning_rate=1.0,
):
    """Both stages. Returns pooled end points (states, speeds, converged, stage-1 and stage-2
    iteration counts, inputs): the polished stage-1 points, the polished initial states (with
    ``polish_initial``) and, with ``slow_tol``, the stage-1 points themselves."""
    k = x0.shape[0]
    scale = map_scale(model)
    hp = dict(_solvers.FPF_DEFAULTS, tol_q=tol_q, tol_dq=tol_dq, max_iters=max_iters,
              lr_init=learning_rate)
    # With slow_tol, stage 1 runs until a candidate is slow by that standard: stopping at a
    # higher hand-off level would drop points that only need more descent to become slow.
    stop_speed = handoff_speed if slow_tol is None else slow_tol
    q_stop = 0.5 * (scale * stop_speed) ** 2
    if max_iters > 0:
        st1 = _solvers.adam_stage(
            model, jnp.asarray(x0, jnp.float32), jnp.asarray(u, jnp.float32), scale, hp, q_stop
        )
        x1 = np.asarray(st1.x, np.float64)
        it1 = np.asarray(st1.n_iter, np.int64)
        q1 = np.asarray(st1.q, np.float64)
    else:
        x1, it1, q1 = x0, np.zeros(k, np.int64), np.zeros(k)
    # Stage 2 starts from the stage-1 points and (by default) from the initial states too:
    # Newton reaches roots whose basins Adam's descent on q leaves (checked against scipy).
    starts, start_u, start_it1, prio = [x1], [u], [it1], [q1]
    if polish_initial and max_iters > 0:
        starts.append(x0)
        start_u.append(u)
        start_it1.append(np.zeros(k, np.int64))
        prio.append(np.full(k, np.inf))
    starts, start_u = np.concatenate(starts), np.concatenate(start_u)
    start_it1, prio = np.concatenate(start_it1), np.concatenate(prio)
    # Polish one representative (the lowest q) of each group of starts closer than
    # cluster_radius and share its result: trajectory states crowd around the attractors, so
    # this shrinks the Newton batch several-fold; distinct roots closer than that are rare
    # (and points closer than tol_unique are merged at the end anyway).
    rep_of = np.empty(starts.shape[0], dtype=int)
    _, group = np.unique(start_u, axis=0, return_inverse=True)
    group = np.asarray(group).reshape(-1)
    for g in np.unique(group):
        members = np.nonzero(group == g)[0]
        order = members[np.argsort(np.nan_to_num(prio[members], nan=np.inf), kind="stable")]
        _, owner = unique_indices(starts, order, cluster_radius)
        rep_of[members] = owner[members]
    reps, inverse = np.unique(rep_of, return_inverse=True)
    with jax.enable_x64(True):
        m64 = to_float64(model)
        # Stage-1 points: Newton, then Levenberg-Marquardt for what Newton leaves. Initial
        # states: plain (safeguarded) Newton only, its job being to reach roots in their basins.
        # One call for both. Waves: starts at least a fifth of the spread of the initial states
        # apart. The initial states take their places in the waves like the stage-1 points
        # (lowest q first, so mostly after them), and are not held back to be captured where
        # they stand: a chord iteration with a known root's Jacobian can contract from a raw
        # start that Newton takes to another root, and when that start was the only way to it
        # the root was lost (a face saddle of a trained flip-flop, 25 of the 26 roots Newton
        # and scipy reach from the same 256 candidates; issue 12 item 9).
        first = reps < k
        caps = np.where(first, newton_iters, min(newton_iters, 20))
        spread = np.sqrt(np.mean(np.sum((x0 - x0.mean(axis=0)) ** 2, axis=1)))
        st2 = _solvers.polish(
            m64, starts[reps], start_u[reps], scale, tol, caps, first,
            merge_tol=0.1 * min(cluster_radius, tol_unique),
            wave_radius=max(cluster_radius, 0.2 * spread),
        )
        xs = [np.asarray(st2.x)[inverse]]
        sp = [np.asarray(st2.speed)[inverse]]
        cv = [np.asarray(st2.converged)[inverse]]
        i2 = [np.asarray(st2.n_iter, np.int64)[inverse]]
        if slow_tol is not None:
            f1 = jax.vmap(m64.vector_field)(jnp.asarray(x1, jnp.float64), jnp.asarray(u))
            speed1 = np.asarray(jnp.linalg.norm(f1, axis=-1))
            xs.append(x1)
            sp.append(speed1)
            cv.append(speed1 <= tol)
            i2.append(np.zeros(k, np.int64))
            start_it1 = np.concatenate([start_it1, it1])
            start_u = np.concatenate([start_u, u])
    return (np.concatenate(xs), np.concatenate(sp), np.concatenate(cv), start_it1,
            np.concatenate(i2), start_u)


def find_fixed_points(
    model: AbstractRNN,
    inputs: ArrayLike,
    initial_states: ArrayLike,
    *,
    tol: float = 1e-10,
    slow_tol: float | None = None,
    tol_unique: float = 1e-3,
    outlier_distance_scale: float | None = 10.0,
    tol_q: float = 1e-12,
    tol_dq: float = 1e-20,
    max_iters: int = 5000,
    learning_rate: float = 1.0,
    handoff_speed: float | None = None,
    newton_iters: int = 50,
    marginal_tol: float = 1e-8,
    exclude_unconverged: bool = True,
    polish_initial: bool = True,
    cluster_radius: float | None = 1e-2,
) -> FixedPoints:
    """Find the fixed points (and, on request, slow points) of ``model`` at constant input.

    The object is the model's `vector_field` F: dx/dt for continuous-time models (a CT-RNN's
    ``(-x + W f(x) + W_in u + b) / tau``, per unit time of ``dt``), ``step(h) - h`` for maps, so
    every model family goes through the same code.

    Stage 1 (float32, jitted, all candidates at once): FixedPointFinder's algorithm and defaults
    on q = 1/2 |s F|^2 with s = dt for continuous-time models (the Euler-map residual that
    FixedPointFinder minimises): Adam (epsilon 0.01), adaptive learning rate (start 1.0, x0.95
    after 5 worsening steps, x1/0.95 after 5 improving ones, floor 1e-3), adaptive clipping at
    the 95th percentile of the last 128 gradient norms, stop at ``tol_q``, ``tol_dq * lr`` or
    ``max_iters``. One difference: each candidate has its own learning rate and stops on its
    own (FixedPointFinder shares one over the batch mean), and a candidate also stops once its
    speed is below ``handoff_speed``, where stage 2 takes over.

    Stage 2 (float64, inside ``jax.enable_x64``; the caller's global config is untouched):
    safeguarded Newton with the model's analytic `jacobian` (backtracking when a full step
    would multiply |F| by more than 10), then Levenberg-Marquardt with damping
    ``theta |r|^2`` (quadratically convergent even on continua of roots) where Newton did not
    converge; each candidate stops at ``|F| <= tol``, on stalling, or after ``newton_iters``.
    The iteration is driven from the host: a small jitted call evaluates residuals and
    Jacobians of the unfinished candidates only, and numpy's LAPACK solves the linear systems.
    Most candidates end at a root another one has reached, and are not iterated: the Jacobian
    at every root found is inverted once, and a candidate whose chord iteration with it
    (``z <- z - J(x*)^-1 F(z)``, at most 8 steps) keeps contracting (each step at most half the
    previous one) and comes within ``min(cluster_radius, tol_unique) / 10`` of the root is
    *captured* by that root: a chord iteration that keeps contracting converges to a root, and
    that root lies within the remaining step lengths of it. Candidates are started in waves (a
    spread-out subset first, lowest q first), so that roots are known before most candidates
    would need Newton steps of their own.

    Then: slow points (with ``slow_tol``), exclusion of outliers, deduplication, ordering by
    speed, Jacobians, eigen-decomposition (numpy, float64) of the unique points only, stability.

    Args:
        model: any rnnlab model.
        inputs: the constant input u*, [n_in] (shared) or [K, n_in] (one per initial state).
        initial_states: candidates [K, state_size], e.g. from `sample_states`.
        tol: speed |F| at which a point counts as a root (converged). Default 1e-10.
        slow_tol: also keep slow points, candidates whose speed is at most ``slow_tol`` without
            being roots; stage 1 then stops each candidate as soon as it is that slow, so slow
            points spread along line and ring attractors (the polished roots are kept too).
        tol_unique: points closer than this (Euclidean) are one point. Default 1e-3.
        outlier_distance_scale: drop points farther from the centroid of the initial states than
            this many times the initial states' mean distance to it (FixedPointFinder's rule,
            default 10; skipped when the initial states have no spread); None keeps all.
        tol_q, tol_dq, max_iters: stage-1 stopping rules (FixedPointFinder defaults);
            ``max_iters=0`` skips stage 1.
        learning_rate: stage 1's initial (adaptive) Adam learning rate, FixedPointFinder's
            default 1.0. Adam's first step moves every coordinate by about this much, so lower
            it for models whose states are small or saturate (e.g. gated units in [-1, 1]).
        handoff_speed: stage-1 hand-off level of |F|; default ``1e-2 / s`` (|s F| = 1e-2).
        newton_iters: iteration cap of stage 2. Default 50.
        marginal_tol: |Re(lambda)| (continuous) or ||mu| - 1| (maps) at or below which a mode
            counts as marginal. Default 1e-8.
        exclude_unconverged: drop candidates that are neither roots nor slow points (default).
            With False every candidate's end point is kept (speeds tell them apart).
        polish_initial: also run stage 2 directly from the initial states (default True):
            Newton reaches roots whose basins the descent on q leaves, which an independent
            root finder (scipy's ``root``) started at the same states also reaches. Initial
            states that a root found already captures (see stage 2) cost no Newton step.
            Different root finders can leave one start for different roots: on strongly
            chaotic networks (gain 3, random starts far from the roots) scipy's hybrid method
            (dogleg trust region with Broyden updates) reaches some far, saturated roots that
            Newton from the same start does not (measured: 8 of 143 scipy roots over 40
            random networks of 12-24 units, all at gain 3; none at gain 1.5 or 2).
        cluster_radius: starts of stage 2 closer than this share one polished result (the
            one from the start with the lowest q); default 1e-2; None uses ``tol_unique``.

    Returns: a `FixedPoints`, slowest first.
    """
    _check_model(model)
    x0 = _as_states(model, initial_states)
    k = x0.shape[0]
    u = _as_inputs(model, inputs, k)
    tol = _positive("tol", tol)
    slow_tol = _positive("slow_tol", slow_tol, allow_none=True)
    if slow_tol is not None and slow_tol < tol:
        raise ValueError(f"slow_tol ({slow_tol}) must be >= tol ({tol})")
    tol_unique = _positive("tol_unique", tol_unique)
    cluster_radius = _positive("cluster_radius", cluster_radius, allow_none=True)
    outlier_distance_scale = _positive(
        "outlier_distance_scale", outlier_distance_scale, allow_none=True
    )
    tol_q = _positive("tol_q", tol_q)
    tol_dq = _positive("tol_dq", tol_dq)
    if isinstance(max_iters, bool) or not isinstance(max_iters, (int, np.integer)) or max_iters < 0:
        raise ValueError(f"max_iters must be a non-negative integer, got {max_iters!r}")
    newton_iters = _positive_int("newton_iters", newton_iters)
    learning_rate = _positive("learning_rate", learning_rate)
    marginal_tol = _positive("marginal_tol", marginal_tol)
    scale = map_scale(model)
    if handoff_speed is None:
        handoff_speed = 1e-2 / scale
    handoff_speed = _positive("handoff_speed", handoff_speed)

    xs, sp, cv, i1, i2, us = _search(
        model, x0, u, tol=tol, slow_tol=slow_tol, tol_q=tol_q, tol_dq=tol_dq,
        max_iters=int(max_iters), handoff_speed=handoff_speed, newton_iters=newton_iters,
        tol_unique=tol_unique, polish_initial=polish_initial,
        cluster_radius=tol_unique if cluster_radius is None else cluster_radius,
        learning_rate=learning_rate,
    )
    keep = np.isfinite(sp)
    if exclude_unconverged:
        keep &= cv | (sp <= (slow_tol if slow_tol is not None else tol))
    if outlier_distance_scale is not None:
        centre = x0.mean(axis=0)
        avg = np.mean(np.linalg.norm(x0 - centre, axis=1))
        # Initial states without spread (one state, or copies of one) give the rule no
        # scale: it is skipped rather than dropping every point that moved.
        if avg > 1e-12 * (1.0 + np.linalg.norm(centre)):
            dist = np.linalg.norm(xs - centre, axis=1)
            keep &= dist <= outlier_distance_scale * avg
    idx = np.nonzero(keep)[0]

    # Deduplicate within groups of equal input, slowest first.
    kept, owner_count = [], Counter()
    if idx.size:
        _, group = np.unique(us[idx], axis=0, return_inverse=True)
        group = np.asarray(group).reshape(-1)
        for g in np.unique(group):
            members = idx[group == g]
            order = members[np.argsort(sp[members], kind="stable")]
            local_kept, owner = unique_indices(xs, order, tol_unique)
            kept.extend(local_kept.tolist())
            for m in members:
                if m < k:  # count each initial state once (its polished stage-1 end point)
                    owner_count[int(owner[m])] += 1
    kept = np.asarray(sorted(kept, key=lambda i: (sp[i], i)), dtype=int)
    states = xs[kept]
    roots = np.nonzero(cv[kept])[0]
    if roots.size:  # one more Newton step at each unique root: |F| to round-off
        with jax.enable_x64(True):
            states[roots] = _solvers.refine(
                to_float64(model), states[roots], us[kept][roots], map_scale(model)
            )
    fps = _assemble(
        model, states, us[kept], sp[kept], cv[kept], i2[kept], i1[kept],
        np.asarray([owner_count[int(i)] for i in kept], dtype=np.int64), marginal_tol,
    )
    if roots.size:  # the refined speeds may reorder points at round-off level
        fps = fps[np.argsort(np.asarray(fps.speeds), kind="stable")]
    return fps


def _assemble(model, states, inputs, speeds, converged, n_iters, n_adam, counts, marginal_tol):
    n, n_in, n_out = model.state_size, model.n_in, model.n_out
    k = states.shape[0]
    if k:
        with jax.enable_x64(True):
            m64 = to_float64(model)
            # Blocks of _POINT_BLOCK rows (short ones padded): one compilation for any
            # number of points.
            parts = []
            for start in range(0, k, _POINT_BLOCK):
                xb = np.asarray(states[start:start + _POINT_BLOCK], np.float64)
                ub = np.asarray(inputs[start:start + _POINT_BLOCK], np.float64)
                m = xb.shape[0]
                pad = np.zeros(_POINT_BLOCK - m, int)
                outs = _point_quantities(m64, jnp.asarray(np.concatenate([xb, xb[pad]])),
                                         jnp.asarray(np.concatenate([ub, ub[pad]])))
                parts.append([np.asarray(a)[:m] for a in outs])
            f, jac, jin, out = (np.concatenate(p) for p in zip(*parts))
        speeds = np.linalg.norm(f, axis=1)
    else:
        jac = np.zeros((0, n, n))
        jin = np.zeros((0, n, n_in))
        out = np.zeros((0, n_out))
    vals, right, left = eigendecompose(jac)
    dt = getattr(model, "dt", None) if model.is_continuous else None
    dt = None if dt is None else float(dt)
    views = stability_views(vals, np.asarray(converged, bool), is_continuous=model.is_continuous,
                            dt=dt, marginal_tol=marginal_tol)
    return FixedPoints(
        states=np.asarray(states, np.float64),
        speeds=np.asarray(speeds, np.float64),
        q=0.5 * np.asarray(speeds, np.float64) ** 2,
        converged=np.asarray(converged, bool),
        n_iters=np.asarray(n_iters, np.int64),
        n_adam_iters=np.asarray(n_adam, np.int64),
        counts=np.asarray(counts, np.int64),
        inputs=np.asarray(inputs, np.float64),
        outputs=np.asarray(out, np.float64),
        jacobians=np.asarray(jac, np.float64),
        input_jacobians=np.asarray(jin, np.float64),
        eigenvalues=vals,
        right_eigenvectors=right,
        left_eigenvectors=left,
        n_unstable=views["n_unstable"],
        ode_n_unstable=views["ode_n_unstable"],
        views_differ=views["views_differ"],
        stability=views["stability"],
        ode_stability=views["ode_stability"],
        is_continuous=bool(model.is_continuous),
        dt=dt,
        marginal_tol=float(marginal_tol),
    )


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
    tols = [_positive("tolerances", t) for t in tolerances]
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

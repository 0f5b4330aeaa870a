"""The `FixedPoints` container: points, their linearisation and stability, the record of the
search's candidates, selection, concatenation, save and load."""

import os
from collections import Counter
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import numpy as np
from jaxtyping import ArrayLike, Bool, Complex, Float, Int

from .._validate import positive_number
from ..io._safe import FileFormatError, read_safetensors, write_safetensors
from ._classify import (
    ROOT_LABELS,
    STABILITY_LABELS,
    Stability,
    classify,
    codes_of,
    labels_of,
    stability_view_name,
    stability_views,
)
from ._codes import RESULT_LABELS, Candidates
from ._linear import eigendecompose, linear_terms, model_dt
from ._stages import PATH_LABELS

# Version 3: stability stored as int8 codes (`Stability`), with the code -> label mapping in
# the metadata, and the candidates' record. Version 2 held the labels as JSON lists; version
# 1 (no labels_version) the ODE labels of continuous models.
LABELS_VERSION = 3


class FixedPoints(eqx.Module):
    """Fixed (and optionally slow) points of one network, with their linearisation.

    Array fields (K points, N = state size, float64 / complex128):
        states [K, N]; speeds [K] = |F(x*)| (for a CT-RNN in state units per time unit of ``dt``,
        i.e. 1/ms); q [K] = 1/2 speeds^2; converged [K] (speed <= the search's ``tol``: a
        root; the others are slow points);
        n_iters [K] (Newton/LM iterations) and n_adam_iters [K] (stage-1 iterations);
        counts [K] (how many initial states' main routes ended at or merged into the point: a
        basin-size estimate);
        inputs [K, n_in]; outputs [K, n_out] (readout at the point);
        jacobians [K, N, N]: dF/dx for continuous-time models, the map Jacobian dG/dh for maps;
        input_jacobians [K, N, n_in]: dF/du;
        eigenvalues [K, N] of ``jacobians``, sorted by real part, largest first;
        right_eigenvectors [K, N, N] (columns, ``J R = R diag(lambda)``);
        left_eigenvectors [K, N, N] (rows, ``L J = diag(lambda) L``, ``L R = I``);
        n_unstable [K], ode_n_unstable [K], views_differ [K] (see below);
        stability_codes [K], ode_stability_codes [K]: int8 codes (`Stability`); the labels
        ``stability`` and ``ode_stability`` (tuples of strings among `STABILITY_LABELS`) are
        derived from them.
    ``candidates``: the record of every end point of the search (a `Candidates`: state, speed,
    result code and the index of the point it became), or None when unknown (points built
    directly, files written before the record existed).
    Static fields: ``is_continuous``, ``dt`` (the model's Euler step, or None),
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
    mode. Selecting points (``fps[mask]``) keeps the whole candidate record, its ``point``
    indices renumbered (-1 for points not selected).
    """

    # numpy arrays as `find_fixed_points` builds them (float64 states)
    states: Float[ArrayLike, "K N"]
    speeds: Float[ArrayLike, " K"]
    q: Float[ArrayLike, " K"]
    converged: Bool[ArrayLike, " K"]
    n_iters: Int[ArrayLike, " K"]
    n_adam_iters: Int[ArrayLike, " K"]
    counts: Int[ArrayLike, " K"]
    inputs: Float[ArrayLike, "K n_in"]
    outputs: Float[ArrayLike, "K n_out"]
    jacobians: Float[ArrayLike, "K N N"]
    input_jacobians: Float[ArrayLike, "K N n_in"]
    eigenvalues: Complex[ArrayLike, "K N"]
    right_eigenvectors: Complex[ArrayLike, "K N N"]
    left_eigenvectors: Complex[ArrayLike, "K N N"]
    n_unstable: Int[ArrayLike, " K"]
    ode_n_unstable: Int[ArrayLike, " K"]
    views_differ: Bool[ArrayLike, " K"]
    stability_codes: Int[ArrayLike, " K"]
    ode_stability_codes: Int[ArrayLike, " K"]
    candidates: Candidates | None
    is_continuous: bool = eqx.field(static=True)
    dt: float | None = eqx.field(static=True)
    marginal_tol: float = eqx.field(static=True)

    def __len__(self) -> int:
        return int(self.states.shape[0])

    @property
    def stability(self) -> tuple[str, ...]:
        """Stability label of each point (the system that runs), from ``stability_codes``."""
        return labels_of(self.stability_codes)

    @property
    def ode_stability(self) -> tuple[str, ...]:
        """Stability label of each point in the ODE view, from ``ode_stability_codes``."""
        return labels_of(self.ode_stability_codes)

    @property
    def n_states(self) -> int:
        return int(self.states.shape[1])

    @property
    def map_eigenvalues(self) -> Complex[ArrayLike, "K N"]:
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
    def time_constants(self) -> Float[ArrayLike, "K N"]:
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
        the roots in the ODE view); ``stability_view`` (see `stability_view`). What became of
        every candidate: ``candidates.counts()``."""
        code = np.asarray(self.stability_codes, np.int64)
        labels = np.bincount(code, minlength=len(Stability))
        ode = np.bincount(np.asarray(self.ode_stability_codes, np.int64), minlength=len(Stability))
        nu = np.asarray(self.n_unstable)
        by_index = Counter(int(n) for n in nu[code == Stability.saddle])
        conv = np.asarray(self.converged, bool)
        return {
            "n_points": len(self),
            **{lab: int(labels[Stability[lab]]) for lab in ROOT_LABELS},
            "slow": int((~conv).sum()),
            "saddles_by_index": {str(k): v for k, v in sorted(by_index.items())},
            "converged": int(conv.sum()),
            "max_speed": float(np.max(np.asarray(self.speeds))) if len(self) else 0.0,
            "is_continuous": self.is_continuous,
            "views_differ": int(np.sum(np.asarray(self.views_differ, bool))),
            "ode": {lab: int(ode[Stability[lab]]) for lab in ROOT_LABELS},
            "stability_view": self.stability_view,
        }

    def __getitem__(self, index) -> "FixedPoints":
        """Select points (an integer array, a boolean mask or a slice). The candidate record is
        kept whole, its ``point`` indices renumbered (-1 for points not selected)."""
        idx = np.arange(len(self))[index]
        idx = np.atleast_1d(idx)
        arrays = {f: np.asarray(getattr(self, f))[idx] for f in _ARRAY_FIELDS}
        candidates = self.candidates
        if candidates is not None:
            new_index = np.full(len(self), -1, np.int64)
            new_index[idx] = np.arange(idx.size)
            candidates = candidates.remap(new_index)
        return FixedPoints(
            **arrays, candidates=candidates, is_continuous=self.is_continuous, dt=self.dt,
            marginal_tol=self.marginal_tol,
        )

    def with_speed_below(self, tol: float) -> "FixedPoints":
        """The points whose speed |F| is at most ``tol`` (one level of a tolerance sweep)."""
        tol = positive_number("tol", tol)
        return self[np.asarray(self.speeds) <= tol]

    @classmethod
    def concatenate(cls, parts: Sequence["FixedPoints"]) -> "FixedPoints":
        """Join results of searches at several inputs into one (same model). The candidate
        records are joined too (``point`` and ``initial`` renumbered); parts without one add
        no rows."""
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
        offsets = np.cumsum([0] + [len(p) for p in parts])[:-1]
        with_record = [(p.candidates, o) for p, o in zip(parts, offsets)
                       if p.candidates is not None]
        candidates = None
        if with_record:
            candidates = Candidates.concatenate(*zip(*with_record))
        return cls(
            **arrays, candidates=candidates, is_continuous=first.is_continuous, dt=first.dt,
            marginal_tol=first.marginal_tol,
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write to one ``.safetensors`` file (arrays, stability as int8 codes with the code ->
        label mapping and flags as JSON metadata, the candidate record as ``candidates.*``
        arrays), atomically and checksummed. Complex arrays are stored as real and imaginary
        parts."""
        tensors = {}
        for f in _ARRAY_FIELDS:
            a = np.asarray(getattr(self, f))
            if np.iscomplexobj(a):
                tensors[f + ".real"] = np.ascontiguousarray(a.real)
                tensors[f + ".imag"] = np.ascontiguousarray(a.imag)
            else:
                tensors[f] = a.astype(np.uint8) if a.dtype == bool else a
        if self.candidates is not None:
            tensors.update(self.candidates.to_tensors(_CANDIDATES))
        meta = {
            "kind": "fixed_points",
            "labels_version": LABELS_VERSION,
            "stability_labels": list(STABILITY_LABELS),
            "result_labels": list(RESULT_LABELS),
            "is_continuous": self.is_continuous,
            "dt": self.dt,
            "marginal_tol": self.marginal_tol,
            "n_points": len(self),
        }
        write_safetensors(path, tensors, meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FixedPoints":
        """Read a file written by `save` (checksum verified). Files of earlier versions load
        too: version 2 (labels as JSON lists) gets its labels as codes; files written before
        the labels described the system that runs (no ``labels_version``) get every label and
        count recomputed from their eigenvalues, ``dt``, ``marginal_tol`` and ``converged``.
        Files without a candidate record load with ``candidates=None``."""
        tensors, meta = read_safetensors(path, kind="fixed_points")
        where = str(path)
        _check_file(tensors, meta, where)
        try:
            return cls._from_file(tensors, meta, where)
        except (KeyError, TypeError, ValueError, IndexError) as e:
            text = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise FileFormatError(f"{where}: not a valid fixed-points file ({text})") from None

    @classmethod
    def _from_file(cls, tensors, meta, path) -> "FixedPoints":
        is_continuous = bool(meta["is_continuous"])
        dt, marginal_tol = meta["dt"], float(meta["marginal_tol"])
        version = meta.get("labels_version", 1)
        arrays = {}
        for f in _ARRAY_FIELDS:
            if f in _DERIVED and version < 2 or f in _CODE_ARRAYS and version < 3:
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
        if version < 2:
            views = stability_views(arrays["eigenvalues"], arrays["converged"],
                                    is_continuous=is_continuous, dt=dt,
                                    marginal_tol=marginal_tol)
            arrays.update({f: views[f] for f in _DERIVED + _CODE_ARRAYS})
        elif version < 3:
            arrays["stability_codes"] = codes_of(meta["stability"])
            arrays["ode_stability_codes"] = codes_of(meta["ode_stability"])
        else:
            # Codes are positions in the file's own label list: translate them to ours.
            table = codes_of(meta["stability_labels"])
            for f in _CODE_ARRAYS:
                arrays[f] = table[np.asarray(arrays[f], np.int64)]
        candidates = Candidates.from_tensors(tensors, _CANDIDATES)
        if candidates is not None and meta.get("result_labels", list(RESULT_LABELS)) \
                != list(RESULT_LABELS):
            from ._codes import Result

            table = np.asarray([Result[s] for s in meta["result_labels"]], np.int8)
            candidates = eqx.tree_at(lambda c: c.codes, candidates,
                                     table[np.asarray(candidates.codes, np.int64)])
        # Keep float64 / complex128 as stored (jnp would truncate them without x64).
        return cls(
            **arrays, candidates=candidates, is_continuous=is_continuous, dt=dt,
            marginal_tol=marginal_tol,
        )

    def __repr__(self) -> str:
        s = self.summary()
        differ = f", {s['views_differ']} differ from the ODE" if s["views_differ"] else ""
        cands = ""
        if self.candidates is not None:
            c = {k: v for k, v in self.candidates.counts().items() if v}
            cands = f"; candidates: {c}"
        return (
            f"FixedPoints({s['n_points']} points: {s['stable']} stable, {s['saddle']} saddle, "
            f"{s['unstable']} unstable, {s['marginal']} marginal, {s['slow']} slow; "
            f"stability of the {s['stability_view']}{differ}{cands})"
        )


# the arrays derived from the eigenvalues (recomputed when a version-1 file is loaded)
_DERIVED = ("n_unstable", "ode_n_unstable", "views_differ")
_CODE_ARRAYS = ("stability_codes", "ode_stability_codes")
_ARRAY_FIELDS = (
    "states", "speeds", "q", "converged", "n_iters", "n_adam_iters", "counts", "inputs",
    "outputs", "jacobians", "input_jacobians", "eigenvalues", "right_eigenvectors",
    "left_eigenvectors", *_DERIVED, *_CODE_ARRAYS,
)
_CANDIDATES = "candidates."


def _check_file(tensors: dict[str, np.ndarray], meta: dict[str, Any], where: str) -> None:
    """Every field of a fixed-points file: its type and range, and every array's shape against
    the others (K points, N state size), before anything is built from it. A defect is a
    one-line `FileFormatError` naming the file."""

    def bad(msg):
        raise FileFormatError(f"{where}: {msg}")

    def is_num(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x)

    version = meta.get("labels_version", 1)
    if type(version) is not int or version not in (1, 2, LABELS_VERSION):
        bad(f"labels_version must be 1, 2 or {LABELS_VERSION}, got {str(version)[:40]}")
    if not isinstance(meta.get("is_continuous"), bool):
        bad("is_continuous must be true or false")
    dt = meta.get("dt")
    if dt is not None and not (is_num(dt) and dt > 0):
        bad(f"dt must be a positive number or null, got {str(dt)[:40]}")
    tol = meta.get("marginal_tol")
    if not (is_num(tol) and tol >= 0):
        bad(f"marginal_tol must be a non-negative number, got {str(tol)[:40]}")
    for key, known in (("stability_labels", STABILITY_LABELS), ("result_labels", RESULT_LABELS)):
        labels = meta.get(key)
        if labels is None and (key == "result_labels" or version < 3):
            continue
        if not (isinstance(labels, list) and labels and all(
                isinstance(x, str) and x in known for x in labels)
                and len(set(labels)) == len(labels)):
            bad(f"{key} must be a list of distinct labels among {list(known)}")

    def arr(name, required=True):
        if name in tensors:
            return tensors[name]
        if name + ".real" in tensors and name + ".imag" in tensors:
            re, im = tensors[name + ".real"], tensors[name + ".imag"]
            if re.shape != im.shape:
                bad(f"{name}.real and {name}.imag have different shapes")
            return re
        if required:
            bad(f"missing array {name!r}")
        return None

    states = arr("states")
    if states.ndim != 2:
        bad(f"states must be [K, N], got shape {states.shape}")
    k, n = states.shape
    n_in = arr("inputs").shape[-1] if arr("inputs").ndim == 2 else -1
    n_out = arr("outputs").shape[-1] if arr("outputs").ndim == 2 else -1
    if "n_points" in meta and meta["n_points"] != k:
        bad(f"n_points={str(meta['n_points'])[:20]} but states hold {k} points")
    shapes = {"states": (k, n), "speeds": (k,), "q": (k,), "converged": (k,), "n_iters": (k,),
              "n_adam_iters": (k,), "counts": (k,), "inputs": (k, n_in),
              "outputs": (k, n_out), "jacobians": (k, n, n), "input_jacobians": (k, n, n_in),
              "eigenvalues": (k, n), "right_eigenvectors": (k, n, n),
              "left_eigenvectors": (k, n, n)}
    if version >= 2:
        shapes.update({f: (k,) for f in _DERIVED})
    if version >= 3:
        shapes.update({f: (k,) for f in _CODE_ARRAYS})
    for name, shape in shapes.items():
        a = arr(name)
        if a.shape != shape:
            bad(f"array {name!r} has shape {a.shape}, expected {shape} ({k} points of size {n})")
        kind = a.dtype.kind
        if name in ("converged", "views_differ"):
            if kind not in "bu" or np.any(a > 1):
                bad(f"array {name!r} must hold 0/1 flags")
        elif name in ("n_iters", "n_adam_iters", "counts", "n_unstable", "ode_n_unstable"):
            if kind not in "iu" or np.any(a < 0) or (name.endswith("n_unstable") and np.any(a > n)):
                bad(f"array {name!r} must hold counts in range")
        elif name in _CODE_ARRAYS:
            n_labels = len(meta["stability_labels"])
            if kind not in "iu" or np.any(a < 0) or np.any(a >= n_labels):
                bad(f"array {name!r} holds codes outside the {n_labels} stability labels")
        elif kind != "f":
            bad(f"array {name!r} must be floating point, got {a.dtype}")
    if version == 2:
        for key in ("stability", "ode_stability"):
            labels = meta.get(key)
            if not (isinstance(labels, list) and len(labels) == k and all(
                    isinstance(x, str) and x in STABILITY_LABELS for x in labels)):
                bad(f"{key} must list {k} stability labels")
    cand = {f: tensors.get(_CANDIDATES + f) for f in
            ("states", "speeds", "codes", "point", "initial", "path", "inputs", "n_iters",
             "n_descent_iters")}
    present = [f for f, a in cand.items() if a is not None]
    if present:
        if len(present) != len(cand):
            bad("the candidate record is incomplete")
        m = cand["codes"].shape[0] if cand["codes"].ndim == 1 else -1
        want = {f: (m,) for f in cand}
        want["states"], want["inputs"] = (m, n), (m, n_in)
        n_results = len(meta.get("result_labels", RESULT_LABELS))
        for f, shape in want.items():
            a = cand[f]
            if a.shape != shape:
                bad(f"array 'candidates.{f}' has shape {a.shape}, expected {shape}")
            if f in ("states", "speeds", "inputs"):
                if a.dtype.kind != "f":
                    bad(f"array 'candidates.{f}' must be floating point")
            elif a.dtype.kind not in "iu":
                bad(f"array 'candidates.{f}' must hold integers")
        if m and (np.any(cand["codes"] < 0) or np.any(cand["codes"] >= n_results)):
            bad("candidates.codes hold codes outside the result labels")
        if m and (np.any(cand["point"] < -1) or np.any(cand["point"] >= k)):
            bad(f"candidates.point must index the {k} points (or be -1)")
        if m and (np.any(cand["initial"] < 0) or np.any(cand["path"] < 0)
                  or np.any(cand["path"] >= len(PATH_LABELS))):
            bad("candidates.initial/path out of range")


def assemble(model, states, inputs, speeds, converged, n_iters, n_adam, counts, marginal_tol,
             candidates: Candidates | None = None) -> FixedPoints:
    """A `FixedPoints` of ``model`` at ``states`` [K, N] / ``inputs`` [K, n_in]: linearisation
    (`linear_terms`, float64), eigen-decomposition and stability; ``speeds`` are recomputed at
    the states."""
    n, n_in = model.state_size, model.n_in
    states = np.asarray(states, np.float64).reshape(-1, n)
    inputs = np.asarray(inputs, np.float64).reshape(-1, n_in)
    f, jac, jin, out = linear_terms(model, states, inputs)
    if len(states):
        speeds = np.linalg.norm(f, axis=1)
    if not model.is_continuous:  # the map h -> h + F(h): report its Jacobians
        jac = jac + np.eye(n)
    vals, right, left = eigendecompose(jac)
    dt = model_dt(model)
    views = stability_views(vals, np.asarray(converged, bool), is_continuous=model.is_continuous,
                            dt=dt, marginal_tol=marginal_tol)
    return FixedPoints(
        states=states,
        speeds=np.asarray(speeds, np.float64),
        q=0.5 * np.asarray(speeds, np.float64) ** 2,
        converged=np.asarray(converged, bool),
        n_iters=np.asarray(n_iters, np.int64),
        n_adam_iters=np.asarray(n_adam, np.int64),
        counts=np.asarray(counts, np.int64),
        inputs=inputs,
        outputs=np.asarray(out, np.float64),
        jacobians=np.asarray(jac, np.float64),
        input_jacobians=np.asarray(jin, np.float64),
        eigenvalues=vals,
        right_eigenvectors=right,
        left_eigenvectors=left,
        n_unstable=views["n_unstable"],
        ode_n_unstable=views["ode_n_unstable"],
        views_differ=views["views_differ"],
        stability_codes=views["stability_codes"],
        ode_stability_codes=views["ode_stability_codes"],
        candidates=candidates,
        is_continuous=bool(model.is_continuous),
        dt=dt,
        marginal_tol=float(marginal_tol),
    )

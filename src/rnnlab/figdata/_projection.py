"""State-space geometry shared by the figures and the report: the PCA projection, trajectories,
fixed points with their stability labels and unstable directions, attractor manifolds."""

import dataclasses
from typing import Any

import numpy as np

from .._blas import single_blas_thread
from ._styles import STABILITY_ORDER

# Half-length of a saddle's unstable-direction segment, as a fraction of the data's extent
# (the largest range of the projected trajectories along one axis).
SEGMENT_FRACTION = 0.08


@dataclasses.dataclass(frozen=True)
class Projection:
    """An affine projection x -> (x - mean) @ components.T onto the leading principal axes.

    Attributes: ``mean`` [N]; ``components`` [k, N] orthonormal rows; ``explained`` [k]
    fraction of the variance of the fitted states along each axis.
    """

    mean: np.ndarray
    components: np.ndarray
    explained: np.ndarray

    def __call__(self, x) -> np.ndarray:
        x = np.asarray(x, float)
        return (x - self.mean) @ self.components.T

    def direction(self, v) -> np.ndarray:
        """Project a direction (no centring)."""
        return np.asarray(v, float) @ self.components.T

    def axis_labels(self) -> list[str]:
        return [f"PC{i + 1} ({100 * e:.0f}%)" for i, e in enumerate(self.explained)]


@single_blas_thread
def fit_projection(states, n_components: int, *, pca: Any = None) -> Projection:
    """PCA of the pooled states [..., N] (or reuse ``pca``: a `Projection` or an object with
    ``mean`` and ``components`` [k, N] and optionally ``explained_variance_ratio``)."""
    if pca is not None:
        if isinstance(pca, Projection):
            proj = pca
        else:
            comps = np.asarray(getattr(pca, "components"), float)
            ratio = getattr(pca, "explained_variance_ratio", None)
            if ratio is None:
                ratio = getattr(pca, "explained", np.full(comps.shape[0], np.nan))
            proj = Projection(np.asarray(getattr(pca, "mean"), float), comps, np.asarray(ratio))
        if proj.components.shape[0] < n_components:
            raise ValueError(
                f"pca has {proj.components.shape[0]} components; {n_components} are needed"
            )
        return Projection(proj.mean, proj.components[:n_components],
                          np.asarray(proj.explained)[:n_components])
    x = np.asarray(states, float).reshape(-1, np.shape(states)[-1])
    x = x[np.all(np.isfinite(x), axis=1)]
    if x.shape[0] < 2:
        raise ValueError("need at least two finite states to fit the principal components")
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    var = s**2
    total = var.sum() if var.sum() > 0 else 1.0
    k = min(n_components, vt.shape[0])
    comps = vt[:k]
    # Deterministic signs: the largest-magnitude loading of each axis is positive.
    signs = np.sign(comps[np.arange(k), np.argmax(np.abs(comps), axis=1)])
    comps = comps * np.where(signs == 0, 1, signs)[:, None]
    if k < n_components:  # fewer states/units than axes: pad with zero axes
        comps = np.vstack([comps, np.zeros((n_components - k, comps.shape[1]))])
        var = np.concatenate([var, np.zeros(n_components - k)])
    return Projection(mean, comps, var[:n_components] / total)


def trajectory_states(states) -> np.ndarray:
    """States as [B, T, N] from a `Trajectory` or an array [T, N] / [B, T, N]."""
    if hasattr(states, "states") and not isinstance(states, np.ndarray):
        states = states.states
    arr = np.asarray(states, float)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(
            f"states must be a Trajectory or an array [T, N] or [B, T, N], got shape {arr.shape}"
        )
    return arr


# ------------------------------------------------------------------------ fixed points


def stability_labels(fp) -> list[str]:
    """The stability label of each fixed point, as strings."""
    lab = getattr(fp, "stability")
    arr = np.asarray(lab)
    if arr.dtype.kind in "iu":
        names = getattr(fp, "stability_names", STABILITY_ORDER)
        return [str(names[i]) for i in arr.ravel()]
    return [str(s) for s in arr.ravel()]


def n_points(fp) -> int:
    """Number of points in ``fp`` (a `FixedPoints`)."""
    return int(np.shape(np.asarray(fp.states))[0])


def unstable_directions(fp, i: int) -> list[np.ndarray]:
    """Unit real directions [N] of the unstable modes of fixed point ``i``.

    The ``n_unstable[i]`` most unstable modes of the system that runs are taken (largest
    multiplier ``|1 + dt lambda|`` for a continuous-time model with ``dt``, largest real part
    without one, largest modulus for maps); a real eigenvalue gives its eigenvector, a complex
    pair the real and imaginary parts of its eigenvector (the unstable plane).
    """
    k = int(np.asarray(fp.n_unstable)[i])
    if k == 0:
        return []
    lam = np.asarray(fp.eigenvalues)[i]
    vecs = np.asarray(fp.right_eigenvectors)[i]
    dt = getattr(fp, "dt", None)
    if bool(fp.is_continuous):
        score = lam.real if dt is None else np.abs(1.0 + float(dt) * lam)
    else:
        score = np.abs(lam)
    order = np.argsort(-score, kind="stable")[:k]
    out, seen_pairs = [], set()
    for j in order:
        v = vecs[:, j]
        if abs(lam[j].imag) > 1e-9 * max(1.0, abs(lam[j])):
            key = (round(float(lam[j].real), 9), round(abs(float(lam[j].imag)), 9))
            if key in seen_pairs:
                continue
            seen_pairs.add(key)
            parts = [v.real, v.imag]
        else:
            parts = [v.real if np.linalg.norm(v.real) >= np.linalg.norm(v.imag) else v.imag]
        for p in parts:
            nrm = np.linalg.norm(p)
            if nrm > 0:
                out.append(p / nrm)
    return out


def manifold_states(m) -> np.ndarray:
    """The points [M, N] of an attractor manifold (an object or a dict with ``states``)."""
    s = m.states if hasattr(m, "states") else m["states"]
    return np.asarray(s, float)


def manifold_kind(m) -> str:
    """The kind of an attractor manifold (``"ring"``, ``"line"``, ...; default ``"manifold"``)."""
    k = m.kind if hasattr(m, "kind") else m.get("kind", "manifold")
    return str(k)


def projected_extent(z) -> float:
    """The largest range along one axis of projected points ``z`` [..., k] (1.0 when they have
    none): the length unit of the unstable-direction segments."""
    z = np.asarray(z, float)
    return float(np.max(np.ptp(z.reshape(-1, z.shape[-1]), axis=0))) or 1.0


def unstable_segments(fp, i: int, proj: Projection, half_length: float) -> list[np.ndarray]:
    """Projected segments [2, k] through fixed point ``i``, one per unstable direction (see
    `unstable_directions`), each of half-length ``half_length`` along its unit direction before
    projection (so a direction mostly outside the plotted plane looks short)."""
    centre = proj(np.asarray(fp.states)[i])
    out = []
    for v in unstable_directions(fp, i):
        d = proj.direction(v) * half_length
        out.append(np.stack([centre - d, centre + d]))
    return out


def input_groups(fp, names: Any = None) -> list[tuple[str, np.ndarray]]:
    """The points of ``fp`` grouped by the constant input they belong to (points of different
    inputs are fixed points of different systems and are never pooled without saying so).

    Args:
        fp: a `FixedPoints` (its ``inputs`` [K, n_in]); without ``inputs``, one group.
        names: a mapping ``{name: input vector}`` (or ``[(name, vector), ...]``, as
            `rnnlab.runs.RunAnalysis.inputs`) naming the inputs; an input not named is called
            by its vector, e.g. ``"input [1, 0, 0.5]"``.

    Returns: ``[(name, indices), ...]`` in the order of ``names`` (then of first appearance).
    """
    k = n_points(fp)
    inputs = getattr(fp, "inputs", None)
    if inputs is None or k == 0:
        return [("", np.arange(k))]
    vecs = np.asarray(inputs, float).reshape(k, -1)
    items = list(names.items()) if hasattr(names, "items") else list(names or [])
    _, first, group = np.unique(vecs, axis=0, return_index=True, return_inverse=True)
    group = np.asarray(group).reshape(-1)
    order = np.argsort(first)
    out, used = [], set()
    for name, vec in items:
        vec = np.asarray(vec, float).reshape(-1)
        if vec.shape[0] != vecs.shape[1]:
            continue
        hit = np.nonzero(np.all(np.isclose(vecs, vec, rtol=0.0, atol=1e-9), axis=1))[0]
        if hit.size:
            out.append((str(name), hit))
            used.add(int(group[hit[0]]))
    for g in order:
        if int(g) in used:
            continue
        members = np.nonzero(group == g)[0]
        text = ", ".join(f"{a:g}" for a in vecs[members[0]])
        out.append((f"input [{text}]", members))
    return out

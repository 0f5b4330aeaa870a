"""`analyze_run`: the default reverse engineering of a trained run (fixed and slow points at
each of its task's inputs, PCA, topology among the roots, attractor manifolds per input), and
`RunAnalysis`, its result, saved to and loaded from ``RUN/analysis/``."""

import dataclasses
import functools
import json
import math
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import jax
import numpy as np

from .. import _validate as v
from .._blas import single_blas_thread
from .._compile import QUICK_COMPILE
from ._run import Run, RunError, read_json_object

FIXED_POINTS = "fixed_points.safetensors"
PCA_FILE = "pca.safetensors"
TOPOLOGY = "topology.json"
SUMMARY = "summary.json"
MANIFOLDS = "manifolds.safetensors"


def analysis_inputs(task) -> list[tuple[str, list[float]]]:
    """The constant inputs worth analysing for ``task``, named: the task's own
    ``task.fixed_point_inputs()`` (the constant input of each epoch with a neutral stimulus;
    zero input only where the task declares it, i.e. where the network receives it)."""
    named = task.fixed_point_inputs()
    if not named:
        raise ValueError(f"task {type(task).__name__} declares no fixed-point inputs; "
                         "pass inputs explicitly")
    out = []
    for name, vec in named.items():
        vec = [float(a) for a in np.asarray(vec, float).reshape(-1)]
        if len(vec) != task.n_in:
            raise ValueError(f"task input {name!r} has {len(vec)} entries, the task has "
                             f"n_in={task.n_in}")
        out.append((str(name), vec))
    return out


def _named_inputs(inputs, n_in: int) -> list[tuple[str, list[float]]]:
    """User inputs (a mapping name -> vector, or a sequence of vectors) as named vectors."""
    if isinstance(inputs, Mapping):
        items = [(str(k), val) for k, val in inputs.items()]
    else:
        arr = np.asarray(inputs, dtype=float)
        if arr.ndim == 1:
            arr = arr[None]
        items = [(f"input{i}", row) for i, row in enumerate(arr)]
    out = []
    for name, vec in items:
        vec = np.asarray(vec, dtype=float).reshape(-1)
        if vec.shape != (n_in,) or not np.all(np.isfinite(vec)):
            raise ValueError(f"inputs: {name!r} must be a finite vector of length n_in={n_in}, "
                             f"got {np.asarray(vec).tolist()!r}")
        out.append((name, [float(a) for a in vec]))
    if not out:
        raise ValueError("inputs must hold at least one input vector")
    return out


def stability_view(model) -> str:
    """Which system the stability labels describe: the Euler map that runs (CT-RNNs with a
    step size), the map itself (discrete models), or the ODE."""
    if not model.is_continuous:
        return "map"
    dt = getattr(model, "dt", None)
    return f"Euler map, dt={float(dt):g} ms" if dt is not None else "ODE"


def tangent_in_view(model, m) -> dict[str, Any]:
    """The median tangent eigenvalue of manifold ``m`` in the system that runs (Euler-map
    multiplier mu = 1 + dt lambda for a CT-RNN with dt; the map's multiplier for maps; the
    ODE's lambda without dt), and the ODE's lambda for continuous-time models."""
    vals = np.asarray(m.tangent_eigenvalues, complex)
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return {"tangent_eigenvalue": None}
    med = complex(np.median(vals.real), np.median(vals.imag))
    if not model.is_continuous:  # attractor_manifolds reports mu - 1 for maps
        mu = med + 1.0
        return {"tangent_eigenvalue": [mu.real, mu.imag], "tangent_view": "map multiplier mu"}
    dt = getattr(model, "dt", None)
    out: dict[str, Any] = {"tangent_eigenvalue_ode": [med.real, med.imag]}
    if dt is None:
        out.update(tangent_eigenvalue=[med.real, med.imag], tangent_view="ODE lambda")
    else:
        mu = 1.0 + float(dt) * med
        out.update(tangent_eigenvalue=[mu.real, mu.imag],
                   tangent_view=f"Euler multiplier mu = 1 + dt lambda (dt={float(dt):g} ms)")
    return out


@dataclasses.dataclass
class RunAnalysis:
    """What `analyze_run` found, as saved in ``RUN/analysis/``.

    Attributes:
        inputs: the analysed constant inputs, ``[(name, vector), ...]``.
        fixed_points: every root and slow point, all inputs together (each point's input in
            ``fixed_points.inputs``); ``by_input[name]`` gives one input's points.
        pca: the principal components of the task trajectories (`rnnlab.analysis.PCA`).
        topology: where the flow settles among the roots (a networkx DiGraph; node ids are
            indices into ``fixed_points``).
        manifolds: ``[(input name, AttractorManifold), ...]``, searched per input (points of
            different inputs belong to different systems); ``indices`` refer to
            ``fixed_points``.
        summary: the JSON summary (counts per input, tolerances, manifold rows, settings).
    """

    inputs: list[tuple[str, list[float]]]
    fixed_points: Any
    pca: Any
    topology: Any
    manifolds: list[tuple[str, Any]]
    summary: dict[str, Any]

    @property
    def input_names(self) -> list[str]:
        return [name for name, _ in self.inputs]

    @property
    def by_input(self) -> dict[str, Any]:
        """Each input's points (a `FixedPoints`), in the order of ``inputs``."""
        counts = [int(row["n_points"]) for row in self.summary.get("inputs", [])]
        if len(counts) != len(self.inputs) or sum(counts) != len(self.fixed_points):
            # no usable counts: group by the points' input vectors
            fp_in = np.asarray(self.fixed_points.inputs, float).reshape(len(self.fixed_points), -1)
            return {name: self.fixed_points[np.nonzero(
                np.all(np.isclose(fp_in, np.asarray(vec, float)), axis=1))[0]]
                for name, vec in self.inputs}
        out, start = {}, 0
        for (name, _), n in zip(self.inputs, counts):
            out[name] = self.fixed_points[np.arange(start, start + n)]
            start += n
        return out

    @property
    def continuous_attractors(self) -> list:
        """The manifolds along which the flow is (nearly) zero: lines, rings and surfaces of
        slow points, largest first (separate fixed points lying close together are not)."""
        out = [m for _, m in self.manifolds if m.near_zero_tangent]
        out.sort(key=lambda m: -m.states.shape[0])
        return out

    # -- files ----------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write the analysis to ``directory`` (atomically, file by file): fixed_points,
        pca, manifolds (.safetensors), topology.json (node-link), summary.json."""
        import networkx as nx

        from ..io._safe import atomic_write_json, write_safetensors

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        self.fixed_points.save(out / FIXED_POINTS)
        p = self.pca
        write_safetensors(
            out / PCA_FILE,
            {"mean": p.mean, "components": p.components,
             "explained_variance": p.explained_variance,
             "explained_variance_ratio": p.explained_variance_ratio,
             "fixed_points": p.transform(np.asarray(self.fixed_points.states))},
            {"kind": "pca", "total_variance": p.total_variance},
        )
        tensors, rows = {}, []
        for i, (name, m) in enumerate(self.manifolds):
            ev = np.asarray(m.tangent_eigenvalues, complex)
            tensors.update({
                f"m{i}.indices": np.asarray(m.indices, np.int64),
                f"m{i}.speeds": np.asarray(m.speeds, np.float64),
                f"m{i}.tangent_eigenvalues_re": ev.real.astype(np.float64),
                f"m{i}.tangent_eigenvalues_im": ev.imag.astype(np.float64),
                f"m{i}.tangent_alignment": np.asarray(m.tangent_alignment, np.float64),
            })
            rows.append({"input": name, "kind": m.kind, "dimension": int(m.dimension),
                         "length": float(m.length), "spread": float(m.spread),
                         "near_zero_tangent": bool(m.near_zero_tangent)})
        write_safetensors(out / MANIFOLDS, tensors, {"kind": "manifolds", "manifolds": rows})
        if self.topology is not None:
            atomic_write_json(out / TOPOLOGY, nx.node_link_data(self.topology, edges="edges"))
        atomic_write_json(out / SUMMARY, self.summary)
        return out

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "RunAnalysis":
        """Read an analysis written by `save` (or by an earlier `rnnlab analyze`: manifolds
        are then searched again, per input, from the saved points). Raises `RunError` naming
        the file that is missing or unreadable."""
        from ..analysis import PCA, FixedPoints
        from ..io._safe import read_safetensors

        d = Path(directory)
        fp_path = d / FIXED_POINTS
        if not fp_path.is_file():
            raise RunError(f"{fp_path} is missing: run `rnnlab analyze` on the run first")
        fps = FixedPoints.load(fp_path)
        summary = read_json_object(d / SUMMARY) if (d / SUMMARY).is_file() else {}
        inputs = _summary_inputs(summary, d / SUMMARY, n_in=np.shape(fps.inputs)[-1])
        if not inputs and len(fps):
            uniq = np.unique(np.asarray(fps.inputs, float).reshape(len(fps), -1), axis=0)
            inputs = [(f"input{i}", [float(a) for a in u]) for i, u in enumerate(uniq)]
        pca = None
        if (d / PCA_FILE).is_file():
            t, meta = read_safetensors(d / PCA_FILE, kind="pca")
            try:
                pca = PCA(mean=np.asarray(t["mean"]), components=np.asarray(t["components"]),
                          explained_variance=np.asarray(t["explained_variance"]),
                          explained_variance_ratio=np.asarray(t["explained_variance_ratio"]),
                          total_variance=float(meta.get("total_variance", np.nan)))
            except KeyError as e:
                raise RunError(f"{d / PCA_FILE} lacks the tensor {e}") from None
        topology = None
        if (d / TOPOLOGY).is_file():
            import networkx as nx

            data = read_json_object(d / TOPOLOGY)
            _check_topology(data, d / TOPOLOGY, len(fps), fps.n_states)
            try:
                topology = nx.node_link_graph(data, directed=True, edges="edges")
            except (KeyError, TypeError, ValueError, nx.NetworkXError) as e:
                raise RunError(f"{d / TOPOLOGY} could not be read ({e})") from None
        analysis = cls(inputs=inputs, fixed_points=fps, pca=pca, topology=topology,
                       manifolds=[], summary=summary)
        if (d / MANIFOLDS).is_file():
            analysis.manifolds = _read_manifolds(d / MANIFOLDS, fps)
        else:
            analysis.manifolds = _search_manifolds(analysis.by_input, inputs,
                                                   offsets=_offsets(analysis.by_input, fps))
        return analysis


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _summary_inputs(summary: dict[str, Any], path: Path, n_in: int) -> list:
    """The (name, input) rows of summary.json, each checked (the other entries that readers
    use must have their types too); `RunError` naming the file otherwise."""
    for key in ("settings", "slow_tolerance"):
        if key in summary and not isinstance(summary[key], (dict, type(None))):
            raise RunError(f"{path}: {key!r} must be an object")
    rows = summary.get("inputs", [])
    if not isinstance(rows, list):
        raise RunError(f"{path}: 'inputs' must be a list")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or "name" not in row or "input" not in row:
            continue  # rows of other shapes carry no input (earlier versions)
        u = row["input"]
        if not isinstance(row["name"], str) or not isinstance(u, list) or len(u) != n_in \
                or not all(_is_number(a) for a in u):
            raise RunError(f"{path}: inputs[{i}] must have a name and {n_in} finite numbers")
        out.append((row["name"], [float(a) for a in u]))
    return out


def _check_topology(data: dict[str, Any], path: Path, n_points: int, n_states: int) -> None:
    """A node-link topology graph as `RunAnalysis.save` writes it: nodes are point indices
    (or ``"unsettled"``), edges join existing nodes, attributes have their types."""
    from ..analysis._structure import UNSETTLED

    def bad(msg):
        raise RunError(f"{path}: {msg}")

    nodes, edges = data.get("nodes"), data.get("edges")
    if not isinstance(nodes, list) or not isinstance(edges, list):
        bad("must hold 'nodes' and 'edges' lists")
    for key in ("directed", "multigraph"):
        if key in data and not isinstance(data[key], bool):
            bad(f"{key!r} must be true or false")
    if data.get("multigraph"):
        bad("must be a simple graph (multigraph false)")
    ids = set()
    for i, node in enumerate(nodes):
        if not isinstance(node, dict) or "id" not in node:
            bad(f"node {i} must be an object with an 'id'")
        nid = node["id"]
        if not (nid == UNSETTLED or (type(nid) is int and 0 <= nid < n_points)):
            bad(f"node {str(nid)[:40]} is neither one of the {n_points} fixed points nor "
                f"{UNSETTLED!r}")
        if nid in ids:
            bad(f"node {nid} appears twice")
        ids.add(nid)
        if "stability" in node and not isinstance(node["stability"], str):
            bad(f"node {nid}: 'stability' must be a label")
        if "n_unstable" in node and not (type(node["n_unstable"]) is int
                                         and 0 <= node["n_unstable"] <= n_states):
            bad(f"node {nid}: 'n_unstable' out of range")
        if "speed" in node and not _is_number(node["speed"]):
            bad(f"node {nid}: 'speed' must be a finite number")
        for key in ("state", "output", "input"):
            if key in node and not (isinstance(node[key], list) and len(node[key]) <= 1 << 16
                                    and all(_is_number(a) for a in node[key])):
                bad(f"node {nid}: {key!r} must be a list of finite numbers")
    for i, edge in enumerate(edges):
        if not isinstance(edge, dict) or "source" not in edge or "target" not in edge:
            bad(f"edge {i} must be an object with 'source' and 'target'")
        for end in ("source", "target"):
            if not isinstance(edge[end], (int, str)) or isinstance(edge[end], bool) \
                    or edge[end] not in ids:
                bad(f"edge {i}: {end} {str(edge[end])[:40]} is not a node of the graph")
        if "count" in edge and not (type(edge["count"]) is int and edge["count"] >= 0):
            bad(f"edge {i}: 'count' must be a non-negative integer")
        if "probability" in edge and not (_is_number(edge["probability"])
                                          and 0 <= edge["probability"] <= 1):
            bad(f"edge {i}: 'probability' must be a number in [0, 1]")


def _offsets(by_input: dict[str, Any], fps) -> dict[str, np.ndarray]:
    """Each input's point indices in ``fps`` (the points are stored input by input)."""
    out, start = {}, 0
    for name, part in by_input.items():
        out[name] = np.arange(start, start + len(part))
        start += len(part)
    return out


def _read_manifolds(path: Path, fps) -> list[tuple[str, Any]]:
    from ..analysis import AttractorManifold
    from ..io._safe import read_safetensors

    t, meta = read_safetensors(path, kind="manifolds")
    rows = meta.get("manifolds")
    if not isinstance(rows, list):
        raise RunError(f"{path}: its metadata lists no manifolds")
    states = np.asarray(fps.states)
    out = []
    for i, row in enumerate(rows):
        try:
            idx = np.asarray(t[f"m{i}.indices"], np.int64)
            if idx.size and (idx.min() < 0 or idx.max() >= len(fps)):
                raise RunError(f"{path}: manifold {i} refers to points outside the "
                               f"{len(fps)} fixed points")
            ev = t[f"m{i}.tangent_eigenvalues_re"] + 1j * t[f"m{i}.tangent_eigenvalues_im"]
            m = AttractorManifold(
                kind=str(row["kind"]), dimension=int(row["dimension"]), states=states[idx],
                indices=idx, length=float(row["length"]), speeds=np.asarray(t[f"m{i}.speeds"]),
                tangent_eigenvalues=ev, tangent_alignment=np.asarray(t[f"m{i}.tangent_alignment"]),
                near_zero_tangent=bool(row["near_zero_tangent"]),
                spread=float(row.get("spread", 0.0)))
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, RunError):
                raise
            raise RunError(f"{path}: manifold {i} cannot be read ({e})") from None
        out.append((str(row.get("input", "")), m))
    return out


def _search_manifolds(by_input, inputs, *, offsets=None) -> list[tuple[str, Any]]:
    """Attractor manifolds per input (``indices`` into the whole set when ``offsets``)."""
    from ..analysis import attractor_manifolds

    out = []
    for name, _ in inputs:
        part = by_input.get(name)
        if part is None or len(part) == 0:
            continue
        try:
            found = attractor_manifolds(part)
        except ValueError:  # too few points to search
            continue
        for m in found:
            if offsets is not None:
                m = dataclasses.replace(m, indices=offsets[name][np.asarray(m.indices)])
            out.append((name, m))
    return out


def manifolds_per_input(fixed_points) -> list[tuple[str, Any]]:
    """Attractor manifolds of ``fixed_points`` searched input by input (points of different
    constant inputs belong to different systems): ``[(input name, AttractorManifold)]``,
    inputs named ``input0, input1, ...`` in the order of their vectors, ``indices`` into
    ``fixed_points``."""
    if len(fixed_points) == 0:
        return []
    vecs = np.asarray(fixed_points.inputs, float).reshape(len(fixed_points), -1)
    uniq, group = np.unique(vecs, axis=0, return_inverse=True)
    group = np.asarray(group).reshape(-1)
    names = [f"input{i}" for i in range(len(uniq))]
    by_input = {n: fixed_points[np.nonzero(group == i)[0]] for i, n in enumerate(names)}
    offsets = {n: np.nonzero(group == i)[0] for i, n in enumerate(names)}
    return _search_manifolds(by_input, [(n, None) for n in names], offsets=offsets)


@single_blas_thread
def analyze_run(
    run: "Run | str | os.PathLike",
    *,
    inputs: Mapping[str, Sequence[float]] | Sequence[Sequence[float]] | None = None,
    n_initial: int = 1024,
    n_trials: int = 128,
    noise: float = 0.0,
    slow: bool = True,
    slow_tol: float | None = None,
    slow_fraction: float | None = None,
    n_slow_initial: int = 256,
    tol: float = 1e-10,
    n_components: int = 3,
    topology_starts: int = 32,
    seed: int = 0,
    save: bool = True,
    out: str | os.PathLike | None = None,
    force: bool = False,
    progress: bool = False,
) -> RunAnalysis:
    """Reverse-engineer a trained run with the field's default analysis.

    For each constant input the network receives (the task's ``fixed_point_inputs()``, or
    ``inputs``), roots are searched from ``n_initial`` candidate states sampled from
    ``n_trials`` task trials (plus Gaussian ``noise``), and slow points from the first
    ``n_slow_initial`` of them, and (`rnnlab.analysis._slow.fill_ring_gaps`) from at most
    256 more placed in the gaps of a candidate ring, kept where they are slow inside a gap
    (``summary["inputs"][i]["ring_gaps"]`` says how many). The slow-point tolerance is the rule of
    `rnnlab.analysis.slow_point_tolerance` (points that move less than ``slow_fraction`` of
    the task trajectories' extent over a trial), or the speed ``slow_tol``; ``slow=False``
    searches roots only. Then PCA of the trajectories, the topology among the roots
    (``topology_starts`` perturbed runs each) and attractor manifolds per input.

    Returns a `RunAnalysis`; with ``save`` it is also written to ``out`` (default
    ``RUN/analysis/``). An analysis already there made with other settings is never replaced
    silently: `RunError` names the settings that differ, unless ``force``. Everything random
    derives from ``PRNGKey(seed)``, so the same settings give the same analysis.
    With ``progress``, one line per phase goes to stderr (elapsed seconds and what was found).
    """
    from .._simulate import simulate
    from ..analysis import (
        FixedPoints, find_fixed_points, pca, sample_states, slow_point_tolerance,
    )
    from ..analysis._slow import fill_ring_gaps
    from ..analysis._slow import DEFAULT_FRACTION
    from ..analysis._structure import root_topology

    if not isinstance(run, Run):
        run = Run.open(run)
    n_initial = v.positive_int("n_initial", n_initial)
    n_trials = v.positive_int("n_trials", n_trials)
    n_slow_initial = v.positive_int("n_slow_initial", n_slow_initial)
    n_components = v.positive_int("n_components", n_components)
    topology_starts = v.positive_int("topology_starts", topology_starts)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    seed = int(seed)
    tol = v.positive_number("tol", tol)
    noise = v.nonnegative_number("noise", noise)
    if slow_tol is not None:
        slow_tol = v.positive_number("slow_tol", slow_tol)
        if slow_tol < tol:
            raise ValueError(f"slow_tol must be a number >= tol ({tol}), got {slow_tol}")
    if slow_fraction is not None:
        slow_fraction = v.positive_number("slow_fraction", slow_fraction)
    if not slow and (slow_tol is not None or slow_fraction is not None):
        raise ValueError("slow=False (no slow points) cannot be combined with slow_tol or "
                         "slow_fraction")
    if slow_tol is not None and slow_fraction is not None:
        raise ValueError("give either slow_tol (a speed) or slow_fraction (the rule), not both")
    task = run.require_task()
    model = run.model
    named = analysis_inputs(task) if inputs is None else _named_inputs(inputs, model.n_in)
    settings = {"inputs": [[name, vec] for name, vec in named], "n_initial": n_initial,
                "n_trials": n_trials, "noise": noise, "slow": bool(slow), "slow_tol": slow_tol,
                "slow_fraction": slow_fraction, "n_slow_initial": n_slow_initial, "tol": tol,
                "n_components": n_components, "topology_starts": topology_starts, "seed": seed}
    target = Path(out) if out is not None else run.analysis_dir
    if save and not force:
        _refuse_other_settings(target, settings)

    k_trials, k_samp, k_topo = _analysis_keys(seed)
    t0 = time.perf_counter()

    def phase(msg: str) -> None:
        if progress:
            print(f"analyze [{time.perf_counter() - t0:6.1f} s] {msg}", file=sys.stderr,
                  flush=True)

    phase(f"simulating {n_trials} trials of {type(task).__name__}; {n_initial} candidates")
    trials = _sample_trials(task, k_trials, n_trials)
    traj = simulate(model, trials.inputs)
    # on the host: the slices below are then no programs of their own
    candidates = np.asarray(sample_states(traj, n_initial, key=k_samp, noise_std=noise))
    # The slow-point tolerance: a speed that moves less than a small fraction of the task
    # trajectories' extent over one trial (or the user's own).
    if not slow:
        slow_info: dict[str, Any] = {"source": "none", "tol": None}
    elif slow_tol is not None:
        slow_info = {"source": "slow_tol", "tol": float(slow_tol)}
    else:
        rule = slow_point_tolerance(
            model, traj, fraction=DEFAULT_FRACTION if slow_fraction is None else slow_fraction)
        slow_info = {"source": "rule", **rule.as_dict(), "tol": max(rule.tol, tol)}
    used_slow = slow_info["tol"]
    phase("slow points: " + ("not searched" if used_slow is None else f"|F| < {used_slow:.3g}"))
    # Roots from every candidate; slow points from a subset: each slow candidate stops where
    # it first becomes slow, so it gives one point (and its eigendecomposition) per
    # candidate, and a few hundred cover a line or ring.
    slow_candidates = candidates[:min(n_slow_initial, n_initial)]
    parts, gap_info = [], {}
    for name, vec in named:
        # The slow-point search runs in a second thread beside the root search (they share
        # nothing; XLA and LAPACK release the GIL): on 2 cores the two took 1.5 s one after
        # the other, about 1.0 s side by side (flip-flop).
        slow_search = None if used_slow is None else _in_thread(
            find_fixed_points, model, np.asarray(vec), slow_candidates, tol=tol,
            slow_tol=used_slow)
        part = find_fixed_points(model, np.asarray(vec), candidates, tol=tol)
        if slow_search is not None:
            found = slow_search()
            part = FixedPoints.concatenate([part, found[~np.asarray(found.converged)]])
            # a candidate ring broken only by gaps: its gaps searched for slow points too
            # (they close it where the network is slow there, not across an arc's opening)
            fill = fill_ring_gaps(model, np.asarray(vec), part, slow_tol=used_slow, tol=tol)
            if len(fill.points):
                part = FixedPoints.concatenate([part, fill.points])
            gap_info[name] = fill.as_dict()
        parts.append(part)
        conv = np.asarray(part.converged, bool)
        phase(f"input {len(parts)}/{len(named)} ({name}): {int(conv.sum())} roots, "
              f"{int((~conv).sum())} slow points"
              + (f" ({gap_info[name]['landed']} in the gaps of a candidate ring)"
                 if gap_info.get(name, {}).get("seeds") else ""))
    fps = FixedPoints.concatenate(parts)
    proj = pca(traj.states, min(n_components, model.state_size))
    phase(f"topology among the roots ({topology_starts} perturbed runs each)")
    graph = root_topology(model, fps, key=k_topo, n_starts=topology_starts)
    if used_slow is not None:
        phase("attractor manifolds per input")
    by_input = {name: p for (name, _), p in zip(named, parts)}
    manifolds = (_search_manifolds(by_input, named, offsets=_offsets(by_input, fps))
                 if used_slow is not None else [])
    elapsed = time.perf_counter() - t0

    man_rows = [
        {"input": name, "kind": m.kind, "dimension": m.dimension,
         "n_points": int(m.states.shape[0]), "length": float(m.length),
         "near_zero_tangent": bool(m.near_zero_tangent), **tangent_in_view(model, m)}
        for name, m in manifolds
    ]
    per_input = [
        {"name": name, "input": vec, **p.summary(),
         **({"ring_gaps": gap_info[name]} if name in gap_info else {}),
         "manifolds": sum(1 for r in man_rows if r["input"] == name),
         "manifold_list": [r for r in man_rows if r["input"] == name]}
        for (name, vec), p in zip(named, parts)
    ]
    total = fps.summary()
    n_differ = int(total.get("views_differ", 0))
    views_line = None
    if n_differ:
        dt = float(model.dt)
        views_line = (f"{n_differ} root{'s' if n_differ != 1 else ''} change stability between "
                      f"the ODE and the simulated Euler map at dt={dt:g} ms: the network's "
                      "function depends on its step size")
    summary = {
        "run": str(run.path),
        "n_initial": n_initial,
        "n_slow_initial": None if used_slow is None else min(n_slow_initial, n_initial),
        "tol": tol,
        "slow_tol": used_slow,
        "slow_tolerance": slow_info,
        "stability_view": stability_view(model),
        "inputs": per_input,
        "total": total,
        "views_differ": n_differ,
        "views_differ_message": views_line,
        "pca_explained_variance_ratio": proj.explained_variance_ratio.tolist(),
        "manifolds": man_rows,
        "settings": settings,
        "wall_time_s": elapsed,
    }
    result = RunAnalysis(inputs=named, fixed_points=fps, pca=proj, topology=graph,
                         manifolds=manifolds, summary=summary)
    phase(f"done: {len(fps)} points, {len(manifolds)} manifolds"
          + (f"; writing {target}" if save else ""))
    if save:
        result.save(target)
        if target == run.analysis_dir:
            run._cache["analysis"] = result
    return result


def _in_thread(fn, *args, **kwargs):
    """Start ``fn(*args, **kwargs)`` in a new daemon thread (an interrupted analysis does not
    wait for it), with this thread's `jax.enable_x64` setting (JAX's configuration contexts
    are per thread); returns a function that waits for the result (or raises the exception
    ``fn`` raised)."""
    x64 = bool(jax.config.jax_enable_x64)
    future: Future = Future()

    def run():
        try:
            with jax.enable_x64(x64):
                future.set_result(fn(*args, **kwargs))
        except BaseException as e:  # handed to the waiting thread
            future.set_exception(e)

    threading.Thread(target=run, name="rnnlab-analysis", daemon=True).start()
    return future.result


def _sample_trials(task, key, n_trials: int):
    """The trials whose states seed the search, drawn as one compiled program. Eagerly,
    `sample_batch` dispatches (and, with the CLI's compilation cache warm, looks up) a few
    dozen small programs: 0.9 s of a warm 3-4 s `rnnlab analyze` (load 5), and 3.4 s to
    compile them cold. The program is compiled without LLVM's optimisation passes: it runs
    once, in 0.02 s, and compiles in 1.0 s instead of 3.5 s (flip-flop, 256 trials). The
    inputs can differ from the eager draw's in their last bit (XLA's rounding of fused
    operations); only the starting states depend on them, and the analysed inputs come
    from the task. The compiled draw is kept per (task, number of trials) in the process."""
    try:
        draw = _trial_draw(task, n_trials)
    except TypeError:  # a task with unhashable fields: compiled for this call only
        draw = _trial_draw.__wrapped__(task, n_trials)
    return draw(key)


@functools.partial(jax.jit, static_argnums=0, compiler_options=QUICK_COMPILE)
def _analysis_keys(seed: int):
    """``jax.random.split(jax.random.PRNGKey(seed), 3)`` unstacked, as one program (eagerly
    three, compiled in 0.25 s cold); integer arithmetic, the same bits at any optimisation."""
    keys = jax.random.split(jax.random.PRNGKey(seed), 3)
    return keys[0], keys[1], keys[2]


@functools.lru_cache(maxsize=8)
def _trial_draw(task, n_trials: int):
    return jax.jit(lambda k: task.sample_batch(k, n_trials), compiler_options=QUICK_COMPILE)


def _refuse_other_settings(target: Path, settings: dict[str, Any]) -> None:
    """`RunError` when ``target`` holds an analysis made with settings other than
    ``settings`` (or of unknown settings)."""
    if not (target / SUMMARY).is_file() and not (target / FIXED_POINTS).is_file():
        return
    old = None
    try:
        old = read_json_object(target / SUMMARY).get("settings")
    except RunError:
        pass
    if isinstance(old, dict) and "n_initial" in old:
        differ = [k for k in settings if old.get(k) != json.loads(json.dumps(settings[k]))]
        if not differ:
            return  # the same settings give the same analysis: replacing it loses nothing
        what = ", ".join(f"{k} {old.get(k)!r} -> {settings[k]!r}" for k in differ[:4])
        why = f"made with other settings ({what})"
    else:
        why = "whose settings are not recorded"
    raise RunError(f"{target} already holds an analysis {why}; pass force=True "
                   "(rnnlab analyze --force) to replace it, or out=... (--out DIR) to write "
                   "this one elsewhere")

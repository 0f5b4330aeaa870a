"""Fuzzing every file rnnlab reads (issue 17): model, FixedPoints, config, history, topology
and summary files are truncated, bit-flipped in header and data, given hostile values, wrong
types and huge sizes. For every case: either exactly the original loads (binary files, whose
checksum covers everything) or what the file says loads (JSON files, which people may edit),
or a one-line `FileFormatError` naming the file; never a different model, a hang, a memory
blow-up (the address space is limited while the cases run) or another exception.

Bounded: 370 cases, a few seconds on a quiet machine.
"""

import contextlib
import json
import math
import resource
import struct
import time
from pathlib import Path

import jax
import networkx as nx
import numpy as np
import pytest

import rnnlab as rl
from rnnlab.analysis import FixedPoints
from rnnlab.io._safe import FileFormatError, encode_safetensors, read_safetensors
from rnnlab.runs import Run, RunAnalysis
from rnnlab.runs._run import read_history

FIXTURES = Path(__file__).parent / "fixtures"
RNG_SEED = 17
MAX_SECONDS_PER_CASE = 20.0  # generous for a loaded 2-core machine; a hang takes far longer
EXTRA_MEMORY = 1536 * 2**20  # address space the cases may add to the process


@contextlib.contextmanager
def memory_limit(extra: int = EXTRA_MEMORY):
    """Limit the process's address space to what it uses now plus ``extra`` (RLIMIT_AS): a
    case that tried to allocate gigabytes fails with MemoryError, which the checks count as a
    failure, instead of exhausting the machine."""
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = vm + extra if hard == resource.RLIM_INFINITY else min(vm + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# ------------------------------------------------------------------------------ mutations


def _binary_mutations(data: bytes, rng) -> list[tuple[str, bytes]]:
    (n,) = struct.unpack("<Q", data[:8])
    out = [("empty", b""), ("7 bytes", data[:7]), ("header only", data[:8 + n])]
    for cut in rng.integers(8, len(data), 12):
        out.append((f"truncated at {cut}", data[:cut]))
    for pos in [*rng.integers(0, 8 + n, 40), *rng.integers(8 + n, len(data), 20)]:
        b = bytearray(data)
        b[pos] ^= 1 << int(rng.integers(8))
        out.append((f"bit flip at {pos}", bytes(b)))
    for size in (2**63, 2**32, len(data) - 7, 0):
        out.append((f"header length {size}", struct.pack("<Q", size) + data[8:]))
    b = bytearray(data)
    start = int(rng.integers(8, len(data) - 16))
    b[start:start + 16] = bytes(rng.integers(0, 256, 16, dtype=np.uint8))
    out.append((f"16 random bytes at {start}", bytes(b)))
    out.append(("garbage appended", data + b"\0" * 13))
    out.append(("not safetensors", b"PK\x03\x04" + b"\0" * 60))
    return out


def _resigned(path: Path, changes) -> list[tuple[str, bytes]]:
    """Hostile content with a valid checksum (what a writer that knows the format makes)."""
    out = []
    for name, change in changes:
        t, m = read_safetensors(path)
        change(t, m)
        out.append((f"re-signed: {name}", encode_safetensors(t, m)))
    return out


def _json_mutations(text: str, rng, hostile: list[tuple[str, str | bytes]]
                    ) -> list[tuple[str, bytes]]:
    data = text.encode()
    out = [("empty", b"")]
    for cut in rng.integers(1, len(data), 8):
        out.append((f"truncated at {cut}", data[:cut]))
    for pos in rng.integers(0, len(data), 16):
        b = bytearray(data)
        b[pos] ^= 1 << int(rng.integers(8))
        out.append((f"bit flip at {pos}", bytes(b)))
    generic = [("a list", "[]"), ("null", "null"), ("a string", '"x"'), ("a number", "7"),
               ("deep nesting", "[" * 100_000 + "]" * 100_000),
               ("5000-digit number", '{"a": ' + "9" * 5000 + "}"),
               ("not UTF-8", b"\xff\xfe{\x00}"), ("duplicate keys", '{"a": 1, "a": 2}'),
               ("NUL bytes", b"\0" * 64)]
    for name, value in [*generic, *hostile]:
        out.append((name, value if isinstance(value, bytes) else value.encode()))
    return out


# ------------------------------------------------------------------------------ the checks


def _check_cases(path: Path, cases, load, same, expect_original: bool):
    """Write each case to ``path`` and load it; returns the failures (name, what)."""
    original = path.read_bytes()
    failures = []
    with memory_limit():
        for name, blob in cases:
            path.write_bytes(blob)
            t0 = time.perf_counter()
            try:
                value = load()
            except FileFormatError as e:
                text = str(e)
                if "\n" in text or str(path) not in text:
                    failures.append((name, f"message not one line naming the file: {text!r}"))
            except BaseException as e:  # noqa: BLE001 - any other outcome is a failure
                failures.append((name, f"{type(e).__name__}: {str(e)[:200]}"))
            else:
                if expect_original and blob != original and not same(value):
                    failures.append((name, "loaded something other than the original"))
                elif not expect_original and not same(value, blob):
                    failures.append((name, "loaded something other than what the file holds"))
            if time.perf_counter() - t0 > MAX_SECONDS_PER_CASE:
                failures.append((name, f"took {time.perf_counter() - t0:.1f} s"))
    path.write_bytes(original)
    return failures


def _leaves_equal(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return type(a) is type(b) and len(la) == len(lb) and all(
        np.asarray(x).dtype == np.asarray(y).dtype and np.array_equal(np.asarray(x),
                                                                      np.asarray(y))
        for x, y in zip(la, lb))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    model = rl.CTRNN(3, 8, 3, key=jax.random.PRNGKey(3), dale=True, noise_std=0.05)
    rl.save(d / "model.safetensors", model)
    fps = FixedPoints.load(FIXTURES / "fixed_points_v2.safetensors")
    fps.save(d / "points.safetensors")
    # a run directory with an analysis, written by hand (no training or search needed)
    run = d / "run"
    (run / "analysis").mkdir(parents=True)
    task = rl.tasks.FlipFlop(n_bits=1, n_steps=20)
    (run / "config.json").write_text(json.dumps(
        {"seed": 0, "task": {"name": "flipflop", "params": task.config()},
         "training": {"steps": 10, "batch_size": 8}}, indent=2))
    (run / "history.jsonl").write_text("".join(json.dumps(
        {"step": s, "loss": 1.0 / s, "accuracy": 0.5 + s / 100, "wall_time": 0.1 * s}) + "\n"
        for s in (10, 20, 30)))
    fps.save(run / "analysis" / "fixed_points.safetensors")
    from rnnlab.io._safe import write_safetensors

    write_safetensors(run / "analysis" / "manifolds.safetensors", {},
                      {"kind": "manifolds", "manifolds": []})
    graph = nx.DiGraph()
    for i in range(3):
        graph.add_node(i, stability="stable", n_unstable=0, speed=1e-9,
                       state=np.asarray(fps.states)[i].tolist(), input=[0.0])
    graph.add_node("unsettled", stability="unsettled")
    graph.add_edge(0, 1, count=3, probability=0.75)
    graph.add_edge(0, "unsettled", count=1, probability=0.25)
    (run / "analysis" / "topology.json").write_text(
        json.dumps(nx.node_link_data(graph, edges="edges"), indent=1))
    (run / "analysis" / "summary.json").write_text(json.dumps(
        {"inputs": [{"name": "zero", "input": [0.0]}], "settings": {"seed": 0},
         "n_initial": 64}, indent=1))
    return {"dir": d, "model": model, "points": fps, "run": run}


def test_fuzz_model_files(files):
    rng = np.random.default_rng(RNG_SEED)
    path = files["dir"] / "model.safetensors"
    cases = _binary_mutations(path.read_bytes(), rng)

    def cfg(key, value):
        return (f"config {key}={str(value)[:20]}", lambda t, m: m["config"].update({key: value}))

    cases += _resigned(path, [
        cfg("n_hidden", 30000), cfg("n_hidden", 10**30), cfg("n_in", -1), cfg("n_out", "3"),
        cfg("n_hidden", None), cfg("dt", 0.0), cfg("dt", 1e300), cfg("tau", [1.0] * 10**4),
        cfg("activation", "__import__('os')"), cfg("trainable", "w_rec"),
        cfg("noise_std", -1.0), cfg("form", {"a": 1}),
        ("meta a list", lambda t, m: (m.clear(), m.update(kind="model", config=[]))),
        ("config null", lambda t, m: m.update(config=None)),
        ("class missing", lambda t, m: m.pop("class")),
        ("kind checkpoint", lambda t, m: m.update(kind="checkpoint")),
        ("tensor huge and empty", lambda t, m: t.update({".w_rec": np.zeros((0, 30000))})),
        ("tensor float16", lambda t, m: t.update({".b_rec": t[".b_rec"].astype(np.float16)})),
        ("tensor inf", lambda t, m: t[".w_out"].__setitem__((0, 0), np.inf)),
        ("E/I signs swapped", lambda t, m: t.update({".ei_sign": -t[".ei_sign"]})),
    ])
    assert len(cases) >= 100
    failures = _check_cases(path, cases, lambda: rl.load(path),
                            lambda m: _leaves_equal(m, files["model"])
                            and m.config() == files["model"].config(), expect_original=True)
    assert failures == []


def test_fuzz_fixed_points_files(files):
    rng = np.random.default_rng(RNG_SEED + 1)
    path = files["dir"] / "points.safetensors"
    cases = _binary_mutations(path.read_bytes(), rng)
    k = len(files["points"])
    cases += _resigned(path, [
        ("27 labels for 9 points", lambda t, m: t.update(stability_codes=np.zeros(27, np.int8))),
        ("code 100", lambda t, m: t["stability_codes"].__setitem__(0, 100)),
        ("code -1", lambda t, m: t["ode_stability_codes"].__setitem__(0, -1)),
        ("labels unknown", lambda t, m: m.update(stability_labels=["a"] * 6)),
        ("labels not a list", lambda t, m: m.update(stability_labels="stable")),
        ("dt negative", lambda t, m: m.update(dt=-10.0)),
        ("dt string", lambda t, m: m.update(dt="10")),
        ("marginal_tol null", lambda t, m: m.update(marginal_tol=None)),
        ("labels_version 2 without labels", lambda t, m: m.update(labels_version=2)),
        ("states 1-d", lambda t, m: t.update(states=np.zeros(k))),
        ("jacobians too small", lambda t, m: t.update(jacobians=np.zeros((k, 1, 1)))),
        ("eigenvectors huge N", lambda t, m: t.update(
            **{"right_eigenvectors.real": np.zeros((k, 2, 40000), np.float32)[:, :, :0]})),
        ("counts negative", lambda t, m: t["counts"].__setitem__(0, -5)),
        ("n_unstable > N", lambda t, m: t["n_unstable"].__setitem__(0, 99)),
        ("states as int", lambda t, m: t.update(states=t["states"].astype(np.int64))),
        ("n_points wrong", lambda t, m: m.update(n_points=10**9)),
    ])

    def same(p):
        return all(np.array_equal(np.asarray(getattr(p, f)), np.asarray(
            getattr(files["points"], f)), equal_nan=True) for f in
            ("states", "eigenvalues", "stability_codes", "converged", "jacobians")) and \
            p.dt == files["points"].dt and p.stability == files["points"].stability

    failures = _check_cases(path, cases, lambda: FixedPoints.load(path), same,
                            expect_original=True)
    assert failures == []


def _parsed(blob: bytes):
    return json.loads(blob.decode("utf-8"))


def test_fuzz_config_files(files):
    rng = np.random.default_rng(RNG_SEED + 2)
    run = files["run"]
    path = run / "config.json"
    base = json.loads(path.read_text())

    def with_params(**kw):
        c = json.loads(json.dumps(base))
        c["task"]["params"].update(kw)
        return json.dumps(c)

    hostile = [
        ("task a string", json.dumps({**base, "task": "flipflop"})),
        ("params a list", json.dumps({**base, "task": {"name": "flipflop", "params": []}})),
        ("n_steps 1e6", with_params(n_steps=1_000_000)),
        ("n_steps 1e6 float", with_params(n_steps=1e6)),
        ("n_bits 1e5", with_params(n_bits=100_000)),
        ("n_bits -1", with_params(n_bits=-1)),
        ("dt 0", with_params(dt=0)),
        ("dt NaN", with_params(dt=float("nan"))),
        ("unknown param", with_params(evil="__import__('os')")),
        ("task name null", json.dumps({**base, "task": {"name": None, "params": {}}})),
    ]
    cases = _json_mutations(path.read_text(), rng, hostile)

    def load():
        r = Run.open(run, require_model=False)
        return r.config, r.task

    def same(value, blob):
        config, task = value
        return config == _parsed(blob) and (task is None or task.n_steps <= 100_000)

    failures = _check_cases(path, cases, load, same, expect_original=False)
    assert failures == []


def test_fuzz_history_files(files):
    rng = np.random.default_rng(RNG_SEED + 3)
    path = files["run"] / "history.jsonl"
    hostile = [
        ("a line without loss", '{"step": 10, "accuracy": 0.5}\n'),
        ("step negative", '{"step": -1, "loss": 0.5}\n'),
        ("step a string", '{"step": "10", "loss": 0.5}\n'),
        ("loss a string", '{"step": 10, "loss": "low"}\n'),
        ("loss an object", '{"step": 10, "loss": {"a": 1}}\n'),
        ("a line that is a list", '[1, 2]\n'),
        ("huge step", '{"step": 1' + "0" * 400 + ', "loss": 0.5}\n'),
    ]
    cases = _json_mutations(path.read_text(), rng, hostile)

    def same(records, blob):
        want = [json.loads(line) for line in blob.decode().splitlines() if line.strip()]
        return json.dumps(records) == json.dumps(want) and all(
            isinstance(r["step"], int) and isinstance(r["loss"], (int, float)) for r in records)

    failures = _check_cases(path, cases, lambda: read_history(path), same,
                            expect_original=False)
    assert failures == []


def _analysis_cases(files, name, hostile, seed):
    rng = np.random.default_rng(seed)
    path = files["run"] / "analysis" / name
    return path, _json_mutations(path.read_text(), rng, hostile)


def test_fuzz_topology_files(files):
    base = json.loads((files["run"] / "analysis" / "topology.json").read_text())

    def edit(f):
        g = json.loads(json.dumps(base))
        f(g)
        return json.dumps(g)

    hostile = [
        ("edge to a node that does not exist", edit(lambda g: g["edges"].append(
            {"source": 0, "target": 99, "count": 1}))),
        ("node id beyond the points", edit(lambda g: g["nodes"].append({"id": 10**6}))),
        ("node id a list", edit(lambda g: g["nodes"].append({"id": [1]}))),
        ("edge source a list", edit(lambda g: g["edges"].append({"source": [0], "target": 1}))),
        ("nodes null", edit(lambda g: g.update(nodes=None))),
        ("speed a string", edit(lambda g: g["nodes"][0].update(speed="fast"))),
        ("n_unstable huge", edit(lambda g: g["nodes"][0].update(n_unstable=10**9))),
        ("probability 2", edit(lambda g: g["edges"][0].update(probability=2.0))),
        ("multigraph", edit(lambda g: g.update(multigraph=True))),
        ("duplicate node", edit(lambda g: g["nodes"].append(dict(g["nodes"][0])))),
        ("state of 10^6 numbers", edit(lambda g: g["nodes"][0].update(state=[0.0] * 10**6))),
    ]
    path, cases = _analysis_cases(files, "topology.json", hostile, RNG_SEED + 4)

    def same(analysis, blob):
        got = nx.node_link_data(analysis.topology, edges="edges")
        want = nx.node_link_data(nx.node_link_graph(_parsed(blob), directed=True,
                                                    edges="edges"), edges="edges")
        return json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)

    failures = _check_cases(path, cases, lambda: RunAnalysis.load(files["run"] / "analysis"),
                            same, expect_original=False)
    assert failures == []


def test_fuzz_summary_files(files):
    hostile = [
        ("inputs a string", '{"inputs": "zero"}'),
        ("input of the wrong length", '{"inputs": [{"name": "a", "input": [0, 1, 2]}]}'),
        ("input NaN", '{"inputs": [{"name": "a", "input": [NaN]}]}'),
        ("name a number", '{"inputs": [{"name": 3, "input": [0]}]}'),
        ("settings a list", '{"settings": [1]}'),
        ("slow_tolerance a string", '{"slow_tolerance": "x"}'),
    ]
    path, cases = _analysis_cases(files, "summary.json", hostile, RNG_SEED + 5)

    def same(analysis, blob):
        want = _parsed(blob)
        rows = [r for r in want.get("inputs", []) if isinstance(r, dict) and "input" in r]
        # (without input rows the inputs are those of the saved points)
        names = [r["name"] for r in rows] or [n for n, _ in analysis.inputs]
        return analysis.summary == want and [n for n, _ in analysis.inputs] == names and all(
            math.isfinite(a) for _, u in analysis.inputs for a in u)

    failures = _check_cases(path, cases, lambda: RunAnalysis.load(files["run"] / "analysis"),
                            same, expect_original=False)
    assert failures == []


def test_the_memory_limit_bites():
    """The guard of the cases above can fail: 4 GiB more than the limit allows is refused."""
    with memory_limit(256 * 2**20):
        with pytest.raises(MemoryError):
            np.ones(2**32, np.uint8)

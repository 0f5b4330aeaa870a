"""Issue 17's attack table: hostile and bit-rotted files, hostile sizes, dangerous targets, a
full disk, leftovers, byte-identical saves, the report's CSP, against the rnnlab on PYTHONPATH.

    PYTHONPATH=/tmp/rnnlab_base/src python benchmarks/attacks.py   # a baseline tree
    PYTHONPATH=src python benchmarks/attacks.py                    # this tree

Prints one row per attack ("held" or "BROKEN" with what happened), then the rows as JSON.
Each attack runs under an address-space limit (1.5 GB more than the process holds; the CLI
ones in a 6 GB process), so what would exhaust the machine fails fast instead. Run it from a
scratch folder: a tree that accepts `--out ""` writes a run into the current directory.
"""
import contextlib, io, json, os, resource, shutil, signal, struct, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np
import jax
import rnnlab as rl
from rnnlab.io import _safe

TMP = Path(tempfile.mkdtemp(prefix="attack_"))
rows = []

def row(name, held, note=""):
    rows.append((name, "held" if held else "BROKEN", note))
    print(f"{'held' if held else 'BROKEN':7} {name}  {note}", flush=True)

@contextlib.contextmanager
def memlimit(extra=1536 * 2**20):
    vm = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (vm + extra, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))

def one_line_error(fn, must=None):
    """(held, note): a ValueError-ish one-line message naming `must`."""
    try:
        with memlimit():
            fn()
    except MemoryError:
        return False, "MemoryError (allocated > 1.5 GB)"
    except (ValueError, TypeError, FileNotFoundError) as e:
        t = str(e)
        ok = "\n" not in t.strip() and (must is None or must in t)
        return ok, f"{type(e).__name__}: {t[:90]!r}"
    except BaseException as e:
        return False, f"{type(e).__name__}: {str(e)[:90]!r}"
    return False, "loaded without error"

def cli(args, env=None):
    """Run `rnnlab ARGS` in a subprocess under an address-space limit; (code, stderr lines)."""
    code = ("import resource, sys; vm = 6 * 2**30; resource.setrlimit(resource.RLIMIT_AS, (vm, vm));"
            "from rnnlab.cli import main; sys.exit(main(sys.argv[1:]))")
    p = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                       env={**os.environ, "RNNLAB_COMPILE_CACHE": "0", **(env or {})}, timeout=600)
    return p.returncode, [l for l in p.stderr.splitlines() if l.strip()]

model = rl.CTRNN(3, 16, 3, key=jax.random.PRNGKey(0))
mpath = TMP / "m.safetensors"
rl.save(mpath, model)
ref = [np.asarray(x) for x in jax.tree.leaves(model)]

def same_model(m):
    return type(m) is type(model) and m.config() == model.config() and all(
        np.array_equal(a, np.asarray(b)) for a, b in zip(ref, jax.tree.leaves(m)))

# 1. tanh -> relu in the header
data = mpath.read_bytes()
p = TMP / "relu.safetensors"; p.write_bytes(data.replace(b"tanh", b"relu"))
row("model header: tanh -> relu", *one_line_error(lambda: rl.load(p), str(p)))
# 2. single header bit flips
(n,) = struct.unpack("<Q", data[:8])
rng = np.random.default_rng(0)
different = tb = 0
for pos in rng.integers(0, 8 + n, 300):
    b = bytearray(data); b[pos] ^= 1 << int(rng.integers(8)); p.write_bytes(bytes(b))
    try:
        m = rl.load(p)
        if not same_model(m): different += 1
    except ValueError as e:
        if "\n" in str(e) or str(p) not in str(e): tb += 1
    except BaseException:
        tb += 1
row("model: 300 single header bit flips", different == 0 and tb == 0,
    f"{different} loaded a different model, {tb} other errors")
# 3. FixedPoints bit flips
fp = rl.analysis.FixedPoints.load(Path(rl.__file__).parents[2] / "tests/fixtures/fixed_points_v2.safetensors")
fpp = TMP / "fp.safetensors"; fp.save(fpp); fdata = fpp.read_bytes()
(n2,) = struct.unpack("<Q", fdata[:8])
garbled = other = 0
for pos in rng.integers(0, len(fdata), 300):
    b = bytearray(fdata); b[pos] ^= 1 << int(rng.integers(8)); fpp.write_bytes(bytes(b))
    try:
        f2 = rl.analysis.FixedPoints.load(fpp)
        if f2.stability != fp.stability or not np.array_equal(np.asarray(f2.states), np.asarray(fp.states)):
            garbled += 1
    except ValueError as e:
        if "\n" in str(e) or str(fpp) not in str(e): other += 1
    except BaseException:
        other += 1
row("FixedPoints: 300 single bit flips", garbled == 0 and other == 0,
    f"{garbled} garbled loads, {other} bare/other errors")
# 4. 5 states and 27 labels, written through the library's own writer
fpp.write_bytes(fdata)
t, meta = _safe.read_safetensors(fpp)
t["stability_codes"] = np.zeros(27, np.int8)
_safe.write_safetensors(fpp, t, meta)
row("FixedPoints: 9 states, 27 labels", *one_line_error(lambda: rl.analysis.FixedPoints.load(fpp), str(fpp)))
# 5. n_hidden 30000 in a small model's metadata (library writer)
t, meta = _safe.read_safetensors(mpath)
meta["config"]["n_hidden"] = 30000
big = TMP / "big.safetensors"; _safe.write_safetensors(big, t, meta)
t0 = time.perf_counter()
ok, note = one_line_error(lambda: rl.load(big), str(big))
row("model metadata n_hidden=30000", ok, note + f" ({time.perf_counter() - t0:.1f} s)")
# 6. metadata a list / null
for name, value in (("a list", [1]), ("null", None)):
    t, meta = _safe.read_safetensors(mpath)
    meta["config"] = value
    q = TMP / "q.safetensors"; _safe.write_safetensors(q, t, meta)
    row(f"model metadata config {name}", *one_line_error(lambda: rl.load(q), str(q)))
# 7. run files
task = rl.tasks.FlipFlop(n_bits=2, n_steps=20)
run = TMP / "run"; run.mkdir()
rl.save(run / "model.safetensors", rl.CTRNN(task.n_in, 8, task.n_out, key=jax.random.PRNGKey(0)))
good = {"seed": 0, "task": {"name": "flipflop", "params": task.config()}}
def cfg(text):
    (run / "config.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    return lambda: (rl.runs.Run.open(run).task)
for name, text in [("[]", "[]"), ("null", "null"),
                   ("task a string", json.dumps({**good, "task": "flipflop"})),
                   ("params a list", json.dumps({**good, "task": {"name": "flipflop", "params": []}})),
                   ("deep nesting", "[" * 100000 + "]" * 100000),
                   ("non-UTF-8", b"\xff\xfe{}"),
                   ("5000-digit number", '{"seed": ' + "9" * 5000 + "}")]:
    row(f"config.json {name}", *one_line_error(cfg(text), "config.json"))
def big_steps():
    (run / "config.json").write_text(json.dumps({**good, "task": {"name": "flipflop", "params": {**task.config(), "n_steps": 1000000}}}))
    r = rl.runs.Run.open(run)
    r.sample_trials(64)
t0 = time.perf_counter()
ok, note = one_line_error(big_steps, "config.json")
row("config.json task n_steps=1e6 (plot/report/analyze path)", ok, note + f" ({time.perf_counter() - t0:.1f} s)")
(run / "config.json").write_text(json.dumps(good))
(run / "history.jsonl").write_text('{"step": 1, "accuracy": 0.5}\n')
def hist():
    h = rl.runs.Run.open(run).history
    rl.plot.training_curves(h) if hasattr(rl, "plot") else None
row("history line without loss", *one_line_error(lambda: rl.runs.Run.open(run).history, "history.jsonl"))
# topology with a node that does not exist
an = run / "analysis"; an.mkdir()
fp.save(an / "fixed_points.safetensors")
(an / "topology.json").write_text(json.dumps({"directed": True, "multigraph": False, "graph": {},
    "nodes": [{"id": 0}], "edges": [{"source": 0, "target": 99}]}))
(an / "summary.json").write_text("{}")
def topo():
    a = rl.runs.RunAnalysis.load(an)
    if 99 in a.topology.nodes: raise RuntimeError("node 99 invented")
row("topology edge to a node that does not exist", *one_line_error(topo, "topology.json"))
shutil.rmtree(an)
# 8. same bytes across processes
code = "import sys, jax, rnnlab as rl; rl.save(sys.argv[1], rl.CTRNN(3, 16, 3, key=jax.random.PRNGKey(0), noise_std=0.1, dale=True))"
outs = [TMP / f"s{i}.safetensors" for i in range(4)]
procs = [subprocess.Popen([sys.executable, "-c", code, str(o)]) for o in outs]
[p.wait() for p in procs]
hashes = {o.read_bytes() for o in outs}
row("same model saved in 4 processes: same bytes", len(hashes) == 1, f"{len(hashes)} distinct files")
# 9. simulate NaN
u = np.zeros((5, 3)); u[1, 1] = np.nan
row("rl.simulate with NaN inputs", *one_line_error(lambda: rl.simulate(model, u), "inputs"))
# 10. CLI attacks
tr = ["train", "flipflop", "-p", "n_bits=2", "-p", "n_steps=20", "--steps", "2", "--eval-every", "1",
      "--no-progress", "--hidden", "8", "--batch-size", "8"]
def cli_row(name, args, must="error"):
    code, err = cli(args)
    ok = code in (1, 2) and len(err) == 1 and must in err[0]
    row(name, ok, f"exit {code}, {len(err)} stderr lines: {err[-1][:90] if err else ''!r}")
    return code, err
(TMP / "afile").write_text("x")
cli_row("--out afile/sub", tr + ["--out", str(TMP / "afile" / "sub")])
cli_row("--out of a 300-character name", tr + ["--out", str(TMP / ("x" * 300))])
home = TMP / "home"; home.mkdir(); (home / "thesis.tex").write_text("x")
link = TMP / "link"; link.symlink_to(home)
code, err = cli(tr + ["--out", str(link)])
row("--out a symlink to a non-empty directory", code == 2 and sorted(os.listdir(home)) == ["thesis.tex"],
    f"exit {code}, files now {sorted(os.listdir(home))[:4]}")
code, err = cli(tr + ["--out", ""])
row("--out ''", code == 2 and not Path("config.json").exists(), f"exit {code}: {err[-1][:80] if err else ''!r}")
big_args = [("--hidden 100000", ["--hidden", "100000"]), ("-p n_bits=100000", ["-p", "n_bits=100000"]),
            ("--batch-size 1e9", ["--batch-size", "1000000000"])]
for name, extra in big_args:
    out = TMP / ("big" + name.replace(" ", "_").replace("=", "_"))
    code, err = cli(["train", "flipflop", "--steps", "2", "--no-progress", "--out", str(out), *extra])
    left = sorted(os.listdir(out)) if out.exists() else []
    row(f"train {name}", code == 2 and len(err) == 1 and "memory" in err[0] and "config.json" not in left,
        f"exit {code}, {len(err)} lines: {err[-1][:80] if err else ''!r}; left {left}")
code, err = cli(["analyze", str(run), "--n-initial", "1000000000", "--no-progress"])
row("analyze --n-initial 1e9", code == 2 and len(err) == 1, f"exit {code}, {len(err)} lines: {err[-1][:80] if err else ''!r}")
# full disk: a file-size limit makes every write fail like a full disk
code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN);"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000));"
        "from rnnlab.cli import main; sys.exit(main(sys.argv[1:]))")
out = TMP / "full"
p = subprocess.run([sys.executable, "-c", code, *tr, "--out", str(out)], capture_output=True, text=True,
                   env={**os.environ, "RNNLAB_COMPILE_CACHE": "0"})
err = [l for l in p.stderr.splitlines() if l.strip()]
left = [f for f in os.listdir(out) if f.endswith(".tmp")] if out.exists() else []
row("disk full while training (writes fail)", p.returncode in (1, 2) and len(err) == 1 and not left,
    f"exit {p.returncode}, {len(err)} lines: {err[-1][:80] if err else ''!r}; tmp left {left}")
# report/plot leftovers after a failure
import matplotlib; matplotlib.use("Agg")
import matplotlib.pyplot as plt
fig = plt.figure()
def boom(target, *a, **k):
    open(target, "wb").write(b"half a figure")
    raise OSError(28, "No space left on device")
fig.savefig = boom
d = TMP / "figs"; d.mkdir()
try:
    rl.plot.save_figure(fig, d / "training")
except OSError:
    pass
row("plot fails mid-write: no .tmp left", not os.listdir(d), str(os.listdir(d)))
# CSP
import inspect
import rnnlab.report._report as rep
src = inspect.getsource(rep)
csp = getattr(rep, "CSP", None) or getattr(rep, "CSP_TEMPLATE", "")
script = csp.split("script-src")[1].split(";")[0]
row("report CSP without unsafe-inline/unsafe-eval for scripts", "unsafe" not in script, script.strip()[:60])
print(json.dumps(rows))

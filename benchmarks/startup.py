"""How fast the `rnnlab` command starts, process start to exit, this tree against a baseline
tree (``git worktree add /tmp/rnnlab_base <rev>``), runs alternating so both see the same load:
`rnnlab --help`, `rnnlab tasks`, loading a model (`rl.load`, timed inside the process after
the import), and `rnnlab evaluate RUN` with an empty and with a warm compilation cache.

    python benchmarks/startup.py --run RUN --baseline /tmp/rnnlab_base --rev <rev>
        [--baseline-python PY] [--repeats 5] [--no-write]

``--baseline-python`` runs the baseline with another interpreter (an environment with other
dependencies, e.g. the ml_dtypes release the baseline was measured with).

``--only load [--model FILE]`` times model loading alone (the first `rl.load` in a process,
after the import, and a second load of the same file), on ``FILE`` or RUN's model.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# as the `rnnlab` script runs it (main() without arguments reads sys.argv)
CLI = "import sys; from rnnlab.cli import main; sys.exit(main())"
LOAD = ("import sys, time; import rnnlab as rl; rl.load; t0 = time.perf_counter(); "
        "rl.load(sys.argv[1]); print(time.perf_counter() - t0)")
LOAD_TWICE = ("import sys, time; import rnnlab as rl; rl.load; t0 = time.perf_counter(); "
              "rl.load(sys.argv[1]); t1 = time.perf_counter(); rl.load(sys.argv[1]); "
              "print(t1 - t0, time.perf_counter() - t1)")


def timed(src: Path, code: str, args, env_extra=None, python: str = sys.executable
          ) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(src), "RNNLAB_COMPILE_CACHE": "0",
           **(env_extra or {})}
    t0 = time.perf_counter()
    p = subprocess.run([python, "-c", code, *args], env=env, capture_output=True,
                       text=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{args} failed with {src}:\n{p.stderr[-2000:]}")
    return dt, p.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path)
    ap.add_argument("--model", type=Path, help="the model file to load (default RUN's)")
    ap.add_argument("--only", choices=("all", "load"), default="all")
    ap.add_argument("--baseline", type=Path, required=True)
    ap.add_argument("--rev", default="baseline")
    ap.add_argument("--baseline-python", default=sys.executable,
                    help="the interpreter (environment) that runs the baseline")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    trees = {"baseline": a.baseline / "src", "this tree": HERE.parent / "src"}
    if a.model is None and a.run is None:
        raise SystemExit("give --run RUN (or, with --only load, --model FILE)")
    model = str(a.model if a.model is not None else a.run / "model.safetensors")
    if a.only == "load":
        return load_only(trees, model, a)
    rows: dict[tuple[str, str], list[float]] = {}
    load0 = os.getloadavg()[0]
    pythons = {"baseline": a.baseline_python, "this tree": sys.executable}
    with tempfile.TemporaryDirectory() as caches:
        for r in range(a.repeats):
            for tree, src in trees.items():
                py = pythons[tree]

                def add(name, value):
                    rows.setdefault((name, tree), []).append(value)

                add("rnnlab --help", timed(src, CLI, ["--help"], python=py)[0])
                add("rnnlab tasks", timed(src, CLI, ["tasks"], python=py)[0])
                add("rl.load(model) after import",
                    float(timed(src, LOAD, [model], python=py)[1]))
                cache = {"RNNLAB_COMPILE_CACHE": "1",
                         "RNNLAB_CACHE_DIR": str(Path(caches) / f"{tree}-{r}")}
                add("rnnlab evaluate RUN (cache empty)",
                    timed(src, CLI, ["evaluate", str(a.run)], cache, python=py)[0])
                add("rnnlab evaluate RUN (cache warm)",
                    timed(src, CLI, ["evaluate", str(a.run)], cache, python=py)[0])
    load1 = os.getloadavg()[0]
    names = list(dict.fromkeys(n for n, _ in rows))
    lines = ["| what | baseline median (s) | this tree median (s) | ratio |", "|---|---|---|---|"]
    for n in names:
        b = statistics.median(rows[(n, "baseline")])
        t = statistics.median(rows[(n, "this tree")])
        lines.append(f"| {n} | {b:.3f} | {t:.3f} | {t / b:.2f} |")
    who = ("" if a.baseline_python == sys.executable else
           f" (run by `{a.baseline_python}`; this tree by `{sys.executable}`)")
    body = (f"Process start to exit (model loading: inside the process, after the import), "
            f"medians of {a.repeats} alternating runs; baseline = rnnlab at `{a.rev}`{who}; "
            f"evaluate first with an empty compilation cache folder, then with the one it "
            f"filled. Load average {load0:.1f} before, {load1:.1f} after, on a shared 2-core "
            f"machine: compare ratios.\n\n" + "\n".join(lines) + "\n")
    print(body)
    if not a.no_write:
        from _results import write_section

        write_section("rnnlab start-up", body)


def load_only(trees, model, a) -> None:
    """`rl.load` alone: the first load in a fresh process (after the import) and a second
    load of the same file, both trees alternating."""
    rows: dict[tuple[str, str], list[float]] = {}
    load0 = os.getloadavg()[0]
    for _ in range(a.repeats):
        for tree, src in trees.items():
            first, second = map(float, timed(src, LOAD_TWICE, [model])[1].split())
            rows.setdefault(("rl.load(model), first in the process", tree), []).append(first)
            rows.setdefault(("rl.load(model), second", tree), []).append(second)
    load1 = os.getloadavg()[0]
    lines = ["| what | baseline median (s) | this tree median (s) | ratio |",
             "|---|---|---|---|"]
    for n in dict.fromkeys(n for n, _ in rows):
        b = statistics.median(rows[(n, "baseline")])
        t = statistics.median(rows[(n, "this tree")])
        lines.append(f"| {n} | {b:.4f} | {t:.4f} | {t / b:.2f} |")
    body = (f"Loading `{Path(model).name}` inside a fresh process (after `import rnnlab`), "
            f"medians of {a.repeats} alternating runs; baseline = rnnlab at `{a.rev}`. Load "
            f"average {load0:.1f} before, {load1:.1f} after, on a shared 2-core machine: "
            "compare ratios.\n\n" + "\n".join(lines) + "\n")
    print(body)
    if not a.no_write:
        from _results import write_section

        write_section("rnnlab model loading", body)


if __name__ == "__main__":
    main()

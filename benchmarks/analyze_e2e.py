"""`rnnlab analyze RUN` end to end (process start to exit), this tree against a baseline.

The baseline is another source tree of rnnlab (a git worktree of an earlier commit:
``git worktree add /tmp/rnnlab_base <rev>``), run by ``--baseline-python`` (default: this
interpreter; another environment when the baseline's dependencies differ). Both analyse copies
of the same trained run (the README's 3-bit flip-flop, 64 units: ``rnnlab train flipflop --out
RUN``) with defaults, each first with an empty compilation cache (cold) and then with the one
that run filled (warm); runs alternate baseline/this tree so that both see the same machine
load. Reports medians and the ratios, and the load average before and after.

    python benchmarks/analyze_e2e.py --run RUN --baseline /tmp/rnnlab_base --rev <rev>
        [--baseline-python PY] [--repeats 3] [--no-write]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# as the `rnnlab` script runs it (main() without arguments reads sys.argv)
CODE = "import sys; from rnnlab.cli import main; sys.exit(main())"


def one(python: str, src: Path, run: Path, cache: Path | None) -> tuple[float, str]:
    """Seconds from process start to exit of ``rnnlab analyze`` (rnnlab from ``src``, run by
    ``python``) on a fresh copy of ``run`` (``cache``: the compilation cache folder; None: the
    cache off)."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "run"
        shutil.copytree(run, copy, ignore=shutil.ignore_patterns("analysis"))
        env = {**os.environ, "PYTHONPATH": str(src)}
        if cache is None:
            env["RNNLAB_COMPILE_CACHE"] = "0"
        else:
            env.update(RNNLAB_COMPILE_CACHE="1", RNNLAB_CACHE_DIR=str(cache))
        t0 = time.perf_counter()
        p = subprocess.run([python, "-c", CODE, "analyze", str(copy)], env=env,
                           capture_output=True, text=True)
        dt = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(f"analyze failed with {src}:\n{p.stderr}")
        return dt, p.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--baseline", type=Path, required=True, help="baseline source tree")
    ap.add_argument("--rev", default="baseline", help="the baseline's git revision (label)")
    ap.add_argument("--baseline-python", default=sys.executable,
                    help="the interpreter (environment) that runs the baseline")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    here_src = HERE.parent / "src"
    base_src = args.baseline / "src"
    load0 = os.getloadavg()
    trees = {"baseline": (args.baseline_python, base_src), "this tree": (sys.executable, here_src)}
    times: dict[tuple[str, str], list[float]] = {
        (t, w): [] for t in trees for w in ("cold", "warm")}
    outs = {}
    with tempfile.TemporaryDirectory() as caches:
        for r in range(args.repeats):
            for tree, (python, src) in trees.items():
                # cold: a new empty cache folder; warm: the folder the cold run just filled
                cache = Path(caches) / f"{tree}-{r}"
                for when in ("cold", "warm"):
                    dt, out = one(python, src, args.run, cache)
                    times[tree, when].append(dt)
                    outs[tree, when] = out
    load1 = os.getloadavg()
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = "\n".join(
        f"| {tree} | {when} | {med[tree, when]:.2f} | {', '.join(f'{t:.2f}' for t in v)} |"
        for (tree, when), v in times.items())
    ratio = {w: med["this tree", w] / med["baseline", w] for w in ("cold", "warm")}
    pythons = ("the same interpreter" if args.baseline_python == sys.executable else
               f"baseline run by `{args.baseline_python}`, this tree by `{sys.executable}`")
    body = f"""`rnnlab analyze` on the 3-bit flip-flop run (64 units), defaults, process start to
exit; baseline = rnnlab at `{args.rev}` ({pythons}), runs alternating. Cold: an empty
compilation cache folder; warm: the folder the cold run filled. Load average (1 min)
{load0[0]:.1f} before, {load1[0]:.1f} after, on a shared machine: compare the ratios.

| tree | cache | median (s) | runs (s) |
|---|---|---|---|
{rows}

Ratio this tree / baseline: **{ratio['cold']:.2f}** cold, **{ratio['warm']:.2f}** warm.
"""
    print(body)
    print(outs["this tree", "warm"])
    if not args.no_write:
        from _results import write_section

        write_section("rnnlab analyze end to end", body)


if __name__ == "__main__":
    main()

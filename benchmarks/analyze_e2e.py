"""`rnnlab analyze RUN` end to end (process start to exit), this tree against a baseline.

The baseline is another source tree of rnnlab (a git worktree of an earlier commit:
``git worktree add /tmp/rnnlab_base <rev>``). Both analyse copies of the same trained run (the
README's 3-bit flip-flop, 64 units: ``rnnlab train flipflop --out RUN``) with defaults; runs
alternate baseline/this tree so that both see the same machine load. Reports medians and the
ratio, and the load average before and after.

    python benchmarks/analyze_e2e.py --run RUN --baseline /tmp/rnnlab_base --rev <rev>
        [--repeats 3] [--no-write]
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


def one(src: Path, run: Path, cache: Path | None) -> tuple[float, str]:
    """Seconds from process start to exit of ``rnnlab analyze`` on a fresh copy of ``run``
    (``cache``: the compilation cache folder; None: the cache off)."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "run"
        shutil.copytree(run, copy, ignore=shutil.ignore_patterns("analysis"))
        env = {**os.environ, "PYTHONPATH": str(src)}
        if cache is None:
            env["RNNLAB_COMPILE_CACHE"] = "0"
        else:
            env.update(RNNLAB_COMPILE_CACHE="1", RNNLAB_CACHE_DIR=str(cache))
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-c", CODE, "analyze", str(copy)], env=env,
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
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    here_src = HERE.parent / "src"
    base_src = args.baseline / "src"
    load0 = os.getloadavg()
    cold, warm = "this tree, first run (empty compilation cache)", "this tree, cache warm"
    times = {"baseline": [], cold: [], warm: []}
    outs = {}
    with tempfile.TemporaryDirectory() as caches:
        for r in range(args.repeats):
            for name, src in (("baseline", base_src), (cold, here_src), (warm, here_src)):
                # cold: a new empty cache folder; warm: the folder the cold run just filled
                cache = None if name == "baseline" else Path(caches) / f"c{r}"
                dt, out = one(src, args.run, cache)
                times[name].append(dt)
                outs[name] = out
    load1 = os.getloadavg()
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med[cold] / med["baseline"]
    ratio_warm = med[warm] / med["baseline"]
    rows = "\n".join(
        f"| {k} | {med[k]:.1f} | {', '.join(f'{t:.1f}' for t in v)} |" for k, v in times.items())
    body = f"""`rnnlab analyze` on the 3-bit flip-flop run (64 units), defaults, process start to
exit; baseline = rnnlab at `{args.rev}`, runs alternating. Load average (1 min) {load0[0]:.1f}
before, {load1[0]:.1f} after, on a shared machine: compare the ratio, not the seconds.

| tree | median (s) | runs (s) |
|---|---|---|
{rows}

Ratio this tree / baseline: **{ratio:.2f}** on the first run, **{ratio_warm:.2f}** once
JAX's persistent compilation cache (on by default for the CLI) holds the programs.
"""
    print(body)
    print(outs[warm])
    if not args.no_write:
        from _results import write_section

        write_section("rnnlab analyze end to end", body)


if __name__ == "__main__":
    main()

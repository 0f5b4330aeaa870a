"""The default test suite's wall time and peak memory, as the README's test command runs it.

Runs ``python -m pytest -q`` (the README's test command, pyproject's addopts: xdist workers,
``-m 'not slow'``) in a checkout, samples every 0.25 s the resident memory (RSS, from
/proc) of the whole process tree under it (pytest, its xdist workers and every subprocess
the tests start), and writes the wall time, the peaks of the summed RSS and of the summed PSS,
the peak of the largest single process and the ten slowest files (pytest's durations) to
benchmarks/RESULTS.md. Linux only (reads /proc).

    python benchmarks/suite.py [--checkout DIR] [--python PY] [--no-write] [--log FILE]
        [-- PYTEST ARGS]

The figure to compare with the issue's goal (10 minutes quiet, 3 GB) is the peak of the
summed PSS (proportional set size: a page shared by n processes counts 1/n in each): what the
machine must hold at once. The summed RSS counts shared pages (the Python and XLA libraries
mapped by every worker, the headless browser's processes, which share most of their pages)
once per process and over-states it; the largest single process is a lower bound. The
processes at the PSS peak are listed.
"""

import argparse
import os
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = defaultdict(list)
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name is in parentheses and may hold spaces; the ppid follows it
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids[ppid].append(int(d))
    return kids


def _proc_bytes(pid: int, file: str, field: str) -> int:
    """A size in kB from /proc/PID/FILE's line ``field:``, in bytes (0 if gone)."""
    try:
        with open(f"/proc/{pid}/{file}") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _rss_bytes(pid: int) -> int:
    return _proc_bytes(pid, "status", "VmRSS:")


def _pss_bytes(pid: int) -> int:
    """Proportional set size: each shared page counted once in all, divided among the
    processes that map it (the sum over processes is what the machine holds)."""
    return _proc_bytes(pid, "smaps_rollup", "Pss:")


def _what(pid: int) -> str:
    """A short name for a process of the suite: pytest's controller, an xdist worker, a
    child pytest, a CLI subprocess (its rnnlab command), or its command line's start."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return "?"
    line = " ".join(args)
    if "sys.stdin.readline" in line or "execnet" in line or "xdist" in line:  # execnet's start
        return "xdist worker"
    if "pytest" in line:
        return "pytest" if "--junitxml" not in line else "child pytest (default XLA flags)"
    if "rnnlab" in line and "main" in line:
        cmd = next((a for a in args[3:] if not a.startswith("-")), "")
        return f"CLI subprocess ({cmd})" if cmd else "CLI subprocess"
    return line[:60]


def tree_rss(root: int, parts: list | None = None) -> tuple[int, int, int]:
    """(sum of RSS over the process tree under ``root``, largest single RSS, sum of PSS);
    with ``parts`` (a list), the (PSS, RSS, pid) of each process is appended to it."""
    kids = _children()
    todo, total, largest, pss = [root], 0, 0, 0
    while todo:
        pid = todo.pop()
        r = _rss_bytes(pid)
        q = _pss_bytes(pid) if r else 0
        total += r
        pss += q
        largest = max(largest, r)
        if parts is not None and r:
            parts.append((q, r, pid))
        todo.extend(kids.get(pid, []))
    return total, largest, pss


def _load() -> float:
    return os.getloadavg()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkout", type=Path, default=HERE.parent,
                    help="the checkout whose tests run (default: this one)")
    ap.add_argument("--python", default=sys.executable, help="the interpreter to run pytest")
    ap.add_argument("--no-write", action="store_true", help="print, do not write RESULTS.md")
    ap.add_argument("--log", type=Path, help="also save pytest's whole output here")
    ap.add_argument("--ci", action="store_true",
                    help="run `bash .ci/run` in the checkout instead (a fresh .venv, the install, "
                         "then the README's test command): the wall time includes the install, "
                         "pytest's own time is in the result line")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = ap.parse_args()

    cmd = (["bash", ".ci/run"] if args.ci
           else [args.python, "-m", "pytest", "-q", "--durations=0", *args.pytest_args])
    load_before = _load()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=args.checkout, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    peak = [0, 0, 0]  # summed RSS, largest RSS, summed PSS
    at_peak: list[tuple[int, int, str]] = []  # the processes at the summed PSS peak
    done = threading.Event()

    def sample():
        while not done.is_set():
            parts: list = []
            total, largest, pss = tree_rss(proc.pid, parts)
            if pss > peak[2]:
                at_peak[:] = sorted(((q, r, _what(pid)) for q, r, pid in parts), reverse=True)
            peak[0] = max(peak[0], total)
            peak[1] = max(peak[1], largest)
            peak[2] = max(peak[2], pss)
            done.wait(0.25)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out = proc.communicate()[0]
    wall = time.perf_counter() - t0
    done.set()
    th.join()
    load_after = _load()
    if args.log:
        args.log.write_text(out)

    summary = next((ln for ln in reversed(out.splitlines()) if re.search(r"\d+ passed", ln)),
                   out.splitlines()[-1] if out else "(no output)")
    per_file: dict[str, float] = defaultdict(float)
    for m in re.finditer(r"^([\d.]+)s (?:call|setup|teardown)\s+(tests/[^:\s]+)", out, re.M):
        per_file[m.group(2)] += float(m.group(1))
    slow_files = sorted(per_file.items(), key=lambda kv: -kv[1])[:10]
    rows = "\n".join(f"| {f} | {s:.0f} |" for f, s in slow_files)
    peak_rows = "\n".join(f"| {w} | {q / 2**30:.2f} | {r / 2**30:.2f} |"
                          for q, r, w in at_peak[:12])
    gib = 1024 ** 3
    what = ("`bash .ci/run` (a fresh .venv, the install, then the README's test command "
            "`.venv/bin/python -m pytest -q`; the wall time includes the install)" if args.ci
            else "The README's test command (`python -m pytest -q`)")
    body = f"""{what} with pyproject's addopts (xdist workers, not the
slow set) in {args.checkout}, with the resident memory of its whole process tree
(pytest, workers, the CLI subprocesses the tests start) sampled every 0.25 s. Load average
(1 min) {load_before:.1f} before, {load_after:.1f} after, on a shared {os.cpu_count()}-core
machine.

| what | value |
|---|---|
| result | {summary.strip(" =")} |
| wall time | {wall:.0f} s ({wall / 60:.1f} min) |
| peak memory, summed over the process tree | {peak[0] / gib:.2f} GiB |
| peak memory, largest single process | {peak[1] / gib:.2f} GiB |
| peak memory held by the machine (summed PSS: shared pages counted once) | {peak[2] / gib:.2f} GiB |

The processes at the PSS peak (the largest 12):

| process | PSS GiB | RSS GiB |
|---|---|---|
{peak_rows}

Slowest files (seconds of setup, call and teardown summed over the tests pytest lists: all of
them, or with `--ci` the 20 slowest):

| file | s |
|---|---|
{rows}
"""
    print(body)
    if proc.returncode != 0:
        print(out[-5000:])
        sys.exit(proc.returncode)
    if not args.no_write:
        from _results import write_section

        write_section("default test suite: time and memory", body)


if __name__ == "__main__":
    main()

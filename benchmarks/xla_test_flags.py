"""What the test suite's XLA flags (tests/conftest.py) save: compile time of small programs.

The suite's time is mostly XLA compiling the hundreds of small programs each test file builds
(eager operations on new shapes, small jitted models). This times, in a fresh process per
setting, run alternately ``--repeats`` times:

- ``programs``: XLA's backend compile (JAX's ``backend_compile_duration`` events) of a fixed
  set of small programs: 38 shapes of five eager operations, and the value and gradient of a
  small scanned RNN at four sizes (377 programs);
- with ``--tests FILE ...``: those test files in one process (``pytest -n 0``), wall and CPU
  time.

Settings: XLA's default flags (as users run rnnlab); ``--xla_backend_optimization_level=0``
(no LLVM optimisation passes, the suite's setting since an earlier release); and that plus
``--xla_cpu_use_fusion_emitters=false`` (fusions through XLA's elemental IR emitter instead of
its MLIR fusion emitters, which build an MLIR context and a pool of compilers per program).

    python benchmarks/xla_test_flags.py [--repeats 3] [--tests tests/test_x.py ...] [--no-write]
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

SETTINGS = {
    "XLA default": "",
    "O0": "--xla_backend_optimization_level=0",
    "O0 + elemental emitter": "--xla_backend_optimization_level=0 "
                              "--xla_cpu_use_fusion_emitters=false",
}

_PROGRAMS = r"""
import json, time
import jax, jax.numpy as jnp
import jax.monitoring as m
jax.config.update("jax_enable_x64", True)
total = [0.0, 0]
def listen(event, duration, **kw):
    if event == "/jax/core/compile/backend_compile_duration":
        total[0] += duration; total[1] += 1
m.register_event_duration_secs_listener(listen)
t0 = time.perf_counter()
for n in range(2, 40):
    x = jnp.ones((n, 3)); y = jnp.ones((n, 3), dtype=jnp.float32)
    (x * 2 + 1).block_until_ready(); jnp.sin(x).sum().block_until_ready()
    y.astype(jnp.float64).block_until_ready()
    jnp.broadcast_to(x[:, :1], (n, 5)).block_until_ready()
for n in (8, 12, 16, 20):
    def loss(w, u):
        def step(h, uu):
            h = h + 0.1 * (-h + jnp.tanh(w @ h + uu))
            return h, h
        _, hs = jax.lax.scan(step, jnp.zeros(n), u)
        return (hs ** 2).mean()
    jax.jit(jax.value_and_grad(loss))(jnp.eye(n) * 0.5, jnp.ones((50, n)))[0].block_until_ready()
print(json.dumps({"compile": total[0], "programs": total[1], "wall": time.perf_counter() - t0}))
"""


def _env(flags: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    if flags:
        env["XLA_FLAGS"] = flags
    # the test files: the flags given here, not the ones tests/conftest.py would add
    env["RNNLAB_TEST_XLA_OPT"] = "1"
    return env


def _programs(flags: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _PROGRAMS], env=_env(flags), check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _tests(flags: str, files: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
                          *files], cwd=ROOT, env=_env(flags), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if run.returncode != 0:
        print(run.stdout[-3000:], file=sys.stderr)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tests", nargs="*", default=[])
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    comp: dict[str, list[float]] = {k: [] for k in SETTINGS}
    count: dict[str, int] = {}
    test_runs: dict[str, list[tuple[float, float]]] = {k: [] for k in SETTINGS}
    for _ in range(args.repeats):
        for name, flags in SETTINGS.items():
            r = _programs(flags)
            comp[name].append(r["compile"])
            count[name] = r["programs"]
    if args.tests:
        for _ in range(max(1, args.repeats // 3)):
            for name, flags in SETTINGS.items():
                test_runs[name].append(_tests(flags, args.tests))
    load1 = os.getloadavg()[0]

    base = statistics.median(comp["XLA default"])
    lines = [
        "XLA's backend compile time of 377 small programs (38 shapes of five eager operations; "
        "value and gradient of a scanned RNN at 4 sizes), one fresh process per setting, "
        f"settings alternating, {args.repeats} runs each. Load average (1 min) {load0:.1f} "
        f"before, {load1:.1f} after, on a shared 2-core machine: compare the ratios.",
        "",
        "| setting | programs | compile median (s) | runs (s) | ratio to default |",
        "|---|---|---|---|---|",
    ]
    for name in SETTINGS:
        med = statistics.median(comp[name])
        runs = ", ".join(f"{v:.2f}" for v in comp[name])
        lines.append(f"| {name} | {count[name]} | {med:.2f} | {runs} | {med / base:.2f} |")
    if args.tests:
        lines += [
            "",
            f"Test files in one process (`pytest -n 0`): {' '.join(args.tests)}.",
            "",
            "| setting | wall (s) | CPU (s) |",
            "|---|---|---|",
        ]
        for name in SETTINGS:
            walls = ", ".join(f"{w:.0f}" for w, _ in test_runs[name])
            cpus = ", ".join(f"{c:.0f}" for _, c in test_runs[name])
            lines.append(f"| {name} | {walls} | {cpus} |")
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        from _results import write_section

        write_section("XLA flags of the test suite", body)


if __name__ == "__main__":
    main()

"""What analysing a network as a `FunctionModel` costs against the built-in model.

The same random CT-RNN (N units) is searched for fixed points three ways, side by side:
the `CTRNN` itself (analytic Jacobian), `FunctionModel(vector_field=net.vector_field, dt=...)`
(Jacobians by `jax.jacfwd`), and the same with the analytic Jacobian passed as ``jacobian=``.
Compile time (first call) is reported apart from run time (median of the repeats, each a fresh
call on the compiled programs). The found roots must agree.

    python benchmarks/function_model.py [--hidden 64] [--candidates 256] [--repeats 3]
"""

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import rnnlab as rl
from rnnlab.analysis import find_fixed_points, sample_states


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    jax.block_until_ready(out.states)
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--candidates", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--write", action="store_true", help="write the section of RESULTS.md")
    args = ap.parse_args()

    n = args.hidden
    load_before = os.getloadavg()[0]
    net = rl.CTRNN(2, n, 2, key=jax.random.PRNGKey(0), gain=1.5)
    us = 0.1 * jax.random.normal(jax.random.PRNGKey(1), (32, 100, 2))
    traj = rl.simulate(net, us)
    x0 = sample_states(traj, args.candidates, key=jax.random.PRNGKey(2), noise_std=0.05)
    u = jnp.zeros(2)
    variants = {
        "CTRNN (analytic Jacobian)": net,
        "FunctionModel, jacfwd": rl.FunctionModel(
            vector_field=net.vector_field, state_size=n, n_in=2, readout=net.readout, dt=net.dt),
        "FunctionModel, jacobian= given": rl.FunctionModel(
            vector_field=net.vector_field, jacobian=net.jacobian, state_size=n, n_in=2,
            readout=net.readout, dt=net.dt),
    }
    rows, found = [], {}
    for name, model in variants.items():
        fp, first = _timed(lambda m=model: find_fixed_points(m, u, x0))
        runs = [_timed(lambda m=model: find_fixed_points(m, u, x0))[1]
                for _ in range(args.repeats)]
        found[name] = fp
        rows.append((name, first, statistics.median(runs), runs, len(fp.states)))
    ref = found["CTRNN (analytic Jacobian)"]
    for name, fp in found.items():
        d = [np.min(np.linalg.norm(fp.states - s, axis=1)) for s in ref.states]
        assert len(fp.states) == len(ref.states) and max(d, default=0.0) < 1e-6, name
    base = rows[0][2]
    lines = [
        f"Fixed points of a random {n}-unit CT-RNN from {args.candidates} candidates at one "
        "input (same roots found by all three; "
        f"{len(ref.states)} roots); run time = median of {args.repeats} calls after the "
        f"first (compile) call. Load average (1 min) {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after, on a shared 2-core machine: compare ratios.",
        "",
        "| model | first call (s) | run median (s) | runs (s) | ratio to CTRNN |",
        "|---|---|---|---|---|",
    ]
    for name, first, med, runs, k in rows:
        lines.append(f"| {name} | {first:.2f} | {med:.2f} | "
                     f"{', '.join(f'{r:.2f}' for r in runs)} | {med / base:.2f} |")
    body = "\n".join(lines)
    print(body)
    if args.write:
        from _results import write_section

        write_section("FunctionModel against the built-in CT-RNN", body)


if __name__ == "__main__":
    main()

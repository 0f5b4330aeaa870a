"""FORCE training speed: compiled `rl.train_force` vs a plain numpy RLS loop, side by side.

The configuration is the computation-thru-dynamics FORCE notebook's: a 500-unit reservoir
(g = 1.5, dt/tau = 0.1) with feedback learns 20 outputs of a g = 1.8 teacher over 300 steps;
one "pass" is one run over the 300 steps with an RLS update at every step (the notebook's jitted
JAX version took about 51 ms per pass on its hardware, a 2019 Colab GPU). We time one pass and
15 passes, report compile time apart, and check that the numpy loop and ours end at the same
readout.

    python benchmarks/force.py [--repeats 5] [--no-write]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rnnlab as rl  # noqa: E402
from _results import write_section  # noqa: E402

T, N, M = 300, 500, 20


def numpy_force(w_rec, w_in, w_fb, w_out, targets, inputs, a0, alpha_dt, passes, dtype):
    """The plain loop: one Euler step and one RLS update per time step, in numpy."""
    w_rec, w_in, w_fb, a0 = (np.asarray(x, dtype) for x in (w_rec, w_in, w_fb, a0))
    w_out = np.array(w_out, dtype)
    targets, inputs = np.asarray(targets, dtype), np.asarray(inputs, dtype)
    P = np.eye(w_rec.shape[0], dtype=dtype)
    errors = np.empty((passes,) + targets.shape, dtype)
    for p in range(passes):
        a = a0.copy()
        for t in range(targets.shape[0]):
            r = np.tanh(a)
            a = a + alpha_dt * (-a + w_rec @ r + w_in @ inputs[t] + w_fb @ (w_out @ r))
            r = np.tanh(a)
            e = w_out @ r - targets[t]
            errors[p, t] = e
            k = P @ r
            c = 1.0 / (1.0 + r @ k)
            P -= c * np.outer(k, k)
            w_out -= c * np.outer(e, k)
    return w_out, P, errors


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    teacher = rl.EchoStateNetwork(1, N, M, key=jax.random.PRNGKey(7868221), gain=1.8,
                                  initial_state="random")
    f = rl.simulate(teacher, jnp.zeros((T, 1))).rates[:, :M]
    esn = rl.EchoStateNetwork(1, N, M, key=jax.random.PRNGKey(1), gain=1.5,
                              initial_state="random")
    x = jnp.zeros((T, 1))

    rows = []
    results = {}
    for passes in (1, 15):
        t0 = time.perf_counter()
        res = rl.train_force(esn, f, inputs=x, passes=passes)
        res.model.w_out.block_until_ready()
        first = time.perf_counter() - t0

        def run_jax():
            r = rl.train_force(esn, f, inputs=x, passes=passes)
            r.model.w_out.block_until_ready()
            return r

        jax_med, _ = median_time(run_jax, args.repeats)
        results[("jax", passes)] = run_jax()
        rows.append((f"rl.train_force (jit, lax.scan, float32), {passes} pass(es)",
                     jax_med, first - jax_med))

        w = esn.effective_weights()
        np_args = (np.asarray(w["w_rec"]), np.asarray(w["w_in"]), np.asarray(w["w_fb"]),
                   np.asarray(w["w_out"]), np.asarray(f), np.asarray(x), np.asarray(esn.h0),
                   esn.alpha, passes)
        for dtype in (np.float32, np.float64):
            reps = args.repeats if passes == 1 else max(1, args.repeats // 2)
            med, _ = median_time(lambda: numpy_force(*np_args, dtype), reps)
            rows.append((f"numpy loop ({np.dtype(dtype).name}), {passes} pass(es)", med, None))
        results[("numpy", passes)] = numpy_force(*np_args, np.float64)

    jres, (w_np, _, err_np) = results[("jax", 15)], results[("numpy", 15)]
    w_diff = float(np.max(np.abs(np.asarray(jres.model.w_out) - w_np)))
    free = rl.simulate(jres.model, x).outputs
    test_rmse = float(jnp.sqrt(jnp.mean((free - f) ** 2)))

    lines = ["| implementation | median wall (ms) | compile (s) |", "|---|---|---|"]
    for name, med, comp in rows:
        lines.append(f"| {name} | {1e3 * med:.1f} | {'' if comp is None else f'{comp:.2f}'} |")
    one_jax = next(m for n, m, _ in rows if n.startswith("rl.train_force") and "1 pass" in n)
    one_np = next(m for n, m, _ in rows if n.startswith("numpy loop (float64), 1 pass"))
    body = "\n".join(lines) + (
        f"\n\nConfiguration: N = {N} reservoir (g = 1.5, feedback), {M} outputs of a g = 1.8 "
        f"teacher, T = {T} steps (dt/tau = 0.1), RLS every step, alpha = 1; medians of "
        f"{args.repeats} runs after a warm-up call (compile = first call minus median).\n"
        f"Per pass: compiled {1e3 * one_jax:.1f} ms vs numpy float64 {1e3 * one_np:.1f} ms "
        f"({one_np / one_jax:.1f}x); the notebook reports about 51 ms per pass for its jitted "
        f"JAX version (2019 Colab).\n"
        f"Agreement after 15 passes: max |W_out(jax float32) - W_out(numpy float64)| = "
        f"{w_diff:.2e}; free-running test RMSE of the trained network {test_rmse:.4f} "
        f"(target std {float(jnp.std(f)):.3f}); numpy's last-pass training RMSE "
        f"{float(np.sqrt(np.mean(err_np[-1] ** 2))):.4f}, ours "
        f"{float(jres.pass_rmse[-1]):.4f}.\n"
        "Timings taken on a machine shared with other jobs: treat differences under ~20% as "
        "noise."
    )
    print(body)
    if not args.no_write:
        write_section("force", body)


if __name__ == "__main__":
    main()

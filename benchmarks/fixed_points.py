"""Fixed points: rnnlab vs the FixedPointFinder algorithm, same networks and candidates.

The baseline is FixedPointFinder's published algorithm (Golub & Sussillo 2018) re-implemented
here in JAX, float32, with its defaults: one joint Adam optimisation (epsilon 0.01) of the batch
mean of q = 1/2 |x - G(x)|^2 over all candidates, adaptive learning rate (start 1.0, x0.95 /
x1/0.95 after 5 worsening / improving steps, floor 1e-3), adaptive gradient-norm clipping (95th
percentile of the last 128 norms), stop when every candidate has q < 1e-12 or dq < 1e-20 * lr,
or after 5000 iterations; then unique points at tolerance 1e-3. The whole loop is one compiled
``lax.while_loop`` (faster than FixedPointFinder's own Python loop), so the comparison is
conservative.

Both get the same 1024 candidates sampled from trajectories of each network. Reported: wall
time (the baseline's compile time apart; rnnlab's first call in the process, compile included,
and a second call), residual speeds |F| (vector-field units, 1/ms) evaluated in float64 at the
returned points, and how many distinct points each finds.

Before / after: with ``--baseline-src DIR`` (the ``src`` of another checkout, e.g. a worktree
of the previous release), ``find_fixed_points`` of that checkout and of this one run on the same
networks and candidates in separate worker processes (``PYTHONPATH`` set to each ``src``),
alternating, ``--rounds`` times each; reported: every call's wall time, the medians and their
ratio (this checkout / the baseline checkout), and the machine load (``uptime``) before and
after. The networks are rebuilt in the workers from their effective weights
(``CTRNN.from_weights``), so both checkouts see the same float32 model.

The trained flip-flop is the test fixture ``tests/fixtures/flipflop3_ctrnn128.safetensors``
(the recipe this benchmark used to train: ``rl.train(CTRNN(3, 128, 3, key=PRNGKey(0)),
flipflop, key=PRNGKey(1), steps=600, learning_rate=1e-2, target_accuracy=0.99)``), so no
training runs here.

Run: ``python benchmarks/fixed_points.py [--baseline-src /tmp/fp_base/src]`` (writes its
section of benchmarks/RESULTS.md).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import rnnlab as rl  # noqa: E402
from rnnlab.analysis._fixed_points import to_float64, unique_indices  # noqa: E402

K = 1024
ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "flipflop3_ctrnn128.safetensors"
WARM_CALLS = 3


def fpf_baseline(model, u, x0, *, max_iters=5000, tol_q=1e-12, tol_dq=1e-20):
    """FixedPointFinder's joint optimisation, defaults as published (see module docstring)."""
    dt = model.dt

    def q_all(x):
        f = dt * jax.vmap(model.vector_field, in_axes=(0, None))(x, u)  # x - G(x) of the map
        return 0.5 * jnp.sum(f * f, axis=1)

    def loss(x):
        return jnp.mean(q_all(x))

    def run(x):
        n = 6

        def cond(c):
            it, x, m, v, lr, log, last, norms, q_prev, stop = c
            return (it < max_iters) & ~stop

        def body(c):
            it, x, m, v, lr, log, last, norms, q_prev, stop = c
            q = q_all(x)
            mean_q, g = jax.value_and_grad(loss)(x)
            dq = jnp.abs(q - q_prev)
            stop = (it > 1) & jnp.all((dq < tol_dq * lr) | (q < tol_q))
            gnorm = jnp.linalg.norm(g)
            have = jnp.any(jnp.isfinite(norms))
            clip = jnp.where(have, jnp.nanpercentile(norms, 95.0), jnp.inf)
            g = g * jnp.minimum(1.0, clip / jnp.maximum(gnorm, 1e-30))
            t = (it + 1).astype(x.dtype)
            m2 = 0.9 * m + 0.1 * g
            v2 = 0.999 * v + 0.001 * g * g
            x2 = x - lr * (m2 / (1 - 0.9**t)) / (jnp.sqrt(v2 / (1 - 0.999**t)) + 0.01)
            log = jnp.concatenate([log[1:], mean_q[None]])
            step = it + 1
            may = step >= last + 5
            inc = may & jnp.all(log[1:] < log[:-1])
            dec = may & ~inc & jnp.all(log[-1] > log[:-1])
            lr2 = jnp.maximum(jnp.where(inc, lr / 0.95, jnp.where(dec, lr * 0.95, lr)), 1e-3)
            last = jnp.where(inc | dec, step, last)
            norms = norms.at[it % 128].set(gnorm)
            keep = lambda a, b: jnp.where(stop, a, b)  # noqa: E731
            return (jnp.where(stop, it, step), keep(x, x2), keep(m, m2), keep(v, v2),
                    keep(lr, lr2), log, last, norms, q, stop)

        init = (jnp.asarray(0), x, jnp.zeros_like(x), jnp.zeros_like(x), jnp.asarray(1.0),
                jnp.full((n,), jnp.inf), jnp.asarray(0), jnp.full((128,), jnp.nan),
                jnp.full((x.shape[0],), jnp.inf), jnp.asarray(False))
        out = jax.lax.while_loop(cond, body, init)
        return out[1], out[0]

    f = jax.jit(run)
    t0 = time.perf_counter()
    compiled = f.lower(x0).compile()
    t_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    xs, iters = compiled(x0)
    xs = jax.block_until_ready(xs)
    t_run = time.perf_counter() - t0
    xs = np.asarray(xs, np.float64)
    q = np.asarray(q_all(jnp.asarray(xs, jnp.float32)))
    kept, _ = unique_indices(xs, np.argsort(q), 1e-3)
    # FixedPointFinder's defaults (do_compute_jacobians, do_decompose_jacobians) then take the
    # Jacobian of the map at each unique point and eigen-decompose it; timed apart.
    jac = jax.jit(jax.vmap(jax.jacfwd(lambda x: x + dt * model.vector_field(x, u))))
    jac(jnp.asarray(xs[kept], jnp.float32)).block_until_ready()  # compile outside the timing
    # One BLAS thread, as in rnnlab (OpenBLAS threading makes small eigenproblems up to 10x
    # slower on a busy machine): the same conditions for both.
    from rnnlab.analysis._solvers import one_blas_thread

    with one_blas_thread():
        t0 = time.perf_counter()
        js = np.asarray(jac(jnp.asarray(xs[kept], jnp.float32)))
        for j in js:
            np.linalg.eig(j)
        t_decomp = time.perf_counter() - t0
    return xs, xs[kept], int(iters), t_compile, t_run, t_decomp


def speeds64(model, xs, u):
    with jax.enable_x64(True):
        m = to_float64(model)
        f = jax.vmap(m.vector_field, in_axes=(0, None))(jnp.asarray(xs, jnp.float64),
                                                        jnp.asarray(u, jnp.float64))
        return np.asarray(jnp.linalg.norm(f, axis=1))


def _profile_parts(model, u, x0):
    """Wall time of the pieces of one warm `find_fixed_points` call (timing wrappers around
    its private stages, removed afterwards)."""
    from rnnlab.analysis import _points, _solvers

    pieces = {"stage 1 (Adam, f32)": (_solvers, "adam_stage"),
              "stage 2 (Newton/LM, f64)": (_solvers, "polish"),
              "decomposition": (_points, "eigendecompose")}
    times = dict.fromkeys(pieces, 0.0)
    originals = {}
    for label, (mod, fn) in pieces.items():
        orig = getattr(mod, fn)
        originals[label] = orig

        def timed(*a, _orig=orig, _label=label, **kw):
            t = time.perf_counter()
            out = _orig(*a, **kw)
            times[_label] += time.perf_counter() - t
            return out

        setattr(mod, fn, timed)
    try:
        t0 = time.perf_counter()
        rl.find_fixed_points(model, u, x0)
        total = time.perf_counter() - t0
    finally:
        for label, (mod, fn) in pieces.items():
            setattr(mod, fn, originals[label])
    times["other"] = total - sum(times.values())
    return times


def trained_flipflop(n_hidden):
    model = rl.load(FIXTURE)
    assert model.n_hidden == n_hidden
    task = rl.tasks.make("flipflop")
    trials = task.sample_batch(jax.random.PRNGKey(2), 64)
    traj = rl.simulate(model, trials.inputs)
    x0 = rl.analysis.sample_states(traj, K, key=jax.random.PRNGKey(3))
    return model, np.zeros(3, np.float32), x0, f"test fixture {FIXTURE.name}"


def random_chaotic(n_hidden):
    model = rl.CTRNN(1, n_hidden, 1, key=jax.random.PRNGKey(0), gain=1.5)
    u = np.array([0.05], np.float32)
    traj = rl.simulate(model, jnp.full((16, 200, 1), u), key=jax.random.PRNGKey(1),
                       initial_state=jax.random.normal(jax.random.PRNGKey(2), (16, n_hidden)))
    x0 = rl.analysis.sample_states(traj, K, key=jax.random.PRNGKey(3), noise_std=0.05)
    return model, u, x0, "random tanh CT-RNN, gain 1.5, weak constant input (chaotic)"


# ------------------------------------------------------------------ before / after workers


def _case_arrays(model, u, x0) -> dict:
    """What a worker needs to rebuild the network and rerun the search (any rnnlab version
    with ``CTRNN.from_weights``)."""
    w = {k: np.asarray(v, np.float64) for k, v in model.effective_weights().items()}
    cfg = model.config()
    return {**w, "tau": np.asarray(model.tau, np.float64), "dt": np.float64(model.dt),
            "activation": np.str_(cfg["activation"]), "form": np.str_(cfg["form"]),
            "u": np.asarray(u, np.float64), "x0": np.asarray(x0, np.float64)}


def _worker(cases_path: str, out_path: str) -> None:
    """Time `find_fixed_points` of the rnnlab on ``sys.path`` on each saved case: the first call
    in the process (compile included), then WARM_CALLS warm calls."""
    data = np.load(cases_path)
    names = sorted({k.split("/")[0] for k in data.files})
    out = {"rnnlab": str(Path(rl.__file__).parent), "cases": {}}
    for name in names:
        a = {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith(name + "/")}
        model = rl.CTRNN.from_weights(
            a["w_rec"], a["w_in"], a["w_out"], a["b_rec"], a["b_out"],
            activation=str(a["activation"]), form=str(a["form"]), dt=float(a["dt"]),
            tau=a["tau"])
        u, x0 = a["u"].astype(np.float32), a["x0"].astype(np.float32)
        t0 = time.perf_counter()
        fps = rl.find_fixed_points(model, u, x0)
        first = time.perf_counter() - t0
        warm = []
        for _ in range(WARM_CALLS):
            t0 = time.perf_counter()
            fps = rl.find_fixed_points(model, u, x0)
            warm.append(time.perf_counter() - t0)
        sp = speeds64(model, np.asarray(fps.states), u)
        s = fps.summary()
        out["cases"][name] = {
            "first": first, "warm": warm, "n_points": int(s["n_points"]),
            "stable": int(s["stable"]), "saddle": int(s["saddle"]),
            "max_speed": float(np.max(sp)) if sp.size else 0.0,
        }
    Path(out_path).write_text(json.dumps(out))


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average %.2f, %.2f, %.2f" % os.getloadavg()


def before_after(cases: dict, baseline_src: str, rounds: int) -> dict:
    """Run the workers of both checkouts alternately (``rounds`` each; the order flips every
    round). Returns {"baseline"|"current": [worker results]} and the load before / after."""
    runs = {"baseline": [], "current": []}
    srcs = {"baseline": str(Path(baseline_src).resolve()), "current": str(ROOT / "src")}
    with tempfile.TemporaryDirectory() as tmp:
        cases_path = os.path.join(tmp, "cases.npz")
        np.savez(cases_path, **{f"{name}/{k}": v for name, arrays in cases.items()
                                for k, v in arrays.items()})
        load0 = _uptime()
        for r in range(rounds):
            for which in (("baseline", "current") if r % 2 == 0 else ("current", "baseline")):
                out = os.path.join(tmp, f"{which}{r}.json")
                env = dict(os.environ, PYTHONPATH=srcs[which])
                subprocess.run([sys.executable, __file__, "--worker", cases_path, out],
                               env=env, check=True)
                res = json.loads(Path(out).read_text())
                print(f"{which} ({res['rnnlab']}): " + ", ".join(
                    f"{n} first {c['first']:.2f} s, warm "
                    + "/".join(f"{t:.2f}" for t in c["warm"]) for n, c in res["cases"].items()),
                    flush=True)
                runs[which].append(res)
        load1 = _uptime()
    return {"runs": runs, "load": (load0, load1), "srcs": srcs,
            "commits": {k: _commit(v) for k, v in srcs.items()}}


def _commit(src: str) -> str:
    """The commit of the checkout holding ``src`` (``-dirty`` with uncommitted changes)."""
    try:
        out = subprocess.run(["git", "-C", src, "describe", "--always", "--dirty"],
                             capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def _before_after_lines(ba: dict, labels: dict) -> list[str]:
    runs = ba["runs"]
    lines = [
        f"Before / after (`find_fixed_points` with defaults, same networks and candidates; "
        f"baseline checkout `{ba['srcs']['baseline']}` at {ba['commits']['baseline']} against "
        f"this one at {ba['commits']['current']}, {len(runs['current'])} worker processes "
        f"each, alternating, {WARM_CALLS} warm calls per process). Load (`uptime`) before: "
        f"`{ba['load'][0]}`; after: `{ba['load'][1]}`.",
        "",
        "| network | checkout | first call per process (s) | warm calls (s) | warm median (s) "
        "| points (stable, saddle) | max \\|F\\| |",
        "|---|---|---|---|---|---|---|",
    ]
    ratios = []
    for name, label in labels.items():
        med = {}
        for which in ("baseline", "current"):
            cs = [r["cases"][name] for r in runs[which]]
            warm = [t for c in cs for t in c["warm"]]
            med[which] = (float(np.median(warm)), float(np.median([c["first"] for c in cs])))
            c0 = cs[0]
            lines.append(
                f"| {label} | {which} | " + ", ".join(f"{c['first']:.2f}" for c in cs)
                + " | " + ", ".join(f"{t:.2f}" for t in warm) + f" | {med[which][0]:.2f} | "
                f"{c0['n_points']} ({c0['stable']}, {c0['saddle']}) | {c0['max_speed']:.1e} |")
        ratios.append(
            f"- {label}: warm median current / baseline = "
            f"{med['current'][0] / med['baseline'][0]:.2f} ({med['current'][0]:.2f} s vs "
            f"{med['baseline'][0]:.2f} s); first call (median over processes) "
            f"{med['current'][1] / med['baseline'][1]:.2f} ({med['current'][1]:.2f} s vs "
            f"{med['baseline'][1]:.2f} s).")
    return lines + [""] + ratios


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline-src", help="src directory of the checkout to compare with")
    parser.add_argument("--rounds", type=int, default=2,
                        help="worker processes per checkout (before / after)")
    parser.add_argument("--worker", nargs=2, metavar=("CASES", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(*args.worker)
        return
    from _results import write_section

    load0 = os.getloadavg()[1]
    rows = []
    cases = [("trained 3-bit flip-flop, N=128", trained_flipflop, 128),
             ("random network, N=128", random_chaotic, 128)]
    saved, labels = {}, {}
    for i, (name, make, n) in enumerate(cases):
        model, u, x0, note = make(n)
        saved[f"case{i}"] = _case_arrays(model, u, x0)
        labels[f"case{i}"] = name
        print(f"== {name}: {note}", flush=True)
        xs_b, uniq_b, it_b, tc_b, tr_b, td_b = fpf_baseline(model, jnp.asarray(u),
                                                            jnp.asarray(x0))
        sp_b = speeds64(model, xs_b, u)
        sp_bu = speeds64(model, uniq_b, u)
        print(f"baseline: compile {tc_b:.1f} s, run {tr_b:.2f} s (+{td_b:.2f} s decomposition), "
              f"{it_b} iterations, "
              f"{len(uniq_b)} unique, median |F| {np.median(sp_b):.2e}", flush=True)
        t0 = time.perf_counter()
        fps = rl.find_fixed_points(model, u, x0)
        t_cold = time.perf_counter() - t0
        warm = []
        for _ in range(3):  # the median of three warm calls (the machine is shared)
            t0 = time.perf_counter()
            fps = rl.find_fixed_points(model, u, x0)
            warm.append(time.perf_counter() - t0)
        t_warm = float(np.median(warm))
        parts = _profile_parts(model, u, x0)
        sp_r = speeds64(model, np.asarray(fps.states), u)
        s = fps.summary()
        print(f"rnnlab: first call {t_cold:.2f} s, warm {t_warm:.2f} s, {len(fps)} points "
              f"({s['stable']} stable, {s['saddle']} saddles), max |F| {sp_r.max():.1e}",
              flush=True)
        rows.append((name, note, tc_b, tr_b, td_b, it_b, sp_b, sp_bu, len(uniq_b), t_cold,
                     t_warm, sp_r, s, parts))

    load = os.getloadavg()[1]
    ba = before_after(saved, args.baseline_src, args.rounds) if args.baseline_src else None
    body = [
        f"Machine shared with other engineers' jobs while this ran (5-minute load average "
        f"{load0:.1f} at the start, {load:.1f} at the end, on 2 cores): absolute times are "
        "inflated and noisy; compare within a row.",
        "",
        "| network | method | wall (s) | iterations | points | median / max residual "
        "\\|F\\| (1/ms) | points with \\|F\\| <= 1e-10 |",
        "|---|---|---|---|---|---|---|",
    ]
    for (name, note, tc_b, tr_b, td_b, it_b, sp_b, sp_bu, nb, t_cold, t_warm, sp_r, s,
         parts) in rows:
        body.append(
            f"| {name} | FixedPointFinder algorithm (JAX f32, jitted) | {tr_b:.2f} "
            f"(+{tc_b:.2f} compile, +{td_b:.2f} its default Jacobian eigen-decomposition) | "
            f"{it_b} | {nb} unique | {np.median(sp_b):.1e} / "
            f"{np.max(sp_bu):.1e} | {int(np.sum(sp_bu <= 1e-10))} |"
        )
        body.append(
            f"| {name} | rnnlab `find_fixed_points` (defaults) | {t_cold:.2f} first call "
            f"(compile included), {t_warm:.2f} warm | Adam + Newton | {s['n_points']} "
            f"({s['stable']} stable, {s['saddle']} saddles {s['saddles_by_index']}) | "
            f"{np.median(sp_r):.1e} / {np.max(sp_r):.1e} | {int(np.sum(sp_r <= 1e-10))} |"
        )
    body.append("")
    for (name, note, tc_b, tr_b, td_b, it_b, sp_b, sp_bu, nb, t_cold, t_warm, sp_r, s,
         parts) in rows:
        body.append(
            f"- {name} ({note}): rnnlab warm {t_warm:.2f} s = {t_warm / tr_b:.2f}x the "
            f"baseline's run ({tr_b / t_warm:.1f}x faster), {t_warm / (tr_b + td_b):.2f}x its "
            f"run + default decomposition; first call {t_cold / (tr_b + tc_b + td_b):.2f}x the "
            f"baseline's compile + run + decomposition. rnnlab's warm call: "
            + ", ".join(f"{k} {v:.2f} s" for k, v in parts.items())
            + f". Residuals: rnnlab's at float64 round-off (max {np.max(sp_r):.0e}); the "
            f"baseline's unique points reach at most {np.max(sp_bu):.0e} "
            f"({int(np.sum(sp_bu <= 1e-10))} of {nb} at or below 1e-10), so no run time of the "
            "baseline reaches rnnlab's residual."
        )
    ff = rows[0]
    t_cold, t_warm, tr_b, td_b, parts = ff[9], ff[10], ff[3], ff[4], ff[13]
    body.append(
        f"- Issue goal (>= 10x faster than the baseline to an equal or smaller residual; all "
        f"points of the trained flip-flop in < 5 s compile included): the residual part holds "
        f"(the baseline never reaches it); all points in < 5 s compile included: "
        f"{'met' if t_cold < 5 else 'NOT met'} ({t_cold:.2f} s first call); 10x faster: "
        f"{'met' if t_warm * 10 <= tr_b else 'NOT met'} ({tr_b / t_warm:.1f}x against the "
        f"baseline's bare run, {(tr_b + td_b) / t_warm:.1f}x against its run plus its default "
        f"decomposition). What bounds it: rnnlab's output includes, per unique point, the "
        f"float64 eigen-decomposition with right and left eigenvectors ({parts['decomposition']:.2f} s "
        f"here for {ff[12]['n_points']} points of 128 units, LAPACK geev, ~7 ms each on one "
        f"core), stage 1 is FixedPointFinder's own Adam iteration up to the hand-off "
        f"({parts['stage 1 (Adam, f32)']:.2f} s), and stage 2 needs one float64 LU solve per "
        f"Newton step (~0.15 ms at 128 units) for the starts no root found captures."
    )
    body.append(
        f"- {K} candidates sampled from trajectories of each network, the same for both "
        "methods. Residuals are recomputed in float64 at the returned points. Warm time: the "
        "median of three calls. The baseline's decomposition: jitted float32 map Jacobians "
        "(jacfwd) and numpy `eig` of its unique points, as FixedPointFinder does by default, "
        "with one BLAS thread as in rnnlab."
    )
    if ba is not None:
        body += [""] + _before_after_lines(ba, labels)
    write_section("fixed_points", "\n".join(body))


if __name__ == "__main__":
    main()

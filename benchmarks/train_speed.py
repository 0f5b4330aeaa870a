"""Training-step speed: rnnlab's fast CT-RNN path vs plain autodiff through `lax.scan` vs a
PyTorch for-loop CT-RNN (written the way trainRNNbrain / pyrnn write it), plus a matmul probe of
the machine's attainable GFLOP/s at the same shapes, and ensemble vs sequential throughput.

All three implementations run the same model and the same step, measured side by side in one
process: Euler CT-RNN (potential form), sqrt(2 alpha)-scaled recurrent noise (sigma 0.05),
masked MSE + 1e-3 L2 on rates, gradient clipping at 1, Adam; fixed random inputs and targets.

rnnlab runs twice: with the batch split over the CPU cores exposed as JAX devices (its fast path
does this when there are several; this script sets ``jax_num_cpu_devices`` to the core count)
and on one device. The plain scan runs on one device (XLA runs a device's time loop on one
core); PyTorch runs with 1 and with all intra-op threads and the faster is kept.

Run:  .venv/bin/python benchmarks/train_speed.py            (all sizes; writes RESULTS.md)
      .venv/bin/python benchmarks/train_speed.py --quick    (small sizes, fewer repeats)
      .venv/bin/python benchmarks/train_speed.py --one-device   (JAX's default single device)
      .venv/bin/python benchmarks/train_speed.py --train-loop OLD_SRC NEW_SRC
          (`rl.train` per step on the flip-flop, two source trees side by side; writes its
          part of the train_speed section)
"""

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402

# rnnlab splits a training batch over the CPU's cores when JAX exposes them as devices (see
# `rnnlab.models._ctrnn_fast.batch_sharding`); this must be set before JAX first runs.
# `--one-device` keeps JAX's default of one CPU device.
if "--one-device" not in sys.argv and "--train-loop-worker" not in sys.argv:
    jax.config.update("jax_num_cpu_devices", os.cpu_count() or 1)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

import rnnlab as rl  # noqa: E402
from rnnlab.models import AbstractRNN  # noqa: E402

N_IN, N_OUT = 4, 2
DT, TAU, SIGMA, L2_RATES = 10.0, 100.0, 0.05, 1e-3

SIZES = [  # (hidden, batch, time, activation)
    (64, 64, 100, "relu"),
    (100, 128, 200, "tanh"),
    (128, 128, 300, "relu"),
    (256, 256, 500, "relu"),
]
QUICK_SIZES = [(64, 64, 100, "relu"), (100, 128, 200, "tanh")]


def interleaved(runners: dict, repeats: int) -> dict[str, float]:
    """Median seconds per runner, the runners called in turn (round-robin) after a warm-up, so
    that they share the same machine load: their ratios stay meaningful on a busy machine."""
    for fn in runners.values():
        fn()
    times = {name: [] for name in runners}
    for _ in range(repeats):
        for name, fn in runners.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: float(np.median(v)) for name, v in times.items()}


def data(n, b, t, seed=0):
    rng = np.random.default_rng(seed)
    inputs = rng.standard_normal((b, t, N_IN)).astype(np.float32)
    targets = rng.standard_normal((b, t, N_OUT)).astype(np.float32)
    mask = (rng.random((b, t, N_OUT)) < 0.8).astype(np.float32)
    return inputs, targets, mask


# ------------------------------------------------------------------------------ JAX


def jax_step(model, unroll, inputs, targets, mask):
    """A jitted (params, opt_state, key) -> (params, opt_state, loss) step and its state."""
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))
    params, static = eqx.partition(model, model.trainable_filter())
    opt_state = opt.init(params)
    inputs, targets, mask = map(jnp.asarray, (inputs, targets, mask))

    def loss_fn(p, key):
        m = eqx.combine(p, static)
        states = unroll(m, inputs, m.initial_state(), key=key)
        out = m.readout_all(states)
        mse = jnp.sum(mask * (out - targets) ** 2) / jnp.sum(mask)
        return mse + L2_RATES * jnp.mean(m.rates_all(states) ** 2)

    @jax.jit
    def step(p, o, key):
        loss, g = jax.value_and_grad(loss_fn)(p, key)
        updates, o = opt.update(g, o, p)
        return eqx.apply_updates(p, updates), o, loss

    return step, params, opt_state


def fast_unroll(m, inputs, h0, *, key):
    """rnnlab's training path (`CTRNN.unroll_batch`: hand-written reverse pass)."""
    return m.unroll_batch(inputs, h0, key=key)


def plain_unroll(m, inputs, h0, *, key):
    """Plain autodiff through `lax.scan`: the generic contract (vmap of the per-trial
    `CTRNN.unroll`, input projection hoisted, noise from `jax.random.normal`)."""
    return AbstractRNN.unroll_batch(m, inputs, h0, key=key)


def jax_runner(n, b, t, act, unroll, split=True, noise_std=SIGMA):
    """(a blocking one-step callable, compile seconds) for rnnlab's or the plain JAX step;
    ``split=False`` keeps rnnlab's step on one device."""
    from rnnlab.models import _ctrnn_fast

    model = rl.CTRNN(N_IN, n, N_OUT, key=jax.random.PRNGKey(0), activation=act, dt=DT,
                     tau=TAU, noise_std=noise_std)
    step, p, o = jax_step(model, unroll, *data(n, b, t))
    key = jax.random.PRNGKey(1)
    t0 = time.perf_counter()
    sharding = _ctrnn_fast.batch_sharding
    if not split:  # traced now, so the patch only affects this compile
        _ctrnn_fast.batch_sharding = lambda batch: None
    try:
        compiled = step.lower(p, o, key).compile()
    finally:
        _ctrnn_fast.batch_sharding = sharding
    compile_s = time.perf_counter() - t0
    state = {"p": p, "o": o, "i": 0}

    def run():
        k = jax.random.fold_in(key, state["i"])
        state["i"] += 1
        state["p"], state["o"], loss = compiled(state["p"], state["o"], k)
        jax.block_until_ready(loss)

    return run, compile_s


# ------------------------------------------------------------------------------ PyTorch


def torch_runner(n, b, t, act, threads: int):
    """A CT-RNN written the way trainRNNbrain / pyrnn write it: a Python for-loop over time,
    run with ``threads`` intra-op threads."""
    import torch

    torch.manual_seed(0)
    f = {"relu": torch.relu, "tanh": torch.tanh}[act]
    alpha = DT / TAU
    gain = 0.9 if act == "relu" else 1.5
    w_rec = torch.nn.Parameter(torch.randn(n, n) * gain / math.sqrt(n))
    w_in = torch.nn.Parameter(torch.randn(n, N_IN) / math.sqrt(N_IN))
    w_out = torch.nn.Parameter(torch.randn(N_OUT, n) / math.sqrt(n))
    b_rec = torch.nn.Parameter(torch.zeros(n))
    b_out = torch.nn.Parameter(torch.zeros(N_OUT))
    params = [w_rec, w_in, w_out, b_rec, b_out]
    opt = torch.optim.Adam(params, lr=1e-3)
    inputs, targets, mask = (torch.from_numpy(a) for a in data(n, b, t))
    noise_scale = math.sqrt(2 * alpha) * SIGMA

    def run():
        torch.set_num_threads(threads)
        opt.zero_grad()
        x = torch.zeros(b, n)
        states = []
        for k in range(t):
            r = f(x)
            x = x + alpha * (-x + r @ w_rec.T + inputs[:, k] @ w_in.T + b_rec)
            x = x + noise_scale * torch.randn(b, n)
            states.append(x)
        rates = f(torch.stack(states, dim=1))
        out = rates @ w_out.T + b_out
        loss = (mask * (out - targets) ** 2).sum() / mask.sum() + L2_RATES * (rates**2).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return float(loss.detach())

    return run


# ------------------------------------------------------------------------------ matmul probe


def step_flops(n, b, t) -> float:
    """Matmul FLOPs of one training step: forward (recurrent + input + readout) times 3
    (the backward pass does two products of the forward's size per product)."""
    forward = 2.0 * b * t * (n * n + N_IN * n + n * N_OUT)
    return 3.0 * forward


def probe_runners(n, b, t) -> dict:
    """Blocking callables that run the step's matmul shapes alone (see `probe_rates`)."""
    key = jax.random.PRNGKey(0)
    w = jax.random.normal(key, (n, n)) / math.sqrt(n)
    x0 = jax.random.normal(key, (b, n))

    @jax.jit
    def chain(x, w):
        def body(x, _):
            return x @ w, None

        return jax.lax.scan(body, x, None, length=t)[0]

    wn, xn = np.asarray(w), np.asarray(x0)

    def np_loop():
        x = xn
        for _ in range(t):
            x = x @ wn
        return x

    big_a = jax.random.normal(key, (t * b, n))

    @jax.jit
    def big(a):
        return a.T @ a

    out = {
        "chain": lambda: jax.block_until_ready(chain(x0, w)),
        "numpy": np_loop,
        "big": lambda: jax.block_until_ready(big(big_a)),
    }
    from rnnlab.models._ctrnn_fast import batch_sharding

    sharding = batch_sharding(b)
    if sharding is not None:  # the same chain, the batch split over the CPU devices
        spec = jax.sharding.PartitionSpec
        split = jax.jit(jax.shard_map(chain, mesh=sharding.mesh, in_specs=(spec("batch"), spec()),
                                      out_specs=spec("batch")))
        xs = jax.device_put(x0, sharding)
        out["chain_split"] = lambda: jax.block_until_ready(split(xs, w))
    return out


def probe_rates(n, b, t, seconds: dict) -> dict[str, float]:
    """GFLOP/s this machine reaches for the step's matmul shapes.

    ``chain``: T dependent [B, N] @ [N, N] products in a jitted ``lax.scan`` (the recurrence's
    shape and dependency, nothing else), the better of one device and the batch split over the
    CPU devices (``chain_one``: one device); ``numpy``: the same product in a NumPy loop;
    ``big``: the weight-gradient product [N, T*B] @ [T*B, N]. ``attainable`` weights the best
    of chain and numpy with ``big`` as the step does (two thirds recurrent-shaped products,
    one third the big product).
    """
    flop_chain = 2.0 * b * n * n * t
    chain = min(seconds["chain"], seconds.get("chain_split", np.inf))
    rec = max(flop_chain / chain, flop_chain / seconds["numpy"])
    big_rate = flop_chain / seconds["big"]
    attainable = 1.0 / ((2.0 / 3.0) / rec + (1.0 / 3.0) / big_rate)
    return {
        "chain": flop_chain / chain / 1e9,
        "chain_one": flop_chain / seconds["chain"] / 1e9,
        "numpy": flop_chain / seconds["numpy"] / 1e9,
        "big": big_rate / 1e9,
        "attainable": attainable / 1e9,
    }


# ------------------------------------------------------------------------------ profile

PROFILE_SIZE = (100, 128, 200, "tanh")

PROFILE_NOTE = (
    "The same breakdown at the start of this pass (session 1's code, wall time on a lightly "
    "loaded machine, load 0.5): whole step 68 ms = noise 13.4 (threefry-20 + erfinv, bit-equal "
    "to jax.random.normal) + forward scan 9.7 + reverse pass 24.8 (reverse loop with a "
    "precomputed slope buffer 12.1, one [N,TB]@[TB,N] weight-gradient product 10.6, the rest "
    "a rates pass, a shifted copy and reductions) + readout/loss 8.2 + Adam 0.5 + input "
    "projection 0.6; 56 ms without noise; the bare matmul chain 8.1 ms. Changes that "
    "won, measured the same way: the noise generator (Threefry-2x32-13 with an exact "
    "Box-Muller transform and a polynomial cosine: 2.7 ns per sample of CPU time vs 5.2 for "
    "the fused threefry-20 and 11 for jax.random.normal); the reverse loop recomputing the "
    "activation and its slope from the stored state and accumulating the recurrent weight "
    "gradient per step (reverse pass 23.7 -> 18.8 ms CPU at this size, 648 -> 571 ms at "
    "(256, 256, 500)), with an explicit in-cache transpose of the per-step rates so the "
    "accumulation is a plain GEMM (whole step 131 -> 120 ms CPU at (128, 128, 300), 46 -> 44 "
    "at this size, 1114 -> 1133 at (256, 256, 500), 3 repeats); splitting the batch over the cores exposed as JAX devices (XLA's CPU "
    "backend runs one device's time loop on one core: two independent loops in one program "
    "ran one after the other, with or without `xla_cpu_enable_concurrency_optimized_scheduler`, "
    "while two devices ran them at once). Tried and lost: a Box-Muller pair per Threefry call "
    "(XLA fuses the generator into each of the pair's consumers and evaluates it twice or "
    "three times, so one sample per call is as fast and simpler); `jnp.sin`/`jnp.cos` (range "
    "reduction made Box-Muller 7x slower than the polynomial); the recomputed slope alone "
    "without the in-loop weight gradient (within 7%); the forward loop keeping each step's "
    "input rates and the weight gradient as one big product after the reverse loop (whole "
    "step 45 -> 63 ms CPU at (100, 128, 200), 132 -> 124 at (128, 128, 300), 1085 -> 1092 at "
    "(256, 256, 500): not kept, although the per-step transposed [N,B]@[B,N] product runs at "
    "half the GEMM rate of the recurrent product). On a loaded machine the split step "
    "suffers when the second core is taken by another process (the devices wait for each "
    "other at the gradient all-reduce): compare the split and one-device columns."
)


def interleaved_both(runners: dict, repeats: int) -> dict[str, tuple[float, float]]:
    """Like `interleaved`, returning (median wall seconds, median CPU seconds) per runner."""
    for fn in runners.values():
        fn()
    wall = {name: [] for name in runners}
    cpu = {name: [] for name in runners}
    for _ in range(repeats):
        for name, fn in runners.items():
            t, c = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    return {k: (float(np.median(wall[k])), float(np.median(cpu[k]))) for k in runners}


def step_profile(n, b, t, act, repeats) -> list[tuple[str, float, float]]:
    """(piece, wall ms, CPU ms) for the pieces of rnnlab's training step, each jitted alone,
    on one device."""
    from rnnlab._random import normal
    from rnnlab.models import _ctrnn_fast as F

    model = rl.CTRNN(N_IN, n, N_OUT, key=jax.random.PRNGKey(0), activation=act, dt=DT,
                     tau=TAU, noise_std=SIGMA)
    inputs, targets, mask = map(jnp.asarray, data(n, b, t))
    key = jax.random.PRNGKey(1)
    f, w, alpha = model.activation, model.effective_weights(), model.alpha
    wa_t, decay = alpha[None, :] * w["w_rec"].T, 1.0 - alpha
    z = 0.1 * jax.random.normal(key, (b, t, n))
    x0 = jnp.zeros((b, n))
    xs = F._potential_scan(f, wa_t, decay, z, x0)
    g = jax.random.normal(jax.random.PRNGKey(2), (b, t, n))

    def readout_loss(xs):
        out = model.readout_all(xs)
        mse = jnp.sum(mask * (out - targets) ** 2) / jnp.sum(mask)
        return mse + L2_RATES * jnp.mean(model.rates_all(xs) ** 2)

    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))
    params = eqx.filter(model, model.trainable_filter())
    ones = jax.tree.map(jnp.ones_like, params)

    def chain(x, w):
        return jax.lax.fori_loop(0, t, lambda i, x: x @ w, x)

    pieces = {
        "recurrent noise [B,T,N], rnnlab generator": (
            jax.jit(lambda k: normal(k, (b, t, n))), (key,)),
        "recurrent noise [B,T,N], jax.random.normal (not used; for comparison)": (
            jax.jit(lambda k: jax.random.normal(k, (b, t, n))), (key,)),
        "input projection (all rows at once)": (
            jax.jit(lambda u: F.affine_rows(u.reshape(-1, N_IN), w["w_in"].T, w["b_rec"])),
            (inputs,)),
        "forward scan": (jax.jit(lambda *a: F._potential_scan(f, *a)), (wa_t, decay, z, x0)),
        "reverse pass (custom VJP)": (
            jax.jit(lambda xs, g: F._potential_bwd(f, (wa_t, decay, x0, xs), g)), (xs, g)),
        "readout + loss + L2 rates, value and gradient": (
            jax.jit(jax.value_and_grad(readout_loss)), (xs,)),
        "clip + Adam": (jax.jit(lambda g, o, p: opt.update(g, o, p)),
                        (ones, opt.init(params), params)),
        "matmul chain alone, T x [B,N]@[N,N]": (jax.jit(chain), (x0 + 1.0, wa_t)),
    }
    runners = {k: (lambda fn=fn, a=a: jax.block_until_ready(fn(*a)))
               for k, (fn, a) in pieces.items()}
    runners["whole step"] = jax_runner(n, b, t, act, fast_unroll, split=False)[0]
    run_quiet = jax_runner(n, b, t, act, fast_unroll, split=False, noise_std=0.0)[0]
    runners["whole step without noise"] = run_quiet
    med = interleaved_both(runners, repeats)
    return [(name, wall * 1e3, cpu * 1e3) for name, (wall, cpu) in med.items()]


# ------------------------------------------------------------------------------ ensembles


def task_steps() -> int:
    return rl.tasks.make("flipflop").n_steps


ENSEMBLE_NOTE = (
    "Reading the profile: each piece's per-network cost inside the 32-network vmap against the "
    "same piece for one network alone (interleaved, medians). On a CPU the ensemble's "
    "per-network work does not shrink with batching: the recurrent products already run at "
    "the machine's GEMM rate for one network, noise (Threefry + Box-Muller) and trial sampling "
    "are elementwise work paid per element, and at 32 networks the step's [networks, batch, "
    "time, hidden] buffers (52 MB each at 32 x 64 x 100 x 64) exceed the 32 MB L3 cache, so "
    "elementwise passes run at memory speed. Evaluating the networks in groups (`lax.map` "
    "over groups of a vmap, to stay in cache) was tried and measured 1.5-2.8x slower than one "
    "vmap, so it is not used. The ensemble's gain on this CPU is the single compile and "
    "dispatch; the 10x goal needs an accelerator."
)


def ensemble_profile(n_nets, n_hidden, batch, repeats) -> list[tuple[str, float, float]]:
    """(piece, ms per network inside the n_nets vmap, ms for one network alone) for the
    pieces of an ensemble training step on FlipFlop."""
    from rnnlab._random import normal
    from rnnlab.models._ctrnn_fast import _potential_scan
    from rnnlab.training._train import batch_loss

    task = rl.tasks.make("flipflop")
    t = task.n_steps
    keys = jax.random.split(jax.random.PRNGKey(0), n_nets)
    models = [rl.CTRNN(task.n_in, n_hidden, task.n_out, key=k, dt=task.dt, noise_std=SIGMA)
              for k in keys]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs),
                           *[eqx.filter(m, eqx.is_inexact_array) for m in models])
    rest = eqx.filter(models[0], eqx.is_inexact_array, inverse=True)
    trials = jax.jit(jax.vmap(lambda k: task.sample_batch(k, batch)))(keys)

    def loss(arr, trial, k):
        return batch_loss(eqx.combine(arr, rest), task, trial, k, 0.0, 0.0)[0]

    w = jax.random.normal(keys[0], (n_nets, n_hidden, n_hidden)) / np.sqrt(n_hidden)
    z = jax.random.normal(keys[1], (n_nets, batch, t, n_hidden))
    x0 = jnp.zeros((n_nets, batch, n_hidden))
    decay = jnp.full((n_nets, n_hidden), 0.9)

    def scan(w, d, z, x):
        return _potential_scan(jax.nn.relu, w, d, z, x)

    pieces = {
        "trial sampling": (lambda k: task.sample_batch(k, batch), (keys,)),
        "recurrent noise": (lambda k: normal(k, (batch, t, n_hidden)), (keys,)),
        "forward scan": (scan, (w, decay, z, x0)),
        "forward + backward scan": (
            jax.grad(lambda *a: jnp.sum(scan(*a) ** 2), argnums=(0, 1, 2)), (w, decay, z, x0)),
        "loss gradient (noise, scan, readout, loss)": (jax.grad(loss), (stacked, trials, keys)),
    }
    runners, counts = {}, {}
    for name, (fn, args) in pieces.items():
        many, one = jax.jit(jax.vmap(fn)), jax.jit(fn)
        first = jax.tree.map(lambda x: x[0], args)
        runners[(name, "many")] = lambda many=many, args=args: jax.block_until_ready(many(*args))
        runners[(name, "one")] = lambda one=one, first=first: jax.block_until_ready(one(*first))
    med = interleaved(runners, repeats)
    return [(name, med[(name, "many")] / n_nets * 1e3, med[(name, "one")] * 1e3)
            for name in pieces]


def ensemble_bench(n_nets, n_hidden, steps, batch, quick) -> dict[str, float]:
    """Throughput of `rl.train_ensemble` on FlipFlop vs training the nets one after another
    with `rl.train` (same settings, no early stopping, one evaluation at the end).

    The two run interleaved (ensemble, then a few lone networks, repeated) so that they share
    the machine's load. Two ratios: steady state (compile excluded on both sides; a lone
    network's step time is the wall time between its evaluations at steps/2 and steps, divided
    by steps/2, which leaves its compile out) and end to end (each
    `rl.train` call compiles its own step; the ensemble compiles once)."""
    from rnnlab.models import _ctrnn_fast

    task = rl.tasks.make("flipflop")
    keys = jax.random.split(jax.random.PRNGKey(0), n_nets)
    models = [
        rl.CTRNN(task.n_in, n_hidden, task.n_out, key=k, dt=task.dt, noise_std=SIGMA)
        for k in keys
    ]
    common = dict(batch_size=batch, learning_rate=1e-2, eval_every=steps, eval_batch_size=64,
                  progress=False)
    rounds, n_seq = (1, 2) if quick else (2, 2)
    ens_run, ens_total, ens_compile, seq_full, seq_one, seq_step = [], [], [], [], [], []
    half = steps // 2
    for r in range(rounds):
        t0 = time.perf_counter()
        ens = rl.train_ensemble(models, task, key=jax.random.PRNGKey(1 + r), steps=steps,
                                **common)
        ens_total.append(time.perf_counter() - t0)
        ens_run.append(ens.run_time)
        ens_compile.append(ens.compile_time)
        for i in range(n_seq):
            m, k = models[(r * n_seq + i) % n_nets], jax.random.PRNGKey(2 + i)
            t0 = time.perf_counter()
            # a lone 64-unit network is faster on one device than split over the cores (the
            # devices wait for each other at every step): give it its best setting
            sharding = _ctrnn_fast.batch_sharding
            _ctrnn_fast.batch_sharding = lambda batch: None
            try:
                res = rl.train(m, task, key=k, steps=steps, **{**common, "eval_every": half})
            finally:
                _ctrnn_fast.batch_sharding = sharding
            seq_full.append(time.perf_counter() - t0)
            w = [h["wall_time"] for h in res.history]
            seq_step.append((w[1] - w[0]) / (steps - half))  # steady: compile is before w[0]
            seq_one.append(w[0] - seq_step[-1] * half)  # compile + first eval, about
    ens_run, ens_total = float(np.median(ens_run)), float(np.median(ens_total))
    full, one = float(np.median(seq_full)), float(np.median(seq_one))
    seq_step = float(np.median(seq_step))
    return {
        "n_nets": n_nets, "n_hidden": n_hidden, "steps": steps, "batch": batch,
        "ens_compile": float(np.median(ens_compile)), "ens_run": ens_run,
        "ens_total": ens_total,
        "ens_step_ms": ens_run / steps * 1e3,
        "ens_net_steps_per_s": n_nets * steps / ens_run,
        "seq_net_steps_per_s": 1.0 / seq_step,
        "seq_step_ms": seq_step * 1e3,
        "ens_e2e_net_steps_per_s": n_nets * steps / ens_total,
        "seq_e2e_net_steps_per_s": steps / full,
        "seq_first_call": one,
    }


# ------------------------------------------------------------------------------ rl.train loop

# (hidden, batch): a 64-unit network at the CLI's batch, and a small fast step where the
# host's per-step work weighs most
LOOP_SIZES = [(64, 64), (32, 16)]
LOOP_STEPS, LOOP_WINDOW = 300, 150


def train_loop_worker() -> None:
    """One process, one source tree (PYTHONPATH): `rl.train` on the flip-flop (CT-RNN, noise
    0.05, JAX's default single CPU device) at each LOOP_SIZES entry; prints JSON with the
    steady seconds per step, the wall time between the evaluations at LOOP_STEPS - LOOP_WINDOW
    and LOOP_STEPS divided by LOOP_WINDOW (compile and the first steps left out; one
    evaluation of 64 trials included, the same for both trees)."""
    import json

    task = rl.tasks.make("flipflop")
    out = {"rnnlab": rl.__file__}
    for n, b in LOOP_SIZES:
        model = rl.CTRNN(task.n_in, n, task.n_out, key=jax.random.PRNGKey(0), dt=task.dt,
                         noise_std=SIGMA)
        res = rl.train(model, task, key=jax.random.PRNGKey(1), steps=LOOP_STEPS, batch_size=b,
                       learning_rate=1e-2, eval_every=LOOP_WINDOW, eval_batch_size=64,
                       progress=False)
        w = [h["wall_time"] for h in res.history]
        out[f"{n},{b}"] = (w[1] - w[0]) / LOOP_WINDOW
    print("RESULT " + json.dumps(out), flush=True)


def train_loop_compare(old_src: str, new_src: str, rounds: int) -> str:
    """`train_loop_worker` run in turn against the two trees (old, new, old, new, ...: one
    fresh process each, so that they share the machine's load); medians and ratios."""
    import json
    import subprocess

    load = [os.getloadavg()[0]]
    times = {"old": [], "new": []}
    where = {}
    for r in range(rounds):
        for name, src in (("old", old_src), ("new", new_src)):
            env = {**os.environ, "PYTHONPATH": src}
            proc = subprocess.run(
                [sys.executable, __file__, "--train-loop-worker"], env=env, check=True,
                capture_output=True, text=True)
            line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
            result = json.loads(line[7:])
            where[name] = result.pop("rnnlab")
            times[name].append(result)
            print(f"round {r} {name}: " + ", ".join(
                f"{k}: {v*1e3:.2f} ms" for k, v in result.items()), flush=True)
    load.append(os.getloadavg()[0])
    for name, src in (("old", old_src), ("new", new_src)):
        assert where[name].startswith(os.path.abspath(src)), (name, where[name])
    lines = [
        "`rl.train` per step, before and after the one-loop refactor (issue 13: no host "
        "synchronisation inside a chunk; evaluation, progress and divergence checks at chunk "
        "boundaries). FlipFlop (3 bits, T 100), CT-RNN with recurrent noise 0.05, Adam 1e-2, "
        f"{LOOP_STEPS} steps, evaluations every {LOOP_WINDOW} on 64 trials, JAX's default "
        "single CPU device. Seconds per step = wall time between the two evaluations / "
        f"{LOOP_WINDOW} (compile excluded). The two source trees run in turn, one fresh "
        f"process each, {rounds} rounds; medians. 1-min load average {load[0]:.1f} at the "
        f"start, {load[1]:.1f} at the end, on {os.cpu_count()} cores (shared machine).",
        "",
        "| (hidden, batch) | before (ms/step) | after (ms/step) | before / after |",
        "|---|---|---|---|",
    ]
    for key in times["old"][0]:
        old = float(np.median([t[key] for t in times["old"]]))
        new = float(np.median([t[key] for t in times["new"]]))
        lines.append(f"| {key.replace(',', ', ')} | {old*1e3:.2f} | {new*1e3:.2f} | "
                     f"{old/new:.2f}x |")
    return "\n".join(lines)


LOOP_BEGIN, LOOP_END = "<!-- train_loop -->", "<!-- /train_loop -->"


def write_train_loop(block: str, command: str) -> None:
    """Put ``block`` into the train_speed section of RESULTS.md (replacing an older one),
    leaving the rest of the section as the full benchmark wrote it."""
    import re

    from _results import RESULTS

    text = RESULTS.read_text()
    part = (f"\n{LOOP_BEGIN}\n### rl.train loop\n\nCommand: `{command}`\n\n{block}\n"
            f"{LOOP_END}\n")
    old = re.compile(rf"\n?{re.escape(LOOP_BEGIN)}.*?{re.escape(LOOP_END)}\n?", re.S)
    if old.search(text):
        text = old.sub(lambda _: part, text)
    else:
        text = text.replace("<!-- end train_speed -->", part + "<!-- end train_speed -->")
    RESULTS.write_text(text)


def existing_train_loop() -> str:
    """The train-loop part of the train_speed section now in RESULTS.md ("" if none), kept
    when the full benchmark rewrites the section."""
    import re

    from _results import RESULTS

    if not RESULTS.exists():
        return ""
    m = re.search(rf"{re.escape(LOOP_BEGIN)}.*?{re.escape(LOOP_END)}", RESULTS.read_text(),
                  re.S)
    return m.group(0) if m else ""


# ------------------------------------------------------------------------------ main


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch baseline")
    ap.add_argument("--no-write", action="store_true", help="do not write RESULTS.md")
    ap.add_argument("--one-device", action="store_true",
                    help="keep JAX's single CPU device (no batch split over cores)")
    ap.add_argument("--train-loop", nargs=2, metavar=("OLD_SRC", "NEW_SRC"),
                    help="only rl.train's per-step time, two source trees side by side")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of --train-loop")
    ap.add_argument("--train-loop-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.train_loop_worker:
        train_loop_worker()
        return
    if args.train_loop:
        block = train_loop_compare(*args.train_loop, args.rounds)
        print(block)
        if not args.no_write:
            command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
            write_train_loop(block, command)
        return
    sizes = QUICK_SIZES if args.quick else SIZES
    have_torch = not args.no_torch
    if have_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            have_torch = False
            print("torch not installed: skipping the PyTorch baseline (pip install '.[bench]')")

    load_start = os.getloadavg()[0]
    rows = []
    for n, b, t, act in sizes:
        big = n * b * t > 5e6
        reps = 3 if (args.quick or big) else 9
        fast_run, fast_c = jax_runner(n, b, t, act, fast_unroll)
        one_run, one_c = jax_runner(n, b, t, act, fast_unroll, split=False)
        plain_run, plain_c = jax_runner(n, b, t, act, plain_unroll)
        runners = {"fast": fast_run, "fast1": one_run, "plain": plain_run}
        if have_torch:
            # on a busy machine a multi-threaded torch loop can be 20x slower than one thread
            # (oversubscription): measure both and keep the better
            # (one timed trial call each picks the thread count used in the interleaved runs)
            trial = {}
            for threads in sorted({1, os.cpu_count() or 1}):
                run_t = torch_runner(n, b, t, act, threads)
                t0 = time.perf_counter()
                run_t()
                trial[threads] = (time.perf_counter() - t0, run_t)
            best = min(trial, key=lambda k: trial[k][0])
            runners[f"torch{best}"] = trial[best][1]
            runners["torch1"] = trial[1][1]  # always: its CPU time is the one-core reference
        runners.update({"probe_" + k: v for k, v in probe_runners(n, b, t).items()})
        both = interleaved_both(runners, reps)
        med = {k: v[0] for k, v in both.items()}
        cpu = {k: v[1] for k, v in both.items()}
        fast_s, one_s, plain_s = med["fast"], med["fast1"], med["plain"]
        best_s = min(fast_s, one_s)
        torch_times = {k: v for k, v in med.items() if k.startswith("torch")}
        torch_key = min(torch_times, key=torch_times.get) if torch_times else None
        torch_s = torch_times[torch_key] if torch_key else float("nan")
        torch_threads = torch_key[5:] if torch_key else "-"
        probe = probe_rates(n, b, t, {k[6:]: v for k, v in med.items() if k.startswith("probe_")})
        flops = step_flops(n, b, t)
        row = {
            "cpu": (cpu["fast1"], cpu["plain"], cpu.get("torch1", float("nan"))),
            "size": (n, b, t, act), "fast": fast_s, "one": one_s, "best": best_s,
            "fast_compile": fast_c, "plain": plain_s, "torch_threads": torch_threads,
            "plain_compile": plain_c, "torch": torch_s, "probe": probe,
            "gflops": flops / best_s / 1e9, "floor": flops / (probe["attainable"] * 1e9),
        }
        rows.append(row)
        print(
            f"N={n} B={b} T={t} {act}: rnnlab split {fast_s*1e3:.1f} ms / one device "
            f"{one_s*1e3:.1f} ms (compile {fast_c:.2f} s), plain scan {plain_s*1e3:.1f} ms, "
            f"torch loop {torch_s*1e3:.1f} ms ({torch_threads} thr); "
            f"{row['gflops']:.1f} GFLOP/s of {probe['attainable']:.1f} attainable "
            f"(chain {probe['chain']:.1f}, one-device chain {probe['chain_one']:.1f}, "
            f"numpy {probe['numpy']:.1f}, big {probe['big']:.1f})",
            flush=True,
        )

    profile = step_profile(*PROFILE_SIZE, 3 if args.quick else 9)
    for name, wall, cpu in profile:
        print(f"profile {name}: {wall:.2f} ms wall, {cpu:.2f} ms CPU", flush=True)

    prof = ensemble_profile(32, 64, 64, 3 if args.quick else 7)
    for name, many, one in prof:
        print(f"ensemble profile {name}: {many:.2f} ms/network in the vmap vs {one:.2f} alone",
              flush=True)
    ens = ensemble_bench(32, 64, 50 if args.quick else 200, 64, args.quick)
    speedup = ens["ens_net_steps_per_s"] / ens["seq_net_steps_per_s"]
    e2e = ens["ens_e2e_net_steps_per_s"] / ens["seq_e2e_net_steps_per_s"]
    print(f"ensemble 32 x 64: steady {ens['ens_net_steps_per_s']:.0f} net-steps/s vs sequential "
          f"{ens['seq_net_steps_per_s']:.0f} ({speedup:.2f}x); end to end "
          f"{ens['ens_e2e_net_steps_per_s']:.0f} vs {ens['seq_e2e_net_steps_per_s']:.0f} "
          f"({e2e:.2f}x); compile {ens['ens_compile']:.2f} s", flush=True)

    lines = [
        f"Machine shared with other engineers while measured (1-min load average "
        f"{load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, on "
        f"{os.cpu_count()} cores): absolute times are noisy and inflated; the step ratios come "
        "from the implementations run "
        "in turn (round-robin, one process), so they share the load. Step = forward + "
        "backward + Adam (clip 1), Euler CT-RNN, recurrent noise 0.05, masked MSE + L2 on "
        "rates, fixed data; medians.",
        "",
        f"rnnlab runs with the batch split over the {len(jax.devices())} CPU devices JAX was "
        "given (one per core; `jax_num_cpu_devices`) and on one device; the best of the two "
        "gives the GFLOP/s and the fraction of the probe.",
        "",
        "| (N, B, T, act) | rnnlab, split (ms) | rnnlab, 1 device (ms) | plain lax.scan (ms) | "
        "PyTorch loop (ms) | vs torch (split / 1 dev) | vs plain (best) | GFLOP/s | "
        "probe GFLOP/s (chain: split / 1 dev; numpy; big) | fraction of probe | "
        "compile rnnlab / plain (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        n, b, t, act = r["size"]
        p = r["probe"]
        lines.append(
            f"| {n}, {b}, {t}, {act} | {r['fast']*1e3:.1f} | {r['one']*1e3:.1f} | "
            f"{r['plain']*1e3:.1f} | {r['torch']*1e3:.1f} ({r['torch_threads']} thr) | "
            f"{r['torch']/r['fast']:.2f}x / {r['torch']/r['one']:.2f}x | "
            f"{r['plain']/r['best']:.2f}x | {r['gflops']:.1f} | {p['attainable']:.1f} "
            f"({p['chain']:.1f} / {p['chain_one']:.1f}; {p['numpy']:.1f}; {p['big']:.1f}) | "
            f"{r['floor']/r['best']*100:.0f}% | {r['fast_compile']:.2f} / "
            f"{r['plain_compile']:.2f} |"
        )
    lines += [
        "",
        "CPU time of the single-core runs (same interleaved calls; medians), a load-robust "
        "comparison of the work each does: rnnlab on one device, the plain scan, PyTorch with "
        "1 thread. (XLA spreads large elementwise loops over two threads, so rnnlab's CPU time "
        "can exceed its wall time on a quiet machine.)",
        "",
        "| (N, B, T, act) | rnnlab 1 device CPU (ms) | plain CPU (ms) | PyTorch 1 thread CPU (ms) "
        "| torch / rnnlab | plain / rnnlab |",
        "|---|---|---|---|---|---|",
        *[f"| {', '.join(map(str, r['size']))} | {r['cpu'][0]*1e3:.1f} | {r['cpu'][1]*1e3:.1f} "
          f"| {r['cpu'][2]*1e3:.1f} | {r['cpu'][2]/r['cpu'][0]:.2f}x | "
          f"{r['cpu'][1]/r['cpu'][0]:.2f}x |" for r in rows],
        "",
        "FLOPs counted: 3 x the forward's matmul FLOPs (recurrent + input + readout). "
        "`probe` = the attainable rate, weighting the recurrent-shaped [B,N]@[N,N] rate (best of "
        "a jitted scan chain, on one device or split over the devices, and a NumPy loop) 2:1 "
        "with the big [N,TB]@[TB,N] weight-gradient product.",
        "",
        f"Where the time goes: rnnlab's step at {PROFILE_SIZE}, each piece jitted alone "
        "(one device; medians of wall and CPU time; CPU time is less inflated by other "
        "processes). The pieces overlap a little (the whole step fuses across them).",
        "",
        "| piece | wall (ms) | CPU (ms) |",
        "|---|---|---|",
        *[f"| {name} | {wall:.2f} | {cpu:.2f} |" for name, wall, cpu in profile],
        "",
        PROFILE_NOTE,
        "",
        f"Ensemble: {ens['n_nets']} CT-RNNs x {ens['n_hidden']} units on flipflop, batch "
        f"{ens['batch']}, T {task_steps()}, {ens['steps']} steps, run interleaved with lone "
        f"`rl.train` runs (the ensemble with the batch split over the {len(jax.devices())} CPU "
        f"device(s), the lone networks on one device, their faster setting). Steady state (compile excluded on both sides): `rl.train_ensemble` "
        f"{ens['ens_net_steps_per_s']:.0f} network-steps/s ({ens['ens_step_ms']:.0f} ms per "
        f"ensemble step) vs `rl.train` one network at a time {ens['seq_net_steps_per_s']:.0f} "
        f"network-steps/s ({ens['seq_step_ms']:.1f} ms per step): **{speedup:.2f}x**. End to "
        f"end (each `rl.train` call compiles; the ensemble compiles once): "
        f"{ens['ens_e2e_net_steps_per_s']:.0f} vs {ens['seq_e2e_net_steps_per_s']:.0f} "
        f"network-steps/s: **{e2e:.1f}x**. Ensemble compile {ens['ens_compile']:.2f} s, run "
        f"{ens['ens_run']:.2f} s; a lone `rl.train` call's compile + first evaluation about "
        f"{ens['seq_first_call']:.2f} s.",
        "",
        "| piece of the step (32 x 64, B 64, T 100) | ms per network in the 32-net vmap | "
        "ms for one network alone | ratio |",
        "|---|---|---|---|",
        *[f"| {name} | {many:.2f} | {one:.2f} | {many / one:.2f} |" for name, many, one in prof],
        "",
        ENSEMBLE_NOTE,
    ]
    body = "\n".join(lines)
    loop = existing_train_loop()
    if loop:
        body += "\n\n" + loop
    print(body)
    if not args.no_write and not args.quick:
        from _results import write_section

        write_section("train_speed", body)


if __name__ == "__main__":
    main()

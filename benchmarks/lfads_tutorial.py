"""The computation-thru-dynamics LFADS tutorial's result, at a scale 2 CPU cores allow:
train an integrator network, simulate Poisson spikes from its states, fit LFADS, and compare
the inferred rates (and input) with the truth, next to Gaussian smoothing and smoothing + PCA
on the same data.

The tutorial (20,480 trials x 25 bins x 100 neurons; encoder/controller/generator 128,
factors 32, one inferred input; ~20k batches of 128) reports mean rate R^2 0.527 for LFADS
against 0.333 for PCA-2 smoothing, and inferred-input R^2 0.510. This script runs a smaller
configuration (the numbers it prints say which) and writes its section of RESULTS.md:

    python benchmarks/lfads_tutorial.py                # default scale (see --help)
    python benchmarks/lfads_tutorial.py --quick        # a minute: checks that it runs

``--task flipflop`` runs the same pipeline on a 3-bit flip-flop network, whose rate and state
R^2 CtDB (Versteeg et al.) reports for LFADS as 0.930 / 0.881.
"""

import argparse
import json
import time
from pathlib import Path

import jax

import rnnlab as rl
from rnnlab.lfads import metrics

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", choices=("integrator", "flipflop"), default="integrator")
    p.add_argument("--co-dim", type=int, default=None, help="inferred inputs (default: the "
                   "task's input channels)")
    p.add_argument("--trials", type=int, default=2000)
    p.add_argument("--neurons", type=int, default=50)
    p.add_argument("--max-rate", type=float, default=50.0, help="spikes/s (bins of 40 ms)")
    p.add_argument("--hidden", type=int, default=64, help="integrator network units")
    p.add_argument("--train-steps", type=int, default=1500)
    p.add_argument("--epochs", type=int, default=150)
    p.add_argument("--warmup", type=int, default=None, help="KL and L2 warm-up epochs "
                   "(default: a fifth of --epochs)")
    p.add_argument("--gen-dim", type=int, default=64)
    p.add_argument("--enc-dim", type=int, default=64, help="IC and controller encoders")
    p.add_argument("--con-dim", type=int, default=64)
    p.add_argument("--fac-dim", type=int, default=16)
    p.add_argument("--co-tau", type=float, default=10.0, help="initial time constant (bins) "
                   "of the inferred inputs' AR(1) prior (learned)")
    p.add_argument("--samples", type=int, default=20, help="posterior samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="keep the fit here")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    p.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    a = p.parse_args()
    if a.quick:
        a.trials, a.neurons, a.train_steps, a.epochs = 200, 20, 200, 3
        a.gen_dim = a.enc_dim = a.con_dim = 16
        a.fac_dim, a.samples, a.no_write = 4, 2, True

    key = jax.random.PRNGKey(a.seed)
    k_net, k_train, k_sim, k_lfads, k_fit, k_post = jax.random.split(key, 6)
    task = rl.tasks.make(a.task)
    co_dim = task.n_in if a.co_dim is None else a.co_dim
    t0 = time.perf_counter()
    net = rl.CTRNN(task.n_in, a.hidden, task.n_out, key=k_net, dt=task.dt)
    trained = rl.train(net, task, key=k_train, steps=a.train_steps, learning_rate=1e-2,
                       progress=False)
    t_train = time.perf_counter() - t0
    acc = trained.history[-1].get("accuracy")

    data = rl.lfads.simulate_spikes(trained.model, task, key=k_sim, n_neurons=a.neurons,
                                    max_rate=a.max_rate, n_trials=a.trials, seed=a.seed)
    model = rl.lfads.LFADS(data.n_neurons, key=k_lfads, gen_dim=a.gen_dim, fac_dim=a.fac_dim,
                           ic_enc_dim=a.enc_dim, ci_enc_dim=a.enc_dim, con_dim=a.con_dim,
                           ic_dim=a.enc_dim, co_dim=co_dim, co_prior_tau=a.co_tau)
    t0 = time.perf_counter()
    warmup = max(1, a.epochs // 5) if a.warmup is None else a.warmup
    result = rl.lfads.fit(model, data, key=k_fit, max_epochs=a.epochs, batch_size=128,
                          kl_increase_epoch=warmup, l2_increase_epoch=warmup, out=a.out,
                          progress=False)
    t_fit = time.perf_counter() - t0
    post = {s: rl.lfads.posterior_means(result.best_model, data, n_samples=a.samples,
                                        key=jax.random.fold_in(k_post, i), split=s)
            for i, s in enumerate(("train", "valid"))}
    lfads = metrics.evaluate(
        data, post["train"].rates, post["valid"].rates,
        latents_train=post["train"].factors, latents_valid=post["valid"].factors,
        inputs_train=post["train"].inferred_inputs, inputs_valid=post["valid"].inferred_inputs)
    base = metrics.evaluate_baselines(data)
    pca2 = metrics.pca_baseline(data, n_components=2)
    pca2_r2 = metrics.rate_r2(data.truth_split("rates", "valid"), pca2.rates_valid,
                              multioutput="uniform_average")

    scale = (f"{a.trials} trials x {data.n_time} bins x {a.neurons} neurons (max {a.max_rate:g} "
             f"spikes/s, bins of {data.bin_size * 1000:g} ms) from a {a.hidden}-unit CT-RNN "
             f"{a.task} (final training accuracy {acc:.3f}, {t_train:.0f} s); LFADS gen "
             f"{a.gen_dim}, encoders {a.enc_dim}, controller {a.con_dim}, factors "
             f"{a.fac_dim}, {co_dim} inferred input(s) (AR(1) prior tau {a.co_tau:g} bins "
             f"at the start), "
             f"{result.epochs} epochs (KL/L2 warm-up {warmup}, "
             f"{result.steps} steps of 128 trials, {t_fit:.0f} s, "
             f"stopped: {result.stopped}); {a.samples} posterior samples")
    ref = {"integrator": ("0.527 / PCA-2 0.333", "", "", "0.510"),
           "flipflop": ("", "CtDB LFADS 0.930", "CtDB LFADS 0.881", "")}[a.task]
    rows = [("mean rate R^2 (over neurons)", lfads["rate_r2_mean"],
             base["smoothing"]["rate_r2_mean"], base["smoothing+pca"]["rate_r2_mean"], ref[0]),
            ("rate R^2 (variance-weighted)", lfads["rate_r2"], base["smoothing"]["rate_r2"],
             base["smoothing+pca"]["rate_r2"], ref[1]),
            ("state R^2", lfads.get("state_r2"), base["smoothing"]["state_r2"],
             base["smoothing+pca"]["state_r2"], ref[2]),
            ("inferred-input R^2", lfads.get("input_r2"), None, None, ref[3]),
            ("bits per spike (held-in, validation)", lfads["bits_per_spike"],
             base["smoothing"]["bits_per_spike"], base["smoothing+pca"]["bits_per_spike"], "")]
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    table = ["| metric (validation trials) | LFADS | smoothing | smoothing + PCA | published |",
             "|---|---|---|---|---|"]
    table += [f"| {n} | {fmt(x)} | {fmt(y)} | {fmt(z)} | {t} |" for n, x, y, z, t in rows]
    body = (f"Scale: {scale}.\n\n" + "\n".join(table) + "\n\n"
            f"Smoothing width {base['smoothing']['width']:g} bins; smoothing + PCA with "
            f"{int(base['smoothing+pca']['n_components'])} components (chosen on the "
            f"validation split); with 2 components (the tutorial's) its mean rate R^2 is "
            f"{pca2_r2:.3f}.")
    print(body)
    print(json.dumps({"lfads": lfads, **base, "pca2_rate_r2_mean": pca2_r2}))
    if not a.no_write:
        import sys

        sys.path.insert(0, str(HERE))
        from _results import write_section

        write_section(f"LFADS tutorial ({a.task} spikes)", body)


if __name__ == "__main__":
    main()

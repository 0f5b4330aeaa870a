"""Training steps per second of rnnlab's LFADS against a PyTorch implementation of the same
architecture and batch, written here the way lfads-torch computes a step (eager PyTorch,
Python loops over time for the clipped GRU cells, coordinated dropout, AR(1) KL by sampling,
Adam with gradient clipping), in the same run, alternating blocks.

    python benchmarks/lfads.py                 # print
    python benchmarks/lfads.py --write         # and write the section of RESULTS.md

rnnlab is timed two ways: the single jitted training step (one dispatch per step), and the
epoch program `rl.lfads.fit` runs (a ``lax.scan`` over the batches of an epoch). Compile time
is reported apart. Ratios = median steps/s over median steps/s of PyTorch.
"""

import argparse
import inspect
import math
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))


# ------------------------------------------------------------------------------ PyTorch


def torch_lfads(cfg, n_neurons, scales):
    import torch
    from torch import nn

    def var_scaled(w, fan):
        nn.init.normal_(w, std=1.0 / math.sqrt(fan))

    class Cell(nn.Module):
        def __init__(self, n_in, H, clip, encoder=False):
            super().__init__()
            self.H, self.clip = H, clip
            self.w_ih = nn.Parameter(torch.empty(3 * H, n_in))
            self.w_hh = nn.Parameter(torch.empty(3 * H, H))
            self.b_ih = nn.Parameter(torch.cat([torch.ones(2 * H), torch.zeros(H)]))
            var_scaled(self.w_ih, n_in + H if encoder else n_in)
            var_scaled(self.w_hh, n_in + H if encoder else H)

        def forward(self, x, h):
            H = self.H
            xa = x @ self.w_ih.T + self.b_ih
            hzr = h @ self.w_hh[: 2 * H].T
            z = torch.sigmoid(xa[:, :H] + hzr[:, :H])
            r = torch.sigmoid(xa[:, H:2 * H] + hzr[:, H:])
            n = torch.tanh(xa[:, 2 * H:] + (r * h) @ self.w_hh[2 * H:].T)
            return torch.clamp(z * h + (1 - z) * n, -self.clip, self.clip)

    def unroll(cell, xs, h):
        out = []
        for t in range(xs.shape[1]):
            h = cell(xs[:, t], h)
            out.append(h)
        return torch.stack(out, 1), h

    def lin(n_in, n_out, bias=True):
        m = nn.Linear(n_in, n_out, bias=bias)
        var_scaled(m.weight, n_in)
        if bias:
            nn.init.zeros_(m.bias)
        return m

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            c = cfg
            clip = c["cell_clip"]
            self.ic_f = Cell(n_neurons, c["ic_enc_dim"], clip, True)
            self.ic_b = Cell(n_neurons, c["ic_enc_dim"], clip, True)
            self.ci_f = Cell(n_neurons, c["ci_enc_dim"], clip, True)
            self.ci_b = Cell(n_neurons, c["ci_enc_dim"], clip, True)
            self.ic_h0 = nn.Parameter(torch.zeros(2, c["ic_enc_dim"]))
            self.ci_h0 = nn.Parameter(torch.zeros(2, c["ci_enc_dim"]))
            self.ic_linear = lin(2 * c["ic_enc_dim"], 2 * c["ic_dim"])
            self.con = Cell(2 * c["ci_enc_dim"] + c["fac_dim"], c["con_dim"], clip)
            self.con_h0 = nn.Parameter(torch.zeros(c["con_dim"]))
            self.co_linear = lin(c["con_dim"], 2 * c["co_dim"])
            self.ic_to_g0 = lin(c["ic_dim"], c["gen_dim"])
            self.gen = Cell(c["co_dim"], c["gen_dim"], clip)
            self.fac = lin(c["gen_dim"], c["fac_dim"], bias=False)
            self.readout = lin(c["fac_dim"], n_neurons)
            self.drop = nn.Dropout(c["dropout_rate"])
            self.ic_prior_mean = nn.Parameter(torch.zeros(c["ic_dim"]))
            self.register_buffer("ic_prior_logvar", torch.full((c["ic_dim"],), math.log(0.1)))
            self.logtaus = nn.Parameter(torch.full((c["co_dim"],), math.log(10.0)))
            self.lognvars = nn.Parameter(torch.full((c["co_dim"],), math.log(0.1)))

        def factors(self, g):
            w = self.fac.weight / self.fac.weight.norm(dim=1, keepdim=True)
            return self.drop(g) @ w.T

        def forward(self, x):
            B, T, _ = x.shape
            c = cfg
            xd = self.drop(x)
            xr = torch.flip(xd, [1])
            _, hf = unroll(self.ic_f, xd, self.ic_h0[0].expand(B, -1))
            _, hb = unroll(self.ic_b, xr, self.ic_h0[1].expand(B, -1))
            ic = self.ic_linear(self.drop(torch.cat([hf, hb], 1)))
            ic_mean, ic_logvar = ic.chunk(2, 1)
            ic_std = torch.sqrt(torch.exp(ic_logvar) + 1e-4)
            g = self.ic_to_g0(ic_mean + ic_std * torch.randn_like(ic_std))
            of, _ = unroll(self.ci_f, xd, self.ci_h0[0].expand(B, -1))
            ob, _ = unroll(self.ci_b, xr, self.ci_h0[1].expand(B, -1))
            ob = torch.flip(ob, [1])
            lag, E = c["ci_lag"], c["ci_enc_dim"]
            f = torch.cat([torch.zeros(B, lag, E), of], 1)[:, :T]
            b = torch.cat([ob, torch.zeros(B, lag, E)], 1)[:, lag:]
            ci = torch.cat([f, b], 2)
            fac = self.factors(g)
            h_con = self.con_h0.expand(B, -1)
            facs, co_m, co_s, us = [], [], [], []
            for t in range(T):
                h_con = self.con(self.drop(torch.cat([ci[:, t], fac], 1)), h_con)
                m, lv = self.co_linear(h_con).chunk(2, 1)
                s = torch.exp(0.5 * lv)
                u = m + s * torch.randn_like(s)
                g = self.gen(u, g)
                fac = self.factors(g)
                facs.append(fac)
                co_m.append(m)
                co_s.append(s)
                us.append(u)
            lograte = self.readout(torch.stack(facs, 1))
            return (lograte, ic_mean, ic_std, torch.stack(co_m, 1), torch.stack(co_s, 1),
                    torch.stack(us, 1))

    model = Model()

    def loss_fn(data, cd_rate, kl_ramp, l2_ramp, scales):
        keep = (torch.rand_like(data) > cd_rate).float()
        grad_mask = 1.0 - keep
        lograte, ic_mean, ic_std, co_m, co_s, u = model(data * keep / (1 - cd_rate))
        nll = torch.exp(lograte) - data * lograte + torch.lgamma(data + 1)
        nll = nll * grad_mask + (nll * (1 - grad_mask)).detach()
        B = data.shape[0]
        recon = nll.sum() / B
        pv = torch.exp(model.ic_prior_logvar)
        kl_ic = 0.5 * (model.ic_prior_logvar - torch.log(ic_std**2)
                       + (ic_std**2 + (ic_mean - model.ic_prior_mean) ** 2) / pv - 1)
        kl_ic = kl_ic.sum(1).mean()
        alpha = torch.exp(-1.0 / torch.exp(model.logtaus))
        logpvar = model.lognvars - torch.log(1 - alpha**2)
        log_q = torch.distributions.Normal(co_m, co_s).log_prob(u).sum((1, 2))
        mean_p = torch.cat([torch.zeros_like(u[:, :1]), alpha * u[:, :-1]], 1)
        std_p = torch.cat([torch.exp(0.5 * logpvar).expand_as(u[:, :1]),
                           torch.exp(0.5 * model.lognvars).expand_as(u[:, 1:])], 1)
        log_p = torch.distributions.Normal(mean_p, std_p).log_prob(u).sum((1, 2))
        kl_co = (log_q - log_p).mean()
        loss = recon + kl_ramp * (scales.kl_ic_scale * kl_ic + scales.kl_co_scale * kl_co)
        if scales.l2_gen_scale > 0:  # lfads-torch's L2 (the other kernels' scales are 0)
            w = model.gen.w_hh
            loss = loss + l2_ramp * scales.l2_gen_scale * 0.5 * (w**2).sum() / w.numel()
        return loss

    opt = torch.optim.Adam(model.parameters(), lr=4e-3, eps=1e-8)

    def step(data):
        opt.zero_grad()
        loss = loss_fn(data, 0.3, 0.5, 0.5, scales)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 200.0)
        opt.step()
        return float(loss.detach())

    return model, step


# ------------------------------------------------------------------------------ main


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=512)
    ap.add_argument("--time", type=int, default=25)
    ap.add_argument("--neurons", type=int, default=50)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=8, help="steps per timed block")
    ap.add_argument("--repeats", type=int, default=5, help="alternating blocks per side")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()

    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import torch

    import rnnlab as rl
    from rnnlab.lfads import _fit

    cfg = dict(ic_enc_dim=64, ci_enc_dim=64, ci_lag=1, con_dim=64, co_dim=1, ic_dim=64,
               gen_dim=100, fac_dim=40, dropout_rate=0.05, cell_clip=5.0)
    rng = np.random.default_rng(0)
    counts = rng.poisson(1.0, (args.trials, args.time, args.neurons)).astype(np.float32)
    B, S = args.batch, args.steps
    load_before = os.getloadavg()[0]

    # rnnlab: the training step and the epoch program of rl.lfads.fit
    model = rl.lfads.LFADS(args.neurons, key=jax.random.PRNGKey(0), **cfg)
    params, static = eqx.partition(model, eqx.is_array)
    # the loss terms' weights: rl.lfads.fit's defaults, on both sides
    defaults = {k: p.default for k, p in inspect.signature(rl.lfads.fit).parameters.items()}
    scales = _fit.Scales(**{f: defaults[f] for f in _fit.Scales._fields})
    if any(getattr(scales, f) for f in ("l2_ic_enc_scale", "l2_ci_enc_scale", "l2_con_scale")):
        raise SystemExit("the PyTorch side implements the generator's L2 only")
    settings = _fit.Settings(scales, 0, 80, 0, 80, 0.3, 0.0, 200.0, 1e-8, B, S)
    opt = _fit.optimizer_for(200.0, 1e-8)
    opt_state = opt.init(params)
    step_jit = eqx.filter_jit(_fit.train_step)
    data = jnp.asarray(counts)
    epoch = jnp.float32(40.0)
    lr = jnp.float32(4e-3)

    starts = [(i * B) % (args.trials - B + 1) for i in range(S)]
    batches = [data[s:s + B] for s in starts]

    def jax_steps(p, o):
        for i, batch in enumerate(batches):
            p, o, loss = step_jit(p, static, o, batch, batch, None,
                                  jax.random.PRNGKey(i), epoch, lr, settings)
        jax.block_until_ready(loss)
        return p, o

    def jax_epoch(p, o):
        p, o, losses = _fit.run_epoch(p, static, o, data[: S * B], data[: S * B], None,
                                      jax.random.PRNGKey(0), epoch, lr, jnp.int32(S), settings)
        jax.block_until_ready(losses)
        return p, o

    t = time.perf_counter()
    jax_steps(params, opt_state)
    compile_step = time.perf_counter() - t
    t = time.perf_counter()
    jax_epoch(params, opt_state)
    compile_epoch = time.perf_counter() - t

    torch.manual_seed(0)
    _, torch_step = torch_lfads(cfg, args.neurons, scales)
    tdata = torch.from_numpy(counts)
    default_threads = torch.get_num_threads()

    tbatches = [tdata[s:s + B] for s in starts]

    def torch_steps():
        for batch in tbatches:
            torch_step(batch)

    torch_steps()  # warm-up

    # PyTorch with its default threads and with one (on a loaded machine its thread pool
    # can spin against other processes); the faster of the two is the baseline
    # CPU time (all threads of the process) per step beside the wall-clock rate: on a shared
    # machine the rate follows the load, the CPU time much less
    rates = {"jax_step": [], "jax_epoch": [], "torch": [], "torch1": []}
    cpu = {k: [] for k in rates}

    def timed(name, run):
        t, c = time.perf_counter(), time.process_time()
        out = run()
        rates[name].append(S / (time.perf_counter() - t))
        cpu[name].append((time.process_time() - c) / S * 1e3)
        return out

    p, o = params, opt_state
    for _ in range(args.repeats):
        p, o = timed("jax_step", lambda: jax_steps(p, o))
        p, o = timed("jax_epoch", lambda: jax_epoch(p, o))
        for name, threads in (("torch", default_threads), ("torch1", 1)):
            torch.set_num_threads(threads)
            timed(name, torch_steps)
        torch.set_num_threads(default_threads)
    load_after = os.getloadavg()[0]
    med = {k: statistics.median(v) for k, v in rates.items()}
    base = max(med["torch"], med["torch1"])
    rows = [
        (f"PyTorch (eager, lfads-torch's way), {default_threads} threads", "-", "torch"),
        ("PyTorch (eager, lfads-torch's way), 1 thread", "-", "torch1"),
        ("rnnlab: jitted step", f"{compile_step:.1f}", "jax_step"),
        ("rnnlab: epoch program of fit (lax.scan)", f"{compile_epoch:.1f}", "jax_epoch"),
    ]
    lines = ["| implementation | compile (s) | steps/s median | blocks (steps/s) | ratio to "
             "faster PyTorch | CPU ms/step median |", "|---|---|---|---|---|---|"]
    for name, comp, k in rows:
        blocks = ", ".join(f"{r:.2f}" for r in rates[k])
        lines.append(f"| {name} | {comp} | {med[k]:.2f} | {blocks} | "
                     f"{med[k] / base:.2f} | {statistics.median(cpu[k]):.0f} |")
    body = (
        f"Training steps per second of LFADS, batch {B} trials x {args.time} bins x "
        f"{args.neurons} neurons (Poisson), encoders 64+64, controller 64, inferred input 1, "
        f"IC 64, generator 100, factors 40; coordinated dropout 0.3, dropout 0.05, Adam, "
        f"gradient clipping at 200; the loss terms weighted as `rl.lfads.fit`'s defaults on "
        f"both sides (KL of the initial condition {scales.kl_ic_scale:g}, of the inputs "
        f"{scales.kl_co_scale:g}, generator L2 {scales.l2_gen_scale:g}). "
        f"{args.repeats} alternating blocks of {S} steps per side, "
        f"after a warm-up; torch {torch.__version__}. CPU time: the process's, all threads, "
        f"per step. "
        f"Load average (1 min) {load_before:.1f} before, {load_after:.1f} after, on a shared "
        f"{os.cpu_count()}-core machine: compare ratios.\n\n" + "\n".join(lines))
    print(body)
    if args.write:
        from _results import write_section

        write_section("LFADS training steps against PyTorch", body)


if __name__ == "__main__":
    main()

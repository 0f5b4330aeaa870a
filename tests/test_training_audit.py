"""Regressions from an audit of the training side (train, ensembles, checkpoints, save/load).

Each test asserts a truth a careful user relies on: a run re-done for exactly as many steps as
a result reports reproduces its parameters bit for bit; an interrupted run resumes to the same
history and best model; a saved model loads; bad arguments are named.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnlab as rl
import rnnlab.training._train as tr
from rnnlab.io import read_safetensors
from rnnlab.io._model_io import tree_to_tensors
from rnnlab.tasks import AbstractTask, Trial

TASK = rl.tasks.FlipFlop(n_bits=2, n_steps=30)


def _model(seed=0, **kw):
    return rl.CTRNN(TASK.n_in, 12, TASK.n_out, key=jax.random.PRNGKey(seed), dt=TASK.dt, **kw)


def _arrays(model):
    return [np.asarray(x) for x in jax.tree.leaves(eqx.filter(model, eqx.is_array))]


def _assert_identical(a, b):
    la, lb = _arrays(a), _arrays(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(x, y)


def _without_wall_time(history):
    return [{k: v for k, v in h.items() if k != "wall_time"} for h in history]


class GlitchyFlipFlop(AbstractTask):
    """The flip-flop, but a trial's inputs are NaN with probability ``p`` (a broken recording):
    the step whose batch holds one has a NaN loss, whatever the parameters."""

    base: rl.tasks.FlipFlop
    p: float
    n_in: int
    n_out: int
    n_steps: int
    dt: float

    def __init__(self, base, p):
        self.base, self.p = base, p
        self.n_in, self.n_out, self.n_steps, self.dt = base.n_in, base.n_out, base.n_steps, base.dt

    def sample(self, key) -> Trial:
        k_trial, k_bad = jax.random.split(key)
        trial = self.base.sample(k_trial)
        bad = jax.random.uniform(k_bad) < self.p
        return eqx.tree_at(lambda t: t.inputs, trial,
                           jnp.where(bad, jnp.nan, trial.inputs))


# ------------------------------------------------------------------------------ save / load


def test_trainable_tau_at_its_clip_saves_and_loads(tmp_path):
    """A trained per-unit tau that reached its lower clip (tau = dt) used to make the saved
    model unloadable: the constructor refuses a trainable tau that starts at dt."""
    model = _model(tau=np.linspace(20.0, 200.0, 12), trainable=("w_rec", "tau"))
    # what training does to a unit whose tau is pushed below dt: log-tau under log(dt)
    below = model.tau_param.at[:3].set(jnp.log(TASK.dt) - 1.0)
    trained = eqx.tree_at(lambda m: m.tau_param, model, below)
    assert float(jnp.min(trained.tau)) == TASK.dt  # clipped
    rl.save(tmp_path / "m.safetensors", trained)
    loaded = rl.load(tmp_path / "m.safetensors")
    _assert_identical(trained, loaded)
    inputs = jax.random.normal(jax.random.PRNGKey(1), (25, TASK.n_in))
    a, b = rl.simulate(trained, inputs), rl.simulate(loaded, inputs)
    np.testing.assert_array_equal(np.asarray(a.outputs), np.asarray(b.outputs))
    assert loaded.config() == trained.config()


# ------------------------------------------------------------------------------ resume


def test_resume_reproduces_history_and_best_model(tmp_path, monkeypatch):
    """Killed right after a checkpoint that falls between evaluations: the resumed run's
    history (train_loss included) and best model equal the uninterrupted run's."""
    # Adam 3e-2 for 8 steps, then a rate that makes the network worse: the best evaluation
    # lies before the interruption, so only a restored best model can equal the full run's
    schedule = lambda step: jnp.where(step < 8, 3e-2, 0.3)  # noqa: E731
    kw = dict(steps=16, batch_size=16, learning_rate=schedule, grad_clip=None, eval_every=4,
              eval_batch_size=64, checkpoint_every=3, progress=False)
    model = _model(noise_std=0.05)
    full = tr.train(model, TASK, key=jax.random.PRNGKey(4), **kw)
    accs = [h["accuracy"] for h in full.history]
    assert int(np.argmax(accs)) < 2 and max(accs) > max(accs[2:])  # best at step 4 or 8

    real = tr.save_checkpoint

    def save_then_die(path, params, opt_state, meta, *args, **kwargs):
        real(path, params, opt_state, meta, *args, **kwargs)
        if meta["step"] == 9:  # between the evaluations at 8 and 12
            raise KeyboardInterrupt

    monkeypatch.setattr(tr, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        tr.train(model, TASK, key=jax.random.PRNGKey(4), out_dir=tmp_path, **kw)
    monkeypatch.setattr(tr, "save_checkpoint", real)
    resumed = tr.train(model, TASK, key=jax.random.PRNGKey(4), out_dir=tmp_path, resume=True,
                       **kw)
    _assert_identical(resumed.model, full.model)
    assert _without_wall_time(resumed.history) == _without_wall_time(full.history)
    _assert_identical(resumed.best_model, full.best_model)


# ------------------------------------------------------------------------------ divergence


def test_divergence_returns_the_last_parameters_with_a_finite_loss(tmp_path):
    """A step whose loss is NaN condemns the parameters it was computed with; the result and
    the checkpoint hold the parameters one step earlier, which a run of exactly that many
    steps reproduces bit for bit."""
    # the 5th update (Optax count 4) uses a huge rate: the parameters after 5 steps are
    # finite but so large that their loss is not; the last good ones are those after 4
    schedule = lambda step: jnp.where(step < 4, 1e-3, 1e8)  # noqa: E731
    kw = dict(batch_size=8, learning_rate=schedule, grad_clip=None, eval_every=1,
              progress=False)
    model = _model(activation="relu", gain=2.0)
    with pytest.raises(rl.TrainingDiverged) as info:
        rl.train(model, TASK, key=jax.random.PRNGKey(0), steps=50, out_dir=tmp_path, **kw)
    result = info.value.result
    assert result.stopped == "diverged" and result.steps == 4
    # the returned model's own loss is finite, and it is the model after result.steps steps
    again = rl.train(model, TASK, key=jax.random.PRNGKey(0), steps=result.steps, **kw)
    _assert_identical(result.model, again.model)
    assert np.isfinite(rl.training.evaluate(result.model, TASK, key=jax.random.PRNGKey(1),
                                            batch_size=16)["loss"])
    assert [h["step"] for h in result.history] == list(range(1, result.steps + 1))
    # the checkpoint (written every step) was put back to those parameters
    tensors, meta = read_safetensors(tmp_path / "checkpoints" / "checkpoint.safetensors")
    assert meta["step"] == result.steps
    params = eqx.filter(again.model, again.model.trainable_filter())
    for name, value in tree_to_tensors(params, "params").items():
        np.testing.assert_array_equal(tensors[name], value)
    assert f"after {result.steps} steps" in str(info.value)


def test_ensemble_member_that_diverges_mid_run_equals_training_it_alone():
    """Divergence from a broken batch at a step > 0: the ensemble member and the lone run
    both return the parameters one step before, with the same step count and history."""
    task = GlitchyFlipFlop(TASK, 0.003)
    kw = dict(steps=20, batch_size=16, grad_clip=1.0, eval_every=5, eval_batch_size=32,
              progress=False)
    models = [_model(0), _model(1)]
    # with these keys the first broken batches come at steps 10 and 16 (0-based): the loss
    # of the parameters after 10 (16) steps is NaN, so those after 9 (15) are returned
    keys = jax.random.split(jax.random.PRNGKey(3), 2)
    ens = rl.train_ensemble(models, task, key=keys, learning_rate=[1e-2, 3e-3], **kw)
    assert list(ens.steps) == [9, 15]
    alone = []
    for m, k, lr in zip(models, keys, (1e-2, 3e-3)):
        with pytest.raises(rl.TrainingDiverged) as info:
            rl.train(m, task, key=k, learning_rate=lr, **kw)
        alone.append(info.value.result)
    for member, single in zip(ens, alone):
        assert member.stopped == single.stopped == "diverged"
        assert member.steps == single.steps
        assert [h["step"] for h in member.history] == [h["step"] for h in single.history]
        for x, y in zip(_arrays(member.model), _arrays(single.model)):
            np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-5)
    # the eval at step 10 of the first network (parameters that then failed) is dropped
    assert [h["step"] for h in ens[0].history] == [5]
    # the first network, put back to step 9, is bit for bit the ensemble run for 9 steps
    short = rl.train_ensemble(models, task, key=keys, learning_rate=[1e-2, 3e-3],
                              **{**kw, "steps": 9})
    _assert_identical(ens[0].model, short[0].model)
    # truth for the lone run: a run of exactly that many steps
    redo = rl.train(models[0], task, key=keys[0], learning_rate=1e-2, **{**kw, "steps": 9})
    _assert_identical(redo.model, alone[0].model)


# ------------------------------------------------------------------------------ arguments


@pytest.mark.parametrize("key", [0, None, "seed", np.zeros(3, np.float32)])
def test_a_key_that_is_not_a_prng_key_is_named(key):
    with pytest.raises(TypeError, match="key must be one JAX PRNG key"):
        rl.train(_model(), TASK, key=key, steps=2, progress=False)


def test_learning_rate_as_a_0d_array_and_typed_keys_are_accepted():
    kw = dict(steps=1, batch_size=4, eval_every=1, eval_batch_size=4, progress=False)
    a = rl.train(_model(), TASK, key=jax.random.PRNGKey(0), learning_rate=1e-2, **kw)
    b = rl.train(_model(), TASK, key=jax.random.PRNGKey(0), learning_rate=jnp.float32(1e-2),
                 **kw)
    _assert_identical(a.model, b.model)
    c = rl.train(_model(), TASK, key=jax.random.wrap_key_data(jax.random.PRNGKey(0)),
                 learning_rate=1e-2, **kw)
    _assert_identical(c.model, a.model)


def test_out_dir_that_is_a_file_is_named(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("x")
    with pytest.raises(ValueError, match="out_dir"):
        rl.train(_model(), TASK, key=jax.random.PRNGKey(0), steps=2, out_dir=path,
                 progress=False)


# ------------------------------------------------------------------------------ masked losses


class OffMaskFill(AbstractTask):
    """A task's trials with the first ``n_off`` steps masked out too and, unless ``fill`` is
    None, the targets where the mask is 0 replaced by ``fill``."""

    base: AbstractTask
    fill: float | None
    n_off: int
    n_in: int
    n_out: int
    n_steps: int
    dt: float

    def __init__(self, base, fill, n_off=5):
        self.base, self.fill, self.n_off = base, fill, n_off
        self.n_in, self.n_out, self.n_steps, self.dt = base.n_in, base.n_out, base.n_steps, base.dt

    @property
    def loss_type(self):
        return self.base.loss_type

    def sample(self, key) -> Trial:
        trial = self.base.sample(key)
        mask = trial.mask.at[: self.n_off].set(0.0)
        targets = trial.targets
        if self.fill is not None:
            targets = jnp.where(mask > 0, targets, self.fill)
        return eqx.tree_at(lambda t: (t.targets, t.mask), trial, (targets, mask))


@pytest.mark.parametrize("name", ["flipflop", "perceptual_decision_making"])
@pytest.mark.parametrize("fill", [123.0, np.nan, np.inf])
def test_targets_where_the_mask_is_zero_change_nothing(name, fill):
    """Masked MSE (flip-flop) and masked cross-entropy (decision making) ignore masked steps
    exactly, even when the off-mask targets are NaN or inf: the training loss (task loss plus
    rate penalty, with noise) and its gradient, compiled once, are bit-identical on both
    batches, and so are the task's scores."""
    base = rl.tasks.make(name, n_steps=20) if name == "flipflop" else rl.tasks.make(name)
    clean, filled = OffMaskFill(base, None), OffMaskFill(base, fill)
    model = rl.CTRNN(base.n_in, 10, base.n_out, key=jax.random.PRNGKey(0), dt=base.dt,
                     noise_std=0.05)
    k = jax.random.PRNGKey(3)
    trials = [t.sample_batch(k, 8) for t in (clean, filled)]
    assert not np.array_equal(np.asarray(trials[0].targets), np.asarray(trials[1].targets))
    loss_and_grad = eqx.filter_jit(eqx.filter_value_and_grad(
        lambda m, trial: rl.training.batch_loss(m, base, trial, k, l2_rates=0.1)[0]))
    (la, ga), (lb, gb) = (loss_and_grad(model, t) for t in trials)
    assert np.isfinite(float(la)) and float(la) == float(lb)
    _assert_identical(ga, gb)
    scores = [base.evaluate(jnp.ones(t.targets.shape), t) for t in trials]
    assert {k: float(v) for k, v in scores[0].items()} == {
        k: float(v) for k, v in scores[1].items()}


def test_resume_removes_temporaries_left_by_a_killed_write(tmp_path):
    """A process killed inside an atomic write leaves its temporary file (never a partial
    checkpoint); resuming the run deletes those leftovers and nothing else."""
    kw = dict(steps=2, batch_size=4, eval_every=2, eval_batch_size=4, progress=False,
              out_dir=tmp_path)
    rl.train(_model(), TASK, key=jax.random.PRNGKey(0), **kw)
    stale = [tmp_path / "checkpoints" / ".checkpoint.safetensors.k1ll3d.tmp",
             tmp_path / ".history.jsonl.abc123.tmp"]
    for path in stale:
        path.write_bytes(b"\0" * 100)
    keep = tmp_path / "notes.tmp"
    keep.write_text("mine")
    rl.train(_model(), TASK, key=jax.random.PRNGKey(0), resume=True, **{**kw, "steps": 3})
    assert not any(path.exists() for path in stale) and keep.exists()
    assert not list(tmp_path.rglob(".*.tmp"))


def test_ensemble_and_evaluate_name_a_key_that_is_not_a_prng_key():
    with pytest.raises(TypeError, match="key must be one JAX PRNG key"):
        rl.train_ensemble([_model(0), _model(1)], TASK, key=0, steps=2, progress=False)
    with pytest.raises(TypeError, match="key must be one JAX PRNG key"):
        rl.training.evaluate(_model(), TASK, key=None)


# ------------------------------------------------------------------------------ fast gradients


def _euler_reference(model, inputs, key):
    """An Euler loop over time written from `CTRNN`'s documented equations, fed the noise the
    fast path documents (``k_in, k_rec = split(key)``, `rnnlab._random.normal`)."""
    from rnnlab._random import normal

    w, alpha, f = model.effective_weights(), model.alpha, model.activation
    k_in, k_rec = jax.random.split(key)
    u = inputs + model.input_noise_std * normal(k_in, inputs.shape).astype(inputs.dtype)
    xi = normal(k_rec, inputs.shape[:2] + (model.n_hidden,)).astype(inputs.dtype)

    def body(x, step):
        u_t, xi_t = step
        p = u_t @ w["w_in"].T + w["b_rec"]
        drive = f(x @ w["w_rec"].T + p) if model.form == "rate" else f(x) @ w["w_rec"].T + p
        new = (1 - alpha) * x + alpha * drive + jnp.sqrt(2 * alpha) * model.noise_std * xi_t
        return new, new

    x0 = jnp.broadcast_to(model.initial_state(), (inputs.shape[0], model.n_hidden))
    _, xs = jax.lax.scan(body, x0, (jnp.swapaxes(u, 0, 1), jnp.swapaxes(xi, 0, 1)))
    return jnp.swapaxes(xs, 0, 1)


@pytest.mark.parametrize(
    "form, activation, batch, n_steps",
    [(form, act, 3, 7) for form in ("rate", "potential") for act in ("relu", "softplus",
                                                                     "sigmoid")]
    + [("rate", "softplus", 1, 1), ("potential", "relu", 1, 1)],
)
def test_fast_gradient_with_every_constraint_at_once(form, activation, batch, n_steps):
    """Dale + no autapses + all three masks + excitatory readout + non-negative inputs +
    noise on both + per-unit trainable tau and h0, together, down to one trial of one step:
    the hand-written reverse pass equals autodiff through the reference loop."""
    n, n_in, n_out = 10, 3, 2
    rng = np.random.default_rng(7)
    with jax.enable_x64(True):
        model = rl.CTRNN(
            n_in, n, n_out, key=jax.random.PRNGKey(1), dt=10.0, form=form,
            activation=activation, dale=True, autapses=False, readout="excitatory",
            nonnegative_inputs=True, noise_std=0.2, input_noise_std=0.1,
            tau=np.linspace(25.0, 90.0, n), trainable=("w_rec", "w_in", "w_out", "b_rec",
                                                      "b_out", "tau", "h0"),
            w_rec_mask=rng.random((n, n)) < 0.6, w_in_mask=rng.random((n, n_in)) < 0.7,
            w_out_mask=rng.random((n_out, n)) < 0.8,
        )
        model = jax.tree.map(lambda x: x.astype(jnp.float64) if eqx.is_inexact_array(x) else x,
                             model)
        model = eqx.tree_at(lambda m: m.h0, model, 0.3 * jnp.sin(jnp.arange(n, dtype=float)))
        inputs = jax.random.normal(jax.random.PRNGKey(2), (batch, n_steps, n_in), jnp.float64)
        targets = jax.random.normal(jax.random.PRNGKey(3), (batch, n_steps, n_out), jnp.float64)
        key = jax.random.PRNGKey(4)
        params, static = eqx.partition(model, model.trainable_filter())

        def loss(p, unroll):
            m = eqx.combine(p, static)
            xs = unroll(m)
            return jnp.mean((m.readout_all(xs) - targets) ** 2) + jnp.mean(m.rates_all(xs) ** 2)

        fast = lambda m: m.unroll_batch(inputs, m.initial_state(), key=key)  # noqa: E731
        ref = lambda m: _euler_reference(m, inputs, key)  # noqa: E731
        lf, gf = jax.value_and_grad(loss)(params, fast)
        lr_, gr = jax.value_and_grad(loss)(params, ref)
        assert abs(float(lf) - float(lr_)) <= 1e-12 * abs(float(lr_))
        for a, b in zip(jax.tree.leaves(gf), jax.tree.leaves(gr)):
            scale = float(jnp.max(jnp.abs(b)))
            assert scale > 0  # every trained leaf gets a gradient
            assert float(jnp.max(jnp.abs(a - b))) <= 1e-10 * scale


# ------------------------------------------------------------------------------ constraints


@pytest.mark.parametrize("case", ["areas_dale_tau_noise", "rate_readout_frozen_nonneg"])
def test_constraints_hold_exactly_after_violent_training(case):
    """Learning rate 0.5, no clipping: Dale's signs per presynaptic column, no autapses,
    masks (a two-area structure with no projection from area 1 to area 0), excitatory-only
    readout and non-negative inputs hold exactly; frozen leaves are bit-identical."""
    n = 16
    if case == "areas_dale_tau_noise":
        areas = rl.models.multi_area_mask([8, 8], [[0.9, 0.0], [0.5, 0.9]],
                                          key=jax.random.PRNGKey(5))
        kw = dict(dale=True, autapses=False, w_rec_mask=areas, noise_std=0.1,
                  tau=np.linspace(20.0, 200.0, n), trainable=("w_rec", "w_out", "tau", "h0"))
    else:
        areas = None
        kw = dict(dale=True, excitatory_fraction=0.75, form="rate", activation="relu",
                  readout="excitatory", nonnegative_inputs=True,
                  trainable=("w_rec", "b_rec", "w_out"))
    model = rl.CTRNN(TASK.n_in, n, TASK.n_out, key=jax.random.PRNGKey(0), dt=TASK.dt, **kw)
    res = rl.train(model, TASK, key=jax.random.PRNGKey(1), steps=20, batch_size=8,
                   learning_rate=0.5, grad_clip=None, eval_every=20, eval_batch_size=8,
                   progress=False)
    trained = res.model
    w = {k: np.asarray(v) for k, v in trained.effective_weights().items()}
    sign = np.where(np.arange(n) < trained.n_excitatory, 1.0, -1.0)
    assert np.all(w["w_rec"] * sign[None, :] >= 0)
    assert np.any(w["w_rec"][:, sign < 0] < 0)  # inhibitory columns really are negative
    if areas is not None:
        assert not trained.autapses and np.all(np.diag(w["w_rec"]) == 0)
        allowed = np.asarray(areas, bool) & ~np.eye(n, dtype=bool)
        assert np.all(w["w_rec"][~allowed] == 0) and np.all(w["w_rec"][:8, 8:] == 0)
        assert float(jnp.max(jnp.abs(trained.tau - model.tau))) > 0  # tau was trained
    else:
        assert np.all(w["w_out"][:, trained.n_excitatory:] == 0)
        assert np.all(w["w_in"] >= 0)
    names = {"w_rec": "w_rec", "w_in": "w_in", "w_out": "w_out", "b_rec": "b_rec",
             "b_out": "b_out", "tau_param": "tau", "h0": "h0"}
    for field, name in names.items():
        before, after = np.asarray(getattr(model, field)), np.asarray(getattr(trained, field))
        if name in model.trainable:
            assert not np.array_equal(before, after), field
        else:
            np.testing.assert_array_equal(before, after)


# ------------------------------------------------------------------------------ a real kill

_WORKER = """
import sys, jax, rnnlab as rl
out, resume = sys.argv[1], sys.argv[2] == "1"
task = rl.tasks.FlipFlop(n_bits=2, n_steps=40)
model = rl.CTRNN(2, 16, 2, key=jax.random.PRNGKey(0), dt=task.dt, noise_std=0.05, dale=True)
rl.train(model, task, key=jax.random.PRNGKey(1), steps=150, batch_size=16, learning_rate=1e-2,
         eval_every=10, checkpoint_every=7, out_dir=out, resume=resume, progress=False)
"""


@pytest.mark.slow
def test_sigkill_mid_training_then_resume_equals_uninterrupted(tmp_path):
    """A training process killed with SIGKILL (no clean-up at all) after its first
    checkpoints resumes to bit-identical weights and the same history as a run never
    interrupted."""
    import json
    import signal
    import subprocess
    import sys
    import time

    worker = tmp_path / "worker.py"
    worker.write_text(_WORKER)
    full, cut = tmp_path / "full", tmp_path / "cut"
    subprocess.run([sys.executable, str(worker), str(full), "0"], check=True)
    proc = subprocess.Popen([sys.executable, str(worker), str(cut), "0"])
    ckpt = cut / "checkpoints" / "checkpoint.safetensors"
    deadline = time.time() + 300
    while time.time() < deadline:
        if ckpt.exists() and read_safetensors(ckpt)[1]["step"] >= 14:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = read_safetensors(ckpt)[1]["step"]
    assert 14 <= killed_at < 150  # really interrupted mid-run
    subprocess.run([sys.executable, str(worker), str(cut), "1"], check=True)
    _assert_identical(rl.load(full / "model.safetensors"), rl.load(cut / "model.safetensors"))

    def history(run):
        lines = (run / "history.jsonl").read_text().splitlines()
        return _without_wall_time([json.loads(x) for x in lines])

    assert history(full) == history(cut)


# ------------------------------------------------------------------------------ FORCE


def test_force_warns_when_the_reservoir_cannot_leave_zero():
    """From a = 0 with no input, bias or noise, tanh keeps the reservoir at 0: the readout
    cannot learn (the error stays the target itself), and the user is told why."""
    f = jnp.sin(jnp.arange(120.0) / 6)[:, None]
    silent = rl.EchoStateNetwork(1, 30, 1, key=jax.random.PRNGKey(0), readout_scale=0.0)
    with pytest.warns(UserWarning, match="initial_state='random'"):
        res = rl.train_force(silent, f, passes=2)
    np.testing.assert_array_equal(np.asarray(res.errors[-1]), -np.asarray(f))
    np.testing.assert_array_equal(np.asarray(res.model.w_out), np.asarray(silent.w_out))
    lively = rl.EchoStateNetwork(1, 30, 1, key=jax.random.PRNGKey(0), readout_scale=0.0,
                                 initial_state="random")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = rl.train_force(lively, f, passes=2)
    assert float(res.pass_rmse[-1]) < 0.5 * float(jnp.sqrt(jnp.mean(f**2)))

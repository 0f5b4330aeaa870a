"""Multitask mixtures, curricula (Python and `rnnlab train --curriculum`), and
`rnnlab tasks NAME --plot`."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnlab as rl
from rnnlab import tasks as T
from rnnlab.cli import main

KEY = jax.random.PRNGKey(0)


# ------------------------------------------------------------------ mixture


def _parts():
    return [T.GoNoGo(), T.MemoryNumber(), T.DelayedMatchToSample()]


def test_mixture_embeds_each_tasks_own_trials():
    parts = _parts()
    mix = T.Mixture(parts)
    assert (mix.n_in, mix.n_out, mix.n_steps, mix.dt) == (3 + 3, 2, 140, 10.0)

    @jax.jit
    def run(k):
        tr = mix.sample_batch(k, 48)
        zeros = jnp.zeros_like(tr.targets)
        return tr, mix.trial_scores(tr.targets, tr), mix.trial_scores(zeros, tr)

    tr, perfect, silent = run(KEY)
    which = np.asarray(tr.conditions["task"])
    assert set(np.unique(which)) == {0, 1, 2}
    assert np.all(np.asarray(perfect) == 1.0)
    keys = jax.random.split(KEY, 48)
    own_sample = [jax.jit(t.sample) for t in parts]
    for b in range(48):
        i = int(which[b])
        t = parts[i]
        own = own_sample[i](jax.random.split(keys[b])[1])
        x, y, m = (np.asarray(a[b]) for a in (tr.inputs, tr.targets, tr.mask))
        np.testing.assert_allclose(x[: t.n_steps, : t.n_in], np.asarray(own.inputs), atol=1e-6)
        assert np.all(x[:, t.n_in:3] == 0) and np.all(x[t.n_steps:, :3] == 0)
        np.testing.assert_array_equal(x[:, 3:], np.tile(np.eye(3)[i], (140, 1)))
        np.testing.assert_allclose(y[: t.n_steps, : t.n_out], np.asarray(own.targets),
                                   atol=1e-6)
        np.testing.assert_array_equal(m[: t.n_steps, : t.n_out], np.asarray(own.mask))
        assert np.all(m[t.n_steps:] == 0) and np.all(m[:, t.n_out:] == 0)
        # each trial is scored by its own task's rule
        own_b = jax.tree.map(lambda a: a[None], own)
        want = t.trial_scores(jnp.zeros_like(own_b.targets), own_b)[0]
        assert float(silent[b]) == pytest.approx(float(want))


def test_mixture_weights_evaluate_and_errors():
    mix = T.Mixture(_parts(), weights=(0.0, 1.0, 0.0), rule_inputs=False)
    tr = jax.jit(lambda k: mix.sample_batch(k, 16))(KEY)
    assert mix.n_in == 3
    np.testing.assert_array_equal(np.asarray(tr.conditions["task"]), 1)
    ev = mix.evaluate(tr.targets, tr)
    assert float(ev["accuracy"]) == 1.0 and float(ev["accuracy/memory_number"]) == 1.0
    with pytest.raises(ValueError, match="dt"):
        T.Mixture([T.GoNoGo(), T.Integrator()])
    with pytest.raises(ValueError, match="loss_type"):
        T.Mixture([T.PerceptualDecisionMaking(), T.ContextDecisionMaking()])
    with pytest.raises(ValueError, match="weights"):
        T.Mixture(_parts(), weights=(1.0, 1.0))
    with pytest.raises(TypeError, match="tasks"):
        T.Mixture([])


# ------------------------------------------------------------------ curriculum


def test_curriculum_checks():
    with pytest.raises(ValueError, match="n_in"):
        T.Curriculum((T.GoNoGo(), T.MemoryNumber()))
    with pytest.raises(ValueError, match="threshold"):
        T.Curriculum((T.GoNoGo(),), threshold=1.5)
    with pytest.raises(TypeError, match="stages"):
        T.Curriculum(())
    cur = T.Curriculum.from_settings("integrator", [{"noise_std": 0.05}, {}], n_steps=10)
    assert [s.noise_std for s in cur.stages] == [0.05, 0.2]
    assert all(s.n_steps == 10 for s in cur.stages)
    net = rl.CTRNN(1, 8, 1, key=KEY, dt=40.0)
    with pytest.raises(ValueError, match="target_accuracy"):
        rl.training.train_curriculum(net, cur, key=KEY, target_accuracy=0.5)


def test_curriculum_is_the_composition_of_its_stages(tmp_path):
    """Threshold 0: each stage stops at its first evaluation; the result must equal training
    the stages one after another by hand."""
    stages = (T.Integrator(n_steps=10, noise_std=0.05), T.Integrator(n_steps=10))
    cur = T.Curriculum(stages, threshold=0.0)
    net = rl.CTRNN(1, 8, 1, key=KEY, dt=40.0)
    opts = dict(eval_every=5, eval_batch_size=32, batch_size=16, progress=False)
    res = rl.training.train_curriculum(net, cur, key=KEY, steps=100, out_dir=tmp_path / "run", **opts)
    assert res.passed == [True, True] and res.completed and res.steps == 10
    m = net
    for i, s in enumerate(stages):
        m = rl.train(m, s, key=jax.random.fold_in(KEY, i), steps=5, target_accuracy=0.0,
                     **opts).model
    for a, b in zip(jax.tree.leaves(eqx.filter(res.model, eqx.is_array)),
                    jax.tree.leaves(eqx.filter(m, eqx.is_array))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    out = tmp_path / "run"
    summary = json.loads((out / "curriculum.json").read_text())
    assert [s["passed"] for s in summary["stages"]] == [True, True]
    assert (out / "stage_0" / "config.json").exists()
    assert (out / "stage_1" / "history.jsonl").exists()
    loaded = rl.load(out / "model.safetensors")
    u = jnp.ones((5, 1))
    np.testing.assert_array_equal(np.asarray(rl.simulate(loaded, u).outputs),
                                  np.asarray(rl.simulate(res.model, u).outputs))
    assert json.loads((out / "config.json").read_text())["task"]["name"] == "integrator"


def test_curriculum_stops_when_the_budget_runs_out():
    cur = T.Curriculum((T.Integrator(n_steps=10), T.Integrator(n_steps=10)), threshold=1.0)
    net = rl.CTRNN(1, 8, 1, key=KEY, dt=40.0)
    res = rl.training.train_curriculum(net, cur, key=KEY, steps=10, eval_every=5, batch_size=8,
                             eval_batch_size=16, progress=False)
    assert res.passed == [False] and not res.completed and res.steps == 10


# ------------------------------------------------------------------ command line


def test_cli_train_with_curriculum_then_evaluate(tmp_path, capsys):
    out = tmp_path / "cur"
    spec = json.dumps([{"noise_std": 0.05}, {}])
    rc = main(["train", "integrator", "--curriculum", spec, "--steps", "60", "--hidden", "8",
               "--eval-every", "10", "--target-accuracy", "0.0", "-p", "n_steps=10",
               "--out", str(out), "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "stage 0" in text and "stage 1" in text and "curriculum completed" in text
    # the final model is scored on the fixed evaluation set, as after plain training
    from rnnlab.runs import Run

    saved = json.loads((out / "evaluation.json").read_text())
    again = Run.open(out).score(save=False)
    assert saved["accuracy"] == again["accuracy"] and saved["loss"] == again["loss"]
    assert f"final accuracy {saved['accuracy']:.4f}" in text
    assert main(["evaluate", str(out), "--json", "--batch-size", "16"]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scores["task"] == "integrator" and 0 <= scores["accuracy"] <= 1
    # a stage file works too, with another registered task per stage
    f = tmp_path / "stages.json"
    f.write_text(json.dumps({"stages": [{"task": "integrator", "params": {"n_steps": 5}}]}))
    assert main(["train", "integrator", "--curriculum", str(f), "--steps", "10", "--hidden",
                 "4", "--eval-every", "5", "--out", str(tmp_path / "f"), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["train", "integrator", "--curriculum", "[1, 2]", "--out",
                 str(tmp_path / "bad"), "--no-progress"]) == 2
    assert "stage 0" in capsys.readouterr().err
    assert main(["train", "integrator", "--curriculum", '[{"task": "go_no_go"}]', "--out",
                 str(tmp_path / "bad2"), "--no-progress"]) == 2
    assert "n_in" in capsys.readouterr().err


def test_cli_tasks_details_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["tasks", "go_no_go", "--plot", str(tmp_path / "trials"), "--n-trials", "2"]) == 0
    text = capsys.readouterr().out
    assert "conditions: choice, response_start, trial_end, value" in text
    assert (tmp_path / "trials.png").stat().st_size > 1000
    assert (tmp_path / "trials.svg").exists()
    assert main(["tasks", "yang19.dm1"]) == 0
    assert "inputs 85, outputs 33" in capsys.readouterr().out


def test_cli_uses_the_tasks_recommended_learning_rate(tmp_path, capsys):
    assert T.make("memory_anti_angle").recommended_learning_rate == 1e-3
    assert T.make("integrator").recommended_learning_rate is None
    args = ["--steps", "1", "--hidden", "4", "--eval-every", "1", "--no-progress",
            "-p", "n_steps=10", "-p", "cue=100"]
    for extra, want in (([], 1e-3), (["--lr", "0.02"], 0.02)):
        out = tmp_path / f"run{len(extra)}"
        assert main(["train", "angular_integrator", "--out", str(out), *args, *extra]) == 0
        cfg = json.loads((out / "config.json").read_text())
        assert cfg["training"]["learning_rate"] == want
    capsys.readouterr()
    assert main(["tasks", "angular_integrator"]) == 0
    assert "recommended training: --lr 0.001" in capsys.readouterr().out


class _Recommends(T.FlipFlop):
    recommended_learning_rate = 3e-3
    recommended_hidden = 7
    recommended_activation = "relu"
    recommended_batch_size = 5
    recommended_steps = 2


def test_cli_uses_every_recommended_training_setting(tmp_path, capsys, monkeypatch):
    from rnnlab.tasks import _base

    assert T.make("integrator").recommended_training() == {}
    assert _Recommends().recommended_training() == {
        "learning_rate": 3e-3, "hidden": 7, "activation": "relu", "batch_size": 5, "steps": 2}
    assert T.make("yang19.delaydm1").recommended_training()["activation"] == "relu"
    monkeypatch.setitem(_base._REGISTRY, "_recommends", _Recommends)
    args = ["--eval-every", "1", "--no-progress", "--target-accuracy", "1.0"]
    for extra, want in (
        ([], (3e-3, 7, 5, 2, "relu")),
        (["--lr", "0.02", "--hidden", "3", "--batch-size", "4", "--steps", "1",
          "--activation", "tanh"], (0.02, 3, 4, 1, "tanh")),
    ):
        out = tmp_path / f"run{len(extra)}"
        assert main(["train", "_recommends", "--out", str(out), *args, *extra]) == 0
        cfg = json.loads((out / "config.json").read_text())
        assert cfg["training"]["learning_rate"] == want[0]
        assert cfg["cli"]["hidden"] == want[1]
        assert cfg["cli"]["options"]["activation"] == want[4]
        assert cfg["training"]["batch_size"] == want[2]
        hist = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
        assert hist[-1]["step"] == want[3]
    capsys.readouterr()
    assert main(["tasks", "_recommends"]) == 0
    text = capsys.readouterr().out
    assert ("recommended training: --lr 0.003, --hidden 7, --activation relu, --batch-size 5, "
            "--steps 2") in text


class _TrainsAllSteps(_Recommends):
    recommended_target_accuracy = 1.0


def test_cli_uses_the_recommended_target_accuracy(tmp_path, capsys, monkeypatch):
    # a task may ask for all its steps (target 1.0); --target-accuracy still wins; without a
    # recommendation the CLI's rule (halfway from the threshold to 1) applies
    from rnnlab.tasks import _base

    assert _TrainsAllSteps().recommended_training()["target_accuracy"] == 1.0
    assert "target_accuracy" not in _Recommends().recommended_training()
    for name in ("perceptual_decision_making", "context_decision_making"):
        assert T.make(name).recommended_training()["target_accuracy"] == 1.0
    monkeypatch.setitem(_base._REGISTRY, "_all_steps", _TrainsAllSteps)
    monkeypatch.setitem(_base._REGISTRY, "_recommends", _Recommends)
    for name, extra, want in (("_all_steps", [], 1.0),
                              ("_all_steps", ["--target-accuracy", "0.5"], 0.5),
                              ("_recommends", [], 0.995)):
        out = tmp_path / f"{name}{len(extra)}"
        assert main(["train", name, "--out", str(out), "--no-progress", *extra]) == 0
        cfg = json.loads((out / "config.json").read_text())
        assert cfg["training"]["target_accuracy"] == pytest.approx(want)
    capsys.readouterr()
    assert main(["tasks", "_all_steps"]) == 0
    assert "--target-accuracy 1" in capsys.readouterr().out


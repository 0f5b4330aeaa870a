"""rnnlab.runs: opening and creating run directories, and the default analysis of a run
(`analyze_run` -> `RunAnalysis`, saved to and loaded from RUN/analysis/)."""

import json

import jax
import numpy as np
import pytest

import rnnlab as rl
from rnnlab.runs import Run, RunAnalysis, RunError, RunNotFoundError, analyze_run

DT, TAU = 10.0, 100.0


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A flip-flop run trained for a few steps through Run.create / Run.train."""
    path = tmp_path_factory.mktemp("runs") / "ff"
    task = rl.tasks.make("flipflop", n_bits=2)
    net = rl.CTRNN(task.n_in, 8, task.n_out, key=jax.random.PRNGKey(0), dt=task.dt)
    run = Run.create(path, task=task, model=net, config={"seed": 0})
    result = run.train(key=jax.random.PRNGKey(1), steps=20, batch_size=8, eval_every=10,
                       eval_batch_size=16, progress=False)
    return path, result


def test_run_open_reads_what_training_wrote(trained):
    path, result = trained
    run = Run.open(path)
    assert run.config["seed"] == 0 and run.task_name == "flipflop"
    assert run.task.n_in == 3 - 1  # n_bits=2 rebuilt from the config's params
    assert [h["step"] for h in run.history] == [h["step"] for h in result.history]
    assert run.history[-1]["loss"] == result.history[-1]["loss"]
    # the best model is model.safetensors, the last one model_final.safetensors: bit-identical
    for a, b in ((run.model, result.best_model), (run.final_model, result.model)):
        la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
        assert len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb))
    assert run.checkpoint is not None and run.best["step"] == result.best_step
    assert run.analysis is None  # not analysed yet
    trials, traj = run.sample_trials(4, seed=3)
    assert traj.states.shape[:2] == trials.inputs.shape[:2]


def test_run_create_refuses_a_directory_that_holds_a_run(trained):
    path, _ = trained
    task = rl.tasks.make("flipflop", n_bits=2)
    net = rl.CTRNN(task.n_in, 8, task.n_out, key=jax.random.PRNGKey(0), dt=task.dt)
    with pytest.raises(RunError, match="already holds a run"):
        Run.create(path, task=task, model=net)
    Run.create(path, task=task, model=net, resume=True)  # continuing it is allowed


def test_run_open_errors_name_the_directory_and_what_to_do(tmp_path):
    with pytest.raises(RunNotFoundError, match="does not exist"):
        Run.open(tmp_path / "nope")
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(RunError, match="is a file"):
        Run.open(f)
    with pytest.raises(RunNotFoundError, match="no config.json"):
        Run.open(tmp_path)
    for text, match in (("{", "not valid JSON"), ("[]", "must hold"), ("null", "must hold")):
        (tmp_path / "config.json").write_text(text)
        with pytest.raises(RunError, match=match) as e:
            Run.open(tmp_path)
        assert str(tmp_path / "config.json") in str(e.value)
    (tmp_path / "config.json").write_text('{"task": {"name": "flipflop", "params": {}}}')
    with pytest.raises(RunNotFoundError, match="no trained model yet"):
        Run.open(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "checkpoint.safetensors").write_bytes(b"")
    with pytest.raises(RunNotFoundError, match="--resume"):
        Run.open(tmp_path)
    run = Run.open(tmp_path, require_model=False)
    assert run.task_name == "flipflop"
    (tmp_path / "config.json").write_text('{"task": {"name": "flipflop", "params": [1]}}')
    with pytest.raises(RunError, match="task.params must be an object"):
        Run.open(tmp_path, require_model=False).task
    (tmp_path / "config.json").write_text('{"task": {"name": "made_in_a_script"}}')
    run = Run.open(tmp_path, require_model=False)
    assert run.task is None
    with pytest.raises(RunError, match="not a registered task"):
        run.require_task()


def _linear_line_run(tmp_path):
    """A run whose network is a linear CT-RNN with W = diag(1, .5, .5), W_in = I: at input
    (0, a, 0) its fixed points are the line {(s, 2a, 0)}, eigenvalue 0 along e1."""
    path = tmp_path / "line"
    task = rl.tasks.make("flipflop")
    model = rl.CTRNN.from_weights(np.diag([1.0, 0.5, 0.5]), np.eye(3), np.eye(3),
                                  activation="linear", dt=DT, tau=TAU)
    run = Run.create(path, task=task, model=model)
    run.train(key=jax.random.PRNGKey(0), steps=1, batch_size=4, eval_every=1,
              eval_batch_size=4, learning_rate=1e-12, progress=False)
    rl.save(path / "model.safetensors", model)
    return path


def test_analyze_run_finds_one_line_per_input_and_saves_what_it_found(tmp_path):
    path = _linear_line_run(tmp_path)
    result = analyze_run(path, inputs={"zero": [0, 0, 0], "shifted": [0, 0.05, 0]},
                         n_initial=256, n_trials=16, slow_tol=1e-6, topology_starts=2)
    assert result.input_names == ["zero", "shifted"]
    by_input = result.by_input
    assert sum(len(p) for p in by_input.values()) == len(result.fixed_points)
    for (name, vec), shift in zip(result.inputs, (0.0, 0.1)):
        part = by_input[name]
        np.testing.assert_allclose(np.asarray(part.inputs, float), np.broadcast_to(vec, (len(part), 3)), atol=1e-7)
        # every point lies on its input's line {(s, 2a, 0)}: within 2 tau |F| of it
        x = np.asarray(part.states)
        off = np.abs(x[:, 1:] - np.array([shift, 0.0]))
        assert np.all(off <= 2 * TAU * np.asarray(part.speeds)[:, None] * (1 + 1e-6) + 1e-15)
    kinds = [(name, m.kind, m.dimension) for name, m in result.manifolds]
    assert kinds == [("zero", "line", 1), ("shifted", "line", 1)]
    for name, m in result.manifolds:  # indices point into the whole set, at their input
        np.testing.assert_array_equal(np.asarray(result.fixed_points.states)[m.indices],
                                      m.states)
        np.testing.assert_allclose(np.asarray(result.fixed_points.inputs, float)[m.indices],
                                   np.broadcast_to(dict(result.inputs)[name], (len(m.indices), 3)),
                                   atol=1e-7)
    assert len(result.continuous_attractors) == 2
    # what was saved loads back equal
    again = Run.open(path).analysis
    assert isinstance(again, RunAnalysis) and again.inputs == result.inputs
    np.testing.assert_array_equal(np.asarray(again.fixed_points.states),
                                  np.asarray(result.fixed_points.states))
    assert tuple(again.fixed_points.stability) == tuple(result.fixed_points.stability)
    assert [(n, m.kind, m.length) for n, m in again.manifolds] == \
        [(n, m.kind, m.length) for n, m in result.manifolds]
    for (_, a), (_, b) in zip(again.manifolds, result.manifolds):
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.tangent_eigenvalues, b.tangent_eigenvalues)
    np.testing.assert_allclose(again.pca.components, result.pca.components)
    assert set(again.topology.nodes) == set(result.topology.nodes)
    assert set(again.topology.edges) == set(result.topology.edges)
    assert again.summary == json.loads(json.dumps(result.summary))


def test_an_analysis_saved_without_manifolds_gets_them_searched_again(tmp_path):
    # analyses written before manifolds.safetensors existed still load, with their manifolds
    path = _linear_line_run(tmp_path)
    first = analyze_run(path, inputs=[[0, 0, 0]], n_initial=128, n_trials=8, slow_tol=1e-6,
                        topology_starts=2)
    (path / "analysis" / "manifolds.safetensors").unlink()
    again = Run.open(path).analysis
    assert [(n, m.kind) for n, m in again.manifolds] == [(n, m.kind) for n, m in first.manifolds]
    assert [n for n, _ in first.manifolds] == ["input0"]


def test_analyze_run_rejects_bad_settings_by_name(tmp_path):
    path = _linear_line_run(tmp_path)
    for kwargs, match in (({"n_initial": 0}, "n_initial"), ({"tol": -1.0}, "tol"),
                          ({"noise": float("nan")}, "noise"),
                          ({"slow_tol": 1e-12}, "slow_tol must be a number >= tol"),
                          ({"slow": False, "slow_tol": 1e-3}, "cannot be combined"),
                          ({"inputs": [[0, 0]]}, "n_in=3"),
                          ({"inputs": {"a": [0, float("inf"), 0]}}, "'a'")):
        with pytest.raises(ValueError, match=match):
            analyze_run(path, **kwargs)
    assert not (path / "analysis").exists()  # nothing written by a refused call
    for seed in (1.5, "0", True, None):
        with pytest.raises(TypeError, match="seed"):  # (the type checker of the tests, or ours)
            analyze_run(path, seed=seed)
    assert not (path / "analysis").exists()


@pytest.mark.parametrize("seed", [0, 7, -3, 2**40 + 5])
def test_analysis_random_draws_are_jax_randoms_bit_for_bit(seed):
    """The analysis draws its keys and candidate indices as single programs (compiled without
    LLVM's passes); they are the bits of the eager jax.random calls they replace."""
    from rnnlab.analysis._states import _draw_indices
    from rnnlab.runs._analysis import _analysis_keys

    want = jax.random.split(jax.random.PRNGKey(seed), 3)
    got = _analysis_keys(seed)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))
    for n, size in ((1024, 128 * 50), (7, 3), (300, 2**20 + 11)):
        k_idx, k_noise = jax.random.split(got[1])
        pick, noise_key = _draw_indices(got[1], n, size)
        np.testing.assert_array_equal(np.asarray(pick),
                                      np.asarray(jax.random.randint(k_idx, (n,), 0, size)))
        np.testing.assert_array_equal(np.asarray(noise_key), np.asarray(k_noise))


def test_a_trained_run_is_scored_on_a_fixed_fresh_evaluation_set(trained):
    from rnnlab.runs._run import FINAL_BATCH_SIZE, FINAL_BATCHES, FINAL_SEED

    path, result = trained
    run = Run.open(path)
    saved = run.evaluation  # written by Run.train
    assert saved["n_trials"] == FINAL_BATCHES * FINAL_BATCH_SIZE >= 1024
    # the same numbers as rl.training.evaluate on each batch of the fixed set, independently
    batches = [rl.training.evaluate(result.best_model, run.task,
                                    key=jax.random.fold_in(jax.random.PRNGKey(FINAL_SEED), i),
                                    batch_size=FINAL_BATCH_SIZE)["accuracy"]
               for i in range(FINAL_BATCHES)]
    assert saved["accuracy_batches"] == pytest.approx(batches, abs=0, rel=1e-6)
    assert saved["accuracy"] == pytest.approx(np.mean(batches), rel=1e-6)
    assert saved["accuracy_se"] == pytest.approx(
        np.std(batches, ddof=1) / np.sqrt(FINAL_BATCHES), rel=1e-6)
    assert run.score(save=False) == saved  # reproducible


def test_an_analysis_with_other_settings_is_never_replaced_silently(tmp_path):
    path = _linear_line_run(tmp_path)
    first = analyze_run(path, inputs=[[0, 0, 0]], n_initial=64, n_trials=8, slow_tol=1e-6,
                        topology_starts=2)
    # the same settings give the same analysis: running them again is allowed
    again = analyze_run(path, inputs=[[0, 0, 0]], n_initial=64, n_trials=8, slow_tol=1e-6,
                        topology_starts=2)
    np.testing.assert_array_equal(np.asarray(again.fixed_points.states),
                                  np.asarray(first.fixed_points.states))
    with pytest.raises(RunError, match="n_initial 64 -> 32") as e:
        analyze_run(path, inputs=[[0, 0, 0]], n_initial=32, n_trials=8, slow_tol=1e-6,
                    topology_starts=2)
    assert "force" in str(e.value)
    assert Run.open(path).analysis.summary["n_initial"] == 64  # untouched
    other = tmp_path / "other"
    analyze_run(path, inputs=[[0, 0, 0]], n_initial=32, n_trials=8, slow_tol=1e-6,
                topology_starts=2, out=other)
    assert RunAnalysis.load(other).summary["n_initial"] == 32
    assert Run.open(path).analysis.summary["n_initial"] == 64
    analyze_run(path, inputs=[[0, 0, 0]], n_initial=32, n_trials=8, slow_tol=1e-6,
                topology_starts=2, force=True)
    assert RunAnalysis.load(path / "analysis").summary["n_initial"] == 32


def test_figures_say_which_analysis_they_draw(tmp_path):
    from rnnlab.plot import load_run

    path = _linear_line_run(tmp_path)
    other = tmp_path / "elsewhere"
    made = analyze_run(path, inputs=[[0, 0, 0]], n_initial=64, n_trials=8, slow_tol=1e-6,
                       topology_starts=2, out=other)
    assert not (path / "analysis").exists()
    data = load_run(path, n_trials=4, analyze=False)
    assert data.fixed_points is None and any("rnnlab analyze" in n for n in data.notes)
    data = load_run(path, n_trials=4, analyze=False, analysis_dir=other)
    assert len(data.fixed_points) == len(made.fixed_points)
    (line,) = [n for n in data.notes if n.startswith("drawn from the analysis")]
    assert str(other) in line and "64 candidates" in line and "input0" in line
    assert [m.kind for m in data.manifolds] == ["line"]


def test_the_second_search_thread_keeps_the_callers_x64_setting_and_errors():
    """`analyze_run` runs its slow-point search in a second thread: JAX's configuration
    contexts are per thread, so the caller's `enable_x64` is carried there; exceptions come
    back to the caller."""
    import jax.numpy as jnp

    from rnnlab.runs._analysis import _in_thread

    for x64 in (False, True):
        with jax.enable_x64(x64):
            wait = _in_thread(lambda a: (jnp.asarray(a).dtype, jax.config.jax_enable_x64), 1.5)
            assert wait() == (np.dtype(np.float64 if x64 else np.float32), x64)

    def fail():
        raise ValueError("from the thread")

    with pytest.raises(ValueError, match="from the thread"):
        _in_thread(fail)()

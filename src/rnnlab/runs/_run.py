"""A run directory: what `rnnlab train` writes and everything downstream reads.

Layout (written by `rnnlab.train` with ``out_dir``)::

    RUN/config.json               task (name, params), model (class, config), seed, CLI settings
    RUN/history.jsonl             one evaluation per line (step, loss, accuracy, ...)
    RUN/model.safetensors         the best evaluated model
    RUN/model_final.safetensors   the model at the last step
    RUN/best.json                 the best evaluation and the final one
    RUN/checkpoints/checkpoint.safetensors   the resumable training state
    RUN/analysis/                 `analyze_run`'s results (`RunAnalysis.save`)

`Run.open` reads a directory with clear errors for a missing or half-written run; `Run.create`
makes a new one (refusing to mix two trainings in one directory) and `Run.train` trains into it.
"""

import dataclasses
import os
from pathlib import Path
from typing import Any

import jax

from ..io._safe import FileFormatError

CONFIG = "config.json"
HISTORY = "history.jsonl"
MODEL = "model.safetensors"
MODEL_FINAL = "model_final.safetensors"
BEST = "best.json"
EVALUATION = "evaluation.json"
# The fixed evaluation set a trained run is scored on: FINAL_BATCHES batches of
# FINAL_BATCH_SIZE fresh trials drawn from PRNGKey(FINAL_SEED) (not the training seed).
FINAL_SEED = 20261206
FINAL_BATCHES = 8
FINAL_BATCH_SIZE = 128
CHECKPOINTS = "checkpoints"
ANALYSIS = "analysis"


class RunError(FileFormatError):
    """A run directory that cannot be used as asked: missing, half-written, or unreadable.
    The message names the directory (or file) and what to do. A `FileFormatError` (a
    ValueError), so one ``except`` catches every bad file rnnlab reads."""


class RunNotFoundError(RunError, FileNotFoundError):
    """The directory, or a file a run must have, does not exist."""


def read_json_object(path: Path, what: str = "a JSON object") -> dict[str, Any]:
    """``path`` parsed as a JSON object, or `RunError` naming the file (bounded: see
    `rnnlab.io.read_json`)."""
    from ..io._safe import read_json

    try:
        value = read_json(path)
    except FileNotFoundError:
        raise RunNotFoundError(f"{path} is missing") from None
    except ValueError as e:  # FileFormatError: names the file
        raise RunError(str(e)) from None
    if not isinstance(value, dict):
        raise RunError(f"{path} must hold {what}, got {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null",
            bool: "a boolean", int: "a number", float: "a number"}.get(type(value), "?")


def read_history(path: Path) -> list[dict[str, Any]]:
    """The evaluation records of a ``history.jsonl`` file (blank lines skipped); each must be
    an object with an integer ``step`` >= 0 and a numeric ``loss`` (other entries numbers,
    strings or null), else `RunError` naming the file and line."""
    from ..io._safe import MAX_JSON_BYTES, FileFormatError, loads_json

    out = []
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise RunError(f"{path} is larger than {MAX_JSON_BYTES} bytes")
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise RunNotFoundError(f"{path}: no training history here ({HISTORY})") from None
    except UnicodeDecodeError:
        raise RunError(f"{path} is not UTF-8 text") from None
    except OSError as e:
        raise RunError(f"{path} cannot be read ({e.strerror or e})") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = loads_json(line, f"{path}:{n}")
        except FileFormatError as e:
            raise RunError(str(e)) from None
        if not isinstance(rec, dict):
            raise RunError(f"{path}:{n} must be a JSON object, got {_json_type(rec)}")
        step = rec.get("step")
        if type(step) is not int or step < 0:
            raise RunError(f"{path}:{n} needs an integer 'step' >= 0")
        for k, val in rec.items():
            if k == "step":
                continue
            ok = (isinstance(val, (int, float)) and not isinstance(val, bool)) or (
                k != "loss" and (val is None or isinstance(val, str)))
            if not ok:
                raise RunError(f"{path}:{n}: {str(k)[:40]!r} must be a number")
        if "loss" not in rec:
            raise RunError(f"{path}:{n} has no 'loss'")
        out.append(rec)
    return out


# What a run's config.json may ask of a reader: trials of at most this many time steps, and
# at most this many inputs or outputs (files are checked; the user's own options are checked
# against the machine's memory instead).
MAX_FILE_STEPS = 100_000
MAX_FILE_CHANNELS = 10_000


def task_from_config(config: dict[str, Any], *, source: str = CONFIG):
    """The task a run's config names, rebuilt with its parameters; None when the config names
    no task or one that is not registered (a task object made in a script)."""
    from .. import tasks

    spec = config.get("task")
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise RunError(f"{source}: 'task' must be an object with 'name' and 'params'")
    name = spec.get("name")
    if not name or not isinstance(name, str) or name not in tasks.available():
        return None
    params = spec.get("params")
    params = {} if params is None else params
    if not isinstance(params, dict):
        raise RunError(f"{source}: task.params must be an object, got {type(params).__name__}")
    try:
        task = tasks.make(name, **params)
    except (TypeError, ValueError, OverflowError, MemoryError) as e:
        text = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise RunError(f"{source}: task {name!r} cannot be rebuilt from its params ({text})") \
            from None
    steps = getattr(task, "n_steps", 0)
    if not isinstance(steps, int) or steps > MAX_FILE_STEPS:
        raise RunError(f"{source}: task {name!r} asks for trials of {str(steps)[:20]} steps, "
                       f"more than the {MAX_FILE_STEPS} a run file may ask for")
    if max(task.n_in, task.n_out) > MAX_FILE_CHANNELS:
        raise RunError(f"{source}: task {name!r} asks for {max(task.n_in, task.n_out)} "
                       f"inputs or outputs, more than the {MAX_FILE_CHANNELS} a run file may "
                       "ask for")
    return task


# The names a run directory holds (a directory holding only these may receive a run).
RUN_FILES = frozenset({CONFIG, HISTORY, MODEL, MODEL_FINAL, BEST, EVALUATION, CHECKPOINTS,
                       ANALYSIS, "curriculum.json", "figures", "report.html"})


def holds_run(path: Path) -> bool:
    """Whether ``path`` holds a run: a config.json with a trained model, a checkpoint or a
    history. A config.json alone is what a start that failed before training left, which a
    new run may replace."""
    p = Path(path)
    return (p / CONFIG).is_file() and any(
        (p / n).exists() for n in (MODEL, HISTORY, f"{CHECKPOINTS}/checkpoint.safetensors"))


def _check_new_run_dir(p: Path) -> None:
    """`RunError` for a place a new run must not go: the empty path, the file-system root, a
    path below a file, a non-empty directory that is not a run (symlinks resolved)."""
    from ..io._lock import check_output_dir

    if (p / CONFIG).is_file():
        return  # a failed start of a run: it may be replaced
    try:
        check_output_dir(p, own_names=RUN_FILES)
    except ValueError as e:
        raise RunError(str(e)) from None


@dataclasses.dataclass
class Run:
    """One run directory. Open an existing run with `Run.open`, make a new one with
    `Run.create`.

    Attributes: ``path``; ``config`` (config.json as a dict). Properties load lazily and cache:
    ``task`` (None when the run's task is not a registered one), ``model`` (the best model,
    ``model.safetensors``), ``final_model``, ``history``, ``best``, ``checkpoint``,
    ``analysis`` (the saved `RunAnalysis`, None when not analysed yet).
    """

    path: Path
    config: dict[str, Any]
    _cache: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    # -- opening and creating -----------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, *, require_model: bool = True) -> "Run":
        """Open the run directory ``path``.

        Raises `RunNotFoundError` when ``path`` or its config.json is missing, or (with
        ``require_model``) when training has not written ``model.safetensors`` yet (the
        message says whether a checkpoint can be resumed); `RunError` when config.json is
        not a JSON object.
        """
        p = Path(path)
        if not p.exists():
            raise RunNotFoundError(f"{p} is not a run directory: it does not exist (a "
                                   "directory made by `rnnlab train` was expected)")
        if not p.is_dir():
            raise RunError(f"{p} is not a run directory: it is a file")
        if not (p / CONFIG).is_file():
            raise RunNotFoundError(f"{p} is not a run directory (no {CONFIG})")
        run = cls(path=p, config=read_json_object(p / CONFIG, "the run's configuration"))
        if require_model and not (p / MODEL).is_file():
            if run.checkpoint is not None:
                raise RunNotFoundError(
                    f"{p / MODEL} is missing: training was interrupted before it finished; "
                    f"continue it with `rnnlab train ... --out {p} --resume`")
            raise RunNotFoundError(f"{p / MODEL} is missing: the run has no trained model yet")
        return run

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        *,
        task: Any,
        model: Any,
        config: dict[str, Any] | None = None,
        resume: bool = False,
    ) -> "Run":
        """A new run directory at ``path`` for training ``model`` on ``task`` (see
        `Run.train`). Refuses a directory that already holds a run unless ``resume`` (then
        the run must exist and be resumable). ``config``: extra JSON-able entries for
        config.json (the CLI records its seed and settings there)."""
        if not str(path).strip():
            raise RunError("the run directory (--out) is empty; give a directory for the run")
        p = Path(path)
        if p.exists() and not p.is_dir():
            raise RunError(f"{p} is a file; pick another --out")
        has_run = holds_run(p)
        if not has_run:
            _check_new_run_dir(p)
        if has_run and not resume:
            raise RunError(f"{p} already holds a run; add --resume to continue it or pick "
                           "another --out")
        run = cls(path=p, config=dict(config or {}))
        run._cache["task"] = task
        run._cache["initial_model"] = model
        run._cache["resume"] = bool(resume) and has_run
        return run

    # -- training -------------------------------------------------------------------------
    def train(self, *, key, **options):
        """Train the model given to `Run.create` on its task into this directory
        (`rnnlab.train` with ``out_dir=self.path``; ``options`` as there). Returns the
        `TrainResult`; the run's files then hold the trained model and its history."""
        from ..io._lock import RunLock
        from ..training import train

        if "initial_model" not in self._cache:
            raise RunError(f"{self.path} was opened, not created: Run.train needs "
                           "Run.create(path, task=..., model=...)")
        with RunLock(self.path):
            # checked again under the lock: another process may have started a run here
            # since `Run.create` looked
            if holds_run(self.path) and not self._cache.get("resume", False):
                raise RunError(f"{self.path} already holds a run; add --resume to continue "
                               "it or pick another --out")
            result = train(self._cache["initial_model"], self._cache["task"], key=key,
                           out_dir=self.path, resume=self._cache.get("resume", False),
                           run_config=self.config or None, **options)
        self.config = read_json_object(self.path / CONFIG)
        for name in ("model", "final_model", "history", "best", "checkpoint", "evaluation"):
            self._cache.pop(name, None)
        if (self.path / MODEL).is_file():  # (a model that cannot describe itself is not saved)
            self.score()
        return result

    def score(self, *, n_batches: int = FINAL_BATCHES, batch_size: int = FINAL_BATCH_SIZE,
              seed: int = FINAL_SEED, save: bool = True) -> dict[str, Any]:
        """The saved model's score on a fixed set of fresh trials, large enough to quote:
        ``n_batches`` batches of ``batch_size`` trials (noise as in training), batch ``i``
        drawn from ``fold_in(PRNGKey(seed), i)``. Returns (and with ``save`` writes to
        ``evaluation.json``) ``accuracy`` and ``loss`` (means over the batches) with their
        standard errors ``accuracy_se``, ``loss_se`` (std of the batch means / sqrt(n)), the
        per-batch values, ``n_trials`` and ``seed``. Every run is scored on the same trials
        whatever its training seed, so scores of runs compare directly."""
        import numpy as np

        from .. import _validate as v
        from ..io._safe import atomic_write_json
        from ..training import evaluate

        n_batches = v.integer("n_batches", n_batches, 2)
        batch_size = v.positive_int("batch_size", batch_size)
        task, model = self.require_task(), self.model
        base = jax.random.PRNGKey(seed)
        batches = [evaluate(model, task, key=jax.random.fold_in(base, i), batch_size=batch_size)
                   for i in range(n_batches)]
        out: dict[str, Any] = {"n_trials": n_batches * batch_size, "n_batches": n_batches,
                               "batch_size": batch_size, "seed": seed, "model": MODEL}
        for k in batches[0]:
            vals = np.array([b[k] for b in batches], dtype=float)
            out[k] = float(vals.mean())
            out[f"{k}_se"] = float(vals.std(ddof=1) / np.sqrt(n_batches))
            out[f"{k}_batches"] = vals.tolist()
        if save:
            atomic_write_json(self.path / EVALUATION, out)
            self._cache["evaluation"] = out
        return out

    @property
    def evaluation(self) -> dict[str, Any] | None:
        """evaluation.json (`Run.score`'s result for the saved model), None when absent."""
        if "evaluation" not in self._cache:
            path = self.path / EVALUATION
            self._cache["evaluation"] = read_json_object(path) if path.is_file() else None
        return self._cache["evaluation"]

    # -- contents -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.path.resolve().name

    @property
    def task_name(self) -> str | None:
        spec = self.config.get("task")
        return spec.get("name") if isinstance(spec, dict) else None

    @property
    def task(self):
        if "task" not in self._cache:
            self._cache["task"] = task_from_config(self.config, source=str(self.path / CONFIG))
        return self._cache["task"]

    def require_task(self):
        """The run's task, or `RunError` saying it cannot be rebuilt."""
        task = self.task
        if task is None:
            raise RunError(f"{self.path}: the run's task ({self.task_name!r}) is not a "
                           "registered task; it cannot be rebuilt")
        return task

    def _load_model(self, name: str):
        from ..io import load

        path = self.path / name
        if not path.is_file():
            raise RunNotFoundError(f"{path} is missing")
        return load(path)

    @property
    def model(self):
        """The best evaluated model (``model.safetensors``)."""
        if "model" not in self._cache:
            self._cache["model"] = self._load_model(MODEL)
        return self._cache["model"]

    @property
    def final_model(self):
        """The model at the last training step (``model_final.safetensors``; the best model
        for runs that have no separate final model)."""
        if "final_model" not in self._cache:
            name = MODEL_FINAL if (self.path / MODEL_FINAL).is_file() else MODEL
            self._cache["final_model"] = self._load_model(name)
        return self._cache["final_model"]

    @property
    def history(self) -> list[dict[str, Any]]:
        """The evaluation records (empty when the run has no history.jsonl)."""
        if "history" not in self._cache:
            path = self.path / HISTORY
            self._cache["history"] = read_history(path) if path.is_file() else []
        return self._cache["history"]

    @property
    def best(self) -> dict[str, Any] | None:
        """best.json (None when absent)."""
        if "best" not in self._cache:
            path = self.path / BEST
            self._cache["best"] = read_json_object(path) if path.is_file() else None
        return self._cache["best"]

    @property
    def checkpoint(self) -> Path | None:
        """The resumable training checkpoint, None when there is none."""
        path = self.path / CHECKPOINTS / "checkpoint.safetensors"
        return path if path.is_file() else None

    @property
    def analysis_dir(self) -> Path:
        return self.path / ANALYSIS

    @property
    def analysis(self):
        """The saved analysis (`RunAnalysis.load` of ``RUN/analysis/``), None when absent."""
        from ._analysis import RunAnalysis

        if not (self.analysis_dir / "summary.json").is_file() and not (
            self.analysis_dir / "fixed_points.safetensors"
        ).is_file():
            return None
        if "analysis" not in self._cache:
            self._cache["analysis"] = RunAnalysis.load(self.analysis_dir)
        return self._cache["analysis"]

    def sample_trials(self, n_trials: int = 64, *, seed: int = 0):
        """``n_trials`` fresh trials of the run's task (``PRNGKey(seed)``) and the model's
        noiseless trajectory on them: ``(trials, trajectory)``."""
        from .._simulate import simulate

        task = self.require_task()
        trials = task.sample_batch(jax.random.PRNGKey(seed), n_trials)
        return trials, simulate(self.model, trials.inputs)

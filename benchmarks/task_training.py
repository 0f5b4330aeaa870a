"""Train a default network on each built-in task with `rnnlab train NAME` and tabulate how long
it takes to reach the task's documented accuracy threshold.

    python benchmarks/task_training.py --out /tmp/task_runs             # every task
    python benchmarks/task_training.py --out /tmp/task_runs integrator  # some tasks
    python benchmarks/task_training.py --out /tmp/task_runs --collect   # only re-read runs

Each task is trained with the CLI defaults (CT-RNN, 64 tanh units, tau 100 ms, dt = the task's,
Adam 5e-3, batch 64, at most 3000 steps, evaluation every 50 steps on 256 fresh trials, early
stop at the CLI's default target, halfway between the threshold and 1), then scored by
`rnnlab evaluate` on 512 fresh trials. The table gives, per task, the threshold, the first
evaluation at or above it (steps and seconds of training, compile time included), where training
stopped, and the fresh-trial accuracy. Results go to the `task_training` section of
benchmarks/RESULTS.md and to the table in docs/tasks.md.
"""

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine_line, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "tasks.md"
START, END = "<!-- training-table:start -->", "<!-- training-table:end -->"


def rnnlab(*args) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("rnnlab")
    return subprocess.run([str(exe), *args], capture_output=True, text=True)


def summarise(name: str, run: Path) -> dict:
    from rnnlab import tasks

    thr = tasks.make(name).target_accuracy
    hist_path = run / "history.jsonl"
    if not hist_path.exists():
        return {"task": name, "threshold": thr, "error": "no run"}
    hist = [json.loads(line) for line in hist_path.read_text().splitlines() if line.strip()]
    lr = json.loads((run / "config.json").read_text())["training"]["learning_rate"]
    first = next((h for h in hist if h["accuracy"] >= thr), None)
    ev = rnnlab("evaluate", str(run), "--json")
    fresh = None
    if ev.returncode == 0:
        fresh = json.loads(ev.stdout.strip().splitlines()[-1])["accuracy"]
    return {
        "task": name, "threshold": thr, "learning_rate": lr,
        "steps_to_threshold": first["step"] if first else None,
        "seconds_to_threshold": round(first["wall_time"], 1) if first else None,
        "stopped_at": hist[-1]["step"], "seconds_total": round(hist[-1]["wall_time"], 1),
        "train_accuracy": round(hist[-1]["accuracy"], 4),
        "fresh_accuracy": None if fresh is None else round(fresh, 4),
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| task | threshold | lr | steps to threshold | seconds to threshold | stopped at step "
        "| accuracy on 512 fresh trials | reached |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| `{r['task']}` | {r['threshold']} | - | - | - | - | - | not run |")
            continue
        ok = (r["fresh_accuracy"] is not None and r["fresh_accuracy"] >= r["threshold"])
        st = r["steps_to_threshold"]
        lines.append(
            f"| `{r['task']}` | {r['threshold']} | {r['learning_rate']:g} | "
            f"{st if st is not None else 'not reached'} | "
            f"{r['seconds_to_threshold'] if st is not None else '-'} | {r['stopped_at']} "
            f"({r['seconds_total']} s) | {r['fresh_accuracy']} | {'yes' if ok else '**no**'} |"
        )
    return "\n".join(lines)


def main() -> None:
    from rnnlab import tasks

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="tasks (default: every registered task)")
    ap.add_argument("--out", required=True, type=Path, help="directory for the run dirs")
    ap.add_argument("--collect", action="store_true", help="only summarise existing runs")
    ap.add_argument("--note", default="", help="a line to add under the table")
    args = ap.parse_args()
    names = args.names or tasks.available()
    rows = []
    for name in names:
        run = args.out / name
        if not args.collect:
            if run.exists():
                import shutil

                shutil.rmtree(run)
            t0 = time.perf_counter()
            res = rnnlab("train", name, "--out", str(run), "--no-progress")
            print(f"{name}: rc {res.returncode}, {time.perf_counter() - t0:.1f} s "
                  f"{res.stdout.strip()[-120:]}", flush=True)
        rows.append(summarise(name, run))
    body = table(rows)
    note = args.note or (
        "Measured on a shared 2-core machine (other engineers' jobs running), so the "
        "seconds are pessimistic and noisy; steps are what matter."
    )
    write_section("task_training", body + "\n\n" + note,
                  command="python benchmarks/task_training.py --out DIR [TASK ...]")
    if DOC.exists():
        text = DOC.read_text()
        block = f"{START}\n{machine_line()}. {note}\n\n{body}\n{END}"
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text,
                      flags=re.S)
        DOC.write_text(text)
    print(body)


if __name__ == "__main__":
    main()

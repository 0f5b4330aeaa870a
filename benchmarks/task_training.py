"""Train a default network on each built-in task with `rnnlab train NAME` and tabulate how long
it takes to reach the task's documented accuracy threshold.

    python benchmarks/task_training.py --out /tmp/task_runs             # every task
    python benchmarks/task_training.py --out /tmp/task_runs integrator  # some tasks
    python benchmarks/task_training.py --out /tmp/task_runs --collect   # only re-read runs

Each task is trained with the CLI defaults: a CT-RNN of tanh units, tau 100 ms, dt = the task's,
evaluation every 50 steps on 256 fresh trials, early stop at the CLI's default target (halfway
between the threshold and 1), and the task's recommended training settings where it has them
(`rnnlab tasks NAME`; otherwise 64 units, batch 64, Adam 1e-2, at most 3000 steps). Each run is
then scored by `rnnlab evaluate` on 512 fresh trials. The table gives, per task, the threshold,
the settings used, the first evaluation at or above the threshold (steps and seconds of
training, compile time included), where training stopped, and the fresh-trial accuracy.

Rows are kept in benchmarks/task_training.json, so running a few tasks updates their rows and
keeps the others (each row says when it was measured and the load average at the time). The
table goes to the `task_training` section of benchmarks/RESULTS.md and to docs/tasks.md.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine_line, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "tasks.md"
ROWS = Path(__file__).with_name("task_training.json")
START, END = "<!-- training-table:start -->", "<!-- training-table:end -->"


def rnnlab(*args) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("rnnlab")
    return subprocess.run([str(exe), *args], capture_output=True, text=True)


def summarise(name: str, run: Path, load: float | None) -> dict:
    from rnnlab import tasks

    thr = tasks.make(name).target_accuracy
    hist_path = run / "history.jsonl"
    if not hist_path.exists():
        return {"task": name, "threshold": thr, "error": "no run"}
    hist = [json.loads(line) for line in hist_path.read_text().splitlines() if line.strip()]
    cfg = json.loads((run / "config.json").read_text())
    first = next((h for h in hist if h["accuracy"] >= thr), None)
    ev = rnnlab("evaluate", str(run), "--json")
    scores = json.loads(ev.stdout.strip().splitlines()[-1]) if ev.returncode == 0 else {}
    per_rule = {k.split("/", 1)[1]: round(v, 3) for k, v in scores.items()
                if k.startswith("accuracy/")}
    return {
        "task": name, "threshold": thr,
        "learning_rate": cfg["training"]["learning_rate"],
        "hidden": cfg.get("cli", {}).get("hidden"),
        "activation": cfg.get("cli", {}).get("options", {}).get("activation"),
        "batch_size": cfg["training"].get("batch_size"),
        "steps_to_threshold": first["step"] if first else None,
        "seconds_to_threshold": round(first["wall_time"], 1) if first else None,
        "stopped_at": hist[-1]["step"], "seconds_total": round(hist[-1]["wall_time"], 1),
        "train_accuracy": round(hist[-1]["accuracy"], 4),
        "fresh_accuracy": round(scores["accuracy"], 4) if "accuracy" in scores else None,
        **({"fresh_accuracy_per_rule": per_rule} if per_rule else {}),
        "measured": time.strftime("%Y-%m-%d"),
        "load_average": None if load is None else round(load, 1),
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| task | threshold | units | batch | lr | steps to threshold | seconds to threshold "
        "| stopped at step | accuracy on 512 fresh trials | reached |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| `{r['task']}` | {r['threshold']} | - | - | - | - | - | - | - "
                         f"| not run |")
            continue
        ok = (r["fresh_accuracy"] is not None and r["fresh_accuracy"] >= r["threshold"])
        verdict = "yes" if ok else "**no**"
        pr = r.get("fresh_accuracy_per_rule")
        if pr:  # a multitask: the threshold is on the pooled accuracy; say how many rules pass
            n_ok = sum(v >= r["threshold"] for v in pr.values())
            verdict = (f"pooled {'yes' if ok else '**no**'}; {n_ok}/{len(pr)} rules at or "
                       f"above {r['threshold']}")
        st = r["steps_to_threshold"]
        lines.append(
            f"| `{r['task']}` | {r['threshold']} | {r.get('hidden') or '-'} "
            f"{r.get('activation') or 'tanh'} | "
            f"{r.get('batch_size') or '-'} | {r['learning_rate']:g} | "
            f"{st if st is not None else 'not reached'} | "
            f"{r['seconds_to_threshold'] if st is not None else '-'} | {r['stopped_at']} "
            f"({r['seconds_total']} s{', capped' if r.get('capped_at_steps') else ''}) | "
            f"{r['fresh_accuracy']} | {verdict} |"
        )
    return "\n".join(lines)


def per_rule_lines(rows: list[dict]) -> str:
    out = []
    for r in rows:
        pr = r.get("fresh_accuracy_per_rule")
        if pr:
            worst = sorted(pr.items(), key=lambda kv: kv[1])
            out.append(f"`{r['task']}` per rule (512 fresh trials, about {512 // len(pr)} "
                       f"per rule, after {r['stopped_at']} steps, {r['seconds_total']} s): "
                       + ", ".join(f"{k} {v:.2f}" for k, v in worst) + "."
                       + (f" ({r['note']}.)" if r.get("note") else ""))
    return "\n\n".join(out)


def main() -> None:
    from rnnlab import tasks

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="tasks (default: every registered task)")
    ap.add_argument("--out", required=True, type=Path, help="directory for the run dirs")
    ap.add_argument("--collect", action="store_true", help="only summarise existing runs")
    ap.add_argument("--note", default="", help="a paragraph to add under the table")
    ap.add_argument("--max-steps", type=int, default=None,
                    help="cap every run at this many steps (passes --steps; the row says so)")
    args = ap.parse_args()
    names = args.names or tasks.available()
    new = {}
    for name in names:
        run = args.out / name
        load = None
        if not args.collect:
            if run.exists():
                import shutil

                shutil.rmtree(run)
            t0 = time.perf_counter()
            cap = [] if args.max_steps is None else ["--steps", str(args.max_steps)]
            res = rnnlab("train", name, "--out", str(run), "--no-progress", *cap)
            load = os.getloadavg()[1]  # 5-minute load average at the end of the run
            print(f"{name}: rc {res.returncode}, {time.perf_counter() - t0:.1f} s "
                  f"{res.stdout.strip()[-120:]}", flush=True)
        row = summarise(name, run, load)
        if args.max_steps is not None and not args.collect:
            row["capped_at_steps"] = args.max_steps
        new[name] = row
    # read the stored rows only now, so that rows written meanwhile (by another invocation)
    # are kept
    stored = json.loads(ROWS.read_text()) if ROWS.exists() else {}
    for k, v in new.items():
        if "error" in v and k in stored:
            continue
        if args.collect and k in stored:  # re-read runs: keep when and under what load
            for field in ("measured", "load_average", "capped_at_steps", "note"):
                if field in stored[k]:
                    v[field] = stored[k][field]
        stored[k] = v
    ROWS.write_text(json.dumps(stored, indent=1) + "\n")
    order = [n for n in tasks.available() if n in stored]
    rows = [stored[n] for n in order]
    body = table(rows)
    extra = per_rule_lines(rows)
    note = args.note or (
        "Measured on a shared 2-core machine (other engineers' jobs running; the load "
        "average of each run is in benchmarks/task_training.json), so the seconds are "
        "pessimistic and noisy; steps are what matter."
    )
    text = body + ("\n\n" + extra if extra else "") + "\n\n" + note
    write_section("task_training", text,
                  command="python benchmarks/task_training.py --out DIR [TASK ...]")
    if DOC.exists():
        doc = DOC.read_text()
        block = f"{START}\n{machine_line()}.\n\n{text}\n{END}"
        doc = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, doc,
                     flags=re.S)
        DOC.write_text(doc)
    print(body)


if __name__ == "__main__":
    main()

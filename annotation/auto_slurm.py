"""Many engine jobs as one Slurm job array: how a configuration search runs its trainings in parallel.

Why an array and not N ``sbatch`` calls: one submission, one id to cancel (``scancel ID`` stops every task,
queued or running), and the cluster's scheduler decides how many run at once (``%N`` throttles it). Each
task is an ordinary engine worker on its own job spec; the batch script finds the spec from
``$SLURM_ARRAY_TASK_ID`` in ``tasks.txt``, sends the worker's stdout (JSON lines) to ``slurm.out`` and its
exit code to ``exit_code`` in the task's folder, exactly as a single Slurm job does
(:mod:`annotation.backends`), so the app follows each task by reading files on the shared storage and asks
``squeue`` only which tasks are still queued or running.

Every task is a row in the jobs table (kind ``auto``, backend ``slurm:id=ARRAY_INDEX``), so the stale-job
reaping of :mod:`annotation.jobs` cancels the tasks of a search whose runner died.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import backends
from .jobs import JobError, project_lock, reap_stale_jobs
from .project import Project, SlurmSettings
from .store.db import now

TaskEvent = Callable[[int, dict], None]  # (task index, worker event)
TaskDone = Callable[[int, "TaskOutcome"], None]


@dataclass
class TaskOutcome:
    status: str  # done | failed | cancelled
    code: int | None = None
    message: str = ""
    job_id: int = 0
    backend: str = ""


def array_script(settings: SlurmSettings, *, name: str, array_dir: Path, n_tasks: int, nproc: int,
                 parallel: int | None = None) -> str:
    """The batch script of the array: options as ``#SBATCH`` lines, then one worker per task."""
    spread = f"0-{n_tasks - 1}" + (f"%{parallel}" if parallel else "")
    opts = [f"--job-name={name}", f"--array={spread}", f"--output={array_dir / 'slurm-%A_%a.out'}",
            "--nodes=1", "--ntasks=1", f"--time={settings.time}"]
    for flag, value in (("partition", settings.partition), ("gres", settings.gres),
                        ("cpus-per-task", settings.cpus_per_task), ("mem", settings.mem)):
        if value:
            opts.append(f"--{flag}={value}")
    spec = "__IM2IM_TASK_SPEC__"  # stands for the task's job.json, found at run time
    worker = " ".join(shlex.quote(a) for a in backends.worker_command(Path(spec), nproc, settings.python))
    worker = worker.replace(spec, '"$task_dir/job.json"')
    repo = shlex.quote(str(backends.REPO))
    lines = ["#!/bin/bash", *(f"#SBATCH {o}" for o in opts),
             "# Written by im2im-active: one engine worker per array task; the app reads slurm.out back.",
             "export PYTHONUNBUFFERED=1",
             "unset RANK WORLD_SIZE LOCAL_RANK",
             f"if [ -d {repo}/im2im_engine ]; then export PYTHONPATH={repo}${{PYTHONPATH:+:$PYTHONPATH}}; fi",
             f"task_dir=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" {shlex.quote(str(array_dir / 'tasks.txt'))})",
             "[ -n \"$task_dir\" ] || { echo \"no task $SLURM_ARRAY_TASK_ID\" >&2; exit 1; }",
             "cd \"$task_dir\" || exit 1",
             f"{worker} > \"$task_dir/slurm.out\" 2> \"$task_dir/worker.log\" &",
             "child=$!",
             "trap 'kill -TERM \"$child\" 2>/dev/null' TERM INT",
             "wait \"$child\"; code=$?",
             "if [ \"$code\" -gt 128 ]; then wait \"$child\"; code=$?; fi",
             "echo \"$code\" > \"$task_dir/exit_code.tmp\" && mv \"$task_dir/exit_code.tmp\" \"$task_dir/exit_code\"",
             "exit \"$code\"", ""]
    return "\n".join(lines)


def _alive_tasks(array_id: str) -> set[int] | None:
    """Indices of the array's tasks still queued or running (``squeue -r``), None when squeue failed."""
    try:
        q = backends._run_tool([backends._tool("squeue"), "-h", "-r", "-j", array_id, "-o", "%i %T"], timeout=30)
    except (backends.BackendError, OSError, subprocess.TimeoutExpired):
        return None
    if q.returncode != 0:
        return set() if "Invalid job id" in (q.stderr or "") else None
    alive = set()
    for line in q.stdout.splitlines():
        ident, _, state = line.strip().partition(" ")
        _, _, index = ident.partition("_")
        if index.isdigit() and backends.slurm_state(state) in backends.ALIVE:
            alive.add(int(index))
    return alive


class _Tail:
    """Reads a growing JSON-lines file from where it stopped."""

    def __init__(self, path: Path):
        self.path, self.pos, self.buffer = path, 0, ""

    def read(self) -> list[dict]:
        with contextlib.suppress(FileNotFoundError), open(self.path, errors="replace") as fh:
            fh.seek(self.pos)
            self.buffer += fh.read()
            self.pos = fh.tell()
        *complete, self.buffer = self.buffer.split("\n")
        events = []
        for line in complete:
            line = line.strip()
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    events.append(json.loads(line))
        return events


def run_array(project: Project, specs: list[dict], *, name: str, on_event: TaskEvent | None = None,
              on_done: TaskDone | None = None, should_stop: Callable[[], bool] | None = None,
              parallel: int | None = None) -> list[TaskOutcome]:
    """Submit ``specs`` (engine train jobs) as one array and follow every task to its end.

    ``on_done(index, outcome)`` is called as each task ends (so results are recorded one by one); when
    ``should_stop()`` turns true the whole array is cancelled and the tasks still running end cancelled.
    """
    settings = project.jobs
    store = project.store
    with project_lock(project):
        reap_stale_jobs(project)
        ids, dirs = [], []
        for spec in specs:
            job_id = store.add_job("auto", spec, backend=backends.label("slurm", settings.nproc))
            job_dir = project.jobs_dir / f"{job_id:05d}-auto"
            job_dir.mkdir(parents=True, exist_ok=True)
            (job_dir / "job.json").write_text(json.dumps({**spec, "kind": "train"}, indent=1))
            ids.append(job_id)
            dirs.append(job_dir)
        array_dir = project.jobs_dir / f"{ids[0]:05d}-auto-array"
        array_dir.mkdir(parents=True, exist_ok=True)
        (array_dir / "tasks.txt").write_text("".join(f"{d.resolve()}\n" for d in dirs))
        script = array_dir / "array.sbatch"
        script.write_text(array_script(settings.slurm, name=f"im2im-{name}", array_dir=array_dir.resolve(),
                                       n_tasks=len(specs), nproc=settings.nproc, parallel=parallel))
        try:
            proc = backends._run_tool([backends._tool("sbatch"), "--parsable", *settings.slurm.extra_args,
                                       str(script)])
            if proc.returncode != 0:
                raise backends.BackendError(f"sbatch refused the job array: {(proc.stderr or proc.stdout).strip()[:500]}")
            array_id = proc.stdout.strip().splitlines()[-1].split(";")[0].strip() if proc.stdout.strip() else ""
            if not array_id.isdigit():
                raise backends.BackendError(f"sbatch --parsable printed {proc.stdout.strip()!r}, not a job id")
        except (backends.BackendError, OSError, subprocess.TimeoutExpired) as exc:
            for job_id in ids:
                store.update_job(job_id, status="failed", finished_at=now(), message=str(exc)[:2000])
            raise JobError(str(exc)) from None
        (array_dir / "slurm_job_id").write_text(array_id + "\n")
        labels = [backends.label("slurm", settings.nproc, f"{array_id}_{i}") for i in range(len(specs))]
        for job_id, lab in zip(ids, labels, strict=True):
            store.update_job(job_id, status="queued", backend=lab, started_at=now())
        store.log("job_started", job_kind="auto", backend=backends.label("slurm", settings.nproc, array_id),
                  tasks=len(specs))
        try:
            return _follow(project, array_id, ids, dirs, labels, on_event, on_done, should_stop,
                           settings.slurm.poll_seconds)
        except BaseException:
            backends.cancel_slurm_job(array_id)
            for job_id in ids:
                if store.job(job_id)["status"] in ("queued", "running"):
                    store.update_job(job_id, status="cancelled", finished_at=now(), message="interrupted")
            raise


def _exit_code(job_dir: Path) -> int | None:
    try:
        return int((job_dir / "exit_code").read_text().strip())
    except (OSError, ValueError):
        return None


def _follow(project: Project, array_id: str, ids: list[int], dirs: list[Path], labels: list[str],
            on_event: TaskEvent | None, on_done: TaskDone | None, should_stop: Callable[[], bool] | None,
            poll_seconds: float) -> list[TaskOutcome]:
    store = project.store
    n = len(ids)
    tails = [_Tail(d / "slurm.out") for d in dirs]
    outcomes: list[TaskOutcome | None] = [None] * n
    seen_running = [False] * n
    missing = [0] * n  # polls in a row where Slurm no longer knew a task that wrote no exit code
    stop_sent = False
    next_poll = 0.0

    def finish(i: int, outcome: TaskOutcome) -> None:
        outcome.job_id, outcome.backend = ids[i], labels[i]
        outcomes[i] = outcome
        store.update_job(ids[i], status=outcome.status, finished_at=now(), message=outcome.message[:2000],
                         progress=1.0 if outcome.status == "done" else store.job(ids[i])["progress"])
        store.log(f"job_{outcome.status}", job_id=ids[i], job_kind="auto", message=outcome.message[:500])
        if on_done is not None:
            on_done(i, outcome)

    while any(o is None for o in outcomes):
        if not stop_sent and should_stop is not None and should_stop():
            backends.cancel_slurm_job(array_id)  # every task: queued ones never start, running ones stop
            stop_sent = True
        for i in range(n):
            if outcomes[i] is not None:
                continue
            for event in tails[i].read():
                if not seen_running[i]:
                    seen_running[i] = True
                    store.update_job(ids[i], status="running")
                if on_event is not None:
                    on_event(i, event)
            code = _exit_code(dirs[i])
            if code is not None:
                for event in tails[i].read():  # the last lines, written just before the exit code
                    if on_event is not None:
                        on_event(i, event)
                ending = backends._ending_from_code(code, stop_sent)
                message = ending.message
                if ending.status == "failed" and not message:
                    log = dirs[i] / "worker.log"
                    tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
                    message = "worker failed: " + (" | ".join(tail) or f"exit code {code}")
                finish(i, TaskOutcome(ending.status, code, message))
        now_t = time.monotonic()
        if now_t >= next_poll and any(o is None for o in outcomes):
            next_poll = now_t + poll_seconds
            alive = _alive_tasks(array_id)
            if alive is not None:
                for i in range(n):
                    if outcomes[i] is None and i not in alive and _exit_code(dirs[i]) is None:
                        missing[i] += 1
                        if missing[i] >= 3:  # gone without an exit code: cancelled while queued, node lost...
                            status = "cancelled" if stop_sent else "failed"
                            finish(i, TaskOutcome(status, None, "cancelled by the user" if stop_sent else
                                                  "the Slurm task ended without an exit code; see its folder"))
                    else:
                        missing[i] = 0
        time.sleep(0.2)
    return [o for o in outcomes if o is not None]

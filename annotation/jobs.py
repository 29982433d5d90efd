"""Running engine jobs: a spec on disk, the worker as a subprocess, its JSON-lines progress into the store.

Training and scoring never run in the caller's process (the GUI stays responsive and a crash in CUDA or a
kill -9 cannot take the user's annotations with it). One job runs at a time per project, enforced with an
OS file lock that dies with its holder, so a killed run never leaves the project locked. A job found
``running`` whose worker is gone is marked failed with the reason when the next job starts.

Where the worker runs is the backend's business (:mod:`annotation.backends`, chosen by ``jobs:`` in
config.yaml: a local process, N local ranks under torchrun, or a Slurm job); following it is the same for
all: events into the store and to the caller, ``should_stop`` turned into a cancel, a final state. The
jobs table records the backend (``local``, ``local:n=2``, ``slurm:id=1234``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import backends
from .project import Project, ProjectError
from .store.db import now

EventCallback = Callable[[dict], None]
StopCheck = Callable[[], bool]


class JobError(RuntimeError):
    """A job could not run or failed; the message says why (and where its log is)."""


@dataclass
class JobOutcome:
    job_id: int
    status: str  # done | failed | cancelled
    result: dict = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    message: str = ""
    log: Path | None = None
    backend: str = "local"  # where it ran, as recorded in the jobs table (backends.label)
    exit_code: int | None = None


def _is_our_worker(pid: int | None) -> bool:
    """True only for a live engine worker: a recycled pid of an unrelated process must never be signalled."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"im2im_engine.worker" in cmdline


@contextlib.contextmanager
def project_lock(project: Project) -> Iterator[None]:
    """Exclusive per-project job lock (flock: released by the kernel if the holder dies)."""
    project.jobs_dir.mkdir(exist_ok=True)
    fh = open(project.jobs_dir / ".lock", "w")  # noqa: SIM115 - held for the duration of the job
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobError(f"{project.root}: another job is running on this project; wait for it or cancel it") from None
        yield
    finally:
        fh.close()


def reap_stale_jobs(project: Project) -> list[int]:
    """Mark jobs left ``running`` by a dead runner as failed. Call while holding the project lock: then no
    other runner is alive, so every ``running`` job is stale (an orphaned worker still alive is stopped)."""
    reaped = []
    for job in project.store.jobs("running") + project.store.jobs("queued"):
        kind, _, slurm_id = backends.parse_label(job.get("backend"))
        if kind == "slurm" and slurm_id:
            backends.cancel_slurm_job(slurm_id)  # nobody is left to read its output
        elif _is_our_worker(job["pid"]):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(job["pid"], signal.SIGTERM)
        project.store.update_job(
            job["id"], status="failed", finished_at=now(),
            message="the worker stopped without finishing (killed or crashed); the last accepted model is kept",
        )
        project.store.log("job_failed", job_id=job["id"], reason="worker gone")
        reaped.append(job["id"])
    return reaped


def run_job(
    project: Project, kind: str, spec: dict[str, Any], *, on_event: EventCallback | None = None,
    should_stop: StopCheck | None = None, model_version: int | None = None, worker_kind: str | None = None,
) -> JobOutcome:
    """Run one engine job to the end (blocking; call from a thread worker in the GUI).

    ``kind`` names the job in the jobs table and its folder; ``worker_kind`` is what the engine worker runs
    (train, score, predict), when it differs (a configuration search records its trainings as ``auto``).

    ``should_stop`` is polled several times a second; when it returns True the worker gets SIGTERM (or
    ``scancel``) and stops within one training step, keeping its last good checkpoint.
    """
    try:
        settings = project.jobs
    except ProjectError as exc:
        raise JobError(str(exc)) from None
    with project_lock(project):
        reap_stale_jobs(project)
        store = project.store
        job_id = store.add_job(kind, spec, backend=backends.label(settings.backend, settings.nproc))
        job_dir = project.jobs_dir / f"{job_id:05d}-{kind}"
        job_dir.mkdir(parents=True, exist_ok=True)
        spec_path = job_dir / "job.json"
        spec_path.write_text(json.dumps({**spec, "kind": worker_kind or kind}, indent=1))
        log_path = job_dir / "worker.log"

        def on_state(status: str) -> None:  # a cluster job went from queued to running
            store.update_job(job_id, status=status)

        try:
            run = backends.start(settings, job_dir=job_dir, spec_path=spec_path, name=f"im2im-{kind}-{job_id}",
                                 on_state=on_state)
        except (backends.BackendError, OSError) as exc:
            message = str(exc)
            store.update_job(job_id, status="failed", finished_at=now(), message=message[:2000])
            store.log("job_failed", job_id=job_id, job_kind=kind, message=message[:500])
            return JobOutcome(job_id, "failed", message=message, log=log_path, backend=settings.backend)
        store.update_job(job_id, status="running" if settings.backend == "local" else "queued", pid=run.pid,
                         backend=run.label, started_at=now(), model_version=model_version)
        store.log("job_started", job_id=job_id, job_kind=kind, backend=run.label)
        try:
            outcome = _follow(project, job_id, run, on_event, should_stop)
        except BaseException:  # Ctrl-C or a failing callback: never leave an orphan worker behind
            run.kill()
            store.update_job(job_id, status="cancelled", finished_at=now(), message="interrupted")
            raise
        outcome.log = log_path
        outcome.backend = run.label
        if outcome.status == "failed" and not outcome.message:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-3:] if log_path.exists() else []
            outcome.message = "worker failed: " + (" | ".join(tail) or f"exit code {outcome.exit_code}")
        store.update_job(job_id, status=outcome.status, finished_at=now(), message=outcome.message[:2000],
                         progress=1.0 if outcome.status == "done" else store.job(job_id)["progress"])
        store.log(f"job_{outcome.status}", job_id=job_id, job_kind=kind, message=outcome.message[:500])
        return outcome


def _follow(project: Project, job_id: int, run: backends.Run, on_event: EventCallback | None,
            should_stop: StopCheck | None) -> JobOutcome:
    outcome = JobOutcome(job_id, "failed")
    stop_sent = threading.Event()

    def watch_stop() -> None:
        while run.alive():
            if should_stop is not None and should_stop() and not stop_sent.is_set():
                stop_sent.set()
                run.cancel()
            time.sleep(0.1)

    watcher = threading.Thread(target=watch_stop, daemon=True)
    watcher.start()
    last_write = 0.0
    for line in run.lines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        outcome.events.append(event)
        kind = event.get("event")
        if kind == "result":
            outcome.result = event
        elif kind == "error":
            outcome.message = outcome.message or str(event.get("message", "worker error"))
        elif kind == "progress" and time.monotonic() - last_write > 1.0:
            total = event.get("total") or 0
            done = event.get("step", event.get("done", 0)) or 0
            if total:
                project.store.update_job(job_id, progress=min(1.0, float(done) / float(total)))
            last_write = time.monotonic()
        if on_event is not None:
            on_event(event)
    ending = run.ending(stop_sent.is_set())
    watcher.join(timeout=1)
    outcome.status = ending.status
    outcome.message = outcome.message or ending.message
    outcome.exit_code = ending.code
    return outcome

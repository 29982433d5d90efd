"""Where an engine job runs: a local subprocess (one worker, or N ranks under torchrun) or a Slurm job.

Why backends behind one small interface (:class:`Run`): :func:`annotation.jobs.run_job` must follow a job
the same way wherever it runs (JSON-lines events into the store, cancel, a final state), and the engine
worker must not know about any of this. A backend only has to start the worker on the job spec, hand back
its stdout lines, cancel it, and say how it ended.

* local: ``python -m im2im_engine.worker JOB.json``; with ``jobs.nproc > 1`` the same worker under
  ``python -m torch.distributed.run --standalone --nproc_per_node N`` (DDP on one machine).
* slurm: an sbatch script written into the job folder, ``sbatch --parsable``; the worker's stdout goes to
  ``slurm.out`` in the job folder and is read back as it grows; ``squeue`` / ``sacct`` give the state,
  ``scancel`` cancels. The script also writes ``exit_code``, so the end is known even on clusters without
  accounting (no ``sacct``). The project folder must be on storage that the submitting machine and the
  compute nodes both see at the same path (see docs/cluster.md).

The jobs table's ``backend`` column holds a short label (:func:`label`): ``local``, ``local:n=2``,
``slurm:id=1234`` or ``slurm:id=1234,n=4``; :func:`describe` turns it into words for the GUI.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .project import JobSettings, SlurmSettings

REPO = Path(__file__).resolve().parent.parent
StateCallback = Callable[[str], None]


class BackendError(RuntimeError):
    """The backend could not start or follow the job (message says what to install or configure)."""


@dataclass
class Ending:
    """How a job ended: ``status`` done | failed | cancelled, a message when not done, the exit code."""

    status: str
    message: str = ""
    code: int | None = None


class Run(Protocol):
    """A started job, whatever runs it."""

    label: str  # for the jobs table's backend column
    pid: int | None  # a local process to signal, or None (a cluster job)

    def lines(self) -> Iterator[str]:
        """The worker's stdout, line by line, until the job has ended."""

    def alive(self) -> bool:
        """Still pending or running (cheap: may be a cached state)."""

    def cancel(self) -> None:
        """Ask the worker to stop (SIGTERM: it keeps its last good checkpoint)."""

    def kill(self) -> None:
        """Stop now and wait (the runner itself is being interrupted)."""

    def ending(self, stop_requested: bool) -> Ending:
        """The final state, once :meth:`lines` is exhausted."""


# ------------------------------------------------------------------------------------------- labels
def label(kind: str, nproc: int = 1, external_id: str | None = None) -> str:
    parts = [f"id={external_id}"] if external_id else []
    if nproc > 1:
        parts.append(f"n={nproc}")
    return kind + (":" + ",".join(parts) if parts else "")


def parse_label(text: str | None) -> tuple[str, int, str | None]:
    """``(kind, nproc, external id)`` from a label; unknown text is read as a plain local job."""
    kind, _, rest = (text or "local").partition(":")
    fields = dict(p.split("=", 1) for p in rest.split(",") if "=" in p)
    try:
        nproc = max(1, int(fields.get("n", "1")))
    except ValueError:
        nproc = 1
    return kind or "local", nproc, fields.get("id")


def describe(text: str | None) -> str:
    """Words for the GUI: ``local``, ``local, 2 processes``, ``Slurm job 1234``, ``Slurm (submitting)``."""
    kind, nproc, ident = parse_label(text)
    where = ("Slurm job " + ident if ident else "Slurm (submitting)") if kind == "slurm" else kind
    return where + (f", {nproc} processes" if nproc > 1 else "")


def describe_settings(settings: JobSettings) -> str:
    """Where the next job will run, from ``jobs:`` in config.yaml."""
    where = "this computer" if settings.backend == "local" else "Slurm"
    if settings.backend == "slurm" and settings.slurm.partition:
        where += f" (partition {settings.slurm.partition})"
    return where + (f", {settings.nproc} processes" if settings.nproc > 1 else "")


# ------------------------------------------------------------------------------------------- commands
def worker_command(spec_path: Path, nproc: int = 1, python: str | None = None) -> list[str]:
    """The worker, or torchrun with ``nproc`` ranks of it on this machine (``--standalone``: a private
    rendezvous on a free port, so two projects can train at once)."""
    py = python or sys.executable
    if nproc <= 1:
        return [py, "-m", "im2im_engine.worker", str(spec_path)]
    return [py, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            "-m", "im2im_engine.worker", str(spec_path)]


def _ending_from_code(code: int, stop_requested: bool) -> Ending:
    if code == 0 and not stop_requested:
        return Ending("done", code=code)
    if code == 130 or stop_requested:
        return Ending("cancelled", "cancelled by the user", code)
    if code < 0:
        return Ending("failed", f"the worker was killed by signal {-code}", code)
    return Ending("failed", "", code)


# ------------------------------------------------------------------------------------------- local
class LocalRun:
    """The worker (or torchrun) as a child process; its stdout is a pipe."""

    def __init__(self, spec_path: Path, log_path: Path, nproc: int = 1):
        self.nproc = nproc
        self.label = label("local", nproc)
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in ending()/kill()
        # below the window in CPU priority: on a laptop the brush must stay smooth while training runs
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "IM2IM_WORKER_NICE": os.environ.get("IM2IM_WORKER_NICE", "5")}
        for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):  # never inherit a torchrun layout by accident
            env.pop(key, None)
        self.proc = subprocess.Popen(worker_command(spec_path, nproc), stdout=subprocess.PIPE, stderr=self._log,
                                     text=True, bufsize=1, cwd=str(REPO), env=env)
        self.pid: int | None = self.proc.pid

    def lines(self) -> Iterator[str]:
        assert self.proc.stdout is not None
        yield from self.proc.stdout

    def alive(self) -> bool:
        return self.proc.poll() is None

    def cancel(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        self._log.close()

    def ending(self, stop_requested: bool) -> Ending:
        code = self.proc.wait()
        self._log.close()
        return _ending_from_code(code, stop_requested)


# ------------------------------------------------------------------------------------------- slurm
#: squeue/sacct states -> (our status while alive or at the end, message)
ALIVE = {"PENDING": "queued", "CONFIGURING": "queued", "REQUEUED": "queued", "REQUEUE_HOLD": "queued",
         "RESV_DEL_HOLD": "queued", "SUSPENDED": "queued", "RUNNING": "running", "COMPLETING": "running",
         "STAGE_OUT": "running", "RESIZING": "running", "SIGNALING": "running"}
FAILED_STATES = {
    "TIMEOUT": "the Slurm job hit its time limit (jobs.slurm.time)",
    "OUT_OF_MEMORY": "the Slurm job ran out of memory (raise jobs.slurm.mem)",
    "NODE_FAIL": "the compute node failed", "BOOT_FAIL": "the compute node failed to boot",
    "PREEMPTED": "the Slurm job was preempted", "DEADLINE": "the Slurm job missed its deadline",
    "FAILED": "the Slurm job failed", "REVOKED": "the Slurm job was revoked",
}


def slurm_state(text: str) -> str:
    """First word of a squeue/sacct state (``CANCELLED by 0`` -> ``CANCELLED``; ``RUNNING+`` -> ``RUNNING``)."""
    word = (text.strip().split() or [""])[0]
    return word.rstrip("+").upper()


def map_ending(stop_requested: bool, exit_code: int | None, state: str) -> Ending:
    """The job's end from what is known: our own stop request, the script's exit code, Slurm's state.

    A stop we did not ask for (exit 130, or CANCELLED) is the cluster's doing: a time limit is a failure;
    a ``scancel`` by someone else is a cancel, with a message that says so.
    """
    if stop_requested:
        return Ending("cancelled", "cancelled by the user", exit_code)
    if state in FAILED_STATES:
        detail = "" if exit_code in (None, 0, 130) else f" (exit code {exit_code})"
        return Ending("failed", FAILED_STATES[state] + detail, exit_code)
    if exit_code == 0 or (exit_code is None and state == "COMPLETED"):
        return Ending("done", code=exit_code)
    if exit_code == 130 or state == "CANCELLED":
        return Ending("cancelled", "the Slurm job was cancelled on the cluster (scancel or an administrator)",
                      exit_code)
    if exit_code is None:
        return Ending("failed", f"the Slurm job ended in state {state or 'unknown'} without an exit code; "
                      "see its output files in the job folder")
    return Ending("failed", "", exit_code)


def sbatch_script(settings: SlurmSettings, *, name: str, job_dir: Path, spec_path: Path, nproc: int) -> str:
    """The batch script: options as ``#SBATCH`` lines (self-documenting in the job folder), the worker in
    the background so the shell can forward SIGTERM and record its exit code in ``exit_code``."""
    opts = [f"--job-name={name}", f"--output={job_dir / 'slurm.out'}", f"--error={job_dir / 'worker.log'}",
            "--nodes=1", "--ntasks=1", f"--time={settings.time}"]
    if settings.partition:
        opts.append(f"--partition={settings.partition}")
    if settings.gres:
        opts.append(f"--gres={settings.gres}")
    if settings.cpus_per_task:
        opts.append(f"--cpus-per-task={settings.cpus_per_task}")
    if settings.mem:
        opts.append(f"--mem={settings.mem}")
    command = " ".join(shlex.quote(a) for a in worker_command(spec_path, nproc, settings.python))
    exit_file, repo = shlex.quote(str(job_dir / "exit_code")), shlex.quote(str(REPO))
    lines = ["#!/bin/bash", *(f"#SBATCH {o}" for o in opts),
             "# Written by im2im-active. The worker prints JSON lines to slurm.out; the app reads them back.",
             "export PYTHONUNBUFFERED=1",
             "unset RANK WORLD_SIZE LOCAL_RANK",
             f"if [ -d {repo}/im2im_engine ]; then export PYTHONPATH={repo}${{PYTHONPATH:+:$PYTHONPATH}}; fi",
             f"cd {shlex.quote(str(job_dir))} || exit 1",
             f"{command} &",
             "child=$!",
             "trap 'kill -TERM \"$child\" 2>/dev/null' TERM INT",
             "wait \"$child\"; code=$?",
             "if [ \"$code\" -gt 128 ]; then wait \"$child\"; code=$?; fi  # interrupted by the trap: wait again",
             f"echo \"$code\" > {exit_file}.tmp && mv {exit_file}.tmp {exit_file}",
             "exit \"$code\"", ""]
    return "\n".join(lines)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackendError(f"{name} not found: install the Slurm client tools on this machine (Debian: "
                           "apt-get install slurm-client) or set jobs.backend: local in config.yaml")
    return path


def _run_tool(args: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


class SlurmRun:
    """A worker submitted with sbatch; progress read back from its output file on the shared storage."""

    pid: int | None = None

    def __init__(self, settings: SlurmSettings, job_dir: Path, spec_path: Path, name: str, nproc: int = 1,
                 on_state: StateCallback | None = None):
        self.settings = settings
        self.job_dir = job_dir
        self.nproc = nproc
        self.on_state = on_state
        self.out_path = job_dir / "slurm.out"
        self.exit_path = job_dir / "exit_code"
        self.script = job_dir / "job.sbatch"
        self.script.write_text(sbatch_script(settings, name=name, job_dir=job_dir, spec_path=spec_path,
                                             nproc=nproc))
        proc = _run_tool([_tool("sbatch"), "--parsable", *settings.extra_args, str(self.script)])
        if proc.returncode != 0:
            raise BackendError(f"sbatch refused the job: {(proc.stderr or proc.stdout).strip()[:500]}")
        self.job_id = proc.stdout.strip().splitlines()[-1].split(";")[0].strip() if proc.stdout.strip() else ""
        if not self.job_id.isdigit():
            raise BackendError(f"sbatch --parsable printed {proc.stdout.strip()!r}, not a job id")
        (job_dir / "slurm_job_id").write_text(self.job_id + "\n")
        self.label = label("slurm", nproc, self.job_id)
        self.state = "PENDING"  # last seen Slurm state
        self._status = "queued"  # queued | running | ended
        self._unknown = 0

    # -------------------------------------------------------------- state
    def _exit_code(self) -> int | None:
        try:
            return int(self.exit_path.read_text().strip())
        except (OSError, ValueError):
            return None

    def poll(self) -> str:
        """Ask Slurm (squeue, then sacct once it left the queue); returns the state word, '' if unknown."""
        with contextlib.suppress(BackendError, OSError, subprocess.TimeoutExpired):
            q = _run_tool([_tool("squeue"), "-h", "-j", self.job_id, "-o", "%T"], timeout=30)
            if q.returncode == 0 and q.stdout.strip():
                return slurm_state(q.stdout.splitlines()[0])
        with contextlib.suppress(BackendError, OSError, subprocess.TimeoutExpired):
            a = _run_tool([_tool("sacct"), "-n", "-X", "-P", "-j", self.job_id, "-o", "State,ExitCode"], timeout=30)
            if a.returncode == 0 and a.stdout.strip():
                return slurm_state(a.stdout.splitlines()[0].split("|")[0])
        return ""

    def _update(self) -> None:
        """Refresh the state; the job has ended once it wrote its exit code, Slurm reports a final state, or
        Slurm has not known it for three polls in a row (it vanished, e.g. cancelled while pending on a
        cluster without accounting)."""
        state = self.poll()
        if state:
            self.state, self._unknown = state, 0
        else:
            self._unknown += 1
        if self._exit_code() is not None or (state and state not in ALIVE) or self._unknown >= 3:
            status = "ended"
        else:
            status = ALIVE.get(self.state, self._status)
        if status != self._status:
            self._status = status
            if self.on_state is not None and status != "ended":
                self.on_state(status)

    def alive(self) -> bool:
        return self._status != "ended"

    # -------------------------------------------------------------- follow
    def lines(self) -> Iterator[str]:
        """Tail ``slurm.out`` (JSON lines) while the job lives; poll Slurm every ``poll_seconds``."""
        pos = 0
        buffer = ""
        next_poll = 0.0
        drained_after_end = False
        while True:
            with contextlib.suppress(FileNotFoundError):
                with open(self.out_path, errors="replace") as fh:
                    fh.seek(pos)
                    chunk = fh.read()
                    pos = fh.tell()
                buffer += chunk
                *complete, buffer = buffer.split("\n")
                for line in complete:
                    yield line + "\n"
            if not self.alive():
                if drained_after_end:  # one more read after the end: shared storage may lag a little
                    if buffer:
                        yield buffer
                    return
                drained_after_end = True
                time.sleep(min(self.settings.poll_seconds, 1.0))
                continue
            now = time.monotonic()
            if now >= next_poll:
                self._update()
                next_poll = now + self.settings.poll_seconds
                continue  # read the file once more right after a state change
            time.sleep(0.2)

    def cancel(self) -> None:
        with contextlib.suppress(BackendError, OSError, subprocess.TimeoutExpired):
            _run_tool([_tool("scancel"), self.job_id], timeout=30)

    def kill(self) -> None:
        self.cancel()

    def ending(self, stop_requested: bool) -> Ending:
        return map_ending(stop_requested, self._exit_code(), self.state)


def cancel_slurm_job(job_id: str) -> None:
    """Best-effort ``scancel`` of a job left behind by a runner that died (stale-job reaping)."""
    with contextlib.suppress(BackendError, OSError, subprocess.TimeoutExpired):
        _run_tool([_tool("scancel"), job_id], timeout=30)


def start(settings: JobSettings, *, job_dir: Path, spec_path: Path, name: str,
          on_state: StateCallback | None = None) -> Run:
    """Start the job with the configured backend."""
    if settings.backend == "slurm":
        return SlurmRun(settings.slurm, job_dir, spec_path, name, settings.nproc, on_state)
    return LocalRun(spec_path, job_dir / "worker.log", settings.nproc)

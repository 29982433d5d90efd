"""Job backends: labels, commands, Slurm state mapping, and whole rounds through a Slurm.

Two Slurms: a fake one that always runs (``sbatch``/``squeue``/``sacct``/``scancel`` scripts on PATH that
behave like a single-node cluster: the batch script runs in the background, PENDING then RUNNING, final
states in sacct, scancel sends SIGTERM to the job's processes), and a real one (Debian's ``slurmctld`` and
``slurmd`` on localhost, started here) that is skipped with the reason only when Slurm is not installed
(.ci/run installs it as root with apt-get); installed daemons that do not come up fail it, with their logs.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from annotation import backends
from annotation.jobs import JobError
from annotation.loop import checkpoint_path, score, train_round
from annotation.project import JobSettings, Project, SlurmSettings

# ----------------------------------------------------------------------------------------- pure logic


def test_labels_round_trip_and_describe() -> None:
    assert backends.label("local") == "local"
    assert backends.label("local", 2) == "local:n=2"
    assert backends.label("slurm", 4, "1234") == "slurm:id=1234,n=4"
    assert backends.parse_label("slurm:id=1234,n=4") == ("slurm", 4, "1234")
    assert backends.parse_label(None) == ("local", 1, None)
    assert backends.describe("local:n=2") == "local, 2 processes"
    assert backends.describe("slurm:id=77") == "Slurm job 77"
    assert backends.describe("slurm") == "Slurm (submitting)"
    settings = JobSettings(backend="slurm", nproc=2, slurm=SlurmSettings(partition="gpu"))
    assert backends.describe_settings(settings) == "Slurm (partition gpu), 2 processes"


def test_worker_command_uses_torchrun_for_several_processes(tmp_path: Path) -> None:
    spec = tmp_path / "job.json"
    assert backends.worker_command(spec) == [sys.executable, "-m", "im2im_engine.worker", str(spec)]
    cmd = backends.worker_command(spec, 2, "/opt/py/bin/python")
    assert cmd[:3] == ["/opt/py/bin/python", "-m", "torch.distributed.run"]
    assert cmd[cmd.index("--nproc_per_node") + 1] == "2" and "--standalone" in cmd
    assert cmd[-3:] == ["-m", "im2im_engine.worker", str(spec)]


@pytest.mark.parametrize(("stop", "code", "state", "status", "words"), [
    (False, 0, "COMPLETED", "done", ""),
    (False, None, "COMPLETED", "done", ""),
    (True, 130, "CANCELLED", "cancelled", "by the user"),
    (True, None, "CANCELLED", "cancelled", "by the user"),  # cancelled while pending
    (False, 130, "CANCELLED", "cancelled", "on the cluster"),
    (False, 130, "TIMEOUT", "failed", "time limit"),
    (False, None, "OUT_OF_MEMORY", "failed", "memory"),
    (False, 1, "FAILED", "failed", "exit code 1"),
    (False, None, "", "failed", "without an exit code"),
])
def test_slurm_states_map_to_job_states(stop, code, state, status, words) -> None:
    ending = backends.map_ending(stop, code, state)
    assert ending.status == status and words in ending.message


def test_slurm_state_words() -> None:
    assert backends.slurm_state("CANCELLED by 0") == "CANCELLED"
    assert backends.slurm_state("RUNNING+\n") == "RUNNING"
    assert backends.slurm_state("") == ""


def test_sbatch_script_carries_the_settings(tmp_path: Path) -> None:
    settings = SlurmSettings(partition="gpu", time="00:30:00", gres="gpu:2", cpus_per_task=8, mem="16G",
                             python="/shared/env/bin/python")
    text = backends.sbatch_script(settings, name="im2im-train-3", job_dir=tmp_path, spec_path=tmp_path / "job.json",
                                  nproc=2)
    for option in ("--partition=gpu", "--time=00:30:00", "--gres=gpu:2", "--cpus-per-task=8", "--mem=16G",
                   f"--output={tmp_path / 'slurm.out'}", "--job-name=im2im-train-3"):
        assert f"#SBATCH {option}\n" in text
    assert "/shared/env/bin/python -m torch.distributed.run --standalone --nproc_per_node 2" in text
    assert "exit_code" in text and text.startswith("#!/bin/bash\n")
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)  # valid shell


# ----------------------------------------------------------------------------------------- fake Slurm
FAKE = {
    "sbatch": '''
        import os, re, subprocess, sys
        from pathlib import Path
        state = Path(os.environ["FAKE_SLURM_STATE"])
        args = sys.argv[1:]
        (state / "sbatch.log").open("a").write(" ".join(args) + "\\n")
        if "--parsable" not in args:
            sys.exit("fake sbatch: only --parsable is supported")
        script = Path(args[-1])
        opts = dict(re.findall(r"^#SBATCH --([\\w-]+)=(.*)$", script.read_text(), re.M))
        counter = state / "next_id"
        jid = int(counter.read_text()) if counter.exists() else 1001
        counter.write_text(str(jid + 1))
        job = state / str(jid)
        job.mkdir()
        (job / "state").write_text("PENDING")
        subprocess.Popen([sys.executable, str(state / "launcher.py"), str(job), str(script), opts["output"],
                          opts["error"]], start_new_session=True, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"{jid};fake")
    ''',
    "launcher.py": '''
        import subprocess, sys, time
        from pathlib import Path
        job, script, out, err = Path(sys.argv[1]), *sys.argv[2:]
        time.sleep(0.6)  # PENDING for a moment, as on a real cluster
        if (job / "cancelled").exists():
            (job / "state").write_text("CANCELLED")
            sys.exit()
        with open(out, "w") as o, open(err, "w") as e:
            proc = subprocess.Popen(["bash", script], stdout=o, stderr=e, start_new_session=True)
        (job / "pid").write_text(str(proc.pid))
        (job / "state").write_text("RUNNING")
        code = proc.wait()
        (job / "exit").write_text(str(code))
        cancelled = (job / "cancelled").exists()
        (job / "state").write_text("CANCELLED" if cancelled else "COMPLETED" if code == 0 else "FAILED")
    ''',
    "squeue": '''
        import os, sys
        from pathlib import Path
        args = sys.argv[1:]
        job = Path(os.environ["FAKE_SLURM_STATE"]) / args[args.index("-j") + 1]
        if not job.exists():
            sys.exit("slurm_load_jobs error: Invalid job id specified")
        state = job.joinpath("state").read_text()
        if state in ("PENDING", "RUNNING"):  # finished jobs have left the queue: ask sacct
            print(state)
    ''',
    "sacct": '''
        import os, sys
        from pathlib import Path
        args = sys.argv[1:]
        job = Path(os.environ["FAKE_SLURM_STATE"]) / args[args.index("-j") + 1]
        if job.exists():
            state = job.joinpath("state").read_text()
            code = job.joinpath("exit").read_text() if job.joinpath("exit").exists() else "0"
            print(("CANCELLED by 0" if state == "CANCELLED" else state) + f"|{code}:0")
    ''',
    "scancel": '''
        import os, signal, sys
        from pathlib import Path
        state = Path(os.environ["FAKE_SLURM_STATE"])
        (state / "scancel.log").open("a").write(" ".join(sys.argv[1:]) + "\\n")
        job = state / sys.argv[-1]
        (job / "cancelled").touch()
        if (job / "pid").exists():
            try:
                os.killpg(int((job / "pid").read_text()), signal.SIGTERM)  # every process of the job
            except ProcessLookupError:
                pass
    ''',
}


def install_fake_tools(tmp_path: Path, monkeypatch, scripts: dict[str, str]) -> Path:
    """Put ``scripts`` (name -> Python source; ``*.py`` helpers go beside the state) on PATH as fake Slurm
    tools; returns their state folder (``FAKE_SLURM_STATE``)."""
    bin_dir, state = tmp_path / "fake-bin", tmp_path / "fake-state"
    bin_dir.mkdir()
    state.mkdir()
    for name, body in scripts.items():
        target = state / name if name.endswith(".py") else bin_dir / name
        target.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
        target.chmod(0o755)
    monkeypatch.setenv("FAKE_SLURM_STATE", str(state))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return state


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch) -> Path:
    """Fake Slurm tools on PATH; returns their state folder (one subfolder per job id)."""
    return install_fake_tools(tmp_path, monkeypatch, FAKE)


def _use_slurm(project: Project, nproc: int = 1) -> None:
    config = dict(project.config)
    config["jobs"] = {"backend": "slurm", "nproc": nproc,
                      "slurm": {"partition": "debug", "time": "00:10:00", "poll_seconds": 0.3}}
    project.save_config(config)


@pytest.mark.slow
def test_rounds_run_as_slurm_jobs(small_project: Path, fake_slurm: Path) -> None:
    with Project.open(small_project) as project:
        _use_slurm(project)
        seen: list[dict] = []
        result = train_round(project, progress=seen.append)
        assert result.accepted and result.version == 1
        assert [e["step"] for e in seen if e.get("event") == "progress"][-1] == 12  # read back from slurm.out
        job = project.store.jobs()[-1]
        assert job["status"] == "done" and job["backend"] == "slurm:id=1001" and job["pid"] is None
        job_dir = project.jobs_dir / f"{job['id']:05d}-train"
        script = (job_dir / "job.sbatch").read_text()
        assert "#SBATCH --partition=debug\n" in script and "#SBATCH --time=00:10:00\n" in script
        assert (job_dir / "slurm_job_id").read_text().strip() == "1001"
        assert (job_dir / "exit_code").read_text().strip() == "0"
        assert "--parsable" in (fake_slurm / "sbatch.log").read_text()

        # cancel while training: scancel, the worker keeps nothing half-made, the current model stays
        cancelled = _train_and_cancel_midway(project)
        assert cancelled.cancelled and project.store.current_model == 1
        job = project.store.jobs()[-1]
        assert job["status"] == "cancelled" and job["backend"] == "slurm:id=1002"
        assert (fake_slurm / "scancel.log").read_text().split() == ["1002"]
        assert checkpoint_path(project, 1).exists()


def test_missing_sbatch_fails_the_job_with_a_clear_message(small_project: Path, tmp_path: Path,
                                                           monkeypatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with Project.open(small_project) as project:
        _use_slurm(project)
        with pytest.raises(JobError, match="sbatch not found"):
            train_round(project)
        job = project.store.jobs()[-1]
        assert job["status"] == "failed" and "slurm-client" in job["message"]


# ----------------------------------------------------------------------------------------- real Slurm
SLURM_CONF = """\
ClusterName=im2imtest
SlurmctldHost={host}
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
KillWait=30
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _train_and_cancel_midway(project: Project):
    """A long training round, cancelled by the user once the worker reports step 2."""
    asked = {"stop": False}

    def progress(event: dict) -> None:
        if event.get("event") == "progress" and event.get("step", 0) >= 2:
            asked["stop"] = True

    return train_round(project, steps=5000, progress=progress, should_stop=lambda: asked["stop"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _slurm_missing() -> str | None:
    missing = [t for t in ("slurmctld", "slurmd", "sbatch", "squeue", "scancel", "munged") if not shutil.which(t)]
    if missing:
        return (f"real Slurm not installed ({', '.join(missing)} missing): apt-get install slurmctld slurmd "
                "munge (.ci/run does); the fake-Slurm test covers the backend logic meanwhile")
    if os.geteuid() != 0:
        return "real Slurm test needs root to start slurmd on this machine"
    return None


def _daemon_logs(d: Path, procs: list[subprocess.Popen]) -> str:
    """The tail of each daemon's log, and which daemons already exited (with their exit codes)."""
    parts = [f"{' '.join(map(str, p.args[:1]))} exited with {p.returncode}" for p in procs if p.poll() is not None]
    for name in ("munge/munged.log", "slurmctld.log", "slurmd.log"):
        log = d / name
        parts.append(f"--- {name}:\n" + (log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"))
    return "\n".join(parts)


@pytest.fixture
def real_slurm(tmp_path_factory, monkeypatch):
    """munged + slurmctld + slurmd on this host, private config and ports; stopped afterwards."""
    reason = _slurm_missing()
    if reason:
        pytest.skip(reason)
    d = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool", "munge"):
        (d / sub).mkdir()
    os.chmod(d / "munge", 0o700)
    key = d / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    sock = d / "munge" / "munge.socket"
    procs = [subprocess.Popen(["munged", "-F", "--force", f"--key-file={key}", f"--socket={sock}",
                               f"--pid-file={d / 'munge' / 'munged.pid'}", f"--log-file={d / 'munge' / 'munged.log'}",
                               f"--seed-file={d / 'munge' / 'munged.seed'}"])]
    host = "localhost"
    conf = d / "slurm.conf"
    conf.write_text(SLURM_CONF.format(host=host, ctld_port=_free_port(), d_port=_free_port(), munge_socket=sock,
                                      dir=d, cpus=os.cpu_count() or 1))
    monkeypatch.setenv("SLURM_CONF", str(conf))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    time.sleep(1)
    procs.append(subprocess.Popen(["slurmctld", "-D", "-i", "-f", str(conf)], env=env))
    procs.append(subprocess.Popen(["slurmd", "-D", "-f", str(conf), "-N", host], env=env))
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=env)
            if out.returncode == 0 and out.stdout.strip() in ("idle", "mixed"):
                break
            time.sleep(1)
        else:
            # Slurm is installed and we are root: daemons that do not come up are a failure, never a skip
            pytest.fail(f"local Slurm did not come up within 60 s (sinfo: {out.stdout.strip() or out.stderr.strip()})"
                        f"\n{_daemon_logs(d, procs)}")
        yield d
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.mark.slow
@pytest.mark.xdist_group("real-slurm")  # one local Slurm at a time (make test runs pytest -n 2)
def test_real_slurm_train_score_and_cancel(small_project: Path, real_slurm: Path) -> None:
    with Project.open(small_project) as project:
        _use_slurm(project)
        result = train_round(project)
        assert result.accepted, result.message
        assert project.store.jobs()[-1]["backend"].startswith("slurm:id=")
        assert score(project) == 4
        cancelled = _train_and_cancel_midway(project)
        assert cancelled.cancelled and project.store.current_model == 1
        assert project.store.jobs()[-1]["status"] == "cancelled"

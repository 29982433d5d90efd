"""Nothing lost when the engine worker or the whole app is killed, or when two processes write at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from annotation.jobs import JobError
from annotation.loop import checkpoint_path, score, train_round
from annotation.project import Project
from annotation.store import Store
from im2im_engine import Engine


@pytest.fixture
def trained_project(small_project: Path) -> Path:
    with Project.open(small_project) as project:
        assert train_round(project).accepted
    return small_project


def _kill_worker_when(project: Project, condition):
    """A progress callback that kill -9s the running worker once ``condition(event)`` holds."""
    state = {"killed": False}

    def progress(event: dict) -> None:
        if not state["killed"] and condition(event):
            pid = project.store.jobs("running")[0]["pid"]
            os.kill(pid, signal.SIGKILL)
            state["killed"] = True

    return progress, state


def _assert_healthy(project: Project, current: int) -> None:
    assert project.store.integrity_check() == "ok"
    assert project.store.current_model == current
    Engine.load(checkpoint_path(project, current))  # the last accepted model still loads


@pytest.mark.slow
def test_kill_9_worker_while_training(trained_project: Path) -> None:
    with Project.open(trained_project) as project:
        progress, state = _kill_worker_when(project, lambda e: e.get("step", 0) >= 2)
        with pytest.raises(JobError, match="killed by signal 9"):
            train_round(project, steps=5000, progress=progress)
        assert state["killed"]
        _assert_healthy(project, 1)
        job = project.store.jobs()[-1]
        assert job["kind"] == "train" and job["status"] == "failed" and "signal 9" in job["message"]
        assert [m["version"] for m in project.store.models()] == [1]  # nothing half-recorded
        again = train_round(project, steps=3)  # the next run starts cleanly
        assert again.version == 2 and Engine.load(checkpoint_path(project, 2))


@pytest.mark.slow
def test_kill_9_worker_while_scoring(trained_project: Path) -> None:
    with Project.open(trained_project) as project:
        progress, state = _kill_worker_when(project, lambda e: e.get("event") == "scored")
        with pytest.raises(JobError, match="killed by signal 9"):
            score(project, progress=progress)
        assert state["killed"]
        _assert_healthy(project, 1)
        assert project.store.jobs()[-1]["status"] == "failed"
        assert score(project) == 4


def _wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


@pytest.mark.slow
def test_kill_9_the_whole_app_while_training(trained_project: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "train", str(trained_project), "--steps", "5000", "-q"],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    store = Store(trained_project / "project.db")
    try:
        _wait_for(lambda: any(j["progress"] > 0 for j in store.jobs("running")))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its worker, like a power cut of the app
        proc.wait()
    assert store.jobs("running")  # nobody was left to record the end
    store.close()
    with Project.open(trained_project) as project:
        _assert_healthy(project, 1)
        result = train_round(project, steps=3)
        assert result.version == 2
        stale = project.store.jobs()[-2]
        assert stale["status"] == "failed" and "stopped without finishing" in stale["message"]


SAVER = """
import json, sys, time, numpy as np
from pathlib import Path
from annotation.store import Store
s = Store(sys.argv[1])
n, stop, job_index = int(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
seen = []  # after each save: (status, progress) of the round's training job as the store has it then
i = 0
while (i < n or not stop.exists()) and i < 50_000:
    p = i % 9216  # one pixel of the 96 x 96 image per save
    s.apply_edit(1, (0, 1, p // 96, p // 96 + 1, p % 96, p % 96 + 1), np.full((1, 1, 1), 1, np.int32),
                 seconds=0.01)
    train = [j for j in s.jobs() if j["kind"] == "train"]
    seen.append([train[job_index]["status"], train[job_index]["progress"]] if len(train) > job_index else None)
    i += 1
    time.sleep(0.005)  # a fast brush: ~100 saves a second at most, so the job's writes get their turns too
print(json.dumps({"n": i, "seen": seen}), flush=True)
"""


@pytest.mark.slow
def test_a_thousand_saves_while_a_training_job_records_results(trained_project: Path) -> None:
    """At least 1,000 saves from a second process, from before the round's training job starts until after
    the round (train + score) has recorded everything; the job's progress writes land between saves."""
    with Project.open(trained_project) as project:
        job_index = len([j for j in project.store.jobs() if j["kind"] == "train"])
    stop = trained_project.parent / "stop-saving"
    saver = subprocess.Popen([sys.executable, "-c", SAVER, str(trained_project / "project.db"), "1000", str(stop),
                              str(job_index)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    trainer = subprocess.run([sys.executable, "-m", "app.cli", "train", str(trained_project), "--steps", "150",
                              "-q"], capture_output=True, text=True, timeout=1200)
    stop.touch()  # the round has recorded everything: the saver may stop once it has 1,000 saves
    out, err = saver.communicate(timeout=600)
    assert saver.returncode == 0, err
    assert trainer.returncode == 0, trainer.stderr
    assert "locked" not in err + trainer.stderr
    report = json.loads(out.strip().splitlines()[-1])
    n, seen = report["n"], report["seen"]
    assert n >= 1000
    running = [p for state in seen if state and state[0] == "running" for p in [state[1]] if 0 < p < 1]
    assert len(set(running)) >= 2, seen[::50]  # progress written (at least) twice while the saves went on
    assert seen[0] is None or seen[0][0] != "done"  # saving began before the training job ended ...
    assert seen[-1] is not None and seen[-1][0] == "done"  # ... and went on after the round
    with Project.open(trained_project) as project:
        store = project.store
        assert len(store.history(1)) == n
        label = store.get_label(1, "corrected")
        flat = label.reshape(-1)  # every save is there, nothing else changed (started from zeros)
        assert (flat[:min(n, flat.size)] == 1).all() and not flat[n:].any()
        assert store.integrity_check() == "ok"
        assert [j["status"] for j in store.jobs()][-2:] == ["done", "done"]

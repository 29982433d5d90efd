"""Configuration search of a project: 2 candidates x 2 folds through a fake Slurm job array and a real
single-node Slurm (skipped where not installed), a search killed midway and resumed, the report and --apply.

The fake Slurm here extends the one of ``test_backends.py`` with job arrays: ``sbatch --array=0-N`` runs the
script once per task (one at a time, like a node with one free slot) with ``SLURM_ARRAY_TASK_ID`` set;
``squeue -r`` lists the tasks still queued or running; ``scancel ID`` cancels every task, ``scancel ID_i``
one task.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from annotation.auto import AutoSettings, apply_choice, format_report, parse_budget, run_search
from annotation.project import Project
from annotation.store import auto_results
from tests.annotation.test_backends import _use_slurm, install_fake_tools, real_slurm  # noqa: F401 - a fixture, used by name

REPO = Path(__file__).resolve().parents[2]
SETTINGS = AutoSettings(folds=2, steps=3, max_candidates=2)

FAKE_ARRAY = {
    "sbatch": '''
        import os, re, subprocess, sys
        from pathlib import Path
        state = Path(os.environ["FAKE_SLURM_STATE"])
        args = sys.argv[1:]
        (state / "sbatch.log").open("a").write(" ".join(args) + "\\n")
        script = Path(args[-1])
        opts = dict(re.findall(r"^#SBATCH --([\\w-]+)=(.*)$", script.read_text(), re.M))
        counter = state / "next_id"
        jid = int(counter.read_text()) if counter.exists() else 2001
        counter.write_text(str(jid + 1))
        first, last = (int(v) for v in opts["array"].split("%")[0].split("-"))
        for i in range(first, last + 1):
            (state / f"{jid}_{i}").mkdir()
            (state / f"{jid}_{i}" / "state").write_text("PENDING")
        subprocess.Popen([sys.executable, str(state / "launcher.py"), str(jid), str(script), str(first), str(last)],
                         start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
        print(f"{jid};fake")
    ''',
    "launcher.py": '''
        import os, subprocess, sys, time
        from pathlib import Path
        state = Path(os.environ["FAKE_SLURM_STATE"])
        jid, script, first, last = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        time.sleep(0.3)
        for i in range(first, last + 1):  # one task at a time: a node with one free slot
            task = state / f"{jid}_{i}"
            if (task / "cancelled").exists():
                (task / "state").write_text("CANCELLED")
                continue
            env = {**os.environ, "SLURM_ARRAY_TASK_ID": str(i), "SLURM_ARRAY_JOB_ID": jid}
            with open(state / f"{jid}_{i}.out", "w") as out:
                proc = subprocess.Popen(["bash", script], stdout=out, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
            (task / "pid").write_text(str(proc.pid))
            (task / "state").write_text("RUNNING")
            code = proc.wait()
            (task / "state").write_text("CANCELLED" if (task / "cancelled").exists() else
                                        "COMPLETED" if code == 0 else "FAILED")
    ''',
    "squeue": '''
        import os, sys
        from pathlib import Path
        state = Path(os.environ["FAKE_SLURM_STATE"])
        args = sys.argv[1:]
        jid = args[args.index("-j") + 1]
        tasks = sorted(state.glob(f"{jid.split('_')[0]}_*/state"))
        if not tasks:
            sys.exit("slurm_load_jobs error: Invalid job id specified")
        for path in tasks:
            s = path.read_text()
            if s in ("PENDING", "RUNNING") and (path.parent.name == jid or "_" not in jid):
                print(f"{path.parent.name} {s}")
    ''',
    "sacct": '''
        import sys
    ''',
    "scancel": '''
        import os, signal, sys
        from pathlib import Path
        state = Path(os.environ["FAKE_SLURM_STATE"])
        (state / "scancel.log").open("a").write(" ".join(sys.argv[1:]) + "\\n")
        jid = sys.argv[-1]
        for task in state.glob(f"{jid}_*" if "_" not in jid else jid):
            if not task.is_dir():
                continue
            (task / "cancelled").touch()
            if (task / "pid").exists() and (task / "state").read_text() == "RUNNING":
                try:
                    os.killpg(int((task / "pid").read_text()), signal.SIGTERM)
                except ProcessLookupError:
                    pass
    ''',
}


@pytest.fixture
def fake_array_slurm(tmp_path: Path, monkeypatch) -> Path:
    return install_fake_tools(tmp_path, monkeypatch, FAKE_ARRAY)


def _check_complete(project: Project, report: dict) -> None:
    assert report["finished"] == report["planned"] == 4 and report["stopped"] is None
    assert [c["name"] for c in report["candidates"]] == ["current", "rules"]
    for c in report["candidates"]:
        assert c["folds_done"] == [0, 1] and 0.0 <= c["mean"] <= 1.0 and c["sd"] >= 0.0
        assert c["seconds"] > 0
    assert report["chosen"] in ("current", "rules") and report["reason"]
    assert report["scored_against"] == "pseudo"  # no corrected image in the project
    text = format_report(report)
    assert "±" in text and "pseudo labels" in text and f"Chosen: {report['chosen']}" in text
    rows = auto_results.results(project.store, report["search_id"])
    assert len(rows) == 4 and all(r["status"] == "done" for r in rows)


@pytest.mark.slow
@pytest.mark.timeout(1200)  # four worker start-ups: minutes on a loaded 2-core machine
def test_search_runs_as_a_slurm_job_array(small_project: Path, fake_array_slurm: Path) -> None:
    with Project.open(small_project) as project:
        _use_slurm(project)
        seen: list[dict] = []
        report = run_search(project, SETTINGS, progress=seen.append)
        _check_complete(project, report)
        submitted = (fake_array_slurm / "sbatch.log").read_text().splitlines()
        assert len(submitted) == 1  # one array for the four trainings
        script = Path(submitted[0].split()[-1]).read_text()
        assert "#SBATCH --array=0-3\n" in script and "#SBATCH --partition=debug\n" in script
        jobs = [j for j in project.store.jobs() if j["kind"] == "auto"]
        assert [j["backend"] for j in jobs] == [f"slurm:id=2001_{i}" for i in range(4)]
        assert all(j["status"] == "done" for j in jobs)
        assert any(e.get("step") == 3 for e in seen)  # progress read back from each task's slurm.out
        # fold models are not kept, only their scores
        assert not list((project.jobs_dir / f"auto-s{report['search_id']}").glob("*/model.pt"))

        # the same search again: nothing to run, the same report
        again = run_search(project, SETTINGS)
        assert again["search_id"] == report["search_id"] and again["finished"] == 4
        assert len((fake_array_slurm / "sbatch.log").read_text().splitlines()) == 1


def _wait_for(predicate, seconds: float = 900.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.5)


def _results(root: Path) -> list[tuple]:
    with sqlite3.connect(root / "project.db", timeout=60) as conn:
        try:
            return conn.execute("SELECT candidate, fold, created_at, job_id FROM auto_results ORDER BY created_at"
                                ).fetchall()
        except sqlite3.OperationalError:  # the search has not created its tables yet
            return []


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_killed_search_resumes_where_it_stopped(small_project: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "auto", str(small_project), "--folds", "2",
                             "--steps", "3", "--candidates", "2"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for(lambda: len(_results(small_project)) >= 1 or proc.poll() is not None)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the search and its running worker, at once
        proc.wait()
    before = _results(small_project)
    assert 1 <= len(before) < 4, "the search was killed midway"
    with Project.open(small_project) as project:
        report = run_search(project, SETTINGS)
        _check_complete(project, report)
        after = _results(small_project)
        assert set(before) <= set(after)  # what finished before the kill was kept, not run again
        assert len({(c, f) for c, f, _, _ in after}) == 4
        killed = [j for j in project.store.jobs() if j["kind"] == "auto" and j["status"] == "failed"]
        assert len(killed) <= 1  # the training that was running when the search died


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.xdist_group("real-slurm")  # one local Slurm at a time (make test runs pytest -n 2)
def test_search_through_a_real_slurm(small_project: Path, real_slurm: Path) -> None:  # noqa: F811
    with Project.open(small_project) as project:
        _use_slurm(project)
        report = run_search(project, SETTINGS)
        _check_complete(project, report)
        assert all(j["backend"].startswith("slurm:id=") for j in project.store.jobs() if j["kind"] == "auto")


def test_budget_stops_launching_and_apply_keeps_the_old_config(small_project: Path) -> None:
    with Project.open(small_project) as project:
        report = run_search(project, AutoSettings(folds=2, steps=3, max_candidates=2, budget_s=0.0))
        assert report["finished"] == 0 and report["stopped"] == "budget"
        assert "nothing to compare" in format_report(report) and "budget reached" in format_report(report)
        assert not [j for j in project.store.jobs() if j["kind"] == "auto"]
        # pretend the trainings finished: rules won
        sid = report["search_id"]
        for fold, (cur, rul) in enumerate(((0.5, 0.7), (0.6, 0.8))):
            auto_results.put_result(project.store, sid, "current", fold, status="done", score=cur, seconds=1.0)
            auto_results.put_result(project.store, sid, "rules", fold, status="done", score=rul, seconds=1.0)
        done = run_search(project, AutoSettings(folds=2, steps=3, max_candidates=2))
        assert done["search_id"] == sid and done["chosen"] == "rules" and done["finished"] == 4
        old_text = (small_project / "config.yaml").read_text()
        message = apply_choice(project, sid)
        assert "Applied rules" in message
        kept = list((small_project / "config-history").glob("*.yaml"))
        assert len(kept) == 1 and kept[0].read_text() == old_text
        new = yaml.safe_load((small_project / "config.yaml").read_text())
        rules = next(c for c in done["candidates"] if c["name"] == "rules")
        assert new["model"]["params"]["channels"] == rules["changes"]["model.params.channels"]
        assert new["loop"] == yaml.safe_load(old_text)["loop"]  # the app's sections are kept
        history = project.store.get_meta("config_history")
        assert history[-1]["candidate"] == "rules" and history[-1]["cv"]["mean"] == pytest.approx(0.75)
        assert project.store.events("config_applied")


def test_parse_budget() -> None:
    assert parse_budget("30m") == 1800 and parse_budget("1h30m") == 5400 and parse_budget("90s") == 90
    assert parse_budget("10") == 600 and parse_budget(None) is None
    with pytest.raises(ValueError, match="budget"):
        parse_budget("ten minutes")


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_after_a_network_change_the_next_round_trains_anew_and_is_compared(small_project: Path) -> None:
    """After `auto --apply` picked another network, the current model cannot be fine-tuned: the next round
    trains from scratch and is accepted only if it passes the check, the old model judged with its own
    config on the same images."""
    import json

    from annotation.loop import model_dir, network_changed, train_round

    with Project.open(small_project) as project:
        assert train_round(project).version == 1
        assert not network_changed(project, 1)
        config = dict(project.config)
        config["model"] = {**config["model"], "params": {"channels": [8, 16, 32], "strides": [2, 2],
                                                          "num_res_units": 1}}
        project.save_config(config)
        assert network_changed(project, 1)
        result = train_round(project)
        spec = json.loads(project.store.jobs()[-1]["spec"])
        assert spec["checkpoint"] is None and spec["parent_checkpoint"].endswith("v1/model.pt")
        assert spec["steps"] is None  # a full training (training.steps), not a fine-tuning round
        measured = json.loads((model_dir(project, 2) / "metrics.json").read_text())["check_metrics"]
        assert "parent" in measured and "child" in measured  # v1 was evaluated, by its own network
        assert result.version == 2 and "v1" in result.message, result.message
        assert not network_changed(project, 2)

def test_array_script_runs_one_worker_per_task(tmp_path: Path) -> None:
    from annotation.auto_slurm import array_script
    from annotation.project import SlurmSettings

    settings = SlurmSettings(partition="gpu", gres="gpu:1", mem="16G", python="/shared/JOB env/bin/python")
    text = array_script(settings, name="im2im-auto-s1", array_dir=tmp_path, n_tasks=6, nproc=1, parallel=2)
    for option in ("--array=0-5%2", "--partition=gpu", "--gres=gpu:1", "--mem=16G", "--job-name=im2im-auto-s1"):
        assert f"#SBATCH {option}\n" in text
    assert "'/shared/JOB env/bin/python' -m im2im_engine.worker \"$task_dir/job.json\"" in text
    assert "SLURM_ARRAY_TASK_ID" in text and "exit_code" in text
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)

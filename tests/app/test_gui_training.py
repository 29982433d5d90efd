"""Training from the GUI (real engine worker, tiny config) and the new-project wizard's error dialogs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from gui_actions import answer_next_question, menu_action, paint_row, press
from PySide6.QtWidgets import QMessageBox

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A small semantic project with v1 trained (12 steps) and scored: made once, copied by each test."""
    from annotation import loop
    from annotation.project import Project
    from annotation.setup import init_project
    from resources.demo import write_demo_dataset
    from tests.conftest import make_fast

    base = tmp_path_factory.mktemp("trained")
    images, _ = write_demo_dataset(base / "data", n_images=4, size=96, seed=1)
    project, _ = init_project(base / "proj", images, pseudo="otsu", task="semantic")
    make_fast(project)
    assert loop.train_round(project).accepted
    loop.score(project)
    project.close()
    with Project.open(base / "proj") as project:
        assert len(project.store.scores(1)) == 4
    return base / "proj"


@pytest.fixture
def trained_copy(trained: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "proj"))


def wait_idle(panel, qtbot, timeout: int = 400_000) -> None:
    qtbot.waitUntil(lambda: not panel.running, timeout=timeout)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the module's trained project comes first: minutes on a busy 2-core machine
def test_train_now_button_trains_the_configured_steps(trained_copy, reopen, qtbot):
    """Bug 1: Qt's clicked(checked=False) reached train_round as ``steps``: a 0-step model was accepted."""
    window = reopen(trained_copy)
    panel = window.training
    paint_row(window, qtbot, value=1)  # one correction (class 1) to fine-tune on
    events = []
    panel._bridge.progress.connect(events.append)
    press(panel.start_button)
    assert panel.running and not panel.start_button.isEnabled() and panel.stop_button.isEnabled()
    wait_idle(panel, qtbot)
    store = window.project.store
    assert "failed" not in panel.status.text(), panel.status.text()
    child = store.model(2)
    assert child["metrics"]["steps"] == window.project.loop.finetune_steps  # 8, not 0
    assert any(e.get("phase") == "train" and e.get("step") for e in events)
    # the panel says what decided, in words, and the models table shows the steps
    assert "v2 agrees with" in panel.status.text()
    assert panel.models.item(0, 0).text() == "v2" and panel.models.item(0, 3).text() == "8"
    if child["status"] == "accepted":
        qtbot.waitUntil(lambda: window.queue.ranking is not None and window.queue.ranking.version == 2,
                        timeout=20_000)
        assert all(e.score is not None for e in window.queue.entries if e.state != "done")


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the module's trained project comes first: minutes on a busy 2-core machine
def test_stop_during_scoring_keeps_the_ranking_and_score_now_ranks_again(trained_copy, reopen, qtbot):
    """Bug 2: a stopped scoring left every score "—" and no way to score again."""
    from annotation.project import Project

    with Project.open(trained_copy) as project:  # v2: a new current model (v1's weights), not scored yet
        store = project.store
        store.add_model(version=2, path=store.model(1)["path"], parent=1, status="accepted", round=1,
                        metrics={"steps": 8}, n_corrected=0)
        store.set_current_model(2)
        v1_scores = {r["image_id"]: r["details"]["entropy"] for r in store.scores(1)}
    window = reopen(trained_copy)
    panel, queue = window.training, window.queue
    qtbot.waitUntil(lambda: queue.ranking is not None, timeout=10_000)
    assert queue.ranking.version == 1 and "v1" in queue.ranked_by.text()  # the last complete ranking
    assert {e.image_id: e.score for e in queue.entries} == pytest.approx(v1_scores)

    phases = []
    panel._bridge.progress.connect(lambda e: phases.append(e.get("phase")))
    press(panel.score_button)
    qtbot.waitUntil(lambda: "score" in phases, timeout=30_000)
    press(panel.stop_button)
    wait_idle(panel, qtbot)
    assert "Scoring stopped" in panel.status.text() and "keeps the ranking of v1" in panel.status.text()
    qtbot.waitUntil(lambda: not window.saver.busy, timeout=5000)
    window.queue.refresh()
    qtbot.waitUntil(lambda: queue.ranking.version == 1, timeout=10_000)
    assert {e.image_id: e.score for e in queue.entries} == pytest.approx(v1_scores)
    assert panel.score_button.isEnabled()

    with qtbot.waitSignal(panel.model_updated, timeout=400_000):
        press(panel.score_button)
    wait_idle(panel, qtbot)
    assert "The queue is ranked by v2" in panel.status.text()
    qtbot.waitUntil(lambda: queue.ranking.version == 2 and "v2" in queue.ranked_by.text(), timeout=10_000)
    v2_scores = {r["image_id"]: r["details"]["entropy"] for r in window.project.store.scores(2)}
    assert {e.image_id: e.score for e in queue.entries} == pytest.approx(v2_scores)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the module's trained project comes first: minutes on a busy 2-core machine
def test_quitting_while_a_round_runs_asks_stops_and_marks_the_job(trained_copy, reopen, qtbot, capfd):
    """Bug 4: no question, a traceback, and a job left "running" for ever."""
    window = reopen(trained_copy)
    panel = window.training
    steps = []
    panel._bridge.progress.connect(lambda e: e.get("phase") == "train" and e.get("step") and steps.append(e))
    press(panel.start_button)
    qtbot.waitUntil(lambda: bool(steps), timeout=200_000)  # the worker is training

    answer_next_question("Keep working")
    menu_action(window, "File", "Quit").trigger()
    assert window.isVisible() and panel.running  # nothing stopped

    answer_next_question("Stop and close")
    menu_action(window, "File", "Quit").trigger()
    assert not window.isVisible() and not panel.running
    project = window.project
    job = project.store.query("SELECT * FROM jobs ORDER BY id DESC LIMIT 1")[0]
    assert job["kind"] == "train" and job["status"] == "cancelled" and job["message"].startswith("interrupted")
    assert project.store.current_model == 1  # the round's model is not kept
    project.close()
    from annotation.project import Project
    from annotation.status import format_status, project_status

    with Project.open(trained_copy) as again:
        assert "Running" not in format_status(project_status(again))
    err = capfd.readouterr().err
    assert "Traceback" not in err and "closed database" not in err and "Signal source" not in err


def test_wizard_reports_bad_input_in_a_dialog(tmp_path, qtbot, monkeypatch):
    from app.gui.wizard import NewProjectDialog

    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: shown.append(("warning", a[2])))
    monkeypatch.setattr(QMessageBox, "critical", lambda *a, **k: shown.append(("critical", a[2])))
    dialog = NewProjectDialog()
    qtbot.addWidget(dialog)
    dialog.create()  # nothing filled in
    assert shown and shown[-1][0] == "warning" and "images folder" in shown[-1][1]

    empty = tmp_path / "empty"
    empty.mkdir()
    dialog.images.edit.setText(str(empty))
    dialog.location.edit.setText(str(tmp_path / "proj"))
    dialog.create()
    qtbot.waitUntil(lambda: shown[-1][0] == "critical", timeout=10_000)
    assert "no image files" in shown[-1][1] and dialog.create_button.isEnabled()

    (empty / "broken.tif").write_bytes(b"not a tiff at all")
    dialog.create()
    qtbot.waitUntil(lambda: len([s for s in shown if s[0] == "critical"]) == 2, timeout=10_000)
    assert "broken.tif" in shown[-1][1]
    assert not (tmp_path / "proj" / "project.db").exists()


def test_wizard_creates_and_start_page_lists_recent(tmp_path, qtbot, demo_folder):
    from app.gui.wizard import NewProjectDialog, StartPage, remember_project

    images, _ = demo_folder
    dialog = NewProjectDialog()
    qtbot.addWidget(dialog)
    dialog.images.edit.setText(str(images))
    dialog.location.edit.setText(str(tmp_path / "made"))
    with qtbot.waitSignal(dialog.created, timeout=30_000) as blocker:
        dialog.create()
    assert (tmp_path / "made" / "project.db").exists() and blocker.args[0].endswith("made")
    remember_project(blocker.args[0])
    page = StartPage()
    qtbot.addWidget(page)
    assert page.recent.count() == 1

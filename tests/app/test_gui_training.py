"""Training from the GUI (real engine worker, tiny config) and the new-project wizard's error dialogs."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QMessageBox

pytestmark = pytest.mark.gui


@pytest.mark.slow
def test_train_round_shows_progress_new_model_and_reranks(small_project, reopen, qtbot):
    window = reopen(small_project)
    panel = window.training
    assert panel.models.rowCount() == 0 and all(e.score is None for e in window.queue.entries)
    events = []
    panel._bridge.progress.connect(events.append)
    with qtbot.waitSignal(panel.model_updated, timeout=120_000) as blocker:
        window.trigger("train")
        assert panel.running and not panel.start_button.isEnabled()
    result = blocker.args[0]
    assert result.accepted and result.version == 1
    assert any(e.get("phase") == "train" for e in events)
    assert panel.models.rowCount() == 1 and panel.models.item(0, 0).text() == "v1"
    assert not panel.running and panel.start_button.isEnabled()
    qtbot.waitUntil(lambda: all(e.score is not None for e in window.queue.entries), timeout=10_000)
    qtbot.waitUntil(lambda: window.view.loaded.prediction is not None, timeout=10_000)
    assert window.layers.checks["prediction"].isEnabled()


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

"""Model → Find the best configuration…: the search runs off the GUI thread, shows progress, and stops."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.gui, pytest.mark.slow, pytest.mark.timeout(1200)]


def test_auto_dialog_runs_off_the_gui_thread_and_stops(qtbot, window) -> None:
    from tests.conftest import make_fast

    make_fast(window.project)
    action = next(a for a in window.menuBar().actions() if a.text() == "&Model")
    item = next(a for a in action.menu().actions() if a.text().startswith("Find the &best configuration"))
    item.trigger()
    dialog = window.auto_dialog
    assert dialog.isVisible()
    dialog.folds.setValue(2)
    dialog.candidates.setValue(2)
    dialog.steps.setValue(500)  # long enough to be stopped midway
    dialog.budget.setText("")
    seen: list[dict] = []
    dialog.bridge.event.connect(seen.append)
    with qtbot.waitSignal(dialog.finished_search, timeout=900_000) as blocker:
        dialog.start_button.click()
        assert dialog.running and not dialog.start_button.isEnabled()  # the GUI thread is free meanwhile
        qtbot.waitUntil(lambda: any(e.get("step") for e in seen), timeout=600_000)
        dialog.stop_button.click()
    report = blocker.args[0]
    assert isinstance(report, dict), report
    assert report["stopped"] == "cancelled" and report["finished"] == 0 and report["planned"] == 4
    assert dialog.start_button.isEnabled() and not dialog.apply_button.isEnabled()
    assert "run again to continue" in dialog.log.toPlainText()
    assert window.project.store.jobs()[-1]["status"] == "cancelled"

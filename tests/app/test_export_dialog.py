"""The export dialog: it exports on a worker thread, the window stays responsive."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotation.project import Project


@pytest.fixture(scope="module")
def cli_project(tmp_path_factory) -> tuple[Path, Path]:
    """(project, images): demo data, Otsu pseudo labels, trained and scored by ``im2im-active train``."""
    from tests.conftest import trained_cli_project

    return trained_cli_project(tmp_path_factory.mktemp("export_dialog"))


@pytest.mark.slow
@pytest.mark.gui
def test_export_dialog_runs_off_the_gui_thread(cli_project, tmp_path: Path, qtbot) -> None:
    from app.gui.export_dialog import ExportDialog

    with Project.open(cli_project[0]) as project:
        dialog = ExportDialog(project)
        qtbot.addWidget(dialog)
        assert dialog.version.currentData() == 1 and dialog.output.text().startswith(str(project.exports_dir))
        dialog.format.setCurrentIndex(dialog.format.findData("labels"))
        assert not dialog.version.isEnabled() and dialog.versions.isEnabled()
        dialog.versions.setCurrentIndex(dialog.versions.findData("all"))
        dialog.output.setText(str(tmp_path / "gui_labels"))
        with qtbot.waitSignal(dialog.finished_export, timeout=30000) as blocker:
            dialog.start()
            assert not dialog.run_button.isEnabled()  # returned at once: the export runs on a worker
        report = blocker.args[0]
        assert report.n_images == 3 and (tmp_path / "gui_labels" / "labels.csv").exists()
        assert "exported 3 labels" in dialog.status.text()

"""``im2im-active gui`` on a machine whose Qt X11 plugin lacks libraries: one line naming the packages,
and no attempt to start Qt (which would abort with a misleading message)."""

from __future__ import annotations

import pytest

from app import qt_deps
from app.cli import main


def test_gui_stops_with_the_packages_to_install(monkeypatch, capsys) -> None:
    import app.gui.launch as launch

    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setattr(qt_deps, "missing_libraries", lambda files, ldd="ldd": ["libxcb-keysyms.so.1"])
    monkeypatch.setattr(qt_deps, "xcb_plugin", lambda: "libqxcb.so")

    def never(*args, **kwargs):
        raise AssertionError("Qt must not be started")

    monkeypatch.setattr(launch, "run_gui", never)
    assert main(["gui"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith("sudo apt-get install libxcb-keysyms1")


@pytest.mark.parametrize("screenshot", [True, False])
def test_offscreen_needs_no_x11_check(monkeypatch, screenshot: bool, tmp_path) -> None:
    """With QT_QPA_PLATFORM=offscreen (or a --screenshot) nothing is checked and the launcher runs."""
    import app.gui.launch as launch

    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb" if screenshot else "offscreen")
    monkeypatch.setattr(qt_deps, "missing_libraries", lambda files, ldd="ldd": ["libxcb-keysyms.so.1"])
    monkeypatch.setattr(qt_deps, "xcb_plugin", lambda: "libqxcb.so")
    started = []
    monkeypatch.setattr(launch, "run_gui", lambda project, screenshot=None: started.append(screenshot) or 0)
    args = ["gui", "--screenshot", str(tmp_path / "s.png")] if screenshot else ["gui"]
    assert main(args) == 0 and len(started) == 1

"""Qt is a hard dependency: without PySide6 the GUI tests fail; the CLI tests and the CLI itself do not
need it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _without_qt(tmp_path: Path) -> dict[str, str]:
    """An environment in which ``import PySide6`` fails, as on a machine without Qt."""
    fake = tmp_path / "no_qt" / "PySide6"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ImportError("No module named PySide6 (blocked by the test)")\n')
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake.parent), str(ROOT)]),
            "QT_QPA_PLATFORM": "offscreen"}


def test_gui_tests_fail_without_qt_instead_of_skipping(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only",
                          "tests/app/test_overlays.py"], cwd=ROOT, env=_without_qt(tmp_path),
                         capture_output=True, text=True, timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode not in (0, 5), text  # 0: collected (skips would pass); 5: nothing collected
    assert "PySide6 cannot be imported" in text and "dependency of im2im-active" in text


def test_cli_runs_without_qt(tmp_path: Path) -> None:
    code = ("import sys; from app.cli import main; "
            "rc = main(['status', sys.argv[1]]); "
            "assert 'PySide6' not in sys.modules; sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "missing")], cwd=ROOT,
                         env=_without_qt(tmp_path), capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stderr  # a clear error about the missing project, not an ImportError
    assert "missing" in out.stderr and "Traceback" not in out.stderr and "PySide6" not in out.stderr

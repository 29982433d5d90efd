"""The check ``make run`` and ``im2im-active gui`` run before the window: missing X11 libraries of Qt's
xcb plugin are named, with the Debian packages that ship them, in one line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app import qt_deps

FAKE_LDD = """#!/bin/sh
echo "	linux-vdso.so.1 (0x00007ffd)"
echo "	libQt6XcbQpa.so.6 => /opt/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f10)"
echo "	libxcb-icccm.so.4 => not found"
echo "	libxcb-keysyms.so.1 => not found"
echo "	libxcb-icccm.so.4 => not found"
echo "	libxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f20)"
"""


@pytest.fixture
def fake_ldd(tmp_path: Path) -> str:
    path = tmp_path / "ldd"
    path.write_text(FAKE_LDD)
    path.chmod(0o755)
    return str(path)


def test_missing_libraries_are_read_from_ldd(fake_ldd: str) -> None:
    assert qt_deps.missing_libraries(["plugin.so"], fake_ldd) == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]
    assert qt_deps.packages_for(["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]) == (
        ["libxcb-icccm4", "libxcb-keysyms1"], [])


def test_one_line_names_the_packages(fake_ldd: str, monkeypatch, capsys) -> None:
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setattr(qt_deps, "install", lambda packages: False)  # not root / no apt here
    assert qt_deps.main(["--ldd", fake_ldd, "--install"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.endswith("sudo apt-get install libxcb-icccm4 libxcb-keysyms1")
    assert "libxcb-icccm.so.4, libxcb-keysyms.so.1" in err


def test_install_then_check_again(fake_ldd: str, tmp_path: Path, monkeypatch, capsys) -> None:
    """As root with apt, ``--install`` installs the named packages and checks again."""
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setenv("DISPLAY", ":99")
    installed = []

    def install(packages):
        installed.extend(packages)
        (tmp_path / "ldd").write_text("#!/bin/sh\necho '	libxcb.so.1 => /lib/libxcb.so.1 (0x1)'\n")  # now found
        return True

    monkeypatch.setattr(qt_deps, "install", install)
    assert qt_deps.main(["--ldd", fake_ldd, "--install"]) == 0
    assert installed == ["libxcb-icccm4", "libxcb-keysyms1"] and capsys.readouterr().err == ""


def test_no_check_where_qt_does_not_use_x11(fake_ldd: str, monkeypatch) -> None:
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert qt_deps.problem(fake_ldd) is None
    monkeypatch.delenv("QT_QPA_PLATFORM")
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert qt_deps.problem(fake_ldd) is None


def test_no_display_is_one_line(monkeypatch, tmp_path: Path) -> None:
    ok = tmp_path / "ldd"
    ok.write_text("#!/bin/sh\necho '	libxcb.so.1 => /lib/libxcb.so.1 (0x1)'\n")
    ok.chmod(0o755)
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.delenv("DISPLAY", raising=False)
    assert "no X display" in qt_deps.problem(str(ok))
    monkeypatch.setenv("DISPLAY", ":0")
    assert qt_deps.problem(str(ok)) is None


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler to build a library with a missing dependency")
def test_a_real_library_with_a_missing_dependency(tmp_path: Path) -> None:
    """A real shared object linked against a library that is then removed: the real ldd reports it."""
    (tmp_path / "absent.c").write_text("int absent(void) { return 1; }\n")
    (tmp_path / "plugin.c").write_text("int absent(void);\nint plugin(void) { return absent(); }\n")
    run = lambda *cmd: subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    run("cc", "-shared", "-fPIC", "-o", "libim2im-absent.so.3", "-Wl,-soname,libim2im-absent.so.3", "absent.c")
    (tmp_path / "libim2im-absent.so").symlink_to("libim2im-absent.so.3")
    run("cc", "-shared", "-fPIC", "-o", "libqfake.so", "plugin.c", "-L.", "-lim2im-absent")
    (tmp_path / "libim2im-absent.so.3").unlink()
    (tmp_path / "libim2im-absent.so").unlink()
    missing = qt_deps.missing_libraries([tmp_path / "libqfake.so"])
    assert missing == ["libim2im-absent.so.3"]
    assert qt_deps.packages_for(missing) == ([], ["libim2im-absent.so.3"])


def test_the_readme_lists_every_package_the_check_knows() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("<!-- qt-packages -->")[1].split("<!-- /qt-packages -->")[0]
    listed = [w for w in block.split() if w.startswith("lib")]
    assert "sudo apt-get install" in block
    assert sorted(listed) == sorted(set(qt_deps.PACKAGES.values()))


def test_module_runs_as_a_script_without_qt_imports(tmp_path: Path, fake_ldd: str) -> None:
    code = ("import sys, app.qt_deps as q; rc = q.main(['--ldd', sys.argv[1]]); "
            "assert 'PySide6' not in sys.modules; sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code, fake_ldd], capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "QT_QPA_PLATFORM": "xcb", "DISPLAY": ":5",
                              "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert out.returncode == 1 and "sudo apt-get install libxcb-icccm4 libxcb-keysyms1" in out.stderr, out.stderr


def test_apt_names_take_the_t64_name_where_only_that_exists(tmp_path: Path, monkeypatch) -> None:
    """A fake apt-cache that knows libxcb1 and libglib2.0-0t64 (as Debian 13 does), not libglib2.0-0."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "apt-cache"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do case "$a" in libxcb1|libglib2.0-0t64) '
                    'printf "Package: %s\\nVersion: 1\\n\\n" "$a";; esac; done\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    assert qt_deps.apt_names(["libxcb1", "libglib2.0-0", "libnothing0"]) == {
        "libxcb1": "libxcb1", "libglib2.0-0": "libglib2.0-0t64", "libnothing0": "libnothing0"}
    assert qt_deps.packages_for(["libglib-2.0.so.0", "libgthread-2.0.so.0"]) == (["libglib2.0-0t64"], [])

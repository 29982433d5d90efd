"""Can Qt open a window here? The system libraries of Qt's X11 platform plugin, checked with ``ldd``.

When a library of the xcb plugin is missing, Qt only says that it "could not load the Qt platform plugin
xcb" and suggests ``xcb-cursor0`` (often installed already); which libraries are really missing shows only
with ``ldd`` on the plugin. This module runs that check before the window starts:

    python -m app.qt_deps [--install]

prints nothing and exits 0 when everything is there; otherwise it prints one line naming the Debian/Ubuntu
packages to install (or saying that there is no X display) and exits 1. With ``--install``, where it runs as root and ``apt-get`` exists (a
container, CI), it installs them itself and checks again. ``make run`` calls it with ``--install``;
``im2im-active gui``/``demo`` call :func:`problem` and stop with that line instead of Qt's message.
No Qt import here: the check must work where Qt cannot start.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

#: Every system library the xcb plugin and the Qt libraries it loads need (from ``ldd`` on the plugin,
#: PySide6 6.6-6.12), with the Debian/Ubuntu package that ships it. README.md lists the same packages.
PACKAGES: dict[str, str] = {
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libGLX.so.0": "libglx0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libdbus-1.so.3": "libdbus-1-3",
    "libX11.so.6": "libx11-6",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb.so.1": "libxcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
}


def xcb_plugin() -> Path | None:
    """The xcb platform plugin of the installed PySide6 (found without importing Qt), or None."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        plugin = Path(root) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
        if plugin.exists():
            return plugin
    return None


def missing_libraries(files: Sequence[str | os.PathLike], ldd: str = "ldd") -> list[str]:
    """Shared libraries that ``ldd`` reports as "not found" for any of ``files`` (sorted, no repeats)."""
    missing: set[str] = set()
    for path in files:
        out = subprocess.run([ldd, str(path)], capture_output=True, text=True, timeout=60)
        for line in out.stdout.splitlines():
            name, sep, rest = line.strip().partition("=>")
            if sep and rest.strip() == "not found":
                missing.add(name.strip())
    return sorted(missing)


def packages_for(libraries: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(packages, unknown)``: the Debian packages shipping ``libraries``, and the libraries not in the map.

    Where apt knows a package only under its 64-bit-time name (Debian 13: ``libglib2.0-0t64``), that name."""
    known = sorted({PACKAGES[lib] for lib in libraries if lib in PACKAGES})
    unknown = [lib for lib in libraries if lib not in PACKAGES]
    names = apt_names(known)
    return sorted({names.get(p, p) for p in known}), unknown


def apt_names(packages: Sequence[str]) -> dict[str, str]:
    """``{package: the name apt knows}``: the package itself, or ``package + "t64"`` where only that exists.
    Two ``apt-cache show`` calls at most (apt-cache is slow to start); unchanged without apt-cache."""
    if shutil.which("apt-cache") is None or not packages:
        return {p: p for p in packages}

    def known(names: Sequence[str]) -> set[str]:
        out = subprocess.run(["apt-cache", "show", "--no-all-versions", *names], capture_output=True, text=True,
                             timeout=120)
        return {line.split(":", 1)[1].strip() for line in out.stdout.splitlines() if line.startswith("Package:")}

    found = known(packages)
    missing = [p for p in packages if p not in found]
    renamed = known([p + "t64" for p in missing]) if missing else set()
    return {p: p + "t64" if p not in found and p + "t64" in renamed else p for p in packages}


def will_use_xcb(environ: dict[str, str] | None = None) -> bool:
    """Whether Qt would pick the X11 platform here (Linux; not offscreen/wayland/... by choice)."""
    env = os.environ if environ is None else environ
    if not sys.platform.startswith("linux"):
        return False
    chosen = env.get("QT_QPA_PLATFORM", "")
    if chosen:
        return chosen.split(":")[0].split(";")[0] == "xcb"
    return not env.get("WAYLAND_DISPLAY")


def problem(ldd: str = "ldd") -> str | None:
    """One line naming what to install for the window to start, or None if nothing is missing."""
    if not will_use_xcb():
        return None
    plugin = xcb_plugin()
    if plugin is None or shutil.which(ldd) is None:
        return None  # no PySide6 (reported by the import) or no ldd to ask: let Qt speak
    missing = missing_libraries([plugin], ldd)
    if not missing:
        if not os.environ.get("DISPLAY"):
            return ("the window cannot start: no X display (DISPLAY is not set); run it in a desktop session, "
                    "over ssh -X, or under xvfb-run")
        return None
    packages, unknown = packages_for(missing)
    parts = []
    if packages:
        parts.append(f"sudo apt-get install {' '.join(packages)}")
    if unknown:
        parts.append(f"and the packages providing {', '.join(unknown)}")
    return (f"the window cannot start: Qt's X11 plugin needs {', '.join(missing)}; install them with: "
            + " ".join(parts))


def install(packages: Sequence[str]) -> bool:
    """``apt-get install -y`` as root; False where that is not possible here."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None or not packages:
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"installing {' '.join(packages)} (apt-get, as root)", file=sys.stderr, flush=True)
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *packages]):
        if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, timeout=900).returncode != 0:
            return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.qt_deps", description=__doc__.split("\n\n")[0])
    parser.add_argument("--install", action="store_true",
                        help="as root with apt-get: install the missing packages, then check again")
    parser.add_argument("--ldd", default="ldd", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    line = problem(args.ldd)
    if line and args.install:
        plugin = xcb_plugin()
        packages, _ = packages_for(missing_libraries([plugin], args.ldd)) if plugin else ([], [])
        if install(packages):
            line = problem(args.ldd)
    if line:
        print(line, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

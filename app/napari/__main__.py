"""``python -m app.napari [PROJECT] [--demo] [--screenshot PNG]``: napari with the plugin docked.

``make napari`` runs it on the demo project (built first if missing). ``--screenshot`` waits until the
top image of the queue is shown, writes a picture of the whole window and exits (the README's picture).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register_plugin():
    """The plugin in napari's plugin manager: from the installed entry point, else from this checkout's
    manifest (a checkout that is not pip-installed works too)."""
    from npe2 import PluginManager, PluginManifest

    from . import MANIFEST, PLUGIN

    pm = PluginManager.instance()
    pm.discover()
    try:
        pm.get_manifest(PLUGIN)
    except KeyError:
        pm.register(PluginManifest.from_file(MANIFEST))
    return pm


def dock_all(viewer, docks: dict | None = None):
    """On the right: Project and Export as tabs (Project in front), then Queue, then Train; returns the
    widgets by name (and fills ``docks`` with their dock widgets when given)."""
    from . import PLUGIN

    out = {}
    for name in ("Export", "Project", "Queue", "Train"):  # the tab added last is the one in front
        dock, out[name] = viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=name == "Project")
        if docks is not None:
            docks[name] = dock
    return out


def fit_docks(viewer, docks: dict, heights: tuple[int, int, int] = (150, 430, 470)) -> None:
    """Give the queue and the training panel the height (once the window is shown)."""
    from qtpy.QtCore import Qt

    viewer.window._qt_window.resizeDocks([docks["Project"], docks["Queue"], docks["Train"]], list(heights),
                                         Qt.Orientation.Vertical)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.napari", description=__doc__)
    parser.add_argument("project", nargs="?", help="project folder to open")
    parser.add_argument("--demo", action="store_true", help="build the demo project at PROJECT if missing")
    parser.add_argument("--screenshot", help="write a PNG of the window once the first image shows, then exit")
    parser.add_argument("--size", default="1600x1000", help="window size for --screenshot (WxH)")
    args = parser.parse_args(argv)

    import napari

    if args.project and args.demo:
        from annotation.demo_project import ensure_demo_project

        ensure_demo_project(args.project)
    register_plugin()
    viewer = napari.Viewer(title="im2im-active in napari")
    docks: dict = {}
    widgets = dock_all(viewer, docks)
    from qtpy.QtCore import QTimer

    QTimer.singleShot(300, lambda: fit_docks(viewer, docks))
    if args.project:
        widgets["Project"].open(Path(args.project))
    if args.screenshot:
        from ._session import session_for

        session = session_for(viewer)
        width, height = (int(v) for v in args.size.lower().split("x"))
        viewer.window._qt_window.resize(width, height)

        def shoot() -> None:
            if session.image_id is None or widgets["Queue"].table.rowCount() == 0:
                QTimer.singleShot(200, shoot)
                return
            viewer.window._qt_window.activateWindow()
            napari.qt.get_qapp().processEvents()
            viewer.screenshot(args.screenshot, canvas_only=False)
            print(f"wrote {args.screenshot}")
            viewer.close()

        QTimer.singleShot(1500, shoot)
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

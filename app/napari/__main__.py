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


def dock_all(viewer):
    """On the right: Project and Export as tabs (Project in front), then Queue, then Train; returns the
    widgets by name."""
    from . import PLUGIN

    out, docks = {}, {}
    for name in ("Project", "Export", "Queue", "Train"):
        docks[name], out[name] = viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=name == "Export")
    docks["Project"].raise_()
    return out


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
    widgets = dock_all(viewer)
    if args.project:
        widgets["Project"].open(Path(args.project))
    if args.screenshot:
        from qtpy.QtCore import QTimer

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

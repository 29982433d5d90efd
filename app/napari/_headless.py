"""napari without OpenGL: for tests, benchmarks and scripts on machines with no GL (Qt's offscreen platform).

napari asks OpenGL, when a layer is first shown, for its extensions and maximum texture sizes; Qt's
``offscreen`` platform has no OpenGL context, so that query fails and no layer can be added, even to a
viewer that is never drawn. :func:`allow_without_opengl` answers those two queries with conservative
values when (and only when) no OpenGL context can be made. Layers, events, painting, undo and every plugin
widget then work as usual; nothing is rendered (screenshots of the canvas need a real display: Xvfb).
"""

from __future__ import annotations

import importlib
from functools import lru_cache

#: Modules that imported napari's GL queries by name.
_USERS = ("napari._vispy.layers.image", "napari._vispy.layers.base", "napari._vispy.layers.labels",
          "napari._vispy.canvas")


@lru_cache(maxsize=1)
def opengl_available() -> bool:
    """Whether Qt can make an OpenGL context here (needs a QApplication)."""
    from qtpy.QtGui import QOffscreenSurface, QOpenGLContext

    context = QOpenGLContext()
    if not context.create():
        return False
    surface = QOffscreenSurface()
    surface.create()
    ok = bool(context.makeCurrent(surface))
    if ok:
        context.doneCurrent()
    return ok


def allow_without_opengl(monkeypatch=None) -> bool:
    """Stand in for napari's OpenGL queries when there is no OpenGL; returns True if it did.

    ``monkeypatch``: pytest's, so a test undoes it; without one the change lasts for the process.
    """
    from napari.qt import get_qapp

    get_qapp()
    if opengl_available():
        return False

    def sizes() -> tuple[int, int]:
        return 16384, 2048

    def extensions() -> str:
        return "GL_ARB_texture_float"

    for name in _USERS:
        module = importlib.import_module(name)
        for attr, value in (("get_max_texture_sizes", sizes), ("get_gl_extensions", extensions)):
            if hasattr(module, attr):
                if monkeypatch is not None:
                    monkeypatch.setattr(module, attr, value)
                else:
                    setattr(module, attr, value)
    return True

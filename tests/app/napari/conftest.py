"""napari test fixtures: the plugin registered from THIS checkout's manifest, a viewer without OpenGL.

The manifest is registered with npe2's test plugin manager (``npe2pm``: no discovery), so the tests never
depend on which checkout is pip-installed. napari's own fixtures (``make_napari_viewer_proxy``) come from
its pytest plugin. Qt's offscreen platform has no OpenGL: :func:`app.napari._headless.allow_without_opengl`
stands in for napari's two GL queries there (nothing is drawn; everything else runs as in napari).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# `make test` installs napari (dev extra); a checkout without it skips these tests and says why
pytest.importorskip("napari", reason="the napari plugin's tests need napari: pip install -e '.[dev]'")
from napari.utils._testsupport import _clean_themes, _disable_qt_warnings  # noqa: F401  (see tests/conftest.py)

# napari saves its settings on every change: never into the user's own settings file
os.environ.setdefault("NAPARI_CONFIG", str(Path(tempfile.mkdtemp(prefix="im2im-napari-")) / "settings.yaml"))


@pytest.fixture
def plugin(npe2pm):
    from app.napari import MANIFEST

    with npe2pm.tmp_plugin(manifest=str(MANIFEST)) as registered:
        yield registered


@pytest.fixture
def viewer(make_napari_viewer_proxy, plugin, monkeypatch):
    """A napari viewer (as plugins get it: a public-only proxy) with the plugin registered."""
    from app.napari._headless import allow_without_opengl

    allow_without_opengl(monkeypatch)
    return make_napari_viewer_proxy()


@pytest.fixture
def docked(viewer):
    """The four widgets docked as napari docks them (Plugins menu): ``{name: widget}``."""
    from app.napari.__main__ import dock_all

    widgets = dock_all(viewer)
    widgets["Train"].auto.setChecked(False)  # rounds start only when a test starts them
    return widgets

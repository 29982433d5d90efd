"""Helpers of the napari tests (a module, not conftest: test modules import them)."""

from __future__ import annotations


def wait_image(qtbot, session, image_id=None, timeout=120_000):
    """Until the session shows an image (``image_id`` if given) with its layers."""
    qtbot.waitUntil(lambda: session.image_id is not None and "labels" in session.layers
                    and (image_id is None or session.image_id == image_id), timeout=timeout)


def stroke(layer, points, value, size=5):
    """One brush drag on a Labels layer, as napari's mouse binding makes it (one undo item)."""
    layer.mode = "paint"
    layer.brush_size = size
    layer.selected_label = value
    with layer.block_history():
        for p in points:
            layer.paint(p, value, refresh=False)
    layer.refresh()

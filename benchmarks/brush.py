"""#4 Brush stroke to repaint (p50/p95 per mouse move) at 2048² and 4096², while a training job runs.

Per mouse move ours does what the app does: ``LabelEditor.extend_stroke`` (paint the segment into the
in-memory label) then ``ImageView.refresh_box`` (recolour only the touched box), then the event loop runs until
the view has painted what was invalidated (``processEvents``: Qt paints the dirty region, as on screen).
The baseline recomputes the whole overlay and calls ``ImageItem.setImage`` with it (the naive redraw),
which invalidates and repaints the whole view. Both alternate move by move on
one offscreen window, with a training loop running in another process.
"""

from __future__ import annotations

import math

import numpy as np

from .common import Result, pair_ratios, percentile, spread, timed
from .fixtures import blobs, qt_app, store_with_image, training_job


def _view(store, image_id: int, shape: tuple[int, int]):
    """An offscreen ImageView showing a 2D image with a label being corrected."""
    from annotation.editing import LabelEditor
    from app.gui.image_view import ImageView
    from app.gui.workers import LoadedImage

    data = (blobs(shape).astype(np.float32) * 800 + 200)[None, None]
    editor = LabelEditor(store, image_id, writer=lambda fn: None)  # saving is #6; here only the screen
    loaded = LoadedImage(store.image(image_id), 0, data, [(0.0, 1000.0)], editor, None, None, None)
    view = ImageView()
    view.resize(1200, 900)
    view.show()
    view.set_image(loaded, "semantic")
    return view, editor


def _path(shape: tuple[int, int], n: int) -> list[tuple[float, float]]:
    """A wavy stroke across the image, 3-4 px per mouse event (a quick hand)."""
    h, w = shape
    return [(h / 2 + h / 4 * math.sin(i / 25), w / 8 + i * 3.5) for i in range(n)]


def _one(shape: tuple[int, int], moves: int, busy: bool) -> Result:
    from PySide6.QtWidgets import QApplication

    from app.gui import overlays

    qt_app()
    with store_with_image(shape) as (store, image_id):
        store.put_label(image_id, "corrected", blobs(shape))
        view, editor = _view(store, image_id, shape)
        QApplication.processEvents()
        editor.begin_stroke(value=1, radius=6)

        def paint() -> None:
            QApplication.processEvents()  # the scene's dirty region is painted here
            QApplication.processEvents()

        def ours(p):
            view.refresh_box(editor.extend_stroke(p))
            paint()

        def base(p):
            editor.extend_stroke(p)
            view._label_u8 = overlays.label_index(editor.label[view.z])
            view.items["labels"].setImage(view._label_u8, autoLevels=False, levels=(0, 255),
                                          lut=view.luts["labels"])
            paint()

        pts = _path(shape, 2 * moves + 4)
        ours(pts[0])
        base(pts[1])
        t_ours: list[float] = []
        t_base: list[float] = []
        for i in range(moves):
            a, b = pts[2 + 2 * i], pts[3 + 2 * i]
            first, second = ((ours, t_ours), (base, t_base)) if i % 2 else ((base, t_base), (ours, t_ours))
            first[1].append(timed(lambda f=first[0], p=a: f(p))[0] * 1e3)
            second[1].append(timed(lambda f=second[0], p=b: f(p))[0] * 1e3)
        editor.cancel_stroke()
        view.close()
        view.deleteLater()
        QApplication.processEvents()
    p95 = percentile(t_ours, 95)
    limit = 16.0 if shape[0] <= 2048 else 33.0
    return Result(
        id=f"4.{shape[0]}", what=f"brush move -> repaint, {shape[0]}² ({'training job running' if busy else 'idle'})",
        unit="ms", ours=spread(t_ours), baseline=spread(t_base), ratio=spread(pair_ratios(t_base, t_ours)),
        ratio_def="full setImage time / ours (higher is better)", goal=f"p95 <= {limit:.0f} ms",
        met=bool(p95 <= limit),
        note=f"p50 {percentile(t_ours, 50):.1f} / p95 {p95:.1f} ms ours; p50 {percentile(t_base, 50):.1f} / "
             f"p95 {percentile(t_base, 95):.1f} ms full setImage; offscreen 1200x900 view, image fitted",
        params={"moves": moves, "busy": busy, "p95_ms": p95, "p50_ms": percentile(t_ours, 50)},
    )


def run(quick: bool) -> list[Result]:
    moves = 20 if quick else 150
    with training_job():
        return [_one((2048, 2048), moves, True), _one((4096, 4096), moves, True)]

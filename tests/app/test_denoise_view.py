"""The raw | denoised view of denoise projects: linked zoom, shared contrast, split slider, Z planes."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")


def test_panels_share_zoom_and_contrast_and_split_shows_both(qtbot):
    from app.gui.denoise_view import DenoiseView

    view = DenoiseView()
    qtbot.addWidget(view)
    rng = np.random.default_rng(0)
    raw = rng.poisson(20, (3, 40, 50)).astype(np.float32)
    view.set_images(raw[None], np.full_like(raw, 20.0), "raw | denoised")
    assert view.z_slider.isVisibleTo(view) and view.z_slider.maximum() == 2
    view.vb_raw.setRange(xRange=(5, 15), yRange=(5, 15), padding=0)
    assert np.allclose(view.vb_den.viewRange(), view.vb_raw.viewRange())  # linked zoom and pan
    lo, hi = view.levels()
    assert tuple(view.den_item.levels) == pytest.approx((lo, hi))  # denoised shown on the raw contrast
    view.split.setChecked(True)
    view.slider.setValue(400)
    assert not view.vb_den.isVisible()
    assert view.split_item.image.shape == (40, 20)  # the left 40 % is the denoised image
    view.z_slider.setValue(2)
    assert view.z == 2


def test_mismatched_or_missing_output_is_not_shown(qtbot):
    from app.gui.denoise_view import DenoiseView

    view = DenoiseView()
    qtbot.addWidget(view)
    view.set_images(np.zeros((30, 30), np.float32), np.zeros((20, 20), np.float32))
    assert view.denoised is None and "no denoised output" in view.caption.text()
    view.set_images(np.zeros((30, 30), np.float32), None)
    assert view.den_item.image is None


# ------------------------------------------------------------------------------ the window, as a person uses it
@pytest.fixture
def denoise_project(tmp_path):
    """Two noisy 48² images, a denoise project trained (tiny N2V, a few steps) and scored."""
    import tifffile

    from annotation.loop import score, train_round
    from annotation.setup import init_project
    from tests.conftest import make_fast

    rng = np.random.default_rng(0)
    folder = tmp_path / "noisy"
    folder.mkdir()
    yy, xx = np.mgrid[:48, :48]
    for i in range(2):
        clean = 20 + 60 * (((yy - 20 - 6 * i) ** 2 + (xx - 30) ** 2) < 150)
        tifffile.imwrite(folder / f"img{i}.tif", rng.poisson(clean).astype(np.uint16))
    project, _ = init_project(tmp_path / "proj", folder, task="denoise")
    make_fast(project, steps=6)
    config = dict(project.config)
    config["model"] = {**config["model"], "params": {"depth": 1, "num_channels_init": 4}, "head_features": 4}
    config["data"] = {**config["data"], "patch_size": [16, 16]}
    config["inference"] = {**config["inference"], "roi_size": [32, 32]}
    config["uncertainty"] = {**config["uncertainty"], "passes": 2}
    project.save_config(config)
    assert train_round(project).accepted
    assert score(project) == 2
    project.close()
    return tmp_path / "proj"


def test_denoise_window_compares_raw_and_denoised_in_place_of_the_canvas(denoise_project, reopen, qtbot):
    """A person opens a trained denoise project: raw | denoised stand where the painting canvas would (no
    paint tools, no label actions), a wheel turn on the raw panel zooms both, *Split* and the slider show
    the denoised part left of the line, *Done → next* moves both panels to the next image; the queue's
    scores and the model's words read as numbers a person can use (not 0.000, not a PSNR in %)."""
    from gui_actions import press, tick
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from app.gui import workers
    from im2im_engine.io import to_spatial
    from im2im_engine.n2v import to_raw_units

    window = reopen(denoise_project)
    view = window.denoise_view
    assert view.isVisible() and not window.view.isVisible()
    assert not window.docks["Tools"].isVisible() and not window.menus["tools"].menuAction().isVisible()
    assert not window.actions["tool:brush"].isEnabled() and not window.actions["accept"].isEnabled()
    assert not window.review.reset_button.isVisible() and window.review.done_button.isEnabled()

    first = window.view.loaded.record.name
    qtbot.waitUntil(lambda: view.denoised is not None, timeout=10_000)
    assert view.caption.text() == f"{first}: raw | denoised by v1"
    # the panel shows the stored output in the image's units, on the raw image's contrast
    project = window.project
    with np.load(workers.uncertainty_file(project, 1, first)) as npz:
        stored = npz["output"]
    raw = to_spatial(np.asarray(window.view.loaded.data, np.float32), 2)
    expected = to_raw_units(stored, raw, project.engine_config())[0]
    np.testing.assert_allclose(view.den_item.image, expected, rtol=1e-5, atol=1e-3)
    assert tuple(view.den_item.levels) == pytest.approx(view.levels())

    # zoom by the mouse wheel over the raw panel: the denoised panel follows
    before = np.array(view.vb_den.viewRange())
    port = view.glw.viewport()
    centre = view.glw.mapFromScene(view.vb_raw.mapViewToScene(QPointF(24, 24)))
    wheel = QWheelEvent(QPointF(centre), QPointF(port.mapToGlobal(centre)), QPoint(0, 0), QPoint(0, 240),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                        False)
    QApplication.sendEvent(port, wheel)
    QApplication.processEvents()
    after = np.array(view.vb_den.viewRange())
    assert (after[:, 1] - after[:, 0] < before[:, 1] - before[:, 0]).all()  # zoomed in
    np.testing.assert_allclose(after, np.array(view.vb_raw.viewRange()))

    tick(view.split)
    assert view.split.isChecked() and not view.vb_den.isVisible() and view.slider.isVisible()
    assert view.split_item.image.shape[1] == 24  # the line starts in the middle
    view.slider.setFocus()
    for _ in range(10):  # the arrow key, 1 % of the width a press
        QTest.keyClick(view.slider, Qt.Key.Key_Right)
    QApplication.processEvents()
    assert view.split_item.image.shape[1] == round(0.6 * 48)

    box = window.queue.strategy  # the queue ranks by the TTA variance: a denoise output has no entropy
    assert [box.itemText(i) for i in range(box.count())] == ["variance", "batch_diversity", "random"]
    assert box.currentText() == "variance" and window.project.loop.strategy == "variance"
    scores = {e.name: e.score for e in window.queue.entries}
    model = window.queue.table.model()
    for row in range(model.rowCount()):
        name, text = model.index(row, 1).data(), model.index(row, 2).data()
        assert float(text) == pytest.approx(scores[name], rel=5e-3)  # three significant digits, not 0.000
    feedback = window.training.feedback.text()
    assert "dB blind-spot PSNR" in feedback and "%" not in feedback and "pseudo label" not in feedback

    press(window.review.done_button)
    qtbot.waitUntil(lambda: window.view.loaded is not None and window.view.loaded.record.name != first,
                    timeout=10_000)
    second = window.view.loaded.record.name
    qtbot.waitUntil(lambda: view.caption.text() == f"{second}: raw | denoised by v1", timeout=10_000)
    store = window.project.store
    assert store.find_image(first).review == "done"
    qtbot.waitUntil(lambda: window.training.counter.text().startswith("1 image reviewed since v1"), timeout=5000)
    assert window.training.every.suffix() == " reviewed"
    # the learning curve has its point: v1's blind-spot PSNR on the image left out of its round
    assert window.training.curve.getPlotItem().getAxis("bottom").labelText == "images reviewed"
    xs, ys = window.training.curve_item.getData()
    assert list(xs) == [0] and ys[0] == pytest.approx(store.model(1)["metrics"]["check"]["child"])


def test_denoise_window_on_a_stack_follows_the_window_z_plane(tmp_path, reopen, qtbot):
    """3D: the panels open on the plane the window opens the stack on, Page Up (the window's key) moves
    them a plane, and dragging their own Z slider moves the window's plane (one Z for everything)."""
    import tifffile
    from gui_actions import key
    from PySide6.QtCore import Qt

    from annotation.loop import score, train_round
    from annotation.setup import init_project

    rng = np.random.default_rng(1)
    folder = tmp_path / "stacks"
    folder.mkdir()
    zz, yy, xx = np.mgrid[:12, :32, :32]
    clean = 20 + 60 * (((zz - 6) ** 2 + (yy - 16) ** 2 + (xx - 14) ** 2) < 40)
    tifffile.imwrite(folder / "stack.tif", rng.poisson(clean).astype(np.uint16))
    project, _ = init_project(tmp_path / "proj", folder, task="denoise")
    assert project.engine_config().data.spatial_dims == 3
    config = dict(project.config)  # tests.conftest.make_fast is for 2D projects
    config["training"] = {**config["training"], "steps": 3, "batch_size": 2, "val_every": 3}
    config["model"] = {**config["model"], "params": {"depth": 1, "num_channels_init": 4}, "head_features": 4}
    config["data"] = {**config["data"], "patch_size": [12, 16, 16]}
    config["inference"] = {**config["inference"], "roi_size": [12, 32, 32], "sw_batch_size": 2}
    config["uncertainty"] = {**config["uncertainty"], "passes": 2}
    config["loop"] = {**config.get("loop", {}), "min_agreement": 0.0}
    project.save_config(config)
    assert train_round(project).accepted and score(project) == 1
    project.close()

    window = reopen(tmp_path / "proj")
    view = window.denoise_view
    qtbot.waitUntil(lambda: view.denoised is not None, timeout=10_000)
    assert view.denoised.shape == (12, 32, 32) and view.z_slider.isVisible()
    assert view.z == window.view.z == 6
    key(window, Qt.Key.Key_PageUp)
    assert window.view.z == 7 and view.z == 7
    np.testing.assert_array_equal(view.raw_item.image, view.raw[7])
    view.z_slider.setValue(2)  # what a drag of the handle ends in
    assert window.view.z == 2 and view.z == 2


def test_denoise_window_exports_the_denoised_images(denoise_project, reopen, tmp_path, qtbot):
    """File → Export… in a denoise project offers the model and the denoised images, not labels; a person
    picks the last format, types a folder, clicks Export and gets one float32 file per image."""
    import tifffile
    from gui_actions import menu_action, press
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    window = reopen(denoise_project)
    menu_action(window, "File", "Export").trigger()
    dialog = window.export_dialog
    qtbot.waitExposed(dialog)
    offered = [dialog.format.itemData(i) for i in range(dialog.format.count())]
    assert offered == ["torchscript", "onnx", "bioimageio", "denoised"]
    assert not dialog.versions.isVisible()  # no "Labels" choice: there are none
    dialog.format.setFocus()
    QTest.keyClick(dialog.format, Qt.Key.Key_End)
    assert dialog.chosen_format == "denoised" and dialog.version.isEnabled() and dialog.version.currentData() == 1
    assert dialog.output.text().startswith(str(window.project.exports_dir / "denoised-v1-"))
    out = tmp_path / "denoised_export"
    dialog.output.selectAll()
    QTest.keyClicks(dialog.output, str(out))
    with qtbot.waitSignal(dialog.finished_export, timeout=60_000) as blocker:
        press(dialog.run_button)
    report = blocker.args[0]
    assert not isinstance(report, Exception), report
    assert report.n_images == 2 and "exported 2 images denoised by v1" in dialog.status.text()
    assert not dialog.cancel_button.isVisible()
    for name in ("img0", "img1"):
        got = tifffile.imread(out / "denoised" / f"{name}.ome.tif")
        assert got.dtype == np.float32 and got.shape == (48, 48) and np.isfinite(got).all()
    assert (out / "denoised.csv").read_text().count("\n") == 3  # header + two images

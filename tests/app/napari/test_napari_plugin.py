"""The plugin driven in a real napari viewer (headless): sample -> project -> paint -> undo -> round ->
re-ranked queue -> export, and the reader, the writer and the manifest.

Every check reads the project's store (or files on disk), never only the widgets: what napari shows must be
what the project holds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from annotation.store import provenance as prov
from tests.app.napari.napari_helpers import stroke, wait_image

# generous: on a busy shared 2-core machine creating a project alone has taken a minute (no timing is asserted)
pytestmark = [pytest.mark.gui, pytest.mark.timeout(900)]


def _project_from_sample(qtbot, viewer, docked, root: Path, n: int = 4, size: int = 96):
    from tests.conftest import make_fast

    layers = viewer.open_sample("im2im-active", "nuclei", n_images=n, size=size)
    assert [layer.name for layer in layers] == [f"nuclei_{i:03d}" for i in range(n)]
    widget = docked["Project"]
    with qtbot.waitSignal(widget.created, timeout=300_000) as created:
        widget.create_from_layers(root, list(viewer.layers), task="instance", labels="otsu")
    project = created.args[0]
    assert not isinstance(project, Exception), project
    session = widget.session
    wait_image(qtbot, session)
    make_fast(project)  # config only: a round takes seconds
    return project, session


def test_manifest_contributions_import():
    from npe2 import PluginManifest

    from app.napari import MANIFEST, PLUGIN, WIDGETS

    manifest = PluginManifest.from_file(MANIFEST)
    assert manifest.name == PLUGIN
    assert [w.display_name for w in manifest.contributions.widgets] == list(WIDGETS)
    for command in manifest.contributions.commands:
        module, _, attr = command.python_name.partition(":")
        assert callable(getattr(__import__(module, fromlist=[attr]), attr)), command.id
    assert manifest.contributions.readers[0].accepts_directories


@pytest.mark.slow
@pytest.mark.timeout(1500)  # a round on 2 busy shared cores can take minutes; the default 300 s is per test
def test_the_loop_inside_napari(qtbot, viewer, docked, tmp_path):
    """Sample -> project from the layers -> a stroke is a stored correction -> undo in napari undoes it in
    the store -> Done → next -> a round in the worker process -> model accepted, queue re-ranked -> export."""
    project, session = _project_from_sample(qtbot, viewer, docked, tmp_path / "proj")
    store = project.store
    queue = docked["Queue"]
    qtbot.waitUntil(lambda: len(queue.entries) == 4, timeout=120_000)
    assert all(e.score is None for e in queue.entries)  # no model yet: not ranked
    assert not any(layer.name.startswith("nuclei_") and layer not in session.image_layers
                   and layer not in session.layers.values() for layer in viewer.layers)  # sources removed

    # ---- a stroke on the Labels layer is ONE stored correction, its pixels painted by a person
    image_id = session.image_id
    labels = session.layers["labels"]
    start = np.array(labels.data, copy=True)
    assert np.array_equal(start, store.get_label(image_id, "pseudo"))  # starts from the pseudo label
    stroke(labels, [(20, 20), (20, 40), (30, 50)], value=9)
    changed = labels.data != start
    assert changed.sum() > 50
    session.writer.flush()
    history = store.history(image_id)
    assert [(h["kind"], h["undone"]) for h in history] == [("stroke", 0)]
    assert np.array_equal(store.get_label(image_id, "corrected"), labels.data)
    codes = store.get_provenance(image_id)
    assert np.array_equal(codes == prov.PAINTED, changed)
    assert set(np.unique(codes[~changed])) == {prov.PSEUDO}
    assert store.image(image_id).review == "in_progress"

    # ---- undo in napari (Ctrl+Z calls layer.undo()) is undo in the store; redo likewise
    labels.undo()
    assert np.array_equal(labels.data, start)
    assert [h["undone"] for h in store.history(image_id)] == [1]
    assert np.array_equal(store.get_label(image_id, "corrected"), start)
    assert not (store.get_provenance(image_id) == prov.PAINTED).any()
    labels.redo()
    assert [h["undone"] for h in store.history(image_id)] == [0]
    assert np.array_equal(store.get_label(image_id, "corrected"), labels.data)
    assert (labels.data == 9).sum() == changed.sum()

    # ---- Done → next: stored as done, the next image of the queue opens
    queue.done_next()
    qtbot.waitUntil(lambda: session.image_id not in (None, image_id), timeout=120_000)
    assert store.image(image_id).review == "done"
    assert store.review_counts()["done"] == 1

    # ---- a round in the engine worker process: a model is accepted, the queue re-ranked by it
    with qtbot.waitSignal(session.round_finished, timeout=1_200_000) as finished:
        docked["Train"].start()
    result = finished.args[0]
    assert not isinstance(result, Exception), result
    assert result.accepted and result.version == 1 and store.current_model == 1
    assert result.check["accepted"] is True and result.check["rule"]
    qtbot.waitUntil(lambda: queue.entries and queue.entries[0].score is not None, timeout=120_000)
    ranked = [e for e in queue.entries if e.state != "done"]
    assert len(ranked) == 3 and all(e.score is not None for e in ranked)
    assert [e.score for e in ranked] == sorted((e.score for e in ranked), reverse=True)
    assert queue.entries[-1].image_id == image_id  # done images at the end, not proposed
    assert "prediction" in session.layers  # the open image shows the new model's prediction
    assert np.array_equal(session.layers["prediction"].data, store.get_label(session.image_id, "prediction"))
    assert "v1" in docked["Train"].models.item(0, 0).text()

    # ---- export the corrected labels: the files hold what the store holds
    from im2im_engine import io

    export = docked["Export"]
    with qtbot.waitSignal(export.finished, timeout=300_000) as done:
        export.export("labels", tmp_path / "labels-export")
    report = done.args[0]
    assert not isinstance(report, Exception), report
    files = sorted((tmp_path / "labels-export").rglob("*.tif"))
    assert len(files) == 1
    assert np.array_equal(io.read_mask(files[0]), store.get_label(image_id, "corrected"))


def test_undo_reaches_strokes_of_an_earlier_visit_and_the_ignore_mask(qtbot, viewer, docked, tmp_path):
    """History lives in the store: a stroke made before switching images is undone after coming back;
    the ignore layer is stored as the ignore mask (0/1) and shares the same history."""
    project, session = _project_from_sample(qtbot, viewer, docked, tmp_path / "proj", n=3, size=64)
    store = project.store
    first = session.image_id
    start = np.array(session.layers["labels"].data, copy=True)
    stroke(session.layers["labels"], [(10, 10), (10, 30)], value=4, size=3)
    stroke(session.layers["ignore"], [(40, 40)], value=6, size=2)  # any label on the ignore layer means "ignore"
    session.writer.flush()
    ignore = store.get_label(first, "ignore")
    assert set(np.unique(ignore)) == {0, 1} and np.array_equal(ignore, session.layers["ignore"].data)

    other = next(e.image_id for e in docked["Queue"].entries if e.image_id != first)
    session.open_image(other)
    wait_image(qtbot, session, other)
    session.open_image(first)
    wait_image(qtbot, session, first)
    labels = session.layers["labels"]
    assert (labels.data == 4).any()  # the correction is what opens
    labels.undo()  # newest first: the ignore stroke
    assert not store.get_label(first, "ignore").any() and not session.layers["ignore"].data.any()
    session.layers["ignore"].undo()  # either layer's undo steps the image's one history
    assert np.array_equal(labels.data, start)
    assert np.array_equal(store.get_label(first, "corrected"), start)
    assert [h["undone"] for h in store.history(first)] == [1]


def test_reader_opens_a_project_folder_and_the_session_takes_it_over(qtbot, viewer, docked, tmp_path):
    from annotation.setup import init_project
    from app.napari._io import get_reader
    from resources.demo import write_demo_dataset

    images, _ = write_demo_dataset(tmp_path / "data", n_images=2, size=64, seed=4)
    project, _ = init_project(tmp_path / "proj", images, pseudo="otsu", task="semantic")
    project.close()
    root = tmp_path / "proj"
    assert get_reader(str(tmp_path / "data")) is None
    reader = get_reader(str(root))
    layers = reader(str(root))
    assert [kind for _, _, kind in layers] == ["image", "labels"]
    assert layers[1][1]["name"].endswith("pseudo")

    viewer.open(str(root), plugin="im2im-active")
    session = docked["Project"].session
    wait_image(qtbot, session)
    assert session.project is not None and session.project.root == root.resolve()
    reader_layers = [layer for layer in viewer.layers if (layer.metadata or {}).get("im2im_reader")]
    assert reader_layers == []  # replaced by the session's editable layers
    stroke(session.layers["labels"], [(30, 30)], value=1, size=4)
    session.writer.flush()
    assert len(session.project.store.history(session.image_id)) == 1


def test_writer_saves_a_labels_layer_as_ome_tiff_with_pixel_sizes(tmp_path):
    from app.napari._io import write_labels
    from im2im_engine import io

    data = np.zeros((3, 20, 30), np.int32)
    data[1, 5:9, 4:12] = 7
    written = write_labels(str(tmp_path / "mask.ome.tif"), data, {"scale": [2.0, 0.25, 0.5], "name": "m"})
    assert written == [str(tmp_path / "mask.ome.tif")]
    back = io.read_image(written[0])
    assert np.array_equal(back.data[0], data)
    assert back.info.physical_pixel_sizes == (2.0, 0.25, 0.5)
    with pytest.raises(ValueError, match=">= 0"):
        write_labels(str(tmp_path / "bad.ome.tif"), -data, {"scale": [1, 1, 1]})


def test_projects_from_a_folder_and_from_labels_layers(qtbot, viewer, docked, tmp_path):
    """The two other ways in: a folder (referenced, not copied) and image layers whose Labels layers
    (e.g. another tool's masks) become the pseudo labels."""
    from resources.demo import make_nuclei_2d, write_demo_dataset

    images, _ = write_demo_dataset(tmp_path / "data", n_images=2, size=64, seed=2)
    widget, session = docked["Project"], docked["Project"].session
    with qtbot.waitSignal(widget.created, timeout=300_000) as created:
        widget.create_from_folder(tmp_path / "from-folder", images, task="semantic", labels="otsu")
    project = created.args[0]
    assert not isinstance(project, Exception), project
    paths = sorted(Path(im.path) for im in project.store.images())
    assert paths == sorted(p.resolve() for p in images.glob("*.tif"))  # the user's files, by path
    assert all(project.store.has_label(im.id, "pseudo") for im in project.store.images())
    wait_image(qtbot, session)

    image, truth = make_nuclei_2d(7, size=64)
    viewer.add_image(image, name="cells", scale=(0.5, 0.5))
    viewer.add_labels(truth, name="cells masks")
    viewer.add_image(image[::-1].copy(), name="other")  # no Labels layer of its own: left without a label
    layers = [layer for layer in viewer.layers if layer.name in ("cells", "other")]
    with qtbot.waitSignal(widget.created, timeout=300_000) as created:
        widget.create_from_layers(tmp_path / "from-layers", layers, task="instance", labels="layers")
    project = created.args[0]
    assert not isinstance(project, Exception), project
    by_name = {im.name: im for im in project.store.images()}
    assert set(by_name) == {"cells", "other"}
    assert np.array_equal(project.store.get_label(by_name["cells"].id, "pseudo"), truth)
    assert not project.store.has_label(by_name["other"].id, "pseudo")
    from im2im_engine import io

    assert io.image_info(by_name["cells"].path).physical_pixel_sizes[1:] == (0.5, 0.5)  # scale kept
    assert session.project is project
    assert not any(layer.name in ("cells", "cells masks", "other") for layer in viewer.layers)  # now in the project


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_stopping_and_closing_mid_round_stop_the_worker_process(qtbot, viewer, docked, tmp_path):
    """Stop ends the engine worker and keeps the model as it was; so does the viewer closing (the session
    waits for the job to end before it closes the project)."""
    import os

    from annotation.project import Project

    project, session = _project_from_sample(qtbot, viewer, docked, tmp_path / "proj", n=3, size=64)
    root = project.root
    store = project.store
    with qtbot.waitSignal(session.round_finished, timeout=300_000) as finished:
        docked["Train"].start(steps=100_000)  # far more than it will get to do
        qtbot.waitUntil(lambda: bool(store.jobs("running")), timeout=240_000)  # the worker process is up
        docked["Train"].stop_button.click()
    assert finished.args[0].cancelled and store.current_model is None
    assert [j["status"] for j in store.jobs()] == ["cancelled"]

    session.start_round(100_000)
    qtbot.waitUntil(lambda: bool(store.jobs("running")), timeout=240_000)
    pid = store.jobs("running")[0]["pid"]
    session.shutdown()  # what the viewer closing does (its last plugin widget going)
    assert session.project is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with Project.open(root) as again:
        assert [j["status"] for j in again.store.jobs()] == ["cancelled", "cancelled"]
        assert again.store.current_model is None and again.store.models() == []

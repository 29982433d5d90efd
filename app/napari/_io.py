"""The plugin's reader (a project folder -> layers), writer (a Labels layer -> OME-TIFF) and sample data.

Reader: a folder with a ``project.db`` opens as the top-ranked image of its queue and the label it would be
corrected from (corrected, else prediction, else pseudo). With a plugin widget docked, the session takes
these layers over (editable, every stroke stored); without one they are plain layers to look at.

Writer: a Labels layer as an OME-TIFF with the layer's scale as physical pixel sizes (µm), int32, written
atomically; what ``im2im-active init --labels`` and every OME-TIFF reader read back.

Sample data: the demo nuclei of ``make run`` (:mod:`resources.demo`), a few synthetic fluorescence fields
whose Otsu pseudo labels are visibly imperfect, so a first round has something to fix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

#: Images in the sample (256² each): enough for a first round and a queue worth ranking.
SAMPLE_IMAGES = 8


# -------------------------------------------------------------------------------------------- reader
def _project_root(path: Any) -> Path | None:
    if isinstance(path, list | tuple):
        if len(path) != 1:
            return None
        path = path[0]
    if not isinstance(path, str | os.PathLike):
        return None
    root = Path(path)
    if root.name == "project.db":
        root = root.parent
    return root if (root / "project.db").is_file() else None


def get_reader(path: Any):
    """npe2 reader contribution: a reader function for a project folder (or its project.db), else None."""
    return read_project if _project_root(path) is not None else None


def read_project(path: Any) -> list[tuple]:
    """Layers of the project's top-ranked image: the image (one layer per channel) and its best label."""
    from annotation import loop
    from annotation.editing import start_from
    from annotation.project import Project
    from im2im_engine import io

    root = _project_root(path)
    if root is None:
        raise ValueError(f"{path}: not an im2im-active project (no project.db)")
    with Project.open(root) as project:
        store = project.store
        entries = [e for e in loop.queue(project) if e.state != "done"] or loop.queue(project)
        if not entries:
            return []
        record = store.image(entries[0].image_id)
        img = io.read_image(record.path, 0)
        label = store.get_label(record.id, "corrected")
        source = "corrected"
        if label is None:
            label, source = start_from(store, record.id)
    ndim = len(record.spatial_shape)
    sizes = tuple(img.info.physical_pixel_sizes)[-ndim:]
    scale = tuple(float(s) if s else 1.0 for s in sizes)
    data = img.data[:, 0] if ndim == 2 else img.data
    meta = {"im2im_project": str(root.resolve()), "im2im_image_id": record.id, "im2im_reader": True}
    kwargs: dict[str, Any] = {"name": record.name, "scale": scale, "metadata": meta}
    if data.shape[0] > 1:
        kwargs.update(channel_axis=0, name=[f"{record.name} [{c}]" for c in record.channel_names])
        layers = [(data, kwargs, "image")]
    else:
        layers = [(data[0], kwargs, "image")]
    if label is not None:
        layers.append((np.asarray(label, np.int32).reshape(record.spatial_shape),
                       {"name": f"{record.name} {source}", "scale": scale, "metadata": meta, "opacity": 0.6},
                       "labels"))
    return layers


# -------------------------------------------------------------------------------------------- writer
def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    """npe2 single-layer writer: a Labels layer as OME-TIFF with pixel sizes from its scale."""
    from im2im_engine import io

    array = np.asarray(data[0] if meta.get("multiscale") else data)
    if array.ndim not in (2, 3, 4):
        raise ValueError(f"a label image is (Y, X), (Z, Y, X) or (T, Z, Y, X); this layer has {array.ndim} axes")
    if array.size and int(array.min()) < 0:
        raise ValueError("label values must be >= 0")
    if array.size and int(array.max()) > np.iinfo(np.int32).max:
        raise ValueError("label values exceed int32")
    scale = [float(s) for s in (meta.get("scale") or [1.0] * array.ndim)]
    spatial = min(array.ndim, 3)
    sizes = scale[-spatial:]
    pps = (None, *sizes) if spatial == 2 else tuple(sizes)
    order = {2: "YX", 3: "ZYX", 4: "TZYX"}[array.ndim]
    target = Path(path)
    if not target.name.lower().endswith((".ome.tif", ".ome.tiff")):
        target = target.with_name(target.name + ".ome.tif") if not target.suffix else target
    io.write_ome_tiff(target, array.astype(np.int32), dim_order=order, physical_pixel_sizes=pps)
    return [str(target)]


# ---------------------------------------------------------------------------------------- sample data
def demo_nuclei(n_images: int = SAMPLE_IMAGES, size: int = 256) -> list[tuple]:
    """npe2 sample data: synthetic nuclei fields (the demo project's recipe), one Image layer each."""
    from resources.demo import make_nuclei_2d

    return [(make_nuclei_2d(i, size=size)[0], {"name": f"nuclei_{i:03d}", "colormap": "gray"}, "image")
            for i in range(n_images)]

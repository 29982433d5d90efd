"""What a denoise project delivers besides its model: every image, denoised, beside where it came from.

Why a format of its own: a Noise2Void project has no labels, so ``labels`` and ``pairs`` would hand a
biologist empty masks. ``denoised`` writes, for every usable image (test split included: it is the data),
``OUTPUT/denoised/NAME.ome.tif`` as float32 in the raw image's own units (the engine's normalisation undone,
:func:`im2im_engine.n2v.to_raw_units`), so the file opens next to the raw one at one contrast; timepoint 0,
the source's channel names and pixel sizes (none invented). ``denoised.csv`` maps each file to its source
and ``provenance.json`` says which model made it. The output is what the app shows: the model's sliding
windows, averaged over the trained flips when the config's ``inference.tta`` says so.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from im2im_engine.atomic import follow_umask, replace_dir

from .export import (
    ExportFailed,
    ExportReport,
    Progress,
    _file_names_for,
    _not_for_task,
    _staged,
    provenance,
    source_pixel_sizes,
)
from .project import Project
from .store.db import now
from .trainset import usable_images

DENOISED_CSV_FIELDS = ("image", "image_path", "denoised_file", "split", "model_version", "units", "pixel_size")


def export_denoised(project: Project, output: str | os.PathLike, *, version: int | None = None,
                    overwrite: bool = False, progress: Progress | None = None,
                    should_stop: Callable[[], bool] | None = None) -> ExportReport:
    """Denoise every usable image with model ``version`` (default: the current one) into ``output``.

    All or nothing: the files are staged and moved into place at the end, so a failure or a cancel
    (``should_stop``) leaves no half export. An image that cannot be read now stops the export with its
    file named: a denoised data set with holes would be quietly wrong.
    """
    from im2im_engine import CheckpointError, Engine, __version__, io
    from im2im_engine.exported import write_denoised

    if project.task != "denoise":
        raise ExportFailed(_not_for_task(project, "denoised"))
    prov = provenance(project, version)
    images = usable_images(project.store)
    if not images:
        raise ExportFailed(f"{project.root}: no usable images to denoise")
    output = Path(output)
    model_version = prov["model"]["version"]
    if progress:
        progress(0, len(images), f"loading v{model_version}")
    try:
        engine = Engine.load(project.root / prov["model"]["checkpoint"])
    except CheckpointError as exc:
        raise ExportFailed(str(exc)) from None
    cfg = engine.config
    names = _file_names_for(images)
    tmp = _staged(output, overwrite)
    try:
        (tmp / "denoised").mkdir()
        table = []
        for i, image in enumerate(images):
            if should_stop is not None and should_stop():
                raise ExportFailed("export cancelled: nothing was written")
            if progress:
                progress(i, len(images), image.name)
            try:
                img = io.read_image(image.path)
                x = io.to_spatial(img.data, cfg.data.spatial_dims)
                denoised = engine.predict(x).output
            except (io.ImageReadError, ValueError, OSError) as exc:
                raise ExportFailed(f"{image.path}: cannot denoise it ({' '.join(str(exc).split())}); "
                                   "nothing was written") from None
            rel = f"denoised/{names[image.id]}.ome.tif"
            sizes, note = source_pixel_sizes(image)
            write_denoised(tmp / rel, denoised, x, img.info.channel_names, cfg, **sizes.writer_kwargs())
            table.append({"image": image.name, "image_path": image.path, "denoised_file": rel,
                          "split": image.split or "", "model_version": model_version,
                          "units": "the raw image's (float32)", "pixel_size": note})
        with open(tmp / "denoised.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=DENOISED_CSV_FIELDS)
            writer.writeheader()
            writer.writerows(table)
        meta = {"software": "im2im-active", "engine_version": __version__, "exported_at": now(),
                "format": "denoised", "project": str(project.root), "task": project.task,
                "n_images": len(table), "tta": bool(cfg.inference.tta), "model": prov["model"],
                "lineage": prov["lineage"], "config": prov["config"]}
        (tmp / "provenance.json").write_text(json.dumps(meta, indent=2, default=str))
        follow_umask(tmp)
        replace_dir(tmp, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if progress:
        progress(len(images), len(images), "done")
    project.store.log("export", format="denoised", path=str(output), model_version=model_version,
                      n_images=len(table))
    return ExportReport("denoised", output, model_version, ["denoised.csv", "provenance.json", "denoised/"], {},
                        len(table))

"""What leaves a project: models with provenance, corrected labels, training pairs; and a model coming in.

Why provenance is assembled here and not in the engine: only the store knows which model version this
is, which rounds led to it, on which training set (hash) and how many corrected images, and how it did on
the held-out ones. The engine writes the files (:mod:`im2im_engine.export`); this module says what they
describe. Label exports read straight from the store, so "export then read back" equals what the app
shows, and the CSV carries the who/when/how-long of every corrected image.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from im2im_engine.atomic import follow_umask, replace_dir, sha256
from im2im_engine.calibration import UNCALIBRATED, CalibrationError, PixelSizes, read_pixel_sizes

from .project import Project, ProjectError
from .store import ImageRecord, StoreError
from .store.db import now
from .trainset import training_weights, weight_map

Progress = Callable[[int, int, str], None]
MODEL_FORMATS = ("torchscript", "onnx", "bioimageio")
DATA_FORMATS = ("labels", "pairs", "denoised")
FORMATS = MODEL_FORMATS + DATA_FORMATS
#: Formats that run a model version (``--model-version``): the models, and a denoise project's outputs.
USES_MODEL = (*MODEL_FORMATS, "denoised")
#: Which stored label an ``--versions all`` export takes per image, best first.
LABEL_PREFERENCE = ("corrected", "prediction", "pseudo")
#: Training pairs learn from corrected, else pseudo labels (as the loop does); predictions come last.
PAIR_PREFERENCE = ("corrected", "pseudo", "prediction")


class ExportFailed(ProjectError):
    """An export or import the user can fix: the message names the file and the problem."""


@dataclass
class ExportReport:
    format: str
    path: Path
    model_version: int | None = None
    files: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)
    n_images: int = 0

    def summary(self) -> str:
        if self.format in MODEL_FORMATS:
            what = f"model v{self.model_version} as {self.format}"
        elif self.model_version is not None:
            what = f"{self.n_images} images {self.format} by v{self.model_version}"
        else:
            what = f"{self.n_images} {self.format}"
        diffs = {k: v for k, v in self.checks.items() if k.endswith("max_abs_diff") and "eager" not in k}
        extra = "; " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()) if diffs else ""
        return f"exported {what} to {self.path}{extra}"


# ------------------------------------------------------------------------------------------ provenance
def resolve_version(project: Project, version: int | None) -> dict:
    """The model row to export: ``version`` if given, else the current accepted model."""
    store = project.store
    if version is None:
        version = store.current_model
        if version is None:
            raise ExportFailed(f"{project.root}: no model yet; run `im2im-active train {project.root}` first")
    try:
        return store.model(int(version))
    except StoreError:
        have = ", ".join(f"v{m['version']}" for m in store.models()) or "none"
        raise ExportFailed(f"{project.root}: no model version {version} (versions: {have})") from None


def provenance(project: Project, version: int | None = None) -> dict:
    """Everything needed to say where a model comes from, as plain JSON."""
    from im2im_engine import __version__

    from .loop import PRIMARY_METRIC

    store = project.store
    row = resolve_version(project, version)
    by_version = {m["version"]: m for m in store.models()}
    lineage, v = [], row["version"]
    while v is not None and v in by_version and len(lineage) < 1000:
        m = by_version[v]
        lineage.append({k: m[k] for k in ("version", "round", "status", "metrics", "n_corrected", "n_pseudo",
                                          "train_set_hash", "created_at", "note")})
        v = m["parent"]
    ckpt = project.root / row["path"]
    n_corrected_now = int(store.scalar("SELECT COUNT(DISTINCT image_id) FROM labels WHERE version = 'corrected'"))
    return {
        "name": f"{project.root.name} v{row['version']}",
        "software": "im2im-active",
        "engine_version": __version__,
        "exported_at": now(),
        "project": str(project.root),
        "task": project.task,
        "model": {
            "version": row["version"], "status": row["status"], "parent": row["parent"], "round": row["round"],
            "created_at": row["created_at"], "train_set_hash": row["train_set_hash"],
            "n_corrected": row["n_corrected"], "n_pseudo": row["n_pseudo"], "metrics": row["metrics"],
            "note": row["note"], "checkpoint": row["path"],
            "checkpoint_sha256": sha256(ckpt) if ckpt.exists() else None,
        },
        "training_set_hash": row["train_set_hash"],
        "n_corrected_images": row["n_corrected"],
        "rounds": len(lineage),
        "validation_metrics": row["metrics"],
        "primary_metric": PRIMARY_METRIC.get(project.task),
        "lineage": lineage[::-1],
        "corrected_images_in_project": n_corrected_now,
        "config": _model_config(project, row),
        "config_history": store.get_meta("config_history", []),  # e.g. `auto --apply`: which search, why
    }


def _model_config(project: Project, row: dict) -> dict:
    """The resolved config the model was trained with (``config.yaml`` beside it), else the project's."""
    import yaml

    path = (project.root / row["path"]).parent / "config.yaml"
    if path.exists():
        return yaml.safe_load(path.read_text()) or {}
    from im2im_engine.config import config_to_dict

    return config_to_dict(project.engine_config())


# ------------------------------------------------------------------------------------------ model export
def _sample_image(project: Project) -> np.ndarray | None:
    """A raw image to cut the test tensors from: the first corrected image, else the first usable one."""
    from im2im_engine import io

    from .trainset import corrected_ids, usable_images

    cfg = project.engine_config()
    usable = {im.id: im for im in usable_images(project.store)}
    order = [i for i in corrected_ids(project.store) if i in usable] + list(usable)
    for image_id in order:
        try:
            return io.to_spatial(io.read_image(usable[image_id].path).data, cfg.data.spatial_dims)
        except (io.ImageReadError, ValueError):
            continue
    return None


def export_model(project: Project, fmt: str, output: str | os.PathLike, *, version: int | None = None,
                 overwrite: bool = False, progress: Progress | None = None) -> ExportReport:
    """Export model ``version`` (default: the current accepted one) as torchscript, onnx or bioimageio."""
    from im2im_engine import CheckpointError, Engine
    from im2im_engine.export import ExportError
    from im2im_engine.export import export_model as engine_export

    if fmt not in MODEL_FORMATS:
        raise ExportFailed(f"model format must be one of {', '.join(MODEL_FORMATS)} (got {fmt!r})")
    prov = provenance(project, version)
    ckpt = project.root / prov["model"]["checkpoint"]
    settings = project.export_settings
    meta = {"name": f"im2im-active {project.task} v{prov['model']['version']}", "license": settings.license,
            "authors": [a.model_dump(exclude_none=True) for a in settings.authors],
            "maintainers": [m.model_dump(exclude_none=True) for m in settings.maintainers]}
    if progress:
        progress(0, 4, f"loading v{prov['model']['version']}")
    try:
        engine = Engine.load(ckpt, device="cpu")
        result = engine_export(engine, fmt, output, provenance=prov, sample=_sample_image(project),
                               overwrite=overwrite, progress=progress, meta=meta)
    except (CheckpointError, ExportError) as exc:
        raise ExportFailed(str(exc)) from None
    project.store.log("export", format=fmt, path=str(result.path), model_version=prov["model"]["version"],
                      checks=result.checks)
    return ExportReport(fmt, result.path, prov["model"]["version"], result.files, result.checks)


# ------------------------------------------------------------------------------------------ label export
@dataclass
class LabelRow:
    image: ImageRecord
    version: str
    label: np.ndarray
    info: dict


def choose_labels(project: Project, versions: str = "corrected",
                  preference: tuple[str, ...] = LABEL_PREFERENCE) -> list[LabelRow]:
    """Per image, the label to export: ``corrected`` only, or (``all``) the best available version."""
    if versions not in ("corrected", "all"):
        raise ExportFailed(f"versions must be corrected or all (got {versions!r})")
    store = project.store
    rows = []
    order = ("corrected",) if versions == "corrected" else preference
    for image in store.images():
        for version in order:
            info = store.label_info(image.id, version)
            if info is None:
                continue
            label = store.get_label(image.id, version)
            rows.append(LabelRow(image, version, label.reshape(image.spatial_shape), info))
            break
    return rows


def _file_names(rows: list[LabelRow]) -> dict[int, str]:
    return _file_names_for([r.image for r in rows])


def _file_names_for(images: list[ImageRecord]) -> dict[int, str]:
    """Image names as file stems; duplicates (same stem in two folders) get the image id appended."""
    counts: dict[str, int] = {}
    for im in images:
        counts[im.name] = counts.get(im.name, 0) + 1
    safe = {im.id: "".join(c if c.isalnum() or c in "-_." else "_" for c in im.name) for im in images}
    return {im.id: safe[im.id] + (f"_{im.id}" if counts[im.name] > 1 else "") for im in images}


def correction_record(project: Project, image_id: int) -> dict:
    """Who corrected an image, when (first/last live edit), how many edits and how long it took.

    Time spent: the GUI logs the time an image was open (``time`` events) and each edit's own seconds;
    the larger of the two sums is reported (the CLI ``correct`` records neither, so 0 there).
    """
    store = project.store
    edits = store.query(
        "SELECT author, created_at, seconds, model_version FROM corrections WHERE image_id = ? AND"
        " version = 'corrected' AND undone = 0 ORDER BY id", (image_id,))
    seconds_editing = float(sum(e["seconds"] for e in edits))
    open_rows = store.query("SELECT data FROM events WHERE kind = 'time' AND image_id = ?", (image_id,))
    seconds_open = float(sum(json.loads(r["data"]).get("seconds", 0) for r in open_rows))
    authors = sorted({e["author"] for e in edits if e["author"]})
    return {
        "corrected_by": ";".join(authors),
        "first_corrected_at": edits[0]["created_at"] if edits else "",
        "corrected_at": edits[-1]["created_at"] if edits else "",
        "n_edits": len(edits),
        "seconds_spent": round(max(seconds_editing, seconds_open), 2),
        "corrected_from_model": edits[-1]["model_version"] if edits else "",
    }


def _staged(output: Path, overwrite: bool) -> Path:
    output = Path(output)
    if output.exists() and not overwrite and (output.is_file() or any(output.iterdir())):
        raise ExportFailed(f"{output}: already exists; choose another output or remove it")
    output.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent))


LABEL_CSV_FIELDS = ("image", "image_path", "label_file", "label_version", "kind", "model_version", "corrected_by",
                    "first_corrected_at", "corrected_at", "n_edits", "seconds_spent", "corrected_from_model",
                    "pixel_size")
#: Columns of ``pairs.csv``, the CSV MMV_Im2Im (0.8.1) reads: ``IM``/``GT`` by its data module
#: (``generate_dataset_dict_monai``, which takes no cost map from a CSV: point it at the folder for those),
#: ``source_path``/``target_path``/``costmap_path`` by its EmbedSeg loader (``generate_dataset_dict``).
#: Absolute paths: MMV_Im2Im opens them relative to where it runs, not to the CSV.
PAIRS_CSV_FIELDS = ("IM", "GT", "CM", "source_path", "target_path", "costmap_path")
#: ``pairs_provenance.csv``: where each pair comes from (kept out of pairs.csv, which MMV_Im2Im reads).
PAIR_PROVENANCE_FIELDS = ("name", "image", "image_path", "label_version", "model_version", "corrected_by",
                          "corrected_at", "n_edits", "seconds_spent", "pixel_size")


def source_pixel_sizes(image: ImageRecord) -> tuple[PixelSizes, str]:
    """The pixel size of the image a label belongs to, as its file states it, and a note for the CSV.

    Nothing is invented: an uncalibrated source gives an uncalibrated export, and a source that cannot be
    read now (moved) or whose unit OME cannot store gives none either, with the reason in the note.
    """
    from im2im_engine.io import ImageReadError

    try:
        sizes = read_pixel_sizes(image.path)
    except CalibrationError as exc:
        return UNCALIBRATED, f"not written: {exc}"
    except (ImageReadError, OSError) as exc:
        return UNCALIBRATED, f"unknown: source image unreadable ({exc})"
    sizes = sizes if image.is_3d else sizes.planar()
    return sizes, sizes.describe() or "none (the source image has no calibration)"


def export_labels(project: Project, output: str | os.PathLike, *, versions: str = "corrected",
                  overwrite: bool = False, progress: Progress | None = None) -> ExportReport:
    """``OUTPUT/labels/NAME.ome.tif`` (int32 class or instance ids) + ``OUTPUT/labels.csv`` + provenance."""
    from im2im_engine import __version__, io

    output = Path(output)
    rows = choose_labels(project, versions)
    if not rows:
        raise ExportFailed(f"{project.root}: no {'corrected ' if versions == 'corrected' else ''}labels to export"
                           + (" (use --versions all for pseudo labels and predictions)"
                              if versions == "corrected" else ""))
    names = _file_names(rows)
    tmp = _staged(output, overwrite)
    kind = project.task
    try:
        (tmp / "labels").mkdir()
        table = []
        for i, r in enumerate(rows):
            if progress:
                progress(i, len(rows), r.image.name)
            rel = f"labels/{names[r.image.id]}.ome.tif"
            sizes, note = source_pixel_sizes(r.image)
            io.write_ome_tiff(tmp / rel, r.label.astype(np.int32), **sizes.writer_kwargs())
            rec = correction_record(project, r.image.id) if r.version == "corrected" else {}
            table.append({"image": r.image.name, "image_path": r.image.path, "label_file": rel,
                          "label_version": r.version, "kind": kind, "model_version": r.info.get("model_version") or "",
                          **{k: rec.get(k, "") for k in LABEL_CSV_FIELDS[6:-1]}, "pixel_size": note})
        _publish(project, tmp, output, "labels", {"labels.csv": (LABEL_CSV_FIELDS, table)}, versions, rows,
                 __version__)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if progress:
        progress(len(rows), len(rows), "done")
    project.store.log("export", format="labels", path=str(output), versions=versions, n_images=len(rows))
    return ExportReport("labels", output, None, ["labels.csv", "provenance.json", "labels/"], {}, len(rows))


def _publish(project: Project, tmp: Path, output: Path, fmt: str,
             tables: dict[str, tuple[tuple[str, ...], list[dict]]], versions: str, rows: list[LabelRow],
             engine_version: str) -> None:
    """Finish a staged label/pair export: its CSV tables, provenance, modes, then move it into place.

    The staging folder is private (``mkdtemp``, 0700) and the TIFFs are staged privately too; the published
    folder and files follow the user's umask like anything else they write, so colleagues can open them.
    """
    for name, (fields, table) in tables.items():
        with open(tmp / name, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(table)
    _write_data_provenance(project, tmp, fmt, versions, rows, engine_version)
    follow_umask(tmp)
    replace_dir(tmp, output)


def _write_data_provenance(project: Project, folder: Path, fmt: str, versions: str, rows: list[LabelRow],
                           engine_version: str) -> None:
    by_version: dict[str, int] = {}
    for r in rows:
        by_version[r.version] = by_version.get(r.version, 0) + 1
    current = project.store.current_model
    prov = {
        "software": "im2im-active", "engine_version": engine_version, "exported_at": now(), "format": fmt,
        "project": str(project.root), "task": project.task, "versions": versions, "n_images": len(rows),
        "label_versions": by_version, "current_model": current,
        "n_corrected_images": by_version.get("corrected", 0),
        "rounds": len({m["round"] for m in project.store.models()}),
        "validation_metrics": project.store.model(current)["metrics"] if current is not None else {},
        "weights": training_weights(project),
    }
    (folder / "provenance.json").write_text(json.dumps(prov, indent=2, default=str))


def export_pairs(project: Project, output: str | os.PathLike, *, versions: str = "corrected",
                 overwrite: bool = False, progress: Progress | None = None) -> ExportReport:
    """MMV_Im2Im training pairs: ``NAME_IM.tiff`` (image), ``NAME_GT.tiff`` (label), ``NAME_CM.tiff``.

    The cost map is the per-pixel training weight the loop itself uses (:func:`annotation.trainset.weight_map`).
    Images are written as OME-TIFF (C[Z]YX, timepoint 0) with the source's pixel sizes and units (none
    where it has none). ``pairs.csv`` is MMV_Im2Im's CSV (:data:`PAIRS_CSV_FIELDS`); where each pair comes
    from is in ``pairs_provenance.csv`` and ``provenance.json``.
    """
    from im2im_engine import __version__, io

    output = Path(output)
    rows = [r for r in choose_labels(project, versions, PAIR_PREFERENCE)]
    rows = [r for r in rows if r.image.state == "ok"]
    if not rows:
        raise ExportFailed(f"{project.root}: no {'corrected ' if versions == 'corrected' else ''}labels to export")
    weights = training_weights(project)
    names = _file_names(rows)
    final = output.resolve()
    tmp = _staged(output, overwrite)
    try:
        pairs, origin = [], []
        for i, r in enumerate(rows):
            if progress:
                progress(i, len(rows), r.image.name)
            img = io.read_image(r.image.path)
            base = names[r.image.id]
            sizes, note = source_pixel_sizes(r.image)
            data = img.data if r.image.is_3d else img.data[:, 0]
            io.write_ome_tiff(tmp / f"{base}_IM.tiff", data, dim_order="CZYX" if r.image.is_3d else "CYX",
                              channel_names=img.info.channel_names, **sizes.writer_kwargs())
            io.write_ome_tiff(tmp / f"{base}_GT.tiff", r.label.astype(np.int32), **sizes.writer_kwargs())
            cost = weight_map(project.store, r.image.id, r.version, r.label.shape, weights)
            io.write_ome_tiff(tmp / f"{base}_CM.tiff", cost, **sizes.writer_kwargs())
            im, gt, cm = (str(final / f"{base}_{tag}.tiff") for tag in ("IM", "GT", "CM"))
            pairs.append({"IM": im, "GT": gt, "CM": cm, "source_path": im, "target_path": gt, "costmap_path": cm})
            rec = correction_record(project, r.image.id) if r.version == "corrected" else {}
            origin.append({"name": base, "image": r.image.name, "image_path": r.image.path,
                           "label_version": r.version, "model_version": r.info.get("model_version") or "",
                           **{k: rec.get(k, "") for k in PAIR_PROVENANCE_FIELDS[5:-1]}, "pixel_size": note})
        _publish(project, tmp, output, "pairs", {"pairs.csv": (PAIRS_CSV_FIELDS, pairs),
                                                 "pairs_provenance.csv": (PAIR_PROVENANCE_FIELDS, origin)},
                 versions, rows, __version__)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if progress:
        progress(len(rows), len(rows), "done")
    project.store.log("export", format="pairs", path=str(output), versions=versions, n_images=len(rows))
    return ExportReport("pairs", output, None, ["pairs.csv", "pairs_provenance.csv", "provenance.json"], {},
                        len(rows))


def default_output(project: Project, fmt: str, version: int | None = None) -> Path:
    """``PROJECT/exports/<format>[-vN]-<UTC time>``: a fresh folder per export."""
    stamp = now().replace(":", "").replace("-", "").split(".")[0]
    tag = f"-v{version}" if version is not None else ""
    return project.exports_dir / f"{fmt}{tag}-{stamp}"


def formats_for(task: str) -> tuple[str, ...]:
    """The export formats a project of ``task`` offers: a denoise project has no labels but denoised images."""
    return MODEL_FORMATS + (("denoised",) if task == "denoise" else ("labels", "pairs"))


def _not_for_task(project: Project, fmt: str) -> str:
    if project.task == "denoise":
        return (f"{project.root}: a denoise project has no labels to export as {fmt}; export the denoised "
                "images (--format denoised) or the model (torchscript, onnx, bioimageio)")
    return (f"{project.root}: --format {fmt} is for denoise projects (this one is {project.task}); "
            "`im2im-active predict --probabilities` writes a model's outputs")


def export(project: Project, fmt: str, output: str | os.PathLike | None = None, *, version: int | None = None,
           versions: str = "corrected", overwrite: bool = False, progress: Progress | None = None,
           should_stop: Callable[[], bool] | None = None) -> ExportReport:
    """One entry point for the CLI and the GUI: models, labels or training pairs, or denoised images.

    ``should_stop`` cancels a denoised export between images (the others are quick or cannot stop halfway).
    """
    if fmt not in FORMATS:
        raise ExportFailed(f"format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    if fmt not in formats_for(project.task):
        raise ExportFailed(_not_for_task(project, fmt))
    if not output:
        used = resolve_version(project, version)["version"] if fmt in USES_MODEL else None
        output = default_output(project, fmt, used)
    if fmt in MODEL_FORMATS:
        return export_model(project, fmt, output, version=version, overwrite=overwrite, progress=progress)
    if fmt == "denoised":
        from .export_denoised import export_denoised

        return export_denoised(project, output, version=version, overwrite=overwrite, progress=progress,
                               should_stop=should_stop)
    func = export_labels if fmt == "labels" else export_pairs
    return func(project, output, versions=versions, overwrite=overwrite, progress=progress)


# ------------------------------------------------------------------------------------------ model import
def import_model(project: Project, checkpoint: str | os.PathLike, *, note: str | None = None) -> int:
    """Take an existing checkpoint (a MONAI network state dict matching the project's config, bare or as an
    im2im checkpoint) as the starting model: a new model version with status ``imported``, made current.

    Unreadable, unsafe (pickled code) or mismatching files raise :class:`ExportFailed` naming the file and
    the problem (first mismatching tensor with both shapes); nothing is recorded then.
    """
    from im2im_engine import CheckpointError, Engine
    from im2im_engine.checkpoint import load_checkpoint

    from .loop import model_dir

    path = Path(checkpoint).resolve()
    cfg = project.engine_config()
    try:
        _check_file_kind(path)
        payload = load_checkpoint(path)
        _check_task(path, payload.get("config"), cfg)
        engine = Engine.from_config(cfg, checkpoint=path, device="cpu")
    except CheckpointError as exc:
        raise ExportFailed(str(exc)) from None
    store = project.store
    version = int(store.scalar("SELECT COALESCE(MAX(version), 0) + 1 FROM models"))
    out = model_dir(project, version)
    if out.exists():  # left by a killed run that never got recorded
        shutil.rmtree(out)
    digest = sha256(path)
    engine.save(out / "model.pt", meta={"imported_from": str(path), "sha256": digest})
    parent = store.current_model
    round_no = 0 if parent is None else store.model(parent)["round"] + 1
    message = note or f"v{version} imported from {path.name} (sha256 {digest[:12]})"
    store.add_model(version=version, path=str((out / "model.pt").relative_to(project.root)), parent=parent,
                    status="imported", round=round_no, metrics={}, train_set_hash=None, n_corrected=0, n_pseudo=0,
                    seconds=0.0, note=message)
    store.set_current_model(version)
    store.log("import", version=version, source=str(path), sha256=digest, parent=parent)
    return version


def _check_file_kind(path: Path) -> None:
    """Tell a damaged or foreign file from an unsafe one: ``torch.load`` reports any non-zip file as a
    failed (unsafe) unpickling, which would send the user looking for malicious code in a truncated copy."""
    import zipfile

    from im2im_engine import CheckpointError

    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file does not exist")
    with open(path, "rb") as fh:
        head = fh.read(2)
    if not zipfile.is_zipfile(path) and head[:1] != b"\x80":  # torch zip, or a legacy torch pickle
        raise CheckpointError(f"{path}: not a readable checkpoint (neither a PyTorch zip archive nor a legacy "
                              "PyTorch file: truncated, corrupt or another format)")


def _check_task(path: Path, stored: dict | None, cfg: Any) -> None:
    """A full im2im checkpoint says what it was trained for; refuse one made for another task or dimension
    even when the tensor shapes happen to fit (3 semantic classes vs the 3-class instance head)."""
    if not isinstance(stored, dict):
        return
    task = (stored.get("task") or {}).get("kind")
    dims = (stored.get("data") or {}).get("spatial_dims")
    if task and task != cfg.task.kind:
        from im2im_engine import CheckpointError

        raise CheckpointError(f"{path}: checkpoint was trained for task {task!r}, this project is {cfg.task.kind!r}")
    if dims and dims != cfg.data.spatial_dims:
        from im2im_engine import CheckpointError

        raise CheckpointError(f"{path}: checkpoint is for {dims}D images, this project is {cfg.data.spatial_dims}D")

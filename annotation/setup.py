"""Creating a project from a folder of images: what ``im2im-active init`` and the new-project wizard run."""

from __future__ import annotations

import os
from pathlib import Path

from im2im_engine import io

from .importer import (
    ImportReport,
    Progress,
    disambiguate_names,
    generate_pseudo_labels,
    image_record,
    import_masks,
    import_targets,
)
from .project import Project, ProjectError, build_config, remove_partial


def _scan(images_dir: Path, labels_dir: Path | None) -> list[Path]:
    try:
        paths = io.find_images(images_dir)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise ProjectError(str(exc)) from None
    if labels_dir is not None:
        labels_dir = labels_dir.resolve()
        paths = [p for p in paths if labels_dir not in p.resolve().parents]
    if not paths:
        raise ProjectError(f"{images_dir}: no image files found (looked for {', '.join(io.IMAGE_SUFFIXES)})")
    return paths


def init_project(
    root: str | os.PathLike,
    images_dir: str | os.PathLike,
    *,
    labels_dir: str | os.PathLike | None = None,
    pseudo: str | None = None,
    task: str = "semantic",
    config_path: str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> tuple[Project, ImportReport]:
    """Register every readable image of ``images_dir`` into a new project at ``root``.

    Reads and hashes all images before the project is created, so a folder with nothing readable leaves
    nothing behind. Bad files are skipped and listed in the report.
    """
    root = Path(root)
    images_dir = Path(images_dir)
    labels = Path(labels_dir) if labels_dir else None
    if labels is not None and pseudo:
        raise ProjectError("give either --labels or --pseudo, not both")
    if task == "regression" and pseudo:
        raise ProjectError("--pseudo makes segmentation labels; for a regression task give --labels with the "
                           "target images (e.g. clean versions of the noisy images), matched by file stem")
    if task == "denoise":  # annotation/denoise.py: images only
        from .denoise import check_init

        check_init(labels, pseudo)
    if labels is not None and not labels.is_dir():
        raise ProjectError(f"{labels}: labels folder does not exist")
    if (root / Project.DB).exists():
        raise ProjectError(f"{root.resolve()}: a project already exists here; open it or choose another folder")
    paths = _scan(images_dir, labels)

    report = ImportReport()
    records = []
    for i, path in enumerate(paths):
        try:
            records.append(image_record(path))
        except (io.ImageReadError, OSError) as exc:
            report.skipped.append((str(path), getattr(exc, "problem", None) or str(exc)))
        if progress:
            progress(i + 1, len(paths), f"reading {path.name}")
    if not records:
        details = "; ".join(f"{Path(p).name}: {why}" for p, why in report.skipped[:3])
        raise ProjectError(f"{images_dir}: none of {len(paths)} files could be read ({details})")

    first = records[0]["shape"]
    three_d = first[2] > 1
    shapes = [tuple(r["shape"][2:]) if three_d else tuple(r["shape"][3:]) for r in records]
    config, report.config_notes = build_config(task, three_d=three_d, n_channels=first[1], user_config=config_path,
                                               spatial_shapes=shapes)
    created = not root.exists()
    try:
        project = Project.create(root, task, config)
    except Exception:
        if created:
            remove_partial(root)
        raise
    store = project.store
    for rec in records:
        report.added.append(store.add_image(rec))
    disambiguate_names(store)
    if labels is not None and task == "regression":
        import_targets(store, labels, report, progress)
    elif labels is not None:
        n_classes = int((config.get("task") or {}).get("num_classes", 2))
        import_masks(store, labels, report, progress, task=task, num_classes=n_classes)
    elif pseudo:
        generate_pseudo_labels(store, task, pseudo, report, progress)
    store.log(
        "init", images=len(report.added), skipped=len(report.skipped), labels=report.labels,
        source=str(images_dir.resolve()), labels_source=str(labels) if labels else pseudo,
    )
    return project, report

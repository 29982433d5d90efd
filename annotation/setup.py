"""Which images a project has: creating it from a folder (``im2im-active init`` and the new-project wizard),
adding images later (``im2im-active add``, the app's *Add images…*), and excluding, including or removing
one image (``exclude`` / ``include`` / ``remove``).

Every image is checked against the project on the way in (:func:`annotation.importer.fit_image`): refused
with the reason, or fitted by the person's choice (a channel, a maximum projection); the report says which.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from im2im_engine import io

from .fitting import fit_project_to_labels
from .importer import (
    DERIVED_DIR,
    Candidate,
    Fit,
    FitOptions,
    ImportReport,
    Progress,
    ProjectShape,
    choose_shape,
    fit_image,
    generate_pseudo_labels,
    import_masks,
    import_targets,
    register,
    survey,
    unique_names,
)
from .project import APP_SECTIONS, Project, ProjectError, build_config, remove_partial, validate_engine_config
from .pseudo import METHODS
from .store import ImageRecord


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


def _check_label_source(task: str, labels: Path | None, pseudo: str | None) -> None:
    if labels is not None and pseudo:
        raise ProjectError("give either --labels or --pseudo, not both")
    if task == "regression" and pseudo:
        raise ProjectError("--pseudo makes segmentation labels; for a regression task give --labels with the "
                           "target images (e.g. clean versions of the noisy images), matched by file stem")
    if pseudo and pseudo not in METHODS:
        raise ProjectError(f"--pseudo must be one of {', '.join(METHODS)}, got {pseudo!r}")
    if pseudo == "watershed" and task != "instance":
        raise ProjectError("--pseudo watershed splits touching objects apart: it is for --task instance; "
                           "use --pseudo otsu for a semantic task")
    if task == "denoise":  # annotation/denoise.py: images only
        from .denoise import check_init

        check_init(labels, pseudo)
    if labels is not None and not labels.is_dir():
        raise ProjectError(f"{labels}: labels folder does not exist")


def _engine_config(config: dict, source: str):
    return validate_engine_config({k: v for k, v in config.items() if k not in APP_SECTIONS}, source)


def _labels(project: Project, stems: dict[int, str], labels: Path | None, pseudo: str | None,
            report: ImportReport, progress: Progress | None) -> None:
    store = project.store
    if labels is not None and project.task == "regression":
        import_targets(store, labels, report, progress, only=stems)
    elif labels is not None:
        n_classes = int((project.engine_config_dict().get("task") or {}).get("num_classes", 2))
        import_masks(store, labels, report, progress, task=project.task, num_classes=n_classes, only=stems)
    elif pseudo:
        generate_pseudo_labels(store, project.task, pseudo, report, progress, only=list(stems))


@dataclass
class ImportPlan:
    """What ``init`` would do with a folder's readable images: the project's shape and each image's fit."""

    shape: ProjectShape
    shape_note: str
    config: dict
    fits: list[Fit]

    @property
    def accepted(self) -> list[Fit]:
        return [f for f in self.fits if f.ok]

    def lines(self) -> list[str]:
        """The plan in words, one line per image that is fitted or refused (for the wizard's check)."""
        n = len(self.fits)
        as_is = sum(f.ok and not f.needs_file for f in self.fits)
        head = f"{n} readable image{'s' if n != 1 else ''}; the project will be {self.shape}"
        if self.shape_note:
            head += ", as " + self.shape_note.split(", as ", 1)[-1]
        out = [head + f"; {as_is} fit{'s' if as_is == 1 else ''} as {'it is' if as_is == 1 else 'they are'}."]
        for f in self.fits:
            if f.ok and f.needs_file:
                out.append(f"{f.candidate.path.name}: {f.what or 'converted'}.")
        for f in self.fits:
            if not f.ok:
                out.append(f"{f.candidate.path.name}: left out: {f.reason}.")
        return out


def survey_folder(images_dir: str | os.PathLike, labels_dir: str | os.PathLike | None = None,
                  progress: Progress | None = None) -> tuple[list[Candidate], ImportReport]:
    """The readable images of a folder, from their headers only (unreadable ones in ``report.skipped``): a
    preview for :func:`plan_import`, e.g. the wizard's check."""
    paths = _scan(Path(images_dir), Path(labels_dir) if labels_dir else None)
    report = ImportReport()
    return survey(paths, report, progress, records=False), report


def plan_import(candidates: list[Candidate], task: str, options: FitOptions | None = None,
                config_path: str | os.PathLike | None = None) -> ImportPlan:
    """The project's shape (what most images are, unless the user's config or ``options.dims`` says
    otherwise) and every image's fit to it. Reads no pixels."""
    options = options or FitOptions()
    if config_path:
        config, _ = build_config(task, three_d=False, n_channels=1, user_config=config_path)
        shape = ProjectShape.of_config(_engine_config(config, str(config_path)))
        note = f"the project is {shape}, as {Path(config_path).name} says"
    else:
        shape, note = choose_shape(candidates, options)
        config, _ = build_config(task, three_d=shape.spatial_dims == 3, n_channels=shape.in_channels,
                                 user_config=None)
    engine_config = _engine_config(config, "config")
    fits = [fit_image(c, shape, options, engine_config) for c in candidates]
    return ImportPlan(shape, note, config, fits)


def init_project(
    root: str | os.PathLike,
    images_dir: str | os.PathLike,
    *,
    labels_dir: str | os.PathLike | None = None,
    pseudo: str | None = None,
    task: str = "semantic",
    config_path: str | os.PathLike | None = None,
    progress: Progress | None = None,
    fit: FitOptions | None = None,
) -> tuple[Project, ImportReport]:
    """Register every readable image of ``images_dir`` that fits into a new project at ``root``.

    Reads the headers and hashes of all images before the project is created, so a folder with nothing
    usable leaves nothing behind. The project's shape (2D/3D, channels) is what most images are, unless
    the user's config or ``fit.dims`` says otherwise; images that do not fit are fitted by ``fit`` (a
    channel, a maximum projection) or refused, each listed in the report with the reason.
    """
    root = Path(root)
    images_dir = Path(images_dir)
    labels = Path(labels_dir) if labels_dir else None
    _check_label_source(task, labels, pseudo)
    if (root / Project.DB).exists():
        raise ProjectError(f"{root.resolve()}: a project already exists here; open it or choose another folder")
    paths = _scan(images_dir, labels)

    report = ImportReport()
    candidates = survey(paths, report, progress)
    if not candidates:
        details = "; ".join(f"{Path(p).name}: {why}" for p, why in report.skipped[:3])
        raise ProjectError(f"{images_dir}: none of {len(paths)} files could be read ({details})")
    plan = plan_import(candidates, task, fit, config_path)
    shape, report.shape_note = plan.shape, plan.shape_note
    if progress:
        progress(len(paths), len(paths), f"checking the images against a {shape} project")
    fits = plan.fits
    accepted = plan.accepted
    if not accepted:
        reasons = "; ".join(f"{f.candidate.path.name}: {f.reason}" for f in fits[:3])
        raise ProjectError(f"{images_dir}: none of the {len(fits)} readable images fits a {shape} project "
                           f"({reasons})")
    spatial = [f.effective_shape[1:] if shape.spatial_dims == 3 else f.effective_shape[2:] for f in accepted]
    config, report.config_notes = build_config(task, three_d=shape.spatial_dims == 3,
                                               n_channels=shape.in_channels, user_config=config_path,
                                               spatial_shapes=spatial)
    report.shape = str(shape)
    created = not root.exists()
    try:
        project = Project.create(root, task, config)
    except Exception:
        if created:
            remove_partial(root)
        raise
    try:
        names = unique_names([f.candidate.path for f in fits])
        stems = register(project.store, project.root, fits, names, report, progress)
        if not stems:
            raise ProjectError(f"{images_dir}: no image could be registered ("
                               + "; ".join(f"{Path(p).name}: {why}" for p, why in report.skipped[:3]) + ")")
    except BaseException:
        project.close()
        if created:
            remove_partial(root)
        raise
    _labels(project, stems, labels, pseudo, report, progress)
    if config_path is None:  # a preset: its training patch fitted to the objects (annotation.fitting)
        report.config_notes += fit_project_to_labels(project)
    project.store.log(
        "init", images=len(report.added), skipped=len(report.skipped), labels=report.labels,
        fitted=len(report.fitted), shape=report.shape, source=str(images_dir.resolve()),
        labels_source=str(labels) if labels else pseudo,
    )
    return project, report


def _collect(sources: list[str | os.PathLike]) -> list[Path]:
    """Files as given, folders searched recursively; anything else is an error naming it."""
    paths: list[Path] = []
    for source in sources:
        p = Path(source)
        if p.is_dir():
            paths += io.find_images(p)
        elif p.is_file():
            paths.append(p)
        else:
            raise ProjectError(f"{p}: no such file or folder")
    if not paths:
        raise ProjectError(f"{', '.join(map(str, sources))}: no image files found "
                           f"(looked for {', '.join(io.IMAGE_SUFFIXES)})")
    seen: set[Path] = set()
    return [p for p in paths if not (p.resolve() in seen or seen.add(p.resolve()))]


def _registered_sources(project: Project) -> set[str]:
    """Paths of the files already in the project: registered ones and the originals of fitted ones."""
    store = project.store
    paths = {im.path for im in store.images()}
    for row in store.query("SELECT data FROM events WHERE kind = 'fit'"):
        data = json.loads(row["data"])
        if data.get("file") in paths and data.get("source"):  # a removed image's original may come back
            paths.add(data["source"])
    return paths


def add_images(
    project: Project,
    sources: list[str | os.PathLike],
    *,
    labels_dir: str | os.PathLike | None = None,
    pseudo: str | None = None,
    progress: Progress | None = None,
    fit: FitOptions | None = None,
) -> ImportReport:
    """Add image files (or folders of them) to an existing project, checked against the project as at
    ``init``: refused with the reason, or fitted by ``fit``. Files already in the project are listed in
    ``report.already`` and left as they are (their labels untouched). New images get pseudo labels from
    ``labels_dir`` or ``pseudo`` when given."""
    labels = Path(labels_dir) if labels_dir else None
    options = fit or FitOptions()
    _check_label_source(project.task, labels, pseudo)
    store = project.store
    known = _registered_sources(project)
    report = ImportReport()
    shape = ProjectShape.of_config(project.engine_config())
    report.shape = str(shape)
    paths = []
    for p in _collect(sources):
        if str(p.resolve()) in known:
            report.already.append(str(p))
        else:
            paths.append(p)
    if not paths:
        return report
    candidates = survey(paths, report, progress)
    fits = [fit_image(c, shape, options, project.engine_config()) for c in candidates]
    names = unique_names([f.candidate.path for f in fits], taken={im.name for im in store.images()})
    stems = register(store, project.root, fits, names, report, progress)
    if stems:
        _labels(project, stems, labels, pseudo, report, progress)
    store.log("add", images=len(report.added), skipped=len(report.skipped), labels=report.labels,
              fitted=len(report.fitted), already=len(report.already),
              sources=[str(Path(s).resolve()) for s in sources], labels_source=str(labels) if labels else pseudo)
    return report


# ------------------------------------------------------------------------- excluding and removing an image
def exclude_image(project: Project, key: str, reason: str | None = None) -> ImageRecord:
    """Leave an image out of training, scoring and the queue; its labels and corrections are kept."""
    image = project.store.find_image(key)
    project.store.set_excluded(image.id, (reason or "").strip() or "excluded by the user")
    return project.store.image(image.id)


def include_image(project: Project, key: str) -> ImageRecord:
    """Undo :func:`exclude_image`: the image is used again as it was."""
    image = project.store.find_image(key)
    project.store.set_excluded(image.id, None)
    return project.store.image(image.id)


@dataclass(frozen=True)
class Removal:
    """What removing an image deletes (or would delete)."""

    image: ImageRecord
    labels: list[str]  # label versions stored for it
    corrections: int  # recorded edits
    derived_file: str | None  # the fitted copy the project wrote for it, deleted with it

    def describe(self) -> str:
        labels = ", ".join(self.labels) if self.labels else "no labels"
        what = f"its registration, {labels}, {self.corrections} recorded correction" \
               f"{'s' if self.corrections != 1 else ''}"
        if self.derived_file:
            what += f" and the fitted copy {self.derived_file}"
        return what


def removal(project: Project, key: str) -> Removal:
    """What :func:`remove_image` would delete, without deleting anything."""
    store = project.store
    image = store.find_image(key)
    versions = [r["version"] for r in store.query(
        "SELECT DISTINCT version FROM labels WHERE image_id = ? ORDER BY version", (image.id,))]
    n = int(store.scalar("SELECT COUNT(*) FROM corrections WHERE image_id = ?", (image.id,)) or 0)
    derived = project.root.resolve() / DERIVED_DIR
    path = Path(image.path)
    return Removal(image, versions, n, str(path) if path.parent == derived else None)


def remove_image(project: Project, key: str) -> Removal:
    """Unregister an image: its row, labels, corrections and scores go in one transaction (the original
    file is never touched; a fitted copy under ``derived/`` is deleted after the commit). The event log
    keeps a line saying what was removed."""
    what = removal(project, key)
    store = project.store
    with store.write() as c:
        c.execute("DELETE FROM images WHERE id = ?", (what.image.id,))
        store.log("remove", what.image.id, name=what.image.name, path=what.image.path, labels=what.labels,
                  corrections=what.corrections)
    if what.derived_file:
        Path(what.derived_file).unlink(missing_ok=True)
    return what


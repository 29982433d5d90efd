"""CLI commands for what leaves and enters a project: ``export``, ``predict``, ``import-model``.

Thin wrappers: ``annotation.export`` does the work (the GUI's export dialog calls the same function) and
``im2im_engine.exported`` runs exported models. ``predict`` takes a project (its current model, through
``Engine.predict`` exactly as the app's scoring does) or ``--model EXPORTED`` (any export folder, no
project needed) and writes the same OME-TIFF files either way.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from .cli import EXIT_ERROR, EXIT_OK, CliError, TqdmProgress


def cmd_export(args: argparse.Namespace) -> int:
    from annotation.export import export
    from annotation.project import Project

    bar = TqdmProgress(f"export {args.format}", args.quiet)
    with Project.open(args.project) as project:
        try:
            report = export(project, args.format, args.output, version=args.model_version, versions=args.versions,
                            overwrite=args.force, progress=bar)
        finally:
            bar.close()
    print(report.summary())
    return EXIT_OK


def _load_model(args: argparse.Namespace):
    """The project's model (``--model-version`` or current) as an Engine, or an exported folder."""
    if args.model:
        from im2im_engine.export import ExportError
        from im2im_engine.exported import ExportedModel

        try:
            return ExportedModel(args.model)
        except ExportError as exc:
            raise CliError(str(exc)) from None
    from annotation.export import ExportFailed, resolve_version
    from annotation.project import Project
    from im2im_engine import CheckpointError, Engine

    with Project.open(args.project) as project:
        row = resolve_version(project, args.model_version)
        try:
            return Engine.load(project.root / row["path"])
        except CheckpointError as exc:
            raise ExportFailed(str(exc)) from None


def cmd_predict(args: argparse.Namespace) -> int:
    from im2im_engine.exported import predict_folder

    if bool(args.project) == bool(args.model):
        raise CliError("give either a PROJECT or --model EXPORTED (not both)")
    if not Path(args.input).is_dir():
        raise CliError(f"{args.input}: input folder does not exist")
    model = _load_model(args)
    bar = TqdmProgress("predict", args.quiet)
    try:
        result = predict_folder(model, args.input, args.output, probabilities=args.probabilities, progress=bar)
    finally:
        bar.close()
        if hasattr(model, "close"):
            model.close()
    for path, problem in result.failed:
        print(f"  skipped {path}: {problem}", file=sys.stderr)
    for path, note in result.notes:
        print(f"  {path}: {note}", file=sys.stderr)
    ok = result.n_images - len(result.failed)
    print(f"predicted {ok} of {result.n_images} images into {args.output}")
    if result.n_images == 0:
        raise CliError(f"{args.input}: no images found")
    return EXIT_ERROR if result.failed else EXIT_OK


def cmd_import_model(args: argparse.Namespace) -> int:
    from annotation.export import import_model
    from annotation.project import Project

    with Project.open(args.project) as project:
        version = import_model(project, args.checkpoint)
    print(f"imported {args.checkpoint} as model v{version} (status imported, now current); "
          f"run `im2im-active score {args.project}` to rank the images with it")
    return EXIT_OK


def register(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("export", cmd_export, "export the model (torchscript, onnx, bioimageio) or the labels/training pairs "
            "(a denoise project: the denoised images)")
    p.add_argument("project")
    p.add_argument("--format", required=True, choices=["torchscript", "onnx", "bioimageio", "labels", "pairs",
                                                       "denoised"],
                   help="denoised: every image of a denoise project through the model, float32 OME-TIFF in the "
                   "raw image's units")
    p.add_argument("--output", help="folder to write (a .zip for bioimageio packs it); "
                   "default: PROJECT/exports/FORMAT-...")
    p.add_argument("--model-version", type=int, help="model version to export, or to denoise with (default: the "
                   "current one)")
    p.add_argument("--versions", choices=["corrected", "all"], default="corrected",
                   help="labels/pairs: corrected images only, or every image with its best label")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")

    p = add("predict", cmd_predict, "predict a folder of images with a project's model or an exported model")
    p.add_argument("project", nargs="?", help="project folder (its current model)")
    p.add_argument("--model", help="an exported model folder (torchscript, onnx, bioimageio) instead of a project")
    p.add_argument("--model-version", type=int, help="with PROJECT: model version (default: the current one)")
    p.add_argument("--input", required=True, help="folder of images (searched recursively)")
    p.add_argument("--output", required=True, help="folder for NAME_labels.ome.tif (+ NAME_probabilities.ome.tif); "
                   "a denoise model writes NAME_denoised.ome.tif")
    p.add_argument("--probabilities", action="store_true", help="also write the probabilities / raw output")

    p = add("import-model", cmd_import_model, "start from an existing checkpoint (a MONAI state dict matching "
            "the project's config)")
    p.add_argument("project")
    p.add_argument("checkpoint")

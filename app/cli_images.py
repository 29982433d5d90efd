"""CLI commands for which images a project has: ``add``, ``exclude``, ``include``, ``remove``.

Thin wrappers over :mod:`annotation.setup` (the app calls the same functions). ``add`` checks every image
against the project as ``init`` does; ``exclude`` keeps everything and only leaves the image out of
training, scoring and the queue; ``remove`` deletes the registration and labels, only with ``--yes``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from .cli import (
    EXIT_ERROR,
    EXIT_OK,
    TqdmProgress,
    add_fit_arguments,
    add_label_arguments,
    fit_options,
    print_import_report,
)


def cmd_add(args: argparse.Namespace) -> int:
    from annotation.project import Project
    from annotation.setup import add_images

    with Project.open(args.project) as project:
        bar = TqdmProgress("add", args.quiet)
        try:
            report = add_images(project, args.images, labels_dir=args.labels, pseudo=args.pseudo, progress=bar,
                                fit=fit_options(args))
        finally:
            bar.close()
        print_import_report(report, args.labels, f"Added to {project.root}:", project.task)
    return EXIT_OK if report.added or not report.skipped else EXIT_ERROR


def cmd_exclude(args: argparse.Namespace) -> int:
    from annotation.project import Project
    from annotation.setup import exclude_image

    with Project.open(args.project) as project:
        image = exclude_image(project, args.image, args.reason)
    print(f"excluded {image.name} ({image.excluded}): left out of training, scoring and the queue; its labels "
          f"and corrections are kept (`im2im-active include {args.project} {image.name}` brings it back)")
    return EXIT_OK


def cmd_include(args: argparse.Namespace) -> int:
    from annotation.project import Project
    from annotation.setup import include_image

    with Project.open(args.project) as project:
        image = include_image(project, args.image)
    print(f"included {image.name} again: it is used for training, scoring and the queue as before")
    return EXIT_OK


def cmd_remove(args: argparse.Namespace) -> int:
    from annotation.project import Project
    from annotation.setup import removal, remove_image

    with Project.open(args.project) as project:
        if not args.yes:
            what = removal(project, args.image)
            print(f"not removed: this would delete {what.image.name}'s {what.describe()} from the project "
                  f"(the image file itself is never touched). Run again with --yes to remove it, or use "
                  f"`im2im-active exclude` to leave it out and keep everything.", file=sys.stderr)
            return EXIT_ERROR
        what = remove_image(project, args.image)
    kept = "the original image file was not touched" if what.derived_file else \
        f"the image file {what.image.path} was not touched"
    print(f"removed {what.image.name}: deleted {what.describe()}; {kept}")
    return EXIT_OK


def register(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("add", cmd_add, "add images to a project, each checked against it as at init")
    p.add_argument("project")
    p.add_argument("--images", required=True, nargs="+", metavar="DIR|FILE",
                   help="image files, or folders searched recursively")
    add_label_arguments(p)
    add_fit_arguments(p, dims=False)

    p = add("exclude", cmd_exclude, "leave an image out of training, scoring and the queue (labels are kept)")
    p.add_argument("project")
    p.add_argument("image", help="image id, name or path")
    p.add_argument("--reason", help="why (stored with the image; default: \"excluded by the user\")")

    p = add("include", cmd_include, "use an excluded image again")
    p.add_argument("project")
    p.add_argument("image", help="image id, name or path")

    p = add("remove", cmd_remove, "unregister an image and delete its labels and corrections (needs --yes); "
            "the image file is never touched")
    p.add_argument("project")
    p.add_argument("image", help="image id, name or path")
    p.add_argument("--yes", action="store_true", help="really delete its labels and corrections")

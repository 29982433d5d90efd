"""``im2im-active``: the headless face of the app (see DESIGN.md, "CLI").

Each command is a thin wrapper over a function in ``annotation`` (or the GUI for ``gui``/``demo``), so the
CLI, the GUI and the tests run the same code. Errors a user can fix end in one line on stderr naming the
file and the problem, and a non-zero exit code; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130


class TqdmProgress:
    """A ``progress(done, total, what)`` callback drawing a tqdm bar on stderr (silent when not a TTY)."""

    def __init__(self, desc: str, quiet: bool = False):
        self.desc, self.quiet, self.bar = desc, quiet, None

    def __call__(self, done: int, total: int, what: str = "") -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        if self.bar is None or self.bar.total != total:
            self.close()
            self.bar = tqdm(total=total, desc=self.desc, unit="img", file=sys.stderr, leave=True,
                            disable=None, dynamic_ncols=True)
        self.bar.n = done
        self.bar.set_postfix_str(what[-40:], refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class StepProgress:
    """Progress callback for engine jobs: dict events with step/total/loss/metric/eta."""

    def __init__(self, desc: str, quiet: bool = False):
        self.desc, self.quiet, self.bar, self.phase = desc, quiet, None, None

    def __call__(self, event: dict) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        phase = event.get("phase", self.desc)
        total = int(event.get("total") or 0)
        if self.bar is None or phase != self.phase:
            self.close()
            self.phase = phase
            self.bar = tqdm(total=total or None, desc=phase, file=sys.stderr, disable=None, dynamic_ncols=True)
        done = int(event.get("step", event.get("done", 0)) or 0)
        self.bar.n = done
        post = {k: f"{event[k]:.4g}" for k in ("loss", "metric") if isinstance(event.get(k), int | float)}
        if post:
            self.bar.set_postfix(post, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# --------------------------------------------------------------------------------------------- commands
def cmd_init(args: argparse.Namespace) -> int:
    from annotation.setup import init_project

    bar = TqdmProgress("import", args.quiet)
    try:
        project, report = init_project(
            args.project, args.images, labels_dir=args.labels, pseudo=args.pseudo, task=args.task,
            config_path=args.config, progress=bar,
        )
    finally:
        bar.close()
    with project:
        print(f"Created {project.root}: {len(report.added)} images, {report.labels} {args.task} pseudo labels")
        for note in report.config_notes:
            print(f"  fitted to your images: {note}")
        for problem in report.problems():
            print(f"  skipped {problem}", file=sys.stderr)
        if report.unmatched_images:
            print(f"  {len(report.unmatched_images)} images have no mask in {args.labels}: "
                  + ", ".join(report.unmatched_images[:5]) + (" ..." if len(report.unmatched_images) > 5 else ""),
                  file=sys.stderr)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from annotation.project import Project
    from annotation.status import format_status, project_status

    with Project.open(args.project) as project:
        status = project_status(project)
    print(json.dumps(status, indent=2, default=str) if args.json else format_status(status))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from annotation.demo_project import ensure_demo_project

    root = ensure_demo_project(args.project, progress=TqdmProgress("demo", args.quiet),
                               n_images=args.images, three_d=args.three_d, task=args.task)
    if args.no_gui:
        return cmd_status(argparse.Namespace(project=str(root), json=False))
    return _gui(str(root), args.screenshot)


def cmd_gui(args: argparse.Namespace) -> int:
    return _gui(args.project, args.screenshot)


def _gui(project: str | None, screenshot: str | None) -> int:
    try:
        from app.gui.launch import run_gui
    except ImportError as exc:  # Qt missing on a headless server install
        raise CliError(f"the desktop GUI cannot start here ({exc}); the headless commands still work") from None
    if not screenshot:  # (a screenshot renders offscreen: no X libraries needed)
        from app.qt_deps import problem

        line = problem()
        if line:  # one line naming the packages, instead of Qt's misleading plugin message and an abort
            raise CliError(line)
    return run_gui(project, screenshot=screenshot)


# ------------------------------------------------------------------------------------------------ parser
class CliError(RuntimeError):
    """A problem to report in one line."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="im2im-active",
        description="Human-in-the-loop active learning for microscopy image-to-image models.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
        return p

    p = add("init", cmd_init, "create a project from a folder of images")
    p.add_argument("project", help="project folder to create")
    p.add_argument("--images", required=True, help="folder of images (searched recursively)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--labels", help="folder of masks matched to images by file stem (imported as pseudo labels)")
    src.add_argument("--pseudo", choices=["otsu"], help="generate pseudo labels")
    p.add_argument("--task", choices=["semantic", "instance", "regression", "denoise"], default="semantic")
    p.add_argument("--config", help="engine YAML config (default: the bundled preset for the task)")

    p = add("status", cmd_status, "summarise a project")
    p.add_argument("project")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("demo", cmd_demo, "build the demo project from the bundled recipe and open it")
    p.add_argument("--project", default="demo-project", help="where to create it (reused if it exists)")
    p.add_argument("--images", type=int, default=12, help="number of demo images")
    p.add_argument("--three-d", action="store_true", help="3D stacks instead of 2D images")
    p.add_argument("--task", choices=["semantic", "instance"], default="instance",
                   help="segment nuclei as objects (instance) or foreground (semantic)")
    p.add_argument("--no-gui", action="store_true", help="print the status instead of opening the app")
    p.add_argument("--screenshot", help="save a PNG of the window and exit")

    p = add("gui", cmd_gui, "open the desktop app")
    p.add_argument("project", nargs="?")
    p.add_argument("--screenshot", help="open offscreen, save a PNG of the whole window and exit")

    for register in _extra_commands():
        register(add)
    return parser


def _extra_commands() -> list[Callable]:
    """Commands that live in their own modules (loop, export), registered when present."""
    registers = []
    for module in ("app.cli_loop", "app.cli_export", "app.cli_auto"):
        try:
            mod = __import__(module, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        registers.append(mod.register)
    return registers


def _version() -> str:
    from im2im_engine import __version__

    return __version__


def _user_errors() -> tuple[type[BaseException], ...]:
    from annotation.project import ProjectError
    from annotation.store import StoreError
    from im2im_engine.io import ImageReadError

    errors: list[type[BaseException]] = [CliError, ProjectError, StoreError, ImageReadError, FileNotFoundError]
    try:
        from im2im_engine.config import ConfigError

        errors.append(ConfigError)
    except ImportError:
        pass
    try:
        from annotation.jobs import JobError

        errors.append(JobError)
    except ImportError:
        pass
    return tuple(errors)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except _user_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())

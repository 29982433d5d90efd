"""``im2im-active``: the headless face of the app (see DESIGN.md, "CLI").

Each command is a thin wrapper over a function in ``annotation`` (or the GUI for ``gui``/``demo``), so the
CLI, the GUI and the tests run the same code. Errors a user can fix end in one line on stderr naming the
file and the problem, and a non-zero exit code; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130

#: Seconds between progress lines when stderr is not a terminal (a log file, a pipe, a CI job).
PROGRESS_SECONDS = float(os.environ.get("IM2IM_PROGRESS_SECONDS", 5))

#: Choices listed in ``--help``; tests check they match annotation.pseudo.METHODS and
#: annotation.strategies.STRATEGIES (importing those here would cost seconds on every command).
PSEUDO_METHODS = {
    "otsu": "Otsu threshold + connected components",
    "watershed": "Otsu threshold + distance-transform watershed that splits touching objects (instance only)",
}
STRATEGIES = ("least_confidence", "margin", "entropy", "bald", "batch_diversity", "random", "variance")
TASKS = ["semantic", "instance", "regression", "denoise"]


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def fraction(text: str) -> float:
    """argparse type: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1 (exclusive), got {value}")
    return value


def strategy_list(text: str) -> list[str]:
    """argparse type: comma-separated query strategies, each one of :data:`STRATEGIES`."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in STRATEGIES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown strategy {', '.join(unknown) or repr(text)}; choose from "
                                         f"{', '.join(STRATEGIES)}")
    return names


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class _Heartbeat:
    """When stderr is not a terminal, a line every :data:`PROGRESS_SECONDS` saying where the work is (a tqdm
    bar is invisible in a log or a pipe, and a silent minute looks like a hang)."""

    def __init__(self, desc: str, quiet: bool):
        self.desc = desc
        self.stream = sys.stderr
        self.started = time.monotonic()
        self.state = "starting"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self.active = not quiet and not _is_terminal(self.stream)
        if self.active:
            self._print(f"{desc}: starting")
            self._thread = threading.Thread(target=self._run, name=f"progress-{desc}", daemon=True)
            self._thread.start()

    def update(self, state: str) -> None:
        with self._lock:
            self.state = state

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def _run(self) -> None:
        while not self._stop.wait(PROGRESS_SECONDS):
            with self._lock:
                state = self.state
            self._print(f"{self.desc}: {state} ({time.monotonic() - self.started:.0f} s)")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


class TqdmProgress:
    """A ``progress(done, total, what)`` callback: a tqdm bar on a terminal, a line every few seconds
    otherwise."""

    def __init__(self, desc: str, quiet: bool = False):
        self.desc, self.quiet, self.bar = desc, quiet, None
        self.heartbeat = _Heartbeat(desc, quiet)

    def __call__(self, done: int, total: int, what: str = "") -> None:
        if self.quiet:
            return
        self.heartbeat.update(f"{done}/{total} {what}".rstrip())
        if self.heartbeat.active:
            return
        from tqdm import tqdm

        if self.bar is None or self.bar.total != total:
            self.close()
            self.bar = tqdm(total=total, desc=self.desc, unit="img", file=sys.stderr, leave=True,
                            disable=None, dynamic_ncols=True)
        self.bar.n = done
        self.bar.set_postfix_str(what[-40:], refresh=True)

    def close(self) -> None:
        self.heartbeat.stop()
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class StepProgress:
    """Progress callback for engine jobs: dict events with step/total/loss/metric/eta. A tqdm bar on a
    terminal; otherwise a line every few seconds, from the start (the worker takes a while to load)."""

    def __init__(self, desc: str, quiet: bool = False):
        self.desc, self.quiet, self.bar, self.phase = desc, quiet, None, None
        self.heartbeat = _Heartbeat(desc, quiet)

    @staticmethod
    def describe(event: dict) -> str:
        done = event.get("step", event.get("done"))
        total = event.get("total")
        unit = "step" if "step" in event else "image"
        text = f"{unit} {done}/{total}" if done is not None and total else "working"
        for key in ("loss", "metric"):
            if isinstance(event.get(key), int | float):
                text += f", {key} {event[key]:.4g}"
        if isinstance(event.get("eta_s"), int | float):
            text += f", about {event['eta_s']:.0f} s left"
        return text

    def __call__(self, event: dict) -> None:
        if self.quiet:
            return
        if event.get("event") == "progress":
            self.heartbeat.update(self.describe(event))
        if self.heartbeat.active:
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
        self.heartbeat.stop()
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# --------------------------------------------------------------------------------------------- commands
def fit_options(args: argparse.Namespace):
    """``--channel``, ``--max-projection`` and ``--dims`` as :class:`annotation.importer.FitOptions`."""
    from annotation.importer import FitOptions

    dims = {"2d": 2, "3d": 3}.get(getattr(args, "dims", None) or "")
    return FitOptions(channel=args.channel, z_projection="max" if args.max_projection else None, dims=dims)


#: How to make a refused image fit, per choice, in command-line words.
_HINTS = {
    "channel": "pick one with --channel INDEX|NAME",
    "z_projection": "add --max-projection",
    "dims": "put them in a 2D project",
}


def print_import_report(report, labels: str | None, verb: str, task: str, new_project: bool = False) -> None:
    """What an import did, in words: how many images, the project's shape, what was fitted, what was
    refused and why (each with the option that makes it fit), masks that matched nothing."""
    kind = "target" if task == "regression" else "pseudo label"
    labels_word = f"{report.labels} {kind}{'s' if report.labels != 1 else ''}" if report.labels else f"no {kind}s"
    print(f"{verb} {len(report.added)} image{'s' if len(report.added) != 1 else ''} (project: {report.shape}), "
          f"{labels_word}")
    if report.shape_note:
        print(f"  {report.shape_note}")
    for note in report.config_notes:
        print(f"  fitted to your images: {note}")
    for path, what in report.fitted:
        print(f"  {path}: {what}")
    for path in report.already:
        print(f"  {path}: already in the project, left as it is")
    for problem in report.problems():
        print(f"  skipped {problem}", file=sys.stderr)
    for choice in dict.fromkeys(report.choices.values()):
        n = sum(c == choice for c in report.choices.values())
        hint = _HINTS[choice] + (" (or --dims 3d for a 3D project)" if new_project and choice == "z_projection"
                                 else "")
        print(f"  hint: to use the {n} image{'s' if n != 1 else ''} skipped for this, {hint}", file=sys.stderr)
    if report.unmatched_images:
        print(f"  {len(report.unmatched_images)} images have no mask in {labels}: "
              + ", ".join(report.unmatched_images[:5]) + (" ..." if len(report.unmatched_images) > 5 else ""),
              file=sys.stderr)


def cmd_init(args: argparse.Namespace) -> int:
    from annotation.setup import init_project

    bar = TqdmProgress("import", args.quiet)
    try:
        project, report = init_project(
            args.project, args.images, labels_dir=args.labels, pseudo=args.pseudo, task=args.task,
            config_path=args.config, progress=bar, fit=fit_options(args),
        )
    finally:
        bar.close()
    with project:
        print_import_report(report, args.labels, f"Created {project.root} ({args.task}):", args.task,
                            new_project=True)
    return EXIT_OK


def add_fit_arguments(p: argparse.ArgumentParser, dims: bool) -> None:
    """The choices that make images fit a project (``init`` and ``add``)."""
    g = p.add_argument_group("images that do not fit the project as they are")
    g.add_argument("--channel", metavar="INDEX|NAME",
                   help="use this channel of images with more channels than the project takes (an index from 0, "
                        "a channel name, or R/G/B for colour images)")
    g.add_argument("--max-projection", action="store_true",
                   help="use the maximum projection of z-stacks in a 2D project")
    if dims:
        g.add_argument("--dims", choices=["2d", "3d"],
                       help="2D images or 3D z-stacks (default: what most of the images are)")
    p.epilog = ("Every image is checked against the project: one that does not fit is skipped with the reason, "
                "or fitted by --channel / --max-projection (a fitted image is saved once, as the project reads "
                "it, under PROJECT/derived/).")


def cmd_status(args: argparse.Namespace) -> int:
    from annotation.project import Project
    from annotation.status import format_status, project_status

    with Project.open(args.project) as project:
        status = project_status(project)
    print(json.dumps(status, indent=2, default=str) if args.json else format_status(status))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from annotation.demo_project import ensure_demo_project

    bar = TqdmProgress("demo", args.quiet)
    try:
        root = ensure_demo_project(args.project, progress=bar, n_images=args.images, three_d=args.three_d,
                                   task=args.task, recipe=args.recipe)
    finally:
        bar.close()
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
    add_label_arguments(p)
    p.add_argument("--task", choices=TASKS, default="semantic")
    p.add_argument("--config", help="engine YAML config (default: the bundled preset for the task)")
    add_fit_arguments(p, dims=True)

    p = add("status", cmd_status, "summarise a project")
    p.add_argument("project")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("demo", cmd_demo, "build the demo project from the bundled recipe and open it")
    p.add_argument("--project", default="demo-project", help="where to create it (reused if it exists)")
    p.add_argument("--images", type=positive_int, default=12, help="number of demo images")
    p.add_argument("--three-d", action="store_true", help="3D stacks instead of 2D images")
    p.add_argument("--recipe", choices=["nuclei", "realistic"], default="nuclei",
                   help="nuclei: 256² images of separate nuclei; realistic: 128² tiles (3D: 31×61×57) with "
                        "uneven brightness, touching clumps and Poisson noise, like real microscopy")
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


def add_label_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--labels", help="folder of masks matched to images by file stem (imported as pseudo labels)")
    src.add_argument("--pseudo", choices=list(PSEUDO_METHODS), metavar="METHOD",
                     help="generate pseudo labels: " + "; ".join(f"{k}: {v}" for k, v in PSEUDO_METHODS.items()))


def _extra_commands() -> list[Callable]:
    """Commands that live in their own modules (loop, export), registered when present."""
    registers = []
    for module in ("app.cli_images", "app.cli_loop", "app.cli_export", "app.cli_auto"):
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


def quiet_libraries() -> None:
    """Reader libraries talk on stderr (tifffile logs "contains no pages" once per read attempt, aicsimageio
    lists every reader it tried, warns about pixel sizes): our own one-line errors say what matters."""
    import logging
    import warnings

    for name in ("tifffile", "aicsimageio", "ome_types", "xmlschema", "bfio", "imageio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    for module in ("aicsimageio", "tifffile", "ome_types", "xarray", "dask", "imageio"):
        warnings.filterwarnings("ignore", module=module + r"(\..*)?$")


def main(argv: Sequence[str] | None = None) -> int:
    quiet_libraries()
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

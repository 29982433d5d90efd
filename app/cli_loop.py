"""CLI commands of the active-learning loop: ``train``, ``score``, ``next``, ``correct``, ``simulate``.

Each runs the same ``annotation.loop`` function the GUI runs from a thread worker; here it blocks with a
progress bar, and Ctrl-C cancels the engine job cleanly (the current model stays current).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from .cli import EXIT_CANCELLED, EXIT_OK, STRATEGIES, StepProgress, fraction, positive_int, strategy_list


class _CtrlC:
    """Turn Ctrl-C into a cancel request polled by the job runner, instead of killing us mid-write."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self) -> bool:
        return self.event.is_set()


def _run_cancellable(func: Callable, *args, **kwargs):
    stop = _CtrlC()
    try:
        return func(*args, should_stop=stop, **kwargs)
    except KeyboardInterrupt:
        stop.event.set()
        raise


def cmd_train(args: argparse.Namespace) -> int:
    from annotation.loop import train_round
    from annotation.project import Project

    with Project.open(args.project) as project:
        bar = StepProgress("train", args.quiet)
        try:
            result = _run_cancellable(train_round, project, steps=args.steps, progress=bar)
        finally:
            bar.close()
        for item in result.skipped:
            print(f"skipped {item['name']}: {item['reason']}", file=sys.stderr)
        print(result.message)
        if result.cancelled:
            return EXIT_CANCELLED
        if result.accepted and not args.no_score:
            _score_with_bar(project, args.quiet)
        if result.hint:
            print(f"hint: {result.hint}")
    return EXIT_OK


def cmd_score(args: argparse.Namespace) -> int:
    from annotation.project import Project

    with Project.open(args.project) as project:
        _score_with_bar(project, args.quiet)
    return EXIT_OK


def _score_with_bar(project, quiet: bool) -> None:
    from annotation.loop import score

    bar = StepProgress("score", quiet)
    try:
        n = _run_cancellable(score, project, progress=bar)
    finally:
        bar.close()
    print(f"scored {n} images with v{project.store.current_model}")


def cmd_next(args: argparse.Namespace) -> int:
    from annotation.loop import next_images
    from annotation.project import Project

    with Project.open(args.project) as project:
        entries = next_images(project, args.n, args.strategy)
        if args.json:
            print(json.dumps([e.__dict__ for e in entries]))
        else:
            for e in entries:
                value = "-" if e.score is None else f"{e.score:.4f}"
                print(f"{e.name}\t{value}\t{e.state}")
    return EXIT_OK


def cmd_correct(args: argparse.Namespace) -> int:
    from annotation.corrections import correct_from_file
    from annotation.project import Project

    with Project.open(args.project) as project:
        image = correct_from_file(project, args.image, args.mask)
        print(f"stored the corrected label of {image.name} (marked done)")
    return EXIT_OK


def cmd_simulate(args: argparse.Namespace) -> int:
    from annotation.simulate import SimulationSettings, run_simulation
    from annotation.strategies import STRATEGIES

    names = args.strategy  # checked by the parser (strategy_list)
    unknown = [s for s in names if s not in STRATEGIES]
    if unknown:  # the parser's list and annotation.strategies disagree: a bug, said plainly
        from .cli import CliError

        raise CliError(f"unknown strategy {', '.join(unknown)}; choose from {', '.join(STRATEGIES)}")
    pseudo = args.pseudo or ("watershed" if args.task == "instance" else "otsu")
    settings = SimulationSettings(
        images=Path(args.images), truth=Path(args.truth), pseudo=pseudo, strategies=names,
        rounds=args.rounds, per_round=args.per_round, out=Path(args.out), seeds=args.seeds,
        test_fraction=args.test_fraction, steps=args.steps, initial_steps=args.initial_steps, task=args.task,
        config=Path(args.config) if args.config else None,
    )
    summary = run_simulation(settings, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(json.dumps(summary))
    return EXIT_OK


def _strategy_help(default: str) -> str:
    return f"query strategy, one of: {', '.join(STRATEGIES)} ({default})"


def register(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("train", cmd_train, "train a model round (v1 from pseudo labels, then fine-tuning), then re-score")
    p.add_argument("project")
    p.add_argument("--steps", type=positive_int, help="training steps, a whole number >= 1 (default: the config's "
                   "training.steps for v1, loop.finetune_steps after)")
    p.add_argument("--no-score", action="store_true", help="do not re-score the images afterwards")

    p = add("score", cmd_score, "predict and rank every uncorrected image with the current model")
    p.add_argument("project")

    p = add("next", cmd_next, "list the images to correct next")
    p.add_argument("project")
    p.add_argument("-n", type=positive_int, help="how many (default: loop.batch_size)")
    p.add_argument("--strategy", choices=STRATEGIES, metavar="NAME",
                   help=_strategy_help("default: loop.strategy in config.yaml"))
    p.add_argument("--json", action="store_true")

    p = add("correct", cmd_correct, "store a corrected mask for one image and mark the image done")
    p.description = ("Store a whole mask as the corrected label of one image, as one edit (undoable in the app). "
                     "A whole mask is your answer for every pixel, so the image is marked done: all its pixels "
                     "count fully in training and it leaves the queue.")
    p.add_argument("project")
    p.add_argument("image", help="image id, name or path")
    p.add_argument("--mask", required=True, help="label image of the same size (marks the image done)")

    p = add("simulate", cmd_simulate, "compare query strategies with ground truth standing in for a person")
    p.add_argument("--images", required=True)
    p.add_argument("--truth", required=True, help="true masks, matched to images by file stem")
    p.add_argument("--pseudo", help="'otsu', 'watershed' or a folder of pseudo-label masks (default: watershed "
                   "for instance, otsu for semantic)")
    p.add_argument("--strategy", required=True, type=strategy_list, metavar="S[,S...]",
                   help=f"comma-separated query strategies: {', '.join(STRATEGIES)}")
    p.add_argument("--rounds", type=positive_int, required=True)
    p.add_argument("--per-round", type=positive_int, required=True)
    p.add_argument("--seeds", type=positive_int, default=3,
                   help="repeat with this many seeds; mean and spread reported")
    p.add_argument("--test-fraction", type=fraction, default=0.25)
    p.add_argument("--steps", type=positive_int, help="fine-tuning steps per round")
    p.add_argument("--initial-steps", type=positive_int,
                   help="steps of round 0 (default: the config's training.steps)")
    p.add_argument("--task", choices=["semantic", "instance"], default="semantic")
    p.add_argument("--config", help="engine YAML config (default: the bundled preset for the task)")
    p.add_argument("--out", required=True)

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

from .cli import EXIT_CANCELLED, EXIT_OK, StepProgress


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

    names = [s.strip() for s in args.strategy.split(",") if s.strip()]
    unknown = [s for s in names if s not in STRATEGIES]
    if unknown:
        from .cli import CliError

        raise CliError(f"unknown strategy {', '.join(unknown)}; choose from {', '.join(STRATEGIES)}")
    settings = SimulationSettings(
        images=Path(args.images), truth=Path(args.truth), pseudo=args.pseudo, strategies=names,
        rounds=args.rounds, per_round=args.per_round, out=Path(args.out), seeds=args.seeds,
        test_fraction=args.test_fraction, steps=args.steps, initial_steps=args.initial_steps, task=args.task,
        config=Path(args.config) if args.config else None,
    )
    summary = run_simulation(settings, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(json.dumps(summary))
    return EXIT_OK


def register(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("train", cmd_train, "train a model round (v1 from pseudo labels, then fine-tuning), then re-score")
    p.add_argument("project")
    p.add_argument("--steps", type=int, help="training steps (default: config)")
    p.add_argument("--no-score", action="store_true", help="do not re-score the images afterwards")

    p = add("score", cmd_score, "predict and rank every uncorrected image with the current model")
    p.add_argument("project")

    p = add("next", cmd_next, "list the images to correct next")
    p.add_argument("project")
    p.add_argument("-n", type=int, help="how many (default: loop.batch_size)")
    p.add_argument("--strategy", help="query strategy (default: loop.strategy)")
    p.add_argument("--json", action="store_true")

    p = add("correct", cmd_correct, "store a corrected mask for one image")
    p.add_argument("project")
    p.add_argument("image", help="image id, name or path")
    p.add_argument("--mask", required=True, help="label image of the same size")

    p = add("simulate", cmd_simulate, "compare query strategies with ground truth standing in for a person")
    p.add_argument("--images", required=True)
    p.add_argument("--truth", required=True, help="true masks, matched to images by file stem")
    p.add_argument("--pseudo", default="otsu", help="'otsu' or a folder of pseudo-label masks")
    p.add_argument("--strategy", required=True, help="comma-separated: least_confidence,margin,entropy,bald,"
                   "batch_diversity,random")
    p.add_argument("--rounds", type=int, required=True)
    p.add_argument("--per-round", type=int, required=True)
    p.add_argument("--seeds", type=int, default=3, help="repeat with this many seeds; mean and spread reported")
    p.add_argument("--test-fraction", type=float, default=0.25)
    p.add_argument("--steps", type=int, help="fine-tuning steps per round")
    p.add_argument("--initial-steps", type=int, help="steps of round 0 (default: the config's training.steps)")
    p.add_argument("--task", choices=["semantic", "instance"], default="semantic")
    p.add_argument("--config", help="engine YAML config (default: the bundled preset for the task)")
    p.add_argument("--out", required=True)

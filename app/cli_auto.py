"""CLI command ``auto``: find the configuration that suits the project's data by cross-validation.

It runs :func:`annotation.auto.run_search` (the GUI's Model → Find the best configuration… runs the same);
here it blocks, prints a line per finished training, and Ctrl-C stops the search cleanly: what finished is
kept in the project and the next ``auto`` continues from there.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable

from .cli import EXIT_CANCELLED, EXIT_OK, CliError


def cmd_auto(args: argparse.Namespace) -> int:
    from annotation.auto import AutoSettings, apply_choice, format_report, parse_budget, run_search
    from annotation.project import Project

    try:
        budget = parse_budget(args.budget)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    settings = AutoSettings(folds=args.folds, budget_s=budget, steps=args.steps, max_candidates=args.candidates,
                            parallel=args.parallel)
    stop = threading.Event()

    def progress(event: dict) -> None:
        if not args.quiet and event.get("message"):
            print(f"[{event['done']}/{event['total']}] {event['message']}", file=sys.stderr, flush=True)

    with Project.open(args.project) as project:
        try:
            report = run_search(project, settings, progress=progress, should_stop=stop.is_set)
        except KeyboardInterrupt:
            stop.set()
            raise
        print(json.dumps(report, default=str) if args.json else format_report(report))
        if args.apply and report.get("chosen"):
            print(apply_choice(project, report["search_id"]))
    return EXIT_CANCELLED if report.get("stopped") == "cancelled" else EXIT_OK


def register(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("auto", cmd_auto, "find the best configuration for the project's data by cross-validation")
    p.add_argument("project")
    p.add_argument("--budget", help="stop launching trainings after this long: 30m, 2h, 1h30m, 90s (default: none)")
    p.add_argument("--folds", type=int, default=3, help="k of k-fold cross-validation (default 3)")
    p.add_argument("--steps", type=int, help="training steps per fold (default: the config's training.steps)")
    p.add_argument("--candidates", type=int, default=4, help="at most this many configurations, the current one "
                   "included (default 4)")
    p.add_argument("--parallel", type=int, help="Slurm: at most this many trainings at once (default: the cluster "
                   "decides)")
    p.add_argument("--apply", action="store_true", help="make the chosen configuration the project's (the old "
                   "config.yaml is kept in config-history/)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

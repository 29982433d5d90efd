"""``python -m benchmarks [--quick] [--json FILE] [--only 1,3] [--device cpu|cuda]``: run, print the table, write JSON.

``--device cuda`` runs the GPU rows of #1-#3 instead of their CPU rows (the others do not depend on it); where
CUDA is absent those rows say so and nothing is measured.

Every benchmark runs even if another fails (its row then says why), so one broken piece does not hide
the other figures.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import sys
import time
import traceback
from pathlib import Path

from . import BENCHMARKS
from .common import Result, machine, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (< 5 min on 2 cores)")
    parser.add_argument("--json", type=Path, help="write the results (with per-row ratios) to this file")
    parser.add_argument("--only", default="", help="comma-separated benchmark numbers, e.g. 2,3")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cuda: the GPU rows of #1-#3 (training, inference, uncertainty), side by side with "
                             "their references in this process")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    wanted = {int(x) for x in args.only.split(",") if x.strip()}
    info = machine()
    print(f"machine: {info}", flush=True)
    if args.device == "cuda":
        from .gpu import available

        ok, why = available()
        print(f"GPU rows on {info['gpu']}" if ok else f"--device cuda: {why}; the GPU rows are skipped", flush=True)
    results: list[Result] = []
    t_all = time.perf_counter()
    for number, name in BENCHMARKS:
        if wanted and number not in wanted:
            continue
        t0 = time.perf_counter()
        try:
            run = importlib.import_module(f"benchmarks.{name}").run
            takes_device = "device" in inspect.signature(run).parameters
            rows = run(args.quick, device=args.device) if takes_device else run(args.quick)
        except Exception as exc:  # a failing benchmark is a row, not the end of the run
            traceback.print_exc()
            rows = [Result(id=str(number), what=name, unit="-", ours={"n": 0}, baseline=None, ratio=None,
                           ratio_def="-", goal="-", met=None, note=f"failed: {type(exc).__name__}: {exc}")]
        for r in rows:
            r.params["seconds"] = round(time.perf_counter() - t0, 1)
        results += rows
        print(f"#{number} {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    total = time.perf_counter() - t_all
    print()
    print(table(results))
    for r in results:
        if r.note:
            print(f"- {r.id}: {r.note}")
    print(f"\ntotal {total:.0f} s ({'quick' if args.quick else 'full'})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": info, "quick": args.quick, "seconds": total,
                                         "command": " ".join(["python -m benchmarks", *(argv or sys.argv[1:])]),
                                         "results": [r.as_dict() for r in results]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

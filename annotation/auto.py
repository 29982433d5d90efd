"""``im2im-active auto``: find the configuration that suits the project's data, by cross-validation.

The engine (:mod:`im2im_engine.auto`) derives candidate configurations from a fingerprint of the data by
fixed rules; this module supplies the project's side: the fingerprint from the project's images and their
best labels (corrected > pseudo), k folds over the labelled images, one training job per candidate x fold
on the project's backend (local one after another, torchrun, or all at once as a Slurm job array), every
finished result in the database (so a killed search resumes where it stopped), a time budget, a report,
and ``apply``, which makes the chosen configuration the project's, keeping the old one.

What is scored: with at least ``folds`` corrected images, the folds are made of corrected images only and
each fold's model trains on everything else (other corrected images at full weight, pseudo labels at their
weight); the score is the task's primary metric on the held-out fold. A project with fewer corrected
images is scored against its pseudo labels, and the report says so: that compares how well candidates
reproduce the pseudo labels, a weaker test.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from im2im_engine import auto as engine_auto
from im2im_engine import io

from .acceptance import PRIMARY_METRIC
from .jobs import run_job
from .loop import job_roots
from .project import APP_SECTIONS, Project, ProjectError
from .store import auto_results as db
from .store.db import now
from .trainset import build_regression_trainset, training_weights, trusted_pixels, usable_images, weight_map

Progress = Callable[[dict], None]
SUPPORTED = ("semantic", "instance", "regression")


@dataclass
class AutoSettings:
    """How a search runs. ``budget_s``: stop launching trainings after this long (None: no limit);
    ``steps``: training steps per fold (None: the configuration's ``training.steps``)."""

    folds: int = 3
    budget_s: float | None = None
    steps: int | None = None
    max_candidates: int = 4
    seed: int = 0
    max_images: int = 64  # images read for the fingerprint (all shapes are used; pixels of a sample)
    parallel: int | None = None  # Slurm: at most this many array tasks at once (None: the cluster decides)


def parse_budget(text: str | None) -> float | None:
    """``30m``, ``2h``, ``1h30m``, ``90s`` or a number of minutes -> seconds; None or ``none`` -> None."""
    if text is None or str(text).strip().lower() in ("", "none", "0"):
        return None
    s = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s) * 60
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([hms])", s)
    if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*([hms])", "", s).strip():
        raise ValueError(f"budget: expected e.g. 30m, 2h, 1h30m or 90s (got {text!r})")
    return sum(float(v) * {"h": 3600, "m": 60, "s": 1}[u] for v, u in parts)


# ------------------------------------------------------------------------------------------ the data
@dataclass
class LabelledSet:
    """The labelled images a search uses: worker entries (targets and weights written to ``folder``)."""

    entries: list[dict] = field(default_factory=list)  # name, image, t, target, weight, trust (+ image_id, source)
    scored: list[int] = field(default_factory=list)  # indices into entries that the folds are made of
    scored_against: str = ""  # done | corrected | pseudo | targets
    digest: str = ""


def best_label(project: Project, image) -> tuple[np.ndarray, str] | None:
    """The best label of an image and what it is: ``done`` (a person checked all of it), ``painted`` (a
    corrected label in progress), else ``pseudo``."""
    for version in ("corrected", "pseudo"):
        label = project.store.get_label(image.id, version)
        if label is not None:
            source = ("done" if image.review == "done" else "painted") if version == "corrected" else "pseudo"
            return label.reshape(image.spatial_shape), source
    return None


def labelled_set(project: Project, folder: Path, folds: int) -> LabelledSet:
    """Write every labelled image's target, training weights and trusted pixels for the worker (no split or
    label is changed). The folds are made of the best-labelled images there are enough of for k folds:
    done images, else corrected ones (done or in progress), else every labelled image (pseudo labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    store = project.store
    out = LabelledSet()
    digest = hashlib.blake2b(digest_size=16)
    if project.task == "regression":
        data = build_regression_trainset(project, folder, 0.0)
        out.entries = [{**e, "source": "target"} for e in data.train + data.check]
        out.scored, out.scored_against, out.digest = list(range(len(out.entries))), "targets", data.digest
        return out
    weights = training_weights(project)
    for image in usable_images(store):
        if image.split == "test":
            continue
        found = best_label(project, image)
        if found is None:
            continue
        target, source = found
        version = "pseudo" if source == "pseudo" else "corrected"
        weight = weight_map(store, image.id, version, target.shape, weights)
        trust = trusted_pixels(weight, version, weights)  # what a held-out fold is scored on
        stem = f"{image.id:06d}"
        np.save(folder / f"{stem}_target.npy", target.astype(np.int32))
        np.save(folder / f"{stem}_weight.npy", weight)
        np.save(folder / f"{stem}_trust.npy", trust)
        out.entries.append({"name": image.name, "image": image.path, "t": 0, "image_id": image.id, "source": source,
                            "target": str(folder / f"{stem}_target.npy"), "weight": str(folder / f"{stem}_weight.npy"),
                            "trust": str(folder / f"{stem}_trust.npy")})
        digest.update(f"{image.content_hash}:{source}:".encode())
        digest.update(hashlib.blake2b(target.tobytes() + weight.tobytes(), digest_size=16).digest())
    done = [i for i, e in enumerate(out.entries) if e["source"] == "done"]
    corrected = [i for i, e in enumerate(out.entries) if e["source"] in ("done", "painted")]
    if len(done) >= folds:
        out.scored, out.scored_against = done, "done"
    elif len(corrected) >= folds:
        out.scored, out.scored_against = corrected, "corrected"
    else:
        out.scored, out.scored_against = list(range(len(out.entries))), "pseudo"
    out.digest = digest.hexdigest()
    return out


def project_fingerprint(project: Project, max_images: int = 64) -> engine_auto.Fingerprint:
    """The data's fingerprint: every image's shape, the pixels and best labels of up to ``max_images``."""
    store = project.store
    images = [im for im in usable_images(store) if im.split != "test"]
    if not images:
        raise ProjectError(f"{project.root}: no usable images (moved or changed files are left out)")
    dims = 3 if any(im.is_3d for im in images) else 2
    step = max(1, math.ceil(len(images) / max_images))
    sample = images[::step]
    arrays, labels, spacings, sources = [], [], [], set()
    for im in sample:
        data = io.read_image(im.path)
        arrays.append(io.to_spatial(np.asarray(data.data), dims))
        spacings.append(data.info.physical_pixel_sizes)
        found = best_label(project, im) if project.task != "regression" else None
        labels.append(None if found is None else found[0])
        if found is not None:
            sources.add(found[1])
    shapes = [im.spatial_shape if dims == 3 else im.spatial_shape[-2:] for im in images]
    source = "+".join(sorted(sources)) if sources else None
    return engine_auto.fingerprint(arrays, labels, spacings=spacings, shapes=shapes, task=project.task,
                                   label_source=source)


def _device_and_memory(project: Project) -> tuple[str, int | None]:
    """Where the trainings will run: a Slurm job asking for a GPU, or this machine (its GPU if it has one)."""
    jobs = project.jobs
    if jobs.backend == "slurm":
        gpu = bool(jobs.slurm.gres and "gpu" in jobs.slurm.gres)
        mem = _parse_mem(jobs.slurm.mem)
        return ("cuda", 16 * 2**30) if gpu else ("cpu", mem or 8 * 2**30)
    try:
        import torch

        if torch.cuda.is_available():
            return "cuda", None
    except ImportError:
        pass
    return "cpu", None


def _parse_mem(text: str | None) -> int | None:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)B?", (text or "").strip().upper())
    if not m:
        return None
    return int(float(m.group(1)) * {"": 2**20, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}[m.group(2)])


# ------------------------------------------------------------------------------------------ the search
@dataclass
class Search:
    """A planned (or resumed) search: its row id, candidates, folds and the data it trains on."""

    id: int
    candidates: list[engine_auto.Candidate]
    folds: list[list[int]]  # indices into data.entries, per fold
    data: LabelledSet
    fingerprint: engine_auto.Fingerprint
    steps: int
    metric: str
    folder: Path
    resumed: bool = False

    def tasks(self) -> list[tuple[str, int]]:
        """Every (candidate, fold), fold by fold: under a budget, all candidates get the same folds first."""
        return [(c.name, f) for f in range(len(self.folds)) for c in self.candidates]


def plan_search(project: Project, settings: AutoSettings) -> Search:
    """Folds over the labelled images, then the search with the same data, folds, steps and current
    configuration (resumed, with the candidates it planned) or a new one (fingerprint, rules, candidates).

    The candidates of a resumed search are the stored ones, not planned again: a rule that depends on the
    memory free at the time must not turn a resumed search into a new one."""
    if project.task not in SUPPORTED:
        raise ProjectError(f"{project.root}: auto supports {', '.join(SUPPORTED)} tasks, not {project.task}")
    if settings.folds < 2:
        raise ProjectError(f"folds: at least 2 (got {settings.folds})")
    base = project.engine_config()
    data = labelled_set(project, project.jobs_dir / "auto-data", settings.folds)
    if len(data.scored) < settings.folds:
        raise ProjectError(f"{project.root}: {settings.folds}-fold cross-validation needs at least "
                           f"{settings.folds} labelled images ({len(data.scored)} have a label)")
    folds = [[data.scored[i] for i in fold] for fold in engine_auto.kfold(len(data.scored), settings.folds,
                                                                          settings.seed)]
    fold_names = [[data.entries[i]["name"] for i in f] for f in folds]
    steps = int(settings.steps or base.training.steps)
    key_src = json.dumps({"data": data.digest, "folds": fold_names, "steps": steps, "seed": settings.seed,
                          "max_candidates": settings.max_candidates, "config": base.model_dump(mode="json")},
                         sort_keys=True)
    key = hashlib.blake2b(key_src.encode(), digest_size=16).hexdigest()
    row = db.find_search(project.store, key)
    if row is not None:
        search_id = int(row["id"])
        db.set_search(project.store, search_id, status="running")
        fp = engine_auto.Fingerprint.from_dict(row["fingerprint"])
        candidates = [engine_auto.Candidate(c["name"], c["config"], c["rules"], c["changes"])
                      for c in row["candidates"]]
    else:
        fp = project_fingerprint(project, settings.max_images)
        device, memory = _device_and_memory(project)
        try:
            candidates = engine_auto.plan(fp, base, device=device, memory_bytes=memory,
                                          max_candidates=settings.max_candidates)
        except ValueError as exc:
            raise ProjectError(f"{project.root}: {exc}") from None
        run_settings = {"folds": settings.folds, "steps": steps, "seed": settings.seed,
                        "scored_against": data.scored_against, "n_scored": len(data.scored),
                        "n_labelled": len(data.entries), "device": device, "fold_images": fold_names}
        cands = [{"name": c.name, "config": c.config, "rules": c.rules, "changes": c.changes} for c in candidates]
        search_id = db.create_search(project.store, key, fp.to_dict(), run_settings, cands)
    folder = project.jobs_dir / f"auto-s{search_id}"
    return Search(search_id, candidates, folds, data, fp, steps, PRIMARY_METRIC[project.task], folder,
                  resumed=row is not None)


def _spec(project: Project, search: Search, candidate: engine_auto.Candidate, fold: int) -> dict:
    """A train job for one candidate on one fold: validated once, at the end, on the held-out fold."""
    held = set(search.folds[fold])
    strip = ("image_id", "source", "trust", "done", "version")
    entries = search.data.entries
    train = [{k: v for k, v in e.items() if k not in strip} for i, e in enumerate(entries) if i not in held]
    # a held-out image is scored on its trusted pixels only (painted or reviewed; all of a pseudo label)
    val = [{**{k: v for k, v in e.items() if k not in strip}, "weight": e.get("trust", e["weight"])}
           for i, e in enumerate(entries) if i in held]
    config = json.loads(json.dumps(candidate.config))
    config["training"].update({"steps": search.steps, "epochs": None, "val_every": search.steps,
                               "early_stopping_patience": 0, "val_fraction": 0.0})
    out = search.folder / f"{candidate.name}-f{fold}"
    return {"config": config, "checkpoint": None, "output_dir": str(out), "steps": search.steps,
            "train": train, "val": val, **job_roots(project, train + val)}


def _harvest(out: Path, metric: str) -> tuple[float, dict] | None:
    """The held-out score a finished fold training left in its folder, or None."""
    path = out / "metrics.json"
    if not path.exists():
        return None
    report = json.loads(path.read_text())
    metrics = report.get("val_metrics") or {}
    if report.get("cancelled") or metric not in metrics or metrics[metric] is None:
        return None
    return float(metrics[metric]), {k: v for k, v in report.items() if k not in ("history",)}


def run_search(project: Project, settings: AutoSettings | None = None, *, progress: Progress | None = None,
               should_stop: Callable[[], bool] | None = None) -> dict:
    """Plan (or resume) the search, run what is missing within the budget, store and return the report."""
    settings = settings or AutoSettings()
    started = time.monotonic()
    deadline = None if settings.budget_s is None else started + settings.budget_s
    search = plan_search(project, settings)
    store = project.store
    by_name = {c.name: c for c in search.candidates}
    done = {(r["candidate"], r["fold"]) for r in db.results(store, search.id)}
    todo = [t for t in search.tasks() if t not in done]
    total = len(search.tasks())
    state = {"stopped": None, "done": len(done)}
    durations = [float(r["seconds"]) for r in db.results(store, search.id) if r["seconds"]]

    def tell(**event: Any) -> None:
        if progress is not None:
            progress({"phase": "auto", "done": state["done"], "total": total, **event})

    tell(message=f"search {search.id}: {len(search.candidates)} candidates x {len(search.folds)} folds, "
         f"{len(todo)} trainings to run" + (" (resumed)" if search.resumed else ""))

    def record(name: str, fold: int, status: str, seconds: float | None, job_id: int | None, backend: str,
               message: str = "") -> None:
        out = search.folder / f"{name}-f{fold}"
        found = _harvest(out, search.metric) if status == "done" else None
        if status == "done" and found is None:
            status, message = "failed", message or f"no {search.metric} in {out / 'metrics.json'}"
        if status not in ("done", "failed"):
            return  # cancelled: not recorded, a resumed search runs it again
        score, metrics = found if found is not None else (None, {})
        db.put_result(store, search.id, name, fold, status=status, score=score, metrics=metrics, seconds=seconds,
                      job_id=job_id, backend=backend, message=message)
        (out / "model.pt").unlink(missing_ok=True)  # only the score is needed; checkpoints of folds are big
        if seconds:
            durations.append(seconds)
        state["done"] += 1
        tell(candidate=name, fold=fold, status=status, score=score, seconds=seconds,
             message=f"{name} fold {fold}: " + (f"{search.metric} {score:.4f}" if score is not None else status))

    # a fold training that finished after its runner died left its score on disk: take it
    for name, fold in list(todo):
        found = _harvest(search.folder / f"{name}-f{fold}", search.metric)
        if found is not None:
            record(name, fold, "done", found[1].get("duration_s"), None, "recovered")
            todo.remove((name, fold))

    def over_budget() -> bool:
        return deadline is not None and time.monotonic() >= deadline

    def stop_now() -> bool:
        if should_stop is not None and should_stop():
            state["stopped"] = state["stopped"] or "cancelled"
            return True
        if over_budget():
            state["stopped"] = state["stopped"] or "budget"
            return True
        return False

    search.folder.mkdir(parents=True, exist_ok=True)
    try:
        if todo and project.jobs.backend == "slurm":
            _run_on_slurm(project, search, by_name, todo, record, tell, stop_now, settings.parallel)
        else:
            for name, fold in todo:
                if stop_now():
                    break
                expected = float(np.median(durations)) if durations else 0.0
                if deadline is not None and time.monotonic() + expected > deadline:
                    state["stopped"] = "budget"
                    break
                _run_local(project, search, by_name[name], fold, record, tell, stop_now)
    finally:
        report = build_report(project, search.id, stopped=state["stopped"],
                              elapsed=time.monotonic() - started, budget_s=settings.budget_s)
        complete = report["finished"] == report["planned"]
        db.set_search(store, search.id, status="done" if complete else "stopped", chosen=report.get("chosen"),
                      report=report)
        if complete:
            shutil.rmtree(project.jobs_dir / "auto-data", ignore_errors=True)
    store.log("auto_search", search_id=search.id, finished=report["finished"], planned=report["planned"],
              chosen=report.get("chosen"), stopped=state["stopped"])
    return report


def _run_local(project: Project, search: Search, candidate: engine_auto.Candidate, fold: int, record: Callable,
               tell: Callable, stop_now: Callable[[], bool]) -> None:
    spec = _spec(project, search, candidate, fold)

    def on_event(event: dict) -> None:
        if event.get("event") == "progress":
            tell(candidate=candidate.name, fold=fold, step=event.get("step"), steps=event.get("total"))

    t0 = time.monotonic()
    outcome = run_job(project, "auto", spec, on_event=on_event, should_stop=stop_now, worker_kind="train")
    record(candidate.name, fold, outcome.status, time.monotonic() - t0, outcome.job_id, outcome.backend,
           outcome.message)


def _run_on_slurm(project: Project, search: Search, by_name: dict, todo: list[tuple[str, int]], record: Callable,
                  tell: Callable, stop_now: Callable[[], bool], parallel: int | None) -> None:
    from .auto_slurm import run_array

    specs = [_spec(project, search, by_name[name], fold) for name, fold in todo]
    started: dict[int, float] = {}

    def on_event(i: int, event: dict) -> None:
        if event.get("event") == "start":
            started[i] = time.monotonic()
        elif event.get("event") == "progress":
            tell(candidate=todo[i][0], fold=todo[i][1], step=event.get("step"), steps=event.get("total"))

    def on_done(i: int, outcome) -> None:
        seconds = None
        harvested = _harvest(search.folder / f"{todo[i][0]}-f{todo[i][1]}", search.metric)
        if harvested is not None:
            seconds = harvested[1].get("duration_s")
        elif i in started:
            seconds = time.monotonic() - started[i]
        record(todo[i][0], todo[i][1], outcome.status, seconds, outcome.job_id, outcome.backend, outcome.message)

    run_array(project, specs, name=f"auto-s{search.id}", on_event=on_event, on_done=on_done, should_stop=stop_now,
              parallel=parallel)


# ------------------------------------------------------------------------------------------ the report
def build_report(project: Project, search_id: int, *, stopped: str | None = None, elapsed: float | None = None,
                 budget_s: float | None = None) -> dict:
    """Per candidate: rules, changes, fold scores, mean +- sd, time; the choice and why (JSON-safe)."""
    row = db.get_search(project.store, search_id)
    rows = db.results(project.store, search_id)
    metric = PRIMARY_METRIC[project.task]
    settings = row["settings"]
    n_folds = int(settings["folds"])
    scores: dict[str, dict[int, float]] = {}
    cands = []
    for c in row["candidates"]:
        mine = [r for r in rows if r["candidate"] == c["name"]]
        ok = {r["fold"]: float(r["score"]) for r in mine if r["status"] == "done" and r["score"] is not None}
        if ok:
            scores[c["name"]] = ok
        mean, sd = engine_auto.summarize(list(ok.values()))
        seconds = [float(r["seconds"]) for r in mine if r["seconds"]]
        cands.append({
            "name": c["name"], "summary": engine_auto.describe_config(c["config"]), "rules": c["rules"],
            "changes": c["changes"], "folds_done": sorted(ok), "scores": {str(k): v for k, v in sorted(ok.items())},
            "failed": [{"fold": r["fold"], "message": r["message"]} for r in mine if r["status"] == "failed"],
            "mean": None if math.isnan(mean) else mean, "sd": None if math.isnan(sd) else sd,
            "seconds": float(sum(seconds)), "seconds_per_fold": float(np.mean(seconds)) if seconds else None,
        })
    report: dict[str, Any] = {
        "search_id": search_id, "metric": metric, "folds": n_folds, "steps": settings["steps"],
        "scored_against": settings["scored_against"], "n_scored": settings["n_scored"],
        "n_labelled": settings["n_labelled"], "device": settings.get("device"), "candidates": cands,
        "planned": len(row["candidates"]) * n_folds, "finished": len(rows), "stopped": stopped,
        "elapsed_s": elapsed, "budget_s": budget_s, "chosen": None, "reason": "",
    }
    try:
        choice = engine_auto.choose(scores, "current")
    except ValueError:
        report["reason"] = "no fold of the current configuration finished: nothing to compare yet"
    else:
        report["chosen"], report["reason"], report["compared_folds"] = choice.name, choice.reason, choice.folds
        report["compared_means"] = choice.means
    return report


def format_report(report: dict) -> str:
    """The report as text (the CLI prints it; the README shows one)."""
    against = {"done": f"{report['n_scored']} images marked done",
               "corrected": f"{report['n_scored']} corrected images (painted pixels and, where done, all)",
               "pseudo": f"pseudo labels of {report['n_scored']} images (fewer corrected images than folds: "
                         "this measures agreement with the pseudo labels, a weaker test)",
               "targets": f"{report['n_scored']} regression targets"}[report["scored_against"]]
    lines = [f"Configuration search {report['search_id']}: {report['folds']}-fold cross-validation, "
             f"{report['steps']} steps per training, {report['metric']} against {against}"]
    width = max(len(c["name"]) for c in report["candidates"])
    for c in report["candidates"]:
        score = ("-" if c["mean"] is None else f"{c['mean']:.4f} ± {c['sd']:.4f}").ljust(17)
        mark = "*" if c["name"] == report.get("chosen") else " "
        lines.append(f" {mark} {c['name']:<{width}}  {score} {len(c['folds_done'])}/{report['folds']} folds  "
                     f"{c['seconds'] / 60:5.1f} min  {c['summary']}")
        for f in c["failed"]:
            lines.append(f"     fold {f['fold']} failed: {f['message'][:200]}")
    lines.append(f"Finished {report['finished']} of {report['planned']} trainings"
                 + (f" in {report['elapsed_s'] / 60:.1f} min" if report.get("elapsed_s") else "")
                 + ({"budget": " (budget reached: run again to continue)",
                     "cancelled": " (cancelled: run again to continue)"}.get(report.get("stopped") or "", "")))
    lines.append(f"Chosen: {report['chosen']}: {report['reason']}" if report.get("chosen") else report["reason"])
    chosen = next((c for c in report["candidates"] if c["name"] == report.get("chosen")), None)
    if chosen is not None and chosen["name"] != "current":
        lines.append("Rules behind it:")
        lines.extend(f"  - {r}" for r in chosen["rules"])
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ apply
def apply_choice(project: Project, search_id: int | None = None) -> str:
    """Make the search's chosen configuration the project's. The old ``config.yaml`` is kept in
    ``config-history/``; the change is an event and a ``config_history`` entry (exports carry it in
    their provenance). Returns a sentence saying what happened."""
    store = project.store
    rows = db.searches(store)
    row = next((r for r in rows if r["id"] == search_id), None) if search_id is not None else (rows[-1] if rows else None)
    if row is None:
        raise ProjectError(f"{project.root}: no configuration search to apply; run `im2im-active auto` first")
    report = row["report"] or build_report(project, int(row["id"]))
    chosen = report.get("chosen")
    if chosen is None:
        raise ProjectError(f"{project.root}: search {row['id']} has no result yet: {report.get('reason', '')}")
    if chosen == "current":
        return "The current configuration was best; config.yaml is unchanged."
    cand = next(c for c in row["candidates"] if c["name"] == chosen)
    history = project.root / "config-history"
    history.mkdir(exist_ok=True)
    stamp = now().replace(":", "").replace("-", "").split(".")[0]
    kept = history / f"config-{stamp}-before-auto-s{row['id']}.yaml"
    shutil.copy2(project.root / project.CONFIG, kept)
    config = {**cand["config"], **{k: v for k, v in project.config.items() if k in APP_SECTIONS}}
    project.save_config(config)
    mine = next(c for c in report["candidates"] if c["name"] == chosen)
    entry = {"at": now(), "by": "auto", "search_id": row["id"], "candidate": chosen, "previous": str(kept.relative_to(project.root)),
             "cv": {"metric": report["metric"], "mean": mine["mean"], "sd": mine["sd"], "folds": report["folds"],
                    "scored_against": report["scored_against"], "current_mean": report.get("compared_means", {}).get("current")},
             "changes": cand["changes"], "model_before": store.current_model}
    store.set_meta("config_history", [*store.get_meta("config_history", []), entry])
    store.log("config_applied", **entry)
    db.set_search(store, int(row["id"]), status="applied")
    return (f"Applied {chosen} (search {row['id']}); the previous config.yaml is kept as "
            f"{kept.relative_to(project.root)}. The next training round trains a new model with it.")

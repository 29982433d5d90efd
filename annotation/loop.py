"""The active-learning loop: train a round, score, rank, and the bookkeeping of every round.

All long work goes through :func:`annotation.jobs.run_job` (the engine worker in a subprocess); the
functions here block, so the GUI calls them from a thread worker and the CLI directly. Everything a round
decides (accepted or not, why, on which data) is written to the store, so the GUI, ``status`` and the
export's provenance all read the same record.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import strategies
from .integrity import check_images
from .jobs import JobError, run_job
from .project import Project
from .store.db import now
from .trainset import build_trainset, remove_folder, training_weights, usable_images

Progress = Callable[[dict], None]

#: The validation metric that decides acceptance, per task (higher is better for all three).
PRIMARY_METRIC = {"semantic": "dice", "instance": "ap50", "regression": "psnr", "denoise": "psnr"}


@dataclass
class RoundResult:
    version: int | None
    accepted: bool
    metrics: dict = field(default_factory=dict)
    message: str = ""
    cancelled: bool = False
    seconds: float = 0.0
    hint: str | None = None  # e.g. "the metric has plateaued: more corrections may not pay off"


@dataclass
class QueueEntry:
    image_id: int
    name: str
    score: float | None
    state: str  # pseudo | predicted | corrected
    rank: int


# ------------------------------------------------------------------------------------------- training
def model_dir(project: Project, version: int) -> Path:
    return project.models_dir / f"v{version}"


def checkpoint_path(project: Project, version: int) -> Path:
    return project.root / project.store.model(version)["path"]


def job_roots(project: Project, entries: list[dict]) -> dict:
    """The worker refuses any path outside the project, and images outside their own folders."""
    folders = sorted({str(Path(e["image"]).resolve().parent) for e in entries})
    return {"root": str(project.root.resolve()), "image_roots": folders}


def train_round(
    project: Project, *, steps: int | None = None, progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RoundResult:
    """Fine-tune the current model (or train version 1 from pseudo labels) and accept it only if it is not
    worse than the current one on the held-out corrected images."""
    store = project.store
    settings = project.loop
    started = time.monotonic()
    check_images(project)
    parent = store.current_model
    round_no = 0 if parent is None else store.model(parent)["round"] + 1
    if steps is None:
        steps = settings.finetune_steps if parent is not None else None  # None: the config's training.steps
    if parent is not None:
        _record_correction_agreement(project, parent)
    version = int(store.scalar("SELECT COALESCE(MAX(version), 0) + 1 FROM models"))
    out = model_dir(project, version)
    if out.exists():  # left by a killed run that never got recorded
        shutil.rmtree(out)
    scratch = project.jobs_dir / f"data-v{version}"
    data = build_trainset(project, scratch, training_weights(project), settings.val_fraction)
    if not data.train:
        raise JobError(f"{project.root}: nothing to train on (no image has a pseudo or corrected label)")
    config = project.engine_config_dict()
    if parent is not None:  # fine-tuning: a gentler learning rate so a few corrections do not wash out v1
        training = dict(config.get("training") or {})
        training["lr"] = float(training.get("lr", 1e-3)) * settings.finetune_lr_scale
        config = {**config, "training": training}
    spec = {
        "config": config,
        "checkpoint": str(checkpoint_path(project, parent)) if parent is not None else None,
        "output_dir": str(out), "steps": steps, "train": data.train, "val": data.val,
        "evaluate_checkpoint": parent is not None and bool(data.val),
        **job_roots(project, data.train + data.val),
    }

    def forward(event: dict) -> None:
        if progress is not None and event.get("event") in ("progress", "metrics"):
            progress({"phase": "train", **event})

    try:
        outcome = run_job(project, "train", spec, on_event=forward, should_stop=should_stop, model_version=version)
    finally:
        remove_folder(scratch)
    seconds = time.monotonic() - started
    if outcome.status == "cancelled":
        return RoundResult(None, False, message="training cancelled; the current model is unchanged",
                           cancelled=True, seconds=seconds)
    if outcome.status != "done" or not (out / "model.pt").exists():
        raise JobError(f"training failed: {outcome.message} (log: {outcome.log})")

    report = json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").exists() else {}
    metrics = dict(report.get("val_metrics") or outcome.result.get("val_metrics") or {})
    baseline = dict(report.get("baseline_metrics") or outcome.result.get("baseline_metrics") or {})
    accepted, message = _decide(project, version, parent, metrics, baseline, len(data.val))
    store.add_model(
        version=version, path=str(out.relative_to(project.root) / "model.pt"), parent=parent,
        status="accepted" if accepted else "rejected", round=round_no, metrics=metrics,
        train_set_hash=data.digest, n_corrected=data.n_corrected + len(data.val), n_pseudo=data.n_pseudo,
        seconds=seconds, note=message,
    )
    if accepted:
        store.set_current_model(version)
    store.log("round", round=round_no, version=version, accepted=accepted, metrics=metrics,
              baseline=baseline, n_corrected=data.n_corrected + len(data.val), n_val=len(data.val),
              train_set_hash=data.digest, seconds=seconds, message=message)
    return RoundResult(version, accepted, metrics, message, seconds=seconds, hint=plateau_hint(project))


def _record_correction_agreement(project: Project, parent: int) -> None:
    """How close the parent model's predictions were to what the user then corrected them to.

    Free (no held-out images needed) and honest (the model never saw those corrections), so the learning
    curve has a point for every round, not only once enough corrected images are held out. Stored in the
    parent's metrics as ``corrections_<metric>``.
    """
    from im2im_engine.metrics import ap50, dice

    store = project.store
    key = PRIMARY_METRIC[project.task]
    if key not in ("dice", "ap50"):
        return
    rows = store.query(
        "SELECT DISTINCT c.image_id FROM corrections c JOIN labels p ON p.image_id = c.image_id"
        " AND p.version = 'prediction' AND p.model_version = ? WHERE c.version = 'corrected' AND c.undone = 0"
        " AND c.model_version = ?", (parent, parent))
    values = []
    for r in rows:
        pred = store.get_label(r["image_id"], "prediction")
        corrected = store.get_label(r["image_id"], "corrected")
        if pred is not None and corrected is not None and pred.shape == corrected.shape:
            values.append(ap50(pred, corrected) if key == "ap50" else dice(pred, corrected))
    if values:
        metrics = {**store.model(parent)["metrics"], f"corrections_{key}": float(np.mean(values)),
                   "corrections_n": len(values)}
        store.update_model(parent, metrics=metrics)


def _decide(project: Project, version: int, parent: int | None, metrics: dict, baseline: dict,
            n_val: int) -> tuple[bool, str]:
    key = PRIMARY_METRIC[project.task]
    if parent is None:
        return True, f"v{version} trained from pseudo labels"
    if not n_val or key not in metrics or key not in baseline:
        return True, f"v{version} accepted without a held-out check (no corrected validation images yet)"
    new, old = float(metrics[key]), float(baseline[key])
    if new + project.loop.accept_tolerance >= old:
        return True, f"v{version} accepted: {key} {new:.3f} vs {old:.3f} for v{parent} on {n_val} held-out images"
    return False, (f"kept v{parent}: v{version} was worse on {n_val} held-out corrected images "
                   f"({key} {new:.3f} < {old:.3f})")


# -------------------------------------------------------------------------------------------- scoring
def score(project: Project, *, progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
          include_corrected: bool = False, include_test: bool = False) -> int:
    """Predict + uncertainty for every image not yet corrected with the current model; store both.

    Test images (a fixed split, never proposed) are only scored when asked, for evaluation.
    """
    store = project.store
    version = store.current_model
    if version is None:
        raise JobError(f"{project.root}: no model yet; run `im2im-active train {project.root}` first")
    check_images(project)
    corrected = {r["image_id"] for r in store.query("SELECT image_id FROM labels WHERE version = 'corrected'")}
    images = [im for im in usable_images(store)
              if (include_corrected or im.id not in corrected) and (include_test or im.split != "test")]
    return _score_images(project, version, images, progress, should_stop)


def _score_images(project: Project, version: int, images: list, progress: Progress | None,
                  should_stop: Callable[[], bool] | None, kind: str = "score") -> int:
    store = project.store
    if not images:
        return 0
    out = model_dir(project, version) / ("scores" if kind == "score" else "predictions")
    by_name = {im.name: im for im in images}
    spec = {"config": project.engine_config_dict(), "checkpoint": str(checkpoint_path(project, version)),
            "output_dir": str(out), "images": [{"name": im.name, "image": im.path, "t": 0} for im in images],
            **job_roots(project, [{"image": im.path} for im in images])}
    stored = 0
    pending: list[dict] = []

    def flush() -> None:
        nonlocal stored
        if pending:
            store.put_scores(version, pending)
            stored += len(pending)
            pending.clear()

    def on_event(event: dict) -> None:
        if event.get("event") == "scored" and event.get("name") in by_name:
            image = by_name[event["name"]]
            with np.load(event["file"]) as npz:
                if "labels" in npz.files:
                    store.put_label(image.id, "prediction", npz["labels"], model_version=version, source=f"v{version}")
                embedding = npz["embedding"] if "embedding" in npz.files else None
            details = {k: float(v) for k, v in (event.get("scores") or {}).items() if isinstance(v, int | float)}
            details["score"] = float(event.get("score", 0.0))
            pending.append({"image_id": image.id, "score": details["score"], "details": details,
                            "embedding": embedding})
            if len(pending) >= 16:
                flush()
        if progress is not None and event.get("event") in ("progress", "scored"):
            progress({"phase": kind, **event})

    outcome = run_job(project, kind, spec, on_event=on_event, should_stop=should_stop, model_version=version)
    flush()
    if outcome.status == "failed":
        raise JobError(f"{kind} failed: {outcome.message} (log: {outcome.log})")
    return stored


# ---------------------------------------------------------------------------------------------- queue
def image_states(project: Project) -> dict[int, str]:
    states: dict[int, str] = {}
    rank = {"pseudo": 0, "prediction": 1, "corrected": 2}
    for r in project.store.query("SELECT image_id, version FROM labels WHERE version != 'ignore'"):
        if rank[r["version"]] >= rank.get(states.get(r["image_id"], "pseudo"), 0):
            states[r["image_id"]] = r["version"]
    return {k: ("predicted" if v == "prediction" else v) for k, v in states.items()}


def _candidates(project: Project, exclude_corrected: bool = True) -> tuple[list[strategies.Candidate], dict, dict]:
    """Queue candidates, label states and image names, from one light pass over the images table (the
    queue of a 10,000-image project is rebuilt after every round, so no per-row JSON parsing here)."""
    store = project.store
    version = store.current_model
    rows = {r["image_id"]: r for r in store.scores(version)} if version is not None else {}
    states = image_states(project)
    images = store.query("SELECT id, name, split, state FROM images ORDER BY id")
    cands = []
    for im in images:
        if im["state"] != "ok" or im["split"] == "test" or (exclude_corrected and states.get(im["id"]) == "corrected"):
            continue
        row = rows.get(im["id"])
        cands.append(strategies.Candidate(
            im["id"], dict(row["details"]) if row else {}, row["embedding"] if row else None))
    return cands, states, {im["id"]: im["name"] for im in images}


def _labeled_embeddings(project: Project) -> np.ndarray | None:
    """Embeddings of corrected images (the labelled pool for diversity), from the latest scores."""
    rows = project.store.query(
        "SELECT s.embedding FROM scores s JOIN labels l ON l.image_id = s.image_id AND l.version = 'corrected'"
        " WHERE s.embedding IS NOT NULL ORDER BY s.model_version DESC")
    embs = [np.frombuffer(r["embedding"], np.float32) for r in rows]
    return np.stack(embs) if embs else None


def next_images(project: Project, n: int | None = None, strategy: str | None = None,
                seed: int | None = None) -> list[QueueEntry]:
    """The batch to correct next: the strategy's top picks plus the configured random share."""
    settings = project.loop
    strategy = strategy or settings.strategy
    n = settings.batch_size if n is None else n
    cands, states, names = _candidates(project)
    keys = strategies.select(cands, n, strategy, random_share=settings.random_share,
                             labeled_embeddings=_labeled_embeddings(project), seed=seed)
    return _entries(names, keys, cands, states, strategy)


def queue(project: Project, strategy: str | None = None, state: str | None = None) -> list[QueueEntry]:
    """Every image, ranked for the queue panel: uncorrected by the strategy, corrected at the end."""
    strategy = strategy or project.loop.strategy
    cands, states, names = _candidates(project)
    keys = strategies.rank(cands, strategy) if cands else []
    keys += [i for i, s in sorted(states.items()) if s == "corrected"]
    entries = _entries(names, keys, cands, states, strategy)
    return [e for e in entries if state is None or e.state == state]


def _entries(names: dict[int, str], keys: list[int], cands: list, states: dict[int, str],
             strategy: str) -> list[QueueEntry]:
    """Queue rows; the score shown is the one the strategy ranks by (none for random)."""
    by_key = {c.key: c for c in cands}
    measure = strategies.MEASURE.get(strategy)
    out = []
    for rank, key in enumerate(keys):
        cand = by_key.get(key)
        value = None
        if cand is not None and cand.scores:
            value = cand.scores.get(measure, cand.scores.get("score")) if measure else cand.scores.get("score")
        out.append(QueueEntry(key, names[key], value, states.get(key, "pseudo"), rank))
    return out


# -------------------------------------------------------------------------------------------- history
def learning_curve(project: Project) -> list[dict]:
    """One row per model version: metric against the number of corrected images used.

    ``metric`` is the held-out validation value when there is one, else the model's agreement with the
    corrections made while it was current (``metric_source`` says which).
    """
    key = PRIMARY_METRIC[project.task]
    rows = []
    for m in project.store.models():
        metrics = m["metrics"]
        if key in metrics:
            metric, source = metrics[key], "held-out"
        elif f"corrections_{key}" in metrics:
            metric, source = metrics[f"corrections_{key}"], "corrections"
        else:
            metric, source = None, None
        rows.append({"version": m["version"], "n_corrected": m["n_corrected"], "metrics": metrics,
                     "metric": metric, "metric_source": source, "accepted": m["status"] == "accepted",
                     "round": m["round"], "created_at": m["created_at"], "note": m["note"]})
    return rows


def corrections_since_current(project: Project) -> int:
    store = project.store
    current = store.current_model
    n_corrected = int(store.scalar("SELECT COUNT(DISTINCT image_id) FROM labels WHERE version = 'corrected'"))
    if current is None:
        return n_corrected
    return n_corrected - int(store.model(current)["n_corrected"])


def retrain_due(project: Project) -> bool:
    """Enough newly corrected images since the current model to fine-tune (``loop.retrain_every``)."""
    return project.store.current_model is None or corrections_since_current(project) >= project.loop.retrain_every


def plateau_hint(project: Project) -> str | None:
    """A hint to stop when the validation metric has not improved for ``plateau_rounds`` accepted rounds."""
    settings = project.loop
    key = PRIMARY_METRIC[project.task]
    values = [m["metrics"][key] for m in project.store.models()
              if m["status"] == "accepted" and key in m["metrics"]]
    if len(values) <= settings.plateau_rounds:
        return None
    best_before = max(values[: -settings.plateau_rounds])
    if max(values[-settings.plateau_rounds:]) < best_before + settings.plateau_delta:
        return (f"{key} has not improved by {settings.plateau_delta} in {settings.plateau_rounds} rounds "
                f"(best {max(values):.3f}); more corrections may not pay off")
    return None


def record_time(project: Project, image_id: int, seconds: float) -> None:
    project.store.log("time", image_id, seconds=round(seconds, 2), at=now())

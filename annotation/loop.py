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

from im2im_engine.atomic import atomic_write_text

from . import acceptance, strategies
from .acceptance import PRIMARY_METRIC
from .integrity import check_images
from .jobs import JobError, run_job
from .project import Project, ProjectError
from .store.db import now
from .trainset import build_trainset, check_entry, done_ids, remove_folder, training_weights, usable_images

Progress = Callable[[dict], None]


@dataclass
class RoundResult:
    version: int | None
    accepted: bool
    metrics: dict = field(default_factory=dict)
    message: str = ""
    cancelled: bool = False
    seconds: float = 0.0
    hint: str | None = None  # e.g. "the metric has plateaued: more corrections may not pay off"
    check: dict = field(default_factory=dict)  # what decided (annotation.acceptance.Check as a dict)
    skipped: list = field(default_factory=list)  # images the worker could not use, each with the reason


@dataclass
class QueueEntry:
    image_id: int
    name: str
    score: float | None
    state: str  # review state: untouched | in_progress | done
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
    """Fine-tune the current model (or train version 1 from pseudo labels) and accept it only if it passes
    the check (:mod:`annotation.acceptance`): never worse than the current model on images it did not
    train on, judged the same way."""
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise JobError(f"a training round needs a whole number of steps >= 1 (got {steps!r})")
    store = project.store
    settings = project.loop
    started = time.monotonic()
    check_images(project)
    parent = store.current_model
    round_no = 0 if parent is None else store.model(parent)["round"] + 1
    fresh = parent is not None and network_changed(project, parent)  # e.g. after `auto --apply`: no fine-tuning
    if steps is None:
        steps = settings.finetune_steps if parent is not None and not fresh else None  # None: training.steps
    if parent is not None:
        _record_correction_agreement(project, parent)
    version = int(store.scalar("SELECT COALESCE(MAX(version), 0) + 1 FROM models"))
    out = model_dir(project, version)
    if out.exists():  # left by a killed run that never got recorded
        shutil.rmtree(out)
    scratch = project.jobs_dir / f"data-v{version}"
    data = build_trainset(project, scratch, training_weights(project), settings.val_fraction)
    # rotate by attempt, not by accepted round: a rejected round must not leave the same image to judge
    # every later round (a model that learnt from corrections would be held to that one image for ever)
    rule, train, check = acceptance.choose(data.train, [check_entry(e) for e in data.check], version - 1)
    if not train:
        remove_folder(scratch)
        raise JobError(f"{project.root}: nothing to train on (no usable image has a pseudo or corrected label)")
    config = project.engine_config_dict()
    if parent is not None and not fresh:  # fine-tuning: a gentler learning rate so corrections do not wash out v1
        training = dict(config.get("training") or {})
        training["lr"] = float(training.get("lr", 1e-3)) * settings.finetune_lr_scale
        config = {**config, "training": training}
    spec = {
        "config": config,
        "checkpoint": str(checkpoint_path(project, parent)) if parent is not None and not fresh else None,
        # a parent of another network (the configuration changed) is judged with its own config
        "parent_checkpoint": str(checkpoint_path(project, parent)) if fresh else None,
        "output_dir": str(out), "steps": steps, "train": train, "val": [], "check": check,
        **job_roots(project, train + check),
    }

    def forward(event: dict) -> None:
        if progress is not None and event.get("event") in ("progress", "metrics", "skipped"):
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
    n_corrected = data.n_corrected + sum(e.get("version") == "corrected" for e in data.check)
    source = "pseudo labels" + (f" and {n_corrected} corrected images" if n_corrected else "")
    if project.task == "denoise":
        source = "the noisy images (Noise2Void)"
    verdict = _check(project, rule, check, report, version, parent, source)
    report["check"] = verdict.to_dict()
    atomic_write_text(out / "metrics.json", json.dumps(report, indent=2))
    # the learning curve and the plateau hint read ``metrics[key]``: only a held-out check is comparable
    # from round to round (a rotating image is a different image each round)
    metrics: dict = {}
    if verdict.rule == "held-out":
        metrics.update({k: v for k, v in (report.get("check_metrics") or {}).get("child", {}).items()
                        if isinstance(v, int | float)})
    metrics["check"] = {k: v for k, v in verdict.to_dict().items() if k != "per_image"}
    metrics["steps"] = report.get("steps")
    accepted, message = verdict.accepted, verdict.reason
    store.add_model(
        version=version, path=str(out.relative_to(project.root) / "model.pt"), parent=parent,
        status="accepted" if accepted else "rejected", round=round_no, metrics=metrics,
        train_set_hash=data.digest, n_corrected=n_corrected, n_pseudo=data.n_pseudo,
        seconds=seconds, note=message,
    )
    if accepted:
        store.set_current_model(version)
    store.log("round", round=round_no, version=version, accepted=accepted, metrics=metrics,
              check=verdict.to_dict(), n_corrected=n_corrected, n_check=len(check),
              steps=report.get("steps"), skipped=report.get("skipped", []),
              train_set_hash=data.digest, seconds=seconds, message=message)
    return RoundResult(version, accepted, metrics, message, seconds=seconds, hint=plateau_hint(project),
                       check=verdict.to_dict(), skipped=list(report.get("skipped", [])))


def _check(project: Project, rule: str, check: list[dict], report: dict, version: int,
           parent: int | None, source: str) -> acceptance.Check:
    """The worker's measurements of parent and child on the check images, turned into a decision."""
    key = acceptance.PRIMARY_METRIC[project.task]
    measured = report.get("check_metrics") or {}
    child = measured.get("child") or {}
    before = measured.get("parent") or {}
    verdict = acceptance.Check(
        rule=rule, images=[e["name"] for e in check], metric=key, child=child.get(key), parent=before.get(key),
        floor_metric="dice" if project.task in ("semantic", "instance") else "", child_floor_value=child.get("dice"),
        per_image=measured.get("per_image") or {},
    )
    if rule == "held-out" and project.task != "regression":
        verdict.pseudo = _pseudo_agreement(project, [e["image_id"] for e in check], key)
    if rule == "rotating" and project.task in ("semantic", "instance") and check \
            and all(e.get("version") == "pseudo" for e in check):
        # how far the person's labels are from their own pseudo labels: what a right model can agree with one
        verdict.reference = _pseudo_agreement(project, done_ids(project.store), key)
    return acceptance.decide(verdict, project.loop, version, parent, source)


def _pseudo_agreement(project: Project, image_ids: list[int], key: str) -> float | None:
    """The pseudo labels of ``image_ids`` scored against their corrected labels, like the models are: on
    held-out done images the floor to beat; on all done images how close a right model can come to one."""
    from im2im_engine.metrics import ap50, dice

    store = project.store
    values = []
    for image_id in image_ids:
        pseudo = store.get_label(image_id, "pseudo")
        corrected = store.get_label(image_id, "corrected")
        if pseudo is None or corrected is None:
            continue
        ignore = store.get_label(image_id, "ignore")
        trust = None if ignore is None else ignore == 0
        values.append(ap50(pseudo, corrected) if key == "ap50" else dice(pseudo, corrected, trust))
    return float(np.mean(values)) if values else None


def network_changed(project: Project, version: int) -> bool:
    """True when the project's config builds another network than model ``version`` was trained with (its
    checkpoint cannot be fine-tuned: the next round trains anew and is compared with it on held-out images)."""
    from im2im_engine.config import ConfigError, load_config

    path = checkpoint_path(project, version).parent / "config.yaml"
    if not path.exists():
        return False
    try:
        old, new = load_config(path), project.engine_config()
    except (ConfigError, ProjectError):
        return False

    def shape(c) -> tuple:
        return c.data.spatial_dims, c.data.in_channels, c.model.model_dump(), c.task.kind, c.task.output_channels

    return shape(old) != shape(new)


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


# -------------------------------------------------------------------------------------------- scoring
def score(project: Project, *, progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
          include_corrected: bool = False, include_test: bool = False) -> int:
    """Predict + uncertainty for every image not yet done with the current model; store both.

    Test images (a fixed split, never proposed) are only scored when asked, for evaluation.
    """
    store = project.store
    version = store.current_model
    if version is None:
        raise JobError(f"{project.root}: no model yet; run `im2im-active train {project.root}` first")
    check_images(project)
    images = [im for im in usable_images(store)
              if (include_corrected or im.review != "done") and (include_test or im.split != "test")]
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
    """The review state of every image (``untouched``, ``in_progress``, ``done``): the one source of truth
    for the queue and the counters, updated by every save."""
    return {r["id"]: r["review"] for r in project.store.query("SELECT id, review FROM images")}


def label_sources(project: Project) -> dict[int, str]:
    """The label a person sees first for each image: ``corrected``, else ``prediction``, else ``pseudo``."""
    best: dict[int, str] = {}
    rank = {"pseudo": 0, "prediction": 1, "corrected": 2}
    for r in project.store.query("SELECT image_id, version FROM labels WHERE version != 'ignore'"):
        if rank[r["version"]] >= rank.get(best.get(r["image_id"], "pseudo"), 0):
            best[r["image_id"]] = r["version"]
    return best


def _candidates(project: Project, exclude_done: bool = True, version: int | None = None
                ) -> tuple[list[strategies.Candidate], dict, dict]:
    """Queue candidates, review states and image names, from one light pass over the images table (the
    queue of a 10,000-image project is rebuilt after every round, so no per-row JSON parsing here).
    Done, excluded, missing and test images are never candidates. Scores are ``version``'s (default: the
    current model's)."""
    store = project.store
    version = store.current_model if version is None else version
    rows = {r["image_id"]: r for r in store.scores(version)} if version is not None else {}
    images = store.query("SELECT id, name, split, state, review, excluded FROM images ORDER BY id")
    states = {im["id"]: im["review"] for im in images if im["excluded"] is None}
    cands = []
    for im in images:
        if (im["state"] != "ok" or im["excluded"] is not None or im["split"] == "test"
                or (exclude_done and im["review"] == "done")):
            continue
        row = rows.get(im["id"])
        cands.append(strategies.Candidate(
            im["id"], dict(row["details"]) if row else {}, row["embedding"] if row else None))
    return cands, states, {im["id"]: im["name"] for im in images}


def _labeled_embeddings(project: Project) -> np.ndarray | None:
    """Embeddings of corrected images (the labelled pool for diversity), from the latest scores."""
    rows = project.store.query(
        "SELECT s.embedding FROM scores s JOIN images i ON i.id = s.image_id AND i.review = 'done'"
        " WHERE s.embedding IS NOT NULL ORDER BY s.model_version DESC")
    embs = [np.frombuffer(r["embedding"], np.float32) for r in rows]
    return np.stack(embs) if embs else None


def next_images(project: Project, n: int | None = None, strategy: str | None = None,
                seed: int | None = None) -> list[QueueEntry]:
    """The batch to correct next: the strategy's top picks plus the configured random share."""
    settings = project.loop
    strategy = strategies.for_task(project.task, strategy or settings.strategy)
    n = settings.batch_size if n is None else n
    cands, states, names = _candidates(project)
    keys = strategies.select(cands, n, strategy, random_share=settings.random_share,
                             labeled_embeddings=_labeled_embeddings(project), seed=seed)
    return _entries(names, keys, cands, states, strategy)


def queue(project: Project, strategy: str | None = None, state: str | None = None,
          version: int | None = None) -> list[QueueEntry]:
    """Every image, ranked for the queue panel: not done by the strategy, done ones at the end. Ranked by
    the scores of model ``version`` (default: the current model; the GUI keeps the last complete ranking
    while a new model's scoring runs)."""
    strategy = strategies.for_task(project.task, strategy or project.loop.strategy)
    cands, states, names = _candidates(project, version=version)
    keys = strategies.rank(cands, strategy, labeled_embeddings=_labeled_embeddings(project)) if cands else []
    keys += [i for i, s in sorted(states.items()) if s == "done"]
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
        out.append(QueueEntry(key, names[key], value, states.get(key, "untouched"), rank))
    return out


# -------------------------------------------------------------------------------------------- history
def learning_curve(project: Project) -> list[dict]:
    """One row per model version: metric against the number of corrected images used.

    ``metric`` is the held-out validation value when there is one, else the model's agreement with the
    corrections made while it was current (``metric_source`` says which). A denoise model has neither
    (nobody corrects a denoised image): its value is its acceptance check's, the blind-spot PSNR on the
    image left out of its round (``check``).
    """
    key = PRIMARY_METRIC[project.task]
    rows = []
    for m in project.store.models():
        metrics = m["metrics"]
        if key in metrics:
            metric, source = metrics[key], "held-out"
        elif f"corrections_{key}" in metrics:
            metric, source = metrics[f"corrections_{key}"], "corrections"
        elif project.task == "denoise" and (metrics.get("check") or {}).get("child") is not None:
            metric, source = metrics["check"]["child"], "check"
        else:
            metric, source = None, None
        rows.append({"version": m["version"], "n_corrected": m["n_corrected"], "metrics": metrics,
                     "metric": metric, "metric_source": source, "accepted": m["status"] == "accepted",
                     "round": m["round"], "created_at": m["created_at"], "note": m["note"]})
    return rows


def corrected_count(project: Project) -> int:
    """Images with a corrected label (edited or done): what ``n_corrected`` of a model counts."""
    return int(project.store.scalar("SELECT COUNT(DISTINCT image_id) FROM labels WHERE version = 'corrected'"))


def corrections_since_current(project: Project) -> int:
    store = project.store
    current = store.current_model
    n_corrected = corrected_count(project)
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

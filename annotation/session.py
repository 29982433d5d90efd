"""What a correction session shows a person, as data and words (no Qt): the GUI's queue and training panel
read these, so the numbers they show come from the store, the one source of truth.

* :func:`queue` ranks the queue by the newest model whose scoring *finished*: a stopped or failed scoring
  leaves the previous complete ranking in place instead of a half-scored one.
* :func:`check_words` / :func:`model_words` turn a model's recorded check into a sentence.
* :func:`mark_interrupted` records that the app was closed while a round ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import loop
from .acceptance import PRIMARY_METRIC, RULE_WORDS
from .project import Project
from .store.db import now


@dataclass
class Ranking:
    """The queue as the panel shows it, and where its order comes from."""

    entries: list[loop.QueueEntry]
    version: int | None  # the model whose complete scoring ranks the queue (None: no complete scoring yet)
    current: int | None  # the current model
    counts: dict[str, int] = field(default_factory=dict)  # review states of the project (excluded left out)
    excluded: int = 0

    @property
    def stale(self) -> bool:
        """The current model has not (fully) scored the images: the ranking is an older model's."""
        return self.current is not None and self.version != self.current


def scored_versions(project: Project) -> set[int]:
    """Model versions whose scores cover the queue: one of the version's scoring jobs ran to the end (a
    later stopped run of the same model rewrote some scores with the same values), or the version has
    scores but no recorded scoring job (written by a script)."""
    store = project.store
    jobs = store.query("SELECT model_version, status FROM jobs WHERE kind = 'score' AND model_version IS NOT NULL")
    with_scores = {r["model_version"] for r in store.query("SELECT DISTINCT model_version FROM scores")}
    done = {r["model_version"] for r in jobs if r["status"] == "done"}
    return {int(v) for v in done | (with_scores - {r["model_version"] for r in jobs})}


def ranking_version(project: Project) -> int | None:
    """The newest model, up to the current one, whose scoring finished; None without one."""
    current = project.store.current_model
    if current is None:
        return None
    complete = [v for v in scored_versions(project) if v <= current]
    return max(complete) if complete else None


def scoring_complete(project: Project) -> bool:
    """The current model's scores cover the queue (its last scoring job finished)."""
    current = project.store.current_model
    return current is None or current in scored_versions(project)


def queue(project: Project, strategy: str | None = None, state: str | None = None) -> Ranking:
    """Every image ranked for the queue panel like :func:`annotation.loop.queue`, but by the scores of
    :func:`ranking_version`; plus the review counters, read in the same call."""
    store = project.store
    strategy = strategy or project.loop.strategy
    version = ranking_version(project)
    current = store.current_model
    # no complete ranking yet: rank without scores (model versions start at 1, so version 0 has none)
    entries = loop.queue(project, strategy, state, version=0 if version is None else version)
    excluded = int(store.scalar("SELECT COUNT(*) FROM images WHERE excluded IS NOT NULL"))
    return Ranking(entries, version, current, store.review_counts(), excluded)


def counters(project: Project, image_id: int | None = None) -> dict:
    """What the window shows after a save, read after it: the image's review state, the project's review
    counts, excluded images, and images corrected since the current model (what auto-retrain counts)."""
    store = project.store
    return {
        "review": store.image(image_id).review if image_id is not None else None,
        "counts": store.review_counts(),
        "excluded": int(store.scalar("SELECT COUNT(*) FROM images WHERE excluded IS NOT NULL")),
        "since_current": loop.corrections_since_current(project),
    }


def excluded_images(project: Project) -> list[tuple[int, str, str]]:
    """(id, name, reason) of every excluded image, for *Include again*."""
    return [(r["id"], r["name"], r["excluded"]) for r in project.store.query(
        "SELECT id, name, excluded FROM images WHERE excluded IS NOT NULL ORDER BY name")]


# ------------------------------------------------------------------------------------------- words
METRIC_WORDS = {"dice": "overlap (Dice)", "ap50": "instances matched (AP50)", "psnr": "PSNR",
                "blindspot_psnr": "blind-spot PSNR (hidden pixels predicted from their neighbours)"}
#: Metrics in decibels; the others are fractions, said as percentages.
DB_METRICS = ("psnr", "blindspot_psnr")


def _value(metric: str, value: float) -> str:
    return f"{value:.1f} dB" if metric in DB_METRICS else f"{100 * value:.0f}%"


def check_words(check: dict, version: int | None, parent: int | None = None) -> str:
    """One sentence on what decided about a model, e.g. ``v3 agrees with the 4 done images it did not train
    on: 92% overlap (Dice); v2: 85% on the same images. Accepted.``"""
    if not check or check.get("child") is None:
        return check.get("reason", "") if check else ""
    metric = check.get("metric") or "dice"
    rule = check.get("rule", "")
    images = list(check.get("images") or [])
    if rule == "held-out":
        where = f"the {len(images)} image{'s' if len(images) != 1 else ''} you marked done that it did not train on"
    elif rule == "rotating" and metric == "blindspot_psnr":  # denoise: no labels, the image itself judges
        where = f"{images[0] if images else 'one image'}, left out of this round"
    elif rule == "rotating":
        where = (f"{images[0] if images else 'one image'}, left out of this round (its label may still be a "
                 "pseudo label)")
    else:
        where = RULE_WORDS.get(rule, rule)
    text = f"v{version} agrees with {where}: {_value(metric, check['child'])} {METRIC_WORDS.get(metric, metric)}"
    if check.get("parent") is not None and parent is not None:
        text += f"; v{parent}: {_value(metric, check['parent'])} on the same images"
    if check.get("pseudo") is not None:
        text += f"; your pseudo labels: {_value(metric, check['pseudo'])}"
    if check.get("reference") is not None:
        text += (f"; your corrected images agree with their own pseudo labels: "
                 f"{_value(metric, check['reference'])}")
    verdict = "Accepted" if check.get("accepted") else "Not accepted: the current model is kept"
    return text + f". {verdict}."


def model_words(project: Project, version: int | None = None) -> str:
    """:func:`check_words` for a stored model (the current one by default), '' if it has no check."""
    store = project.store
    version = store.current_model if version is None else version
    if version is None:
        return ""
    model = store.model(version)
    return check_words(model["metrics"].get("check") or {}, version, model["parent"])


def curve_words(project: Project) -> str:
    """What the learning curve plots, for the caption under it."""
    metric = PRIMARY_METRIC[project.task]
    words = METRIC_WORDS.get(metric, metric)
    if project.task == "denoise":
        return ("Each point is a model version: across, how many images you had reviewed (Done) when it was "
                f"trained; up, its {words} in dB on an image left out of its round (higher: the model predicts the "
                "image better from its neighbours). ✕ marks a version that was not accepted.")
    return (f"Each point is a model version: across, how many images you had corrected when it was trained; "
            f"up, its {words} on done images it did not train on (before there are any: how well its "
            "predictions matched the corrections you then made). ✕ marks a version that was not accepted.")


def skipped_words(skipped: list[dict]) -> str:
    """The images a round could not use, one line each: ``name: reason``."""
    if not skipped:
        return ""
    lines = [f"{s.get('name') or s.get('file', '?')}: {s.get('reason', 'not usable')}" for s in skipped[:10]]
    more = f"\n… and {len(skipped) - 10} more" if len(skipped) > 10 else ""
    return f"Skipped {len(skipped)} image{'s' if len(skipped) != 1 else ''} it could not use:\n" + "\n".join(
        lines) + more


# ------------------------------------------------------------------------------------------- jobs
INTERRUPTED = "interrupted: the app was closed while it ran; the last accepted model is kept"


def last_job_id(project: Project) -> int:
    return int(project.store.scalar("SELECT COALESCE(MAX(id), 0) FROM jobs"))


def mark_interrupted(project: Project, after_job: int) -> list[int]:
    """Jobs newer than ``after_job`` that were stopped because the app closed: status ``cancelled`` with the
    reason (a job still marked running or queued, e.g. a cluster job that did not answer, included)."""
    store = project.store
    rows = store.query("SELECT id FROM jobs WHERE id > ? AND status IN ('running', 'queued', 'cancelled')",
                       (after_job,))
    for r in rows:
        store.update_job(r["id"], status="cancelled", message=INTERRUPTED, finished_at=now())
        store.log("job_interrupted", job_id=r["id"])
    return [r["id"] for r in rows]

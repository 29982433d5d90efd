"""annotation.session: the queue keeps the last complete ranking; the model and its check in words; jobs
interrupted by closing the app."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotation import session
from annotation.project import Project


@pytest.fixture
def project(tmp_path: Path, demo_folder):
    from annotation.setup import init_project

    images, _ = demo_folder
    project, _ = init_project(tmp_path / "proj", images, pseudo="otsu", task="semantic")
    yield project
    project.close()


def _model(store, version: int, parent: int | None = None, **metrics) -> None:
    store.add_model(version=version, path=f"models/v{version}/model.pt", parent=parent, status="accepted",
                    round=version - 1, metrics=metrics)
    store.set_current_model(version)


def _scores(store, version: int, values: list[float]) -> None:
    ids = [im.id for im in store.images()]
    store.put_scores(version, [{"image_id": i, "score": v, "details": {"score": v, "entropy": v}}
                               for i, v in zip(ids, values, strict=False)])


def _job(store, version: int, status: str) -> int:
    job = store.add_job("score", {}, backend="local")
    store.update_job(job, status=status, model_version=version)
    return job


def test_queue_ranks_by_the_newest_complete_scoring(project):
    store = project.store
    ranking = session.queue(project, "entropy")
    assert ranking.version is None and not ranking.stale and all(e.score is None for e in ranking.entries)

    _model(store, 1)
    _scores(store, 1, [0.1, 0.9, 0.5, 0.3])
    _job(store, 1, "done")
    ranking = session.queue(project, "entropy")
    assert ranking.version == 1 and [e.score for e in ranking.entries] == [0.9, 0.5, 0.3, 0.1]

    _model(store, 2, parent=1)  # v2 current; its scoring was stopped after one image
    _scores(store, 2, [0.99])
    _job(store, 2, "cancelled")
    ranking = session.queue(project, "entropy")
    assert ranking.version == 1 and ranking.current == 2 and ranking.stale
    assert [e.score for e in ranking.entries] == [0.9, 0.5, 0.3, 0.1]
    assert not session.scoring_complete(project)

    _job(store, 1, "cancelled")  # a stopped re-run of v1 does not undo its complete scoring
    assert session.ranking_version(project) == 1

    _scores(store, 2, [0.2, 0.4, 0.6, 0.8])
    _job(store, 2, "done")
    ranking = session.queue(project, "entropy")
    assert ranking.version == 2 and not ranking.stale and [e.score for e in ranking.entries] == [0.8, 0.6, 0.4, 0.2]
    assert session.scoring_complete(project)


def test_scores_written_without_a_job_count_as_complete(project):
    _model(project.store, 1)
    _scores(project.store, 1, [0.1, 0.2, 0.3, 0.4])
    assert session.ranking_version(project) == 1


def test_counters_and_excluded_images(project):
    store = project.store
    first, second = (im.id for im in store.images()[:2])
    store.set_review(first, "done")
    store.set_excluded(second, "blurred")
    c = session.counters(project, first)
    assert c["review"] == "done" and c["counts"] == {"untouched": 2, "in_progress": 0, "done": 1}
    assert c["excluded"] == 1 and session.excluded_images(project)[0][2] == "blurred"
    ranking = session.queue(project)
    assert second not in [e.image_id for e in ranking.entries] and ranking.excluded == 1


def test_the_check_in_words():
    check = {"rule": "held-out", "images": ["a", "b", "c", "d"], "metric": "dice", "child": 0.92,
             "parent": 0.85, "pseudo": 0.8, "accepted": True}
    assert session.check_words(check, 3, 2) == (
        "v3 agrees with the 4 images you marked done that it did not train on: 92% overlap (Dice); v2: 85% on "
        "the same images; your pseudo labels: 80%. Accepted.")
    rotating = {"rule": "rotating", "images": ["nuclei_001"], "metric": "ap50", "child": 0.5, "parent": None,
                "accepted": False}
    text = session.check_words(rotating, 1)
    assert text.startswith("v1 agrees with nuclei_001, left out of this round") and text.endswith(
        "Not accepted: the current model is kept.")
    closer = {"rule": "rotating", "images": ["nuclei_003"], "metric": "dice", "child": 0.909, "parent": 0.975,
              "reference": 0.85, "accepted": True}
    assert session.check_words(closer, 2, 1).endswith(
        "v1: 98% on the same images; your corrected images agree with their own pseudo labels: 85%. Accepted.")
    assert session.check_words({"child": None, "reason": "kept v1: v2 could not be evaluated"}, 2) == \
        "kept v1: v2 could not be evaluated"


def test_mark_interrupted_touches_only_the_round_s_jobs(project):
    store = project.store
    before = _job(store, 1, "done")
    mark = session.last_job_id(project)
    stopped = store.add_job("train", {})
    store.update_job(stopped, status="cancelled", message="cancelled by the user")
    stuck = store.add_job("score", {})
    store.update_job(stuck, status="running")
    assert session.mark_interrupted(project, mark) == [stopped, stuck]
    rows = {j["id"]: j for j in store.jobs()}
    assert rows[before]["status"] == "done"
    assert all(rows[j]["status"] == "cancelled" and rows[j]["message"] == session.INTERRUPTED for j in (stopped, stuck))
    assert not store.jobs("running")


def test_project_opened_again_reads_the_same(tmp_path, project):
    _model(project.store, 1)
    root = project.root
    project.close()
    with Project.open(root) as again:
        assert session.ranking_version(again) is None  # a model that never scored ranks nothing

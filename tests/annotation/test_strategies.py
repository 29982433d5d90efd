"""Query strategies: the right images first, a random share, diversity on embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from annotation.strategies import STRATEGIES, Candidate, for_task, offered, rank, select


def _cands(values: list[float], embeddings: list[list[float]] | None = None) -> list[Candidate]:
    return [
        Candidate(100 + i, {"entropy": v, "margin": -v, "least_confidence": v / 2, "score": v},
                  None if embeddings is None else np.array(embeddings[i], np.float32))
        for i, v in enumerate(values)
    ]


@pytest.mark.parametrize("strategy", ["entropy", "least_confidence"])
def test_uncertainty_strategies_pick_the_most_uncertain(strategy: str) -> None:
    cands = _cands([0.1, 0.9, 0.5, 0.7, 0.2])
    assert select(cands, 3, strategy) == [101, 103, 102]


def test_margin_ranks_by_its_own_measure() -> None:
    cands = _cands([0.1, 0.9, 0.5])  # margin measure is -v here: the smallest v is the most useful
    assert select(cands, 1, "margin") == [100]


def test_variance_ranks_by_the_output_variance_and_is_what_continuous_tasks_offer() -> None:
    """Regression and denoise outputs have no classes: their queue offers the variance (which ranks by its
    own measure, not the main score), diversity and random; a class measure from an older config maps to
    the variance there and stays itself for segmentation."""
    cands = [Candidate(100 + i, {"variance": v, "score": -v}) for i, v in enumerate([0.1, 0.9, 0.5])]
    assert rank(cands, "variance") == [101, 102, 100]
    for task in ("regression", "denoise"):
        assert offered(task) == ("variance", "batch_diversity", "random")
        assert for_task(task, "entropy") == "variance" and for_task(task, "random") == "random"
    assert "variance" not in offered("semantic") and set(offered("instance")) == set(STRATEGIES) - {"variance"}
    assert for_task("semantic", "entropy") == "entropy"


def test_random_share_mixes_in_random_picks_reproducibly() -> None:
    cands = _cands(list(np.linspace(0, 1, 40)))
    picks = select(cands, 10, "entropy", random_share=0.3, seed=7)
    assert picks[:7] == [139 - i for i in range(7)]
    assert len(set(picks)) == 10 and set(picks[7:]).isdisjoint(picks[:7])
    assert select(cands, 10, "entropy", random_share=0.3, seed=7) == picks
    assert select(cands, 10, "entropy", random_share=0.3, seed=8)[7:] != picks[7:]


def test_random_strategy_ignores_scores() -> None:
    cands = _cands(list(np.linspace(0, 1, 30)))
    picks = select(cands, 5, "random", seed=1)
    assert len(set(picks)) == 5 and picks != [129, 128, 127, 126, 125]


def test_batch_diversity_spreads_over_embedding_clusters() -> None:
    # two tight clusters; the most uncertain images all sit in cluster A
    values = [0.9, 0.89, 0.88, 0.87, 0.5, 0.49]
    emb = [[0, 0], [0, 0.01], [0.01, 0], [0.01, 0.01], [10, 10], [10, 10.01]]
    plain = select(_cands(values, emb), 2, "entropy")
    diverse = select(_cands(values, emb), 2, "batch_diversity", labeled_embeddings=np.array([[0.0, 0.0]]))
    assert plain == [100, 101]
    assert any(k in (104, 105) for k in diverse)


def test_rank_orders_everything_and_never_more_than_asked() -> None:
    cands = _cands([0.3, 0.1, 0.2])
    assert rank(cands, "entropy") == [100, 102, 101]
    assert sorted(rank(cands, "random")) == [100, 101, 102]
    assert select(cands, 10, "entropy") == [100, 102, 101]
    with pytest.raises(ValueError, match="unknown strategy"):
        select(cands, 1, "best")


def test_plateau_hint_after_rounds_without_improvement(small_project) -> None:
    from annotation.loop import plateau_hint
    from annotation.project import Project

    with Project.open(small_project) as project:
        store = project.store
        for v, dice in enumerate([0.70, 0.80, 0.801, 0.802, 0.801], start=1):
            store.add_model(version=v, path=f"models/v{v}/model.pt", status="accepted", round=v - 1,
                            metrics={"dice": dice})
            if v == 4:
                assert plateau_hint(project) is None  # 0.80 -> 0.802 is within plateau_delta, 2 rounds only
        hint = plateau_hint(project)
        assert hint is not None and "dice" in hint and "3 rounds" in hint
        store.add_model(version=6, path="models/v6/model.pt", status="accepted", round=5, metrics={"dice": 0.85})
        assert plateau_hint(project) is None


class _Learner:
    """What modAL's ``ranked_batch`` reads from a learner: the labelled pool."""

    on_transformed = False

    def __init__(self, labeled: np.ndarray | None) -> None:
        self.X_training = labeled


def _pool(n: int = 160, dims: int = 8, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (5, dims))
    pool = centres[rng.integers(0, 5, n)] + rng.normal(0, 1, (n, dims))
    return pool, rng.random(n)


def test_ranked_batch_order_equals_modal_ranked_batch_with_labelled_images() -> None:
    from modAL.batch import ranked_batch

    from annotation.strategies import ranked_batch_order

    pool, u = _pool()
    labeled = _pool(4, seed=9)[0]
    theirs, _ = ranked_batch(_Learner(labeled), pool, u, len(pool), "euclidean", None)
    assert ranked_batch_order(pool, u, len(pool), labeled).tolist() == [int(i) for i in theirs]


def test_ranked_batch_order_cold_start_is_modal_medoid_then_the_same_greedy() -> None:
    from modAL.batch import ranked_batch, select_cold_start_instance

    from annotation.strategies import ranked_batch_order

    pool, u = _pool()
    first, _ = select_cold_start_instance(pool, "euclidean", None)
    ours = ranked_batch_order(pool, u, len(pool)).tolist()
    assert ours[0] == first and sorted(ours) == list(range(len(pool)))  # the medoid is not picked again
    rest = [i for i in range(len(pool)) if i != first]
    theirs, _ = ranked_batch(_Learner(pool[[first]]), pool[rest], u[rest], len(rest), "euclidean", None)
    assert ours[1:] == [rest[int(i)] for i in theirs]


def test_ranked_batch_order_tail_after_the_exact_picks_is_by_the_frozen_score() -> None:
    from annotation.strategies import ranked_batch_order

    pool, u = _pool(120)
    labeled = pool[:2] + 0.5
    full = ranked_batch_order(pool, u, len(pool), labeled)
    cut = ranked_batch_order(pool, u, len(pool), labeled, exact=30)
    assert cut[:30].tolist() == full[:30].tolist() and sorted(cut.tolist()) == list(range(len(pool)))
    ref = np.vstack([labeled, pool[cut[:30]]])
    tail = cut[30:]
    dist = np.sqrt(((pool[tail, None, :] - ref[None]) ** 2).sum(-1)).min(axis=1)
    alpha = len(tail) / (len(tail) + len(ref))
    score = alpha * (1 - 1 / (1 + dist)) + (1 - alpha) * u[tail]
    assert np.all(np.diff(score) <= 1e-12)  # non-increasing down the tail
    short = ranked_batch_order(pool, u, len(pool), labeled, exact=3)
    assert ranked_batch_order(pool, u, 7, labeled, exact=3).tolist() == short[:7].tolist()


def test_cold_start_on_a_large_pool_picks_the_centre_from_a_sample(monkeypatch) -> None:
    from annotation import strategies

    rng = np.random.default_rng(0)
    pool = rng.normal(0, 1, (400, 4))
    pool *= 5 / np.linalg.norm(pool, axis=1, keepdims=True)  # a shell of radius 5 ...
    pool[123] = 0.0  # ... and its centre
    monkeypatch.setattr(strategies, "MEDOID_SAMPLE", 50)
    monkeypatch.setattr(strategies._medoid, "__defaults__", (50, 1024))
    assert strategies.ranked_batch_order(pool, np.zeros(400), 1)[0] == 123


def test_rank_batch_diversity_uses_the_labelled_embeddings() -> None:
    values = [0.9, 0.89, 0.5, 0.49]
    emb = [[0, 0], [0, 0.01], [10, 10], [10, 10.01]]
    cold = rank(_cands(values, emb), "batch_diversity")
    warm = rank(_cands(values, emb), "batch_diversity", labeled_embeddings=np.array([[10.0, 10.0]]))
    assert sorted(cold) == [100, 101, 102, 103] and cold[0] != 100  # cold start: the medoid first
    assert warm == [100, 101, 102, 103]  # far from the labelled image and most uncertain first
    assert warm == select(_cands(values, emb), 4, "batch_diversity", labeled_embeddings=np.array([[10.0, 10.0]]))

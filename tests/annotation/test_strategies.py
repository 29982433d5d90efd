"""Query strategies: the right images first, a random share, diversity on embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from annotation.strategies import Candidate, rank, select


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

"""Query strategies: which images a person should correct next.

The engine reduces each image's per-pixel uncertainty to image scores (a mean, or the mean of the top-k
percent, never a sum, so large images do not dominate) and stores one score per measure in
``scores.details``. A strategy here only *chooses*: the top-K by one measure (modAL's ``multi_argmax``),
ranked batch-mode on the image embeddings for diversity (modAL's ``ranked_batch``, Cardoso et al. 2017), or
random; plus a configurable random share in every batch, which keeps the queue honest about what the model
does not know that it does not know.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from modAL.batch import ranked_batch
from modAL.utils.selection import multi_argmax

STRATEGIES = ("least_confidence", "margin", "entropy", "bald", "batch_diversity", "random")

#: Which per-image score each strategy ranks by (keys of the engine's ``UncertaintyResult.scores``).
MEASURE = {
    "least_confidence": "least_confidence",
    "margin": "margin",
    "entropy": "entropy",
    "bald": "bald",
    "batch_diversity": "entropy",
}


@dataclass(frozen=True)
class Candidate:
    """One image that could be proposed: its scores per measure and its embedding (may be None)."""

    key: int
    scores: dict[str, float]
    embedding: np.ndarray | None = None


def measure_values(candidates: Sequence[Candidate], strategy: str) -> np.ndarray:
    """The image scores a strategy ranks by; falls back to the engine's main score when absent."""
    if strategy == "random":
        return np.zeros(len(candidates))
    measure = MEASURE[strategy]
    return np.array([c.scores.get(measure, c.scores.get("score", 0.0)) for c in candidates], float)


def _modal_shim(labeled: np.ndarray | None):
    """modAL's ``ranked_batch`` reads the labelled pool from a learner; we only have embeddings."""

    class _Labeled:
        on_transformed = False
        X_training = labeled if labeled is not None and len(labeled) else None

    return _Labeled()


def _scaled(values: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] so uncertainty and dissimilarity weigh alike in ranked batch-mode."""
    span = float(values.max() - values.min()) if len(values) else 0.0
    return (values - values.min()) / span if span > 0 else np.zeros_like(values)


def select(
    candidates: Sequence[Candidate], n: int, strategy: str, *, random_share: float = 0.0,
    labeled_embeddings: np.ndarray | None = None, seed: int | None = None,
) -> list[int]:
    """Keys of the ``n`` images to correct next, most useful first."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    n = min(n, len(candidates))
    if n <= 0:
        return []
    rng = np.random.default_rng(seed)
    n_random = n if strategy == "random" else round(n * random_share)
    n_ranked = n - n_random
    chosen: list[int] = []
    if n_ranked:
        values = measure_values(candidates, strategy)
        if strategy == "batch_diversity" and all(c.embedding is not None for c in candidates):
            pool = np.stack([c.embedding for c in candidates]).astype(np.float64)
            labeled = None if labeled_embeddings is None else np.asarray(labeled_embeddings, np.float64)
            order, _ = ranked_batch(_modal_shim(labeled), pool, _scaled(values), n_ranked, "euclidean", None)
            # modAL does not mask its cold-start pick, so it can come back; keep the first occurrence
            chosen = list(dict.fromkeys(int(i) for i in order))
            chosen += [int(i) for i in np.argsort(-values, kind="stable") if int(i) not in chosen]
            chosen = chosen[:n_ranked]
        else:
            idx, _ = multi_argmax(values, n_ranked)
            chosen = [int(i) for i in sorted(idx, key=lambda i: -values[i])]
    rest = [i for i in range(len(candidates)) if i not in set(chosen)]
    chosen += [int(i) for i in rng.choice(rest, size=min(n_random, len(rest)), replace=False)]
    return [candidates[i].key for i in chosen]


def rank(candidates: Sequence[Candidate], strategy: str) -> list[int]:
    """Every candidate ordered for the queue view (the random strategy keeps a stable shuffled order)."""
    if strategy == "random":
        order = np.random.default_rng(0).permutation(len(candidates))
        return [candidates[i].key for i in order]
    if strategy == "batch_diversity":
        return select(candidates, len(candidates), strategy)
    values = measure_values(candidates, strategy)
    return [candidates[i].key for i in np.argsort(-values, kind="stable")]

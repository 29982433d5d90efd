"""Query strategies: which images a person should correct next.

The engine reduces each image's per-pixel uncertainty to image scores (a mean, or the mean of the top-k
percent, never a sum, so large images do not dominate) and stores one score per measure in
``scores.details``. A strategy here only *chooses*: the top-K by one measure (modAL's ``multi_argmax``),
ranked batch-mode on the image embeddings for diversity (Cardoso et al. 2017: the greedy of modAL's
``ranked_batch``, with distances updated per pick instead of recomputed, so 10,000 images rank in about a
second), or random; plus a configurable random share in every batch, which keeps the queue honest about what
the model does not know that it does not know.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from modAL.utils.selection import multi_argmax

STRATEGIES = ("least_confidence", "margin", "entropy", "bald", "batch_diversity", "random", "variance")
#: Strategies of a task without classes (regression, denoise): its one measure is the variance of the
#: output (over MC-dropout draws, or over the trained flips for TTA); class measures do not exist there.
CONTINUOUS_STRATEGIES = ("variance", "batch_diversity", "random")
#: Tasks whose outputs are not class probabilities.
CONTINUOUS_TASKS = ("regression", "denoise")

#: Which per-image score each strategy ranks by (keys of the engine's ``UncertaintyResult.scores``).
MEASURE = {
    "least_confidence": "least_confidence",
    "margin": "margin",
    "entropy": "entropy",
    "bald": "bald",
    "batch_diversity": "entropy",
    "variance": "variance",
}


def offered(task: str) -> tuple[str, ...]:
    """The strategies that mean something for ``task``: the class measures, or the output variance."""
    if task in CONTINUOUS_TASKS:
        return CONTINUOUS_STRATEGIES
    return tuple(s for s in STRATEGIES if s != "variance")


def for_task(task: str, strategy: str) -> str:
    """``strategy`` as ``task`` can rank by it: a class measure asked of a regression or denoise project
    (a config written before ``variance`` existed said ``entropy``) is its variance, the score it ranked by."""
    if task in CONTINUOUS_TASKS and strategy not in CONTINUOUS_STRATEGIES:
        return "variance"
    return strategy


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


#: Queue positions ranked exactly by the ranked batch-mode greedy (the same picks as modAL's
#: ``ranked_batch``, which recomputes every distance at every step: cubic in the pool, 13 s for 1,000 images).
#: Beyond them the rest is ordered by the same score, frozen against the labelled pool plus these picks: the
#: queue is re-ranked after every round, long before a person works through 1,000 images.
DIVERSITY_EXACT = 1000
#: Without labelled images the first pick is the medoid (least mean distance to the pool, as modAL's cold
#: start); for larger pools the mean is taken over a fixed sample of this many images.
MEDOID_SAMPLE = 2000


def _sq_norms(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x)


def _min_sq_dist(x: np.ndarray, x_sq: np.ndarray, ref: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Per row of ``x``, the squared Euclidean distance to its nearest row of ``ref`` (chunked, no n x m)."""
    out = np.full(len(x), np.inf)
    ref_sq = _sq_norms(ref)
    for s in range(0, len(ref), chunk):
        d2 = x_sq[:, None] + ref_sq[None, s:s + chunk] - 2.0 * (x @ ref[s:s + chunk].T)
        np.minimum(out, d2.min(axis=1), out=out)
    return np.maximum(out, 0.0)


def _medoid(x: np.ndarray, x_sq: np.ndarray, sample: int = MEDOID_SAMPLE, chunk: int = 1024) -> int:
    """Index of the row with the least mean Euclidean distance to the others (to a fixed sample of them)."""
    ref = np.arange(len(x))
    if len(x) > sample:
        ref = np.sort(np.random.default_rng(0).choice(len(x), sample, replace=False))
    total = np.empty(len(x))
    for s in range(0, len(x), chunk):
        d2 = x_sq[s:s + chunk, None] + x_sq[None, ref] - 2.0 * (x[s:s + chunk] @ x[ref].T)
        total[s:s + chunk] = np.sqrt(np.maximum(d2, 0.0)).sum(axis=1)
    return int(np.argmin(total))


def ranked_batch_order(pool: np.ndarray, uncertainty: np.ndarray, n: int,
                       labeled: np.ndarray | None = None, exact: int = DIVERSITY_EXACT) -> np.ndarray:
    """The first ``n`` pool indices in ranked batch-mode order (Cardoso et al. 2017, as modAL's ``ranked_batch``).

    Each step picks the image with the highest ``alpha * (1 - 1 / (1 + d)) + (1 - alpha) * u``: ``d`` its
    distance to the nearest labelled or already picked image, ``u`` its uncertainty in [0, 1], ``alpha =
    unpicked / (unpicked + labelled + picked)``. Without labelled images the medoid comes first (and, unlike
    modAL, cannot come again). The nearest distances are updated with each pick instead of recomputed, so a
    step costs one pass over the pool: the first ``exact`` picks take O(exact x pool x dims); the rest are
    ordered by the score at that point.
    """
    x = np.asarray(pool, np.float64)
    u = np.asarray(uncertainty, np.float64)
    n_pool = len(x)
    n = min(int(n), n_pool)
    if n <= 0:
        return np.zeros(0, np.int64)
    x_sq = _sq_norms(x)
    picks: list[int] = []
    if labeled is not None and len(labeled):
        dist2 = _min_sq_dist(x, x_sq, np.asarray(labeled, np.float64).reshape(len(labeled), -1))
        n_labeled = len(labeled)
    else:
        first = _medoid(x, x_sq)
        picks.append(first)
        dist2 = np.maximum(x_sq + x_sq[first] - 2.0 * (x @ x[first]), 0.0)
        n_labeled = 1
    idx = np.arange(n_pool)
    alive = np.ones(n_pool, bool)
    alive[picks] = False
    n_alive = n_pool - len(picks)

    def score(n_alive: int, n_labeled: int) -> np.ndarray:
        alpha = n_alive / (n_alive + n_labeled)
        return alpha * (1.0 - 1.0 / (1.0 + np.sqrt(dist2))) + (1.0 - alpha) * u

    while len(picks) < min(n, exact):
        if 2 * n_alive < len(idx):  # drop picked rows now and then, keeping pool order (ties: lowest index)
            idx, x, x_sq, u, dist2 = idx[alive], x[alive], x_sq[alive], u[alive], dist2[alive]
            alive = np.ones(len(idx), bool)
        s = score(n_alive, n_labeled)
        s[~alive] = -np.inf
        j = int(np.argmax(s))
        picks.append(int(idx[j]))
        alive[j] = False
        n_alive -= 1
        n_labeled += 1
        np.minimum(dist2, np.maximum(x_sq + x_sq[j] - 2.0 * (x @ x[j]), 0.0), out=dist2)
    if len(picks) < n:  # the tail: by the score against the labelled pool and every exact pick
        s = score(n_alive, n_labeled)
        rest = np.flatnonzero(alive)
        rest = rest[np.argsort(-s[rest], kind="stable")]
        picks += [int(i) for i in idx[rest[: n - len(picks)]]]
    return np.asarray(picks[:n], np.int64)


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
            pool = np.stack([np.asarray(c.embedding, np.float64).ravel() for c in candidates])
            chosen = [int(i) for i in ranked_batch_order(pool, _scaled(values), n_ranked, labeled_embeddings)]
        else:
            idx, _ = multi_argmax(values, n_ranked)
            chosen = [int(i) for i in sorted(idx, key=lambda i: -values[i])]
    taken = set(chosen)
    rest = [i for i in range(len(candidates)) if i not in taken]
    chosen += [int(i) for i in rng.choice(rest, size=min(n_random, len(rest)), replace=False)]
    return [candidates[i].key for i in chosen]


def rank(candidates: Sequence[Candidate], strategy: str, *,
         labeled_embeddings: np.ndarray | None = None) -> list[int]:
    """Every candidate ordered for the queue view (the random strategy keeps a stable shuffled order).

    For ``batch_diversity`` pass the corrected images' embeddings, as for :func:`select`, so the queue and
    the next batch agree; 10,000 candidates rank in about a second (``benchmarks`` #10).
    """
    if strategy == "random":
        order = np.random.default_rng(0).permutation(len(candidates))
        return [candidates[i].key for i in order]
    if strategy == "batch_diversity":
        return select(candidates, len(candidates), strategy, labeled_embeddings=labeled_embeddings)
    values = measure_values(candidates, strategy)
    return [candidates[i].key for i in np.argsort(-values, kind="stable")]

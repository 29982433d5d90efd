"""#10 Rank the queue by ``batch_diversity`` (ranked batch-mode on image embeddings).

Baseline: modAL's ``ranked_batch``, which the strategy called before (it recomputes the distance of every
unpicked image to every labelled or picked one at each step: cubic in the pool; 13 s for 1,000 images
measured in issue 17). Ours: :func:`annotation.strategies.rank`, which updates the nearest distances per
pick. Both rank the same candidates (16-dim embeddings, the engine's default ``head_features``, in a few
clusters; entropy scores; two labelled images); at 1,000 images (250 in quick mode) both sides run and
their orders are compared; at 10,000 only ours runs (the baseline would take minutes), against the absolute goal.
"""

from __future__ import annotations

import numpy as np

from .common import Result, alternate, pair_ratios, spread, timed


def candidates(n: int, dims: int = 16, seed: int = 0):
    from annotation.strategies import Candidate

    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (12, dims))
    emb = (centres[rng.integers(0, 12, n)] + rng.normal(0, 1, (n, dims))).astype(np.float32)
    values = rng.random(n)
    cands = [Candidate(i, {"entropy": float(v), "score": float(v)}, emb[i]) for i, v in enumerate(values)]
    labeled = (centres[:2] + rng.normal(0, 1, (2, dims))).astype(np.float32)
    return cands, labeled


def ours(cands, labeled) -> list[int]:
    from annotation.strategies import rank

    return rank(cands, "batch_diversity", labeled_embeddings=labeled)


def baseline(cands, labeled) -> list[int]:
    """What ``rank`` did before: modAL's ranked_batch over the whole pool."""
    from modAL.batch import ranked_batch

    from annotation.strategies import _scaled, measure_values

    class Learner:
        on_transformed = False
        X_training = np.asarray(labeled, np.float64)

    pool = np.stack([c.embedding for c in cands]).astype(np.float64)
    order, _ = ranked_batch(Learner(), pool, _scaled(measure_values(cands, "batch_diversity")), len(cands),
                            "euclidean", None)
    return [cands[int(i)].key for i in order]


def run(quick: bool) -> list[Result]:
    small, big = (250, 10_000) if quick else (1_000, 10_000)
    repeats = 2 if quick else 3
    cands, labeled = candidates(small)
    same = ours(cands, labeled) == baseline(cands, labeled)  # also the warm-up
    t_ours, t_base = alternate(lambda: ours(cands, labeled), lambda: baseline(cands, labeled), repeats,
                               warmup=False)
    ratios = pair_ratios(t_base, t_ours)
    rows = [Result(
        id=f"10.{small}", what=f"rank {small:,} images by batch_diversity (16-dim embeddings)", unit="s",
        ours=spread(t_ours), baseline=spread(t_base), ratio=spread(ratios),
        ratio_def="modAL ranked_batch time / ours (higher is better)", goal="same order as modAL",
        met=same, note=f"orders identical: {same}", params={"images": small},
    )]
    big_cands, big_labeled = candidates(big, seed=1)
    t_big = [timed(lambda: ours(big_cands, big_labeled))[0] for _ in range(repeats)]
    rows.append(Result(
        id=f"10.{big}", what=f"rank {big:,} images by batch_diversity (16-dim embeddings)", unit="s",
        ours=spread(t_big), baseline=None, ratio=None, ratio_def="-",
        goal="<= 2 s", met=bool(np.median(t_big) <= 2.0),
        note="first 1,000 ranks exact, the rest by the score after them (strategies.DIVERSITY_EXACT); "
             "baseline not run at this size (cubic: minutes)",
        params={"images": big},
    ))
    return rows

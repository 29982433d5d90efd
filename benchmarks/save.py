"""#6 Save one correction on a 2048² mask (p50/p95): ``Store.apply_edit`` against ``np.savez_compressed``.

Ours is what a brush stroke costs the saver thread: one SQLite transaction that rewrites the touched
256² tiles and records the before/after patches for undo. The baseline is the simplest alternative a
tool might use: write the whole mask compressed to a file on every save.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from .common import Result, alternate, pair_ratios, percentile, spread
from .fixtures import blobs, store_with_image


def _strokes(n: int, shape: tuple[int, int], seed: int = 0) -> list[tuple[tuple[int, ...], np.ndarray]]:
    """``n`` brush-stroke edits (box, after) of 20-300 px long strokes at random places."""
    from annotation.editing import brush

    rng = np.random.default_rng(seed)
    label = blobs(shape)
    out = []
    for _ in range(n):
        y, x = rng.integers(50, shape[0] - 350), rng.integers(50, shape[1] - 350)
        dy, dx = rng.integers(-20, 300, size=2)
        edit = brush(label, [(y, x), (y + dy, x + dx)], radius=int(rng.integers(3, 12)), value=1)
        if edit is not None:
            out.append((edit.box, edit.after))
    return out


def run(quick: bool) -> list[Result]:
    shape = (2048, 2048)
    n = 40 if quick else 150
    strokes = _strokes(n, shape)
    mask = blobs(shape)
    with store_with_image(shape) as (store, image_id), tempfile.TemporaryDirectory() as tmp:
        store.put_label(image_id, "corrected", mask)
        it = iter(range(10**9))

        def ours() -> None:
            box, after = strokes[next(it) % len(strokes)]
            store.apply_edit(image_id, box, after)

        def base() -> None:
            np.savez_compressed(Path(tmp) / "mask.npz", mask=mask)

        t_ours, t_base = alternate(ours, base, len(strokes))
    ms_ours = [t * 1e3 for t in t_ours]
    ms_base = [t * 1e3 for t in t_base]
    ratios = pair_ratios(t_base, t_ours)
    p95 = percentile(ms_ours, 95)
    return [Result(
        id="6", what="save one correction (brush stroke) on a 2048² mask", unit="ms",
        ours=spread(ms_ours), baseline=spread(ms_base), ratio=spread(ratios),
        ratio_def="savez time / our time (higher is better)", goal="p95 <= 20 ms", met=bool(p95 <= 20.0),
        note=f"p95 ours {p95:.1f} ms, p95 np.savez_compressed {percentile(ms_base, 95):.1f} ms; WAL, "
             "synchronous=NORMAL; includes the undo history rows",
        params={"saves": len(strokes), "p95_ours_ms": p95, "p95_base_ms": percentile(ms_base, 95)},
    )]

"""The learning-curve summary and its files, from given rows (no training): this runs in the fast set, so
`make lowest` checks the numpy (np.trapezoid) and Matplotlib floors with it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from annotation.simulate import summarise, write_curve


def _rows() -> list[dict]:
    rows = []
    for seed, bump in ((0, 0.0), (1, 0.02)):
        for rnd, (n, dice) in enumerate([(0, 0.80), (2, 0.90), (4, 0.94)]):
            rows.append({"strategy": "entropy", "seed": seed, "round": rnd, "n_corrected": n, "dice": dice + bump})
            rows.append({"strategy": "random", "seed": seed, "round": rnd, "n_corrected": n,
                         "dice": 0.80 + bump + 0.02 * rnd})
    return rows


def test_summary_areas_and_curve_files(tmp_path: Path) -> None:
    summary = summarise(_rows(), ["entropy", "random"], pseudo_dice=0.75, ceilings=[0.97, 0.99])
    entropy = summary["strategies"]["entropy"]
    assert entropy["dice"] == [0.81, 0.91, 0.95] and entropy["final_dice"] == 0.95
    # trapezoid area over 0..4 corrected images, divided by the span: (0.86 * 2 + 0.93 * 2) / 4
    assert entropy["auc"] == pytest.approx(0.895, abs=1e-4) and entropy["auc_sd"] == pytest.approx(0.01, abs=1e-4)
    assert summary["strategies"]["random"]["auc"] == pytest.approx(0.83, abs=1e-4)
    assert summary["pseudo_dice"] == 0.75 and summary["ceiling_dice"] == 0.98
    write_curve(tmp_path, _rows(), instance=False, summary=summary)
    with open(tmp_path / "curve.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 12
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

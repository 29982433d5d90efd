"""``im2im-active simulate``: the output contract (curve.csv, curve.png, last-line JSON) on tiny data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from app.cli import main
from resources.demo import write_demo_dataset, write_realistic_dataset


@pytest.fixture
def fast_config(tmp_path: Path) -> Path:
    from tests.conftest import FAST_ENGINE

    preset = yaml.safe_load(Path("resources/configs/instance_2d.yaml").read_text())
    for section, values in FAST_ENGINE.items():
        preset.setdefault(section, {}).update(values)
    preset["data"]["patch_size"] = [64, 64]
    preset["loop"] = {"min_agreement": 0.0}  # a few steps cannot pass the "did it learn" floor
    path = tmp_path / "fast.yaml"
    path.write_text(yaml.safe_dump(preset))
    return path


@pytest.mark.slow
def test_simulate_writes_the_curve_and_summary(tmp_path: Path, capsys, fast_config: Path) -> None:
    images, truth = write_demo_dataset(tmp_path / "data", n_images=6, size=80, seed=2)
    out = tmp_path / "out"
    code = main(["simulate", "--images", str(images), "--truth", str(truth), "--strategy", "entropy,random",
                 "--rounds", "1", "--per-round", "2", "--seeds", "1", "--steps", "4", "--initial-steps", "6",
                 "--test-fraction", "0.34", "--task", "instance", "--config", str(fast_config), "--out", str(out)])
    assert code == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads(last)
    assert set(summary["strategies"]) == {"entropy", "random"} and 0 < summary["pseudo_dice"] <= 1
    # the floor, the round-0 model and the ceiling, on the same test split, with their spread over seeds
    assert 0 <= summary["model0_dice"] <= 1 and summary["model0_sd"] >= 0
    assert 0 <= summary["ceiling_dice"] <= 1 and summary["ceiling_sd"] >= 0
    entropy = summary["strategies"]["entropy"]
    assert entropy["dice"][0] == summary["model0_dice"] and len(entropy["sd"]) == 2 and entropy["auc_sd"] >= 0
    for values in summary["strategies"].values():
        assert len(values["dice"]) == 2 and values["final_dice"] == values["dice"][-1] and 0 <= values["auc"] <= 1
    with open(out / "curve.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["strategy", "seed", "round", "n_corrected", "dice", "ap50"]
    assert len(rows) == 2 * 1 * 2  # strategies x seeds x (round 0 + 1 round); several seeds: test_simulate_curve
    assert {r["n_corrected"] for r in rows if r["round"] == "1"} == {"2"}
    assert (out / "curve.png").stat().st_size > 10_000


def test_simulate_rejects_unknown_strategy(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:  # a usage error, found by the parser before anything runs
        main(["simulate", "--images", str(tmp_path), "--truth", str(tmp_path), "--strategy", "best",
              "--rounds", "1", "--per-round", "1", "--out", str(tmp_path / "o")])
    assert exc.value.code == 2 and "unknown strategy best" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
@pytest.mark.timeout(1800)  # about 4 minutes on an idle 2-core machine; CI machines are often busier
def test_on_realistic_tiles_the_model_beats_its_pseudo_labels_and_two_corrections_lift_it(tmp_path: Path,
                                                                                         capsys) -> None:
    """Issue 13's acceptance, on the realistic recipe (128² tiles under the 256² preset window, threefold
    brightness spread, touching clumps, Poisson noise): the round-0 model trained from Otsu pseudo labels is
    better than they are, and each of two rounds of one corrected tile lifts it further, all on the same
    held-out tiles. Default steps and presets: what a user gets.

    Measured with 3 seeds (README): pseudo 0.854, round 0 0.890, two tiles 0.947 (+0.057 over round 0). Seed
    0, run here: 0.888, 0.914, 0.939 (+0.051); the assertion leaves 0.006 below the issue's +0.05 for
    numerical differences between machines, and the 3-seed mean is the figure that meets it. With the
    earlier weights (pseudo 0.3, 150 fine-tuning steps) seed 0 gave 0.891, 0.901, 0.909 (+0.018) and fails
    here."""
    images, truth = write_realistic_dataset(tmp_path / "data", n_images=16, seed=0)
    code = main(["simulate", "--images", str(images), "--truth", str(truth), "--strategy", "entropy",
                 "--rounds", "2", "--per-round", "1", "--seeds", "1", "--out", str(tmp_path / "out")])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    dice = summary["strategies"]["entropy"]["dice"]
    assert dice[0] >= summary["pseudo_dice"] + 0.02, summary  # better than what it learnt from
    assert dice[0] < dice[1] < dice[2], summary  # every corrected tile counts
    assert dice[2] >= dice[0] + 0.045, summary  # two corrected tiles lift the round-0 model
    assert summary["ceiling_dice"] > dice[2] - 0.01, summary  # and full supervision is still above

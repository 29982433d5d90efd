"""Arguments are checked by the parser (choices listed in --help, whole numbers >= 1), and long commands
say where they are every few seconds when stderr is a log or a pipe. Through ``app.cli.main``."""

from __future__ import annotations

from pathlib import Path

import pytest

import app.cli
from annotation.project import Project
from app.cli import main


def _exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code


def test_the_cli_lists_the_library_s_strategies_and_methods() -> None:
    from annotation.pseudo import METHODS
    from annotation.strategies import STRATEGIES

    assert tuple(app.cli.STRATEGIES) == tuple(STRATEGIES)
    assert list(app.cli.PSEUDO_METHODS) == list(METHODS)


def test_unknown_strategy_is_a_usage_error_listing_the_choices(small_project: Path, capsys) -> None:
    assert _exit_code(["next", str(small_project), "--strategy", "foo"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'foo'" in err and "Traceback" not in err
    assert all(name in err for name in app.cli.STRATEGIES)
    assert _exit_code(["simulate", "--images", "i", "--truth", "t", "--strategy", "entropy,foo", "--rounds", "1",
                       "--per-round", "1", "--out", "o"]) == 2
    assert "unknown strategy foo; choose from least_confidence" in capsys.readouterr().err


def test_help_lists_strategies_and_pseudo_methods_and_what_correct_does(capsys) -> None:
    assert _exit_code(["next", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "least_confidence, margin, entropy, bald, batch_diversity, random" in text
    assert _exit_code(["init", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "otsu: Otsu threshold + connected components" in text and "watershed:" in text
    assert "--channel" in text and "--max-projection" in text and "--dims" in text
    assert _exit_code(["correct", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "the image is marked done" in text and "it leaves the queue" in text
    assert _exit_code(["--help"]) == 0
    assert "store a corrected mask for one image and mark the image done" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    ["train", "{p}", "--steps", "0"],
    ["train", "{p}", "--steps", "-5"],
    ["train", "{p}", "--steps", "1.5"],
    ["next", "{p}", "-n", "0"],
    ["simulate", "--images", "i", "--truth", "t", "--strategy", "random", "--rounds", "0", "--per-round", "1",
     "--out", "o"],
])
def test_numbers_below_one_are_refused_before_anything_runs(small_project: Path, capsys, argv) -> None:
    assert _exit_code([a.format(p=small_project) for a in argv]) == 2
    err = capsys.readouterr().err
    assert "expected a whole number >= 1" in err and "Traceback" not in err
    with Project.open(small_project) as project:
        assert project.store.jobs() == []  # no job was started


@pytest.mark.slow
def test_piped_train_and_score_print_a_line_every_few_seconds(small_project: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(app.cli, "PROGRESS_SECONDS", 0.2, raising=False)
    assert main(["train", str(small_project)]) == 0  # capsys: stderr is not a terminal
    out, err = capsys.readouterr()
    assert "scored 4 images with v1" in out
    lines = err.splitlines()
    train = [line for line in lines if line.startswith("train: ")]
    score = [line for line in lines if line.startswith("score: ")]
    assert train[0] == "train: starting" and len(train) >= 3, err
    assert any("step " in line and "/12" in line and "loss" in line for line in train), err
    assert score[0] == "score: starting" and len(score) >= 2, err
    assert "\r" not in err  # no progress bar drawn into a log
    assert main(["score", str(small_project), "-q"]) == 0
    assert "score:" not in capsys.readouterr().err  # -q: quiet

"""A simulated annotator: ground-truth masks stand in for the person, to compare query strategies honestly.

For each seed, round 0 (a model trained from the pseudo labels) is trained once and copied for every
strategy, so the strategies start from the same model and differ only in what they pick. A fixed test
split (the same for all seeds and strategies) is never proposed, never trained on, and is scored after
every round.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from im2im_engine import io
from im2im_engine.metrics import ap50, dice

from .corrections import apply_mask
from .importer import file_stem, fit_mask_to_task
from .loop import next_images, score, train_round
from .project import Project, ProjectError
from .pseudo import METHODS
from .setup import init_project

Log = Callable[[str], None]


@dataclass
class SimulationSettings:
    images: Path
    truth: Path
    pseudo: str  # a method of annotation.pseudo.METHODS ("otsu", "watershed") or a folder of masks
    strategies: list[str]
    rounds: int
    per_round: int
    out: Path
    seeds: int = 1
    test_fraction: float = 0.25
    steps: int | None = None
    initial_steps: int | None = None
    task: str = "semantic"
    config: Path | None = None


def _truth_masks(settings: SimulationSettings, project: Project) -> dict[int, np.ndarray]:
    by_stem = {file_stem(p): p for p in io.find_images(settings.truth)}
    truth = {}
    for image in project.store.images():
        path = by_stem.get(image.name)
        if path is None:
            raise ProjectError(f"{settings.truth}: no truth mask for image {image.name}")
        truth[image.id] = io.read_mask(path, expected_spatial=tuple(image.spatial_shape))
    return truth


def _evaluate(project: Project, truth: dict[int, np.ndarray], version: str, ids: list[int]) -> dict[str, float]:
    store = project.store
    dices, aps = [], []
    for image_id in ids:
        pred = store.get_label(image_id, version)
        if pred is None:
            raise ProjectError(f"no {version} label for test image {image_id}")
        pred = pred.reshape(truth[image_id].shape)
        dices.append(dice(pred, truth[image_id]))
        if project.task == "instance":
            aps.append(ap50(pred, truth[image_id]))
    result = {"dice": float(np.mean(dices))}
    if aps:
        result["ap50"] = float(np.mean(aps))
    return result


def _base_project(settings: SimulationSettings, log: Log) -> tuple[Path, list[int]]:
    base = settings.out / "runs" / "base"
    if base.exists():
        shutil.rmtree(base)
    labels = None if settings.pseudo in METHODS else settings.pseudo
    project, _ = init_project(base, settings.images, labels_dir=labels,
                              pseudo=settings.pseudo if labels is None else None, task=settings.task,
                              config_path=settings.config)
    with project:
        ids = [im.id for im in project.store.images()]
        n_test = max(1, round(len(ids) * settings.test_fraction))
        if n_test >= len(ids):
            raise ProjectError(f"{settings.images}: {len(ids)} images are too few for a test split of {n_test}")
        test = sorted(np.random.default_rng(20261124).choice(ids, n_test, replace=False).tolist())
        project.store.set_split(test, "test")
    log(f"simulate: {len(ids)} images, {n_test} held out for testing")
    return base, test


def _set_seed(project: Project, seed: int, settings: SimulationSettings, steps: int | None) -> None:
    config = dict(project.config)
    training = dict(config.get("training") or {})
    training["seed"] = seed
    if steps is not None:
        training["steps"] = steps
    config["training"] = training
    loop = dict(config.get("loop") or {})
    if settings.steps is not None:
        loop["finetune_steps"] = settings.steps
    config["loop"] = loop
    project.save_config(config)


def run_simulation(settings: SimulationSettings, log: Log = print) -> dict:
    """Run every strategy for every seed; write ``curve.csv``, ``summary.json`` and ``curve.png``; return the
    summary: per strategy the mean Dice per round, its spread and the curve's area, next to the floor (the
    pseudo labels) and the ceiling (a model trained on the true masks of the whole pool), all on the same
    test split."""
    settings.out.mkdir(parents=True, exist_ok=True)
    base, test_ids = _base_project(settings, log)
    with Project.open(base) as project:
        truth = _truth_masks(settings, project)
        pseudo = _evaluate(project, truth, "pseudo", test_ids)
    log(f"simulate: pseudo labels on the test split: dice {pseudo['dice']:.3f}")
    rows: list[dict] = []
    ceilings: list[float] = []
    for seed in range(settings.seeds):
        round0 = settings.out / "runs" / f"seed{seed}-round0"
        _copy(base, round0)
        with Project.open(round0) as project:
            _set_seed(project, seed, settings, settings.initial_steps)
            result = train_round(project)
            log(f"seed {seed}: round 0 ({result.message}) {result.seconds:.0f} s")
            if not result.accepted:
                raise ProjectError(f"seed {seed}: the model trained from the pseudo labels was rejected: "
                                   f"{result.message}")
            score(project, include_test=True)
        ceilings.append(_ceiling(settings, round0, truth, test_ids, seed, log))
        for strategy in settings.strategies:
            run = settings.out / "runs" / f"{strategy}-seed{seed}"
            _copy(round0, run)
            with Project.open(run) as project:
                rows.append(_row(project, truth, test_ids, strategy, seed, 0))
                for r in range(1, settings.rounds + 1):
                    picked = next_images(project, settings.per_round, strategy, seed=seed * 1000 + r)
                    for entry in picked:
                        apply_mask(project, project.store.image(entry.image_id), truth[entry.image_id],
                                   author="simulated")
                    result = train_round(project)
                    score(project, include_test=True)
                    rows.append(_row(project, truth, test_ids, strategy, seed, r))
                    log(f"seed {seed} {strategy} round {r}: {len(picked)} corrected, dice "
                        f"{rows[-1]['dice']:.3f} ({result.message})")
            shutil.rmtree(run / "jobs", ignore_errors=True)
    summary = summarise(rows, settings.strategies, pseudo["dice"], ceilings)
    write_curve(settings.out, rows, settings.task == "instance", summary)
    return summary


def _ceiling(settings: SimulationSettings, round0: Path, truth: dict[int, np.ndarray], test_ids: list[int],
             seed: int, log: Log) -> float:
    """Dice on the test split of a model trained from scratch on the true masks of every pool image, with
    the same config and the training budget the loop gets in all (round 0 plus every fine-tuning round)."""
    from im2im_engine import Engine, Sample

    with Project.open(round0) as project:
        cfg = project.engine_config()
        steps = cfg.training.steps + settings.rounds * project.loop.finetune_steps
        images = {im.id: im for im in project.store.images()}
        spatial = 3 if any(im.is_3d for im in images.values()) else 2

        def pixels(image_id: int) -> np.ndarray:
            return io.to_spatial(io.read_image(images[image_id].path).data, spatial)

        n_classes = cfg.task.num_classes
        train = [Sample(pixels(i), fit_mask_to_task(truth[i], project.task, n_classes), None, images[i].name)
                 for i in images if i not in test_ids]
        engine = Engine.from_config(cfg.model_copy(deep=True))
        engine.train(train, steps=steps)
        values = []
        for i in test_ids:
            pred = engine.predict(pixels(i)).labels
            values.append(dice(pred.reshape(truth[i].shape), truth[i]))
    value = float(np.mean(values))
    log(f"seed {seed}: ceiling (true masks of all {len(train)} pool images, {steps} steps) dice {value:.3f}")
    return value


def _copy(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("jobs", "*.db-wal", "*.db-shm"))


def _row(project: Project, truth: dict, test_ids: list[int], strategy: str, seed: int, rnd: int) -> dict:
    metrics = _evaluate(project, truth, "prediction", test_ids)
    n_corrected = int(project.store.scalar("SELECT COUNT(DISTINCT image_id) FROM labels WHERE version='corrected'"))
    return {"strategy": strategy, "seed": seed, "round": rnd, "n_corrected": n_corrected, **metrics}


def summarise(rows: list[dict], names: list[str], pseudo_dice: float, ceilings: list[float] | None = None) -> dict:
    """Mean and spread over seeds: per strategy and round, the round-0 model (the same for every strategy
    of a seed), the pseudo labels (the floor) and the fully supervised model (the ceiling)."""
    out: dict = {"strategies": {}, "pseudo_dice": round(pseudo_dice, 4)}
    model0 = [r["dice"] for r in rows if r["round"] == 0 and r["strategy"] == (names[0] if names else None)]
    if model0:
        out["model0_dice"] = round(float(np.mean(model0)), 4)
        out["model0_sd"] = round(float(np.std(model0)), 4)
    if ceilings:
        out["ceiling_dice"] = round(float(np.mean(ceilings)), 4)
        out["ceiling_sd"] = round(float(np.std(ceilings)), 4)
    for name in names:
        mine = [r for r in rows if r["strategy"] == name]
        rounds = sorted({r["round"] for r in mine})
        per = [[r["dice"] for r in mine if r["round"] == k] for k in rounds]
        means = [float(np.mean(p)) for p in per]
        xs = [float(np.mean([r["n_corrected"] for r in mine if r["round"] == k])) for k in rounds]
        span = xs[-1] - xs[0] if len(xs) > 1 else 0.0
        auc = float(np.trapezoid(means, xs) / span) if span > 0 else (means[0] if means else 0.0)
        aucs = []  # per seed, for the spread of the area
        for seed in sorted({r["seed"] for r in mine}):
            ys = [r["dice"] for r in sorted((r for r in mine if r["seed"] == seed), key=lambda r: r["round"])]
            aucs.append(float(np.trapezoid(ys, xs[:len(ys)]) / span) if span > 0 and len(ys) == len(xs) else ys[0])
        out["strategies"][name] = {"dice": [round(m, 4) for m in means],
                                   "sd": [round(float(np.std(p)), 4) for p in per],
                                   "final_dice": round(means[-1], 4), "auc": round(auc, 4),
                                   "auc_sd": round(float(np.std(aucs)), 4)}
    return out


def write_curve(out: Path, rows: list[dict], instance: bool, summary: dict) -> None:
    fields = ["strategy", "seed", "round", "n_corrected", "dice"] + (["ap50"] if instance else [])
    tmp = out / ".curve.csv.tmp"
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "dice": f"{r['dice']:.5f}",
                             **({"ap50": f"{r.get('ap50', 0):.5f}"} if instance else {})})
    os.replace(tmp, out / "curve.csv")
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    _plot(out, rows, summary)


def _plot(out: Path, rows: list[dict], summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for name in summary["strategies"]:
        mine = [r for r in rows if r["strategy"] == name]
        rounds = sorted({r["round"] for r in mine})
        xs = np.array([np.mean([r["n_corrected"] for r in mine if r["round"] == k]) for k in rounds])
        per = [np.array([r["dice"] for r in mine if r["round"] == k]) for k in rounds]
        mean = np.array([p.mean() for p in per])
        lo = np.array([p.min() for p in per])
        hi = np.array([p.max() for p in per])
        (line,) = ax.plot(xs, mean, marker="o", label=name)
        ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.15)
    ax.axhline(summary["pseudo_dice"], color="grey", ls="--", label="pseudo labels (floor)")
    if "ceiling_dice" in summary:
        ax.axhline(summary["ceiling_dice"], color="black", ls=":", label="all true masks (ceiling)")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # images come whole
    ax.set_xlabel("corrected images")
    ax.set_ylabel("Dice on the test split")
    ax.set_title(f"Learning curve ({len({r['seed'] for r in rows})} seeds: mean, band = min..max)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = out / ".curve.png.tmp.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, out / "curve.png")

"""#7 One turn of the loop on the demo project (CPU): correction saved -> fine-tuned model accepted ->
queue re-ranked, against a full retrain from scratch on all labels.

Both sides go through the app's own code: ``annotation.loop.train_round`` (engine worker subprocess,
held-out acceptance check) then ``annotation.loop.score`` and ``annotation.loop.queue``. Ours fine-tunes
the current model for ``loop.finetune_steps``; the baseline sets the current model aside and trains a
new one from scratch for ``training.steps`` on the same labels (pseudo + every correction), then scores
and ranks the same way. The clock starts when the correction is saved (``Store.apply_edit``).
"""

from __future__ import annotations

import time

import numpy as np

from .common import Result, pair_ratios, spread
from .fixtures import demo_project


def _correct_one(project, rng: np.random.Generator) -> None:
    """Save the true mask of one uncorrected image as a correction (one edit, as the GUI would)."""
    from pathlib import Path

    from annotation.loop import queue

    truth_dir = Path(project.store.get_meta("demo_truth"))
    entry = next(e for e in queue(project) if e.state != "corrected")
    record = project.store.image(entry.image_id)
    truth = np.load(truth_dir / f"{record.name}.npy") if (truth_dir / f"{record.name}.npy").exists() else None
    if truth is None:
        from im2im_engine import io

        truth = np.asarray(io.read_image(next(truth_dir.glob(f"{record.name}.*"))).data)[0, 0]
    mask = (truth > 0).astype(np.int32)
    h, w = mask.shape
    project.store.apply_edit(entry.image_id, (0, 1, 0, h, 0, w), mask[None], kind="accept",
                             init_from=project.store.get_label(entry.image_id, "pseudo"))


def _turn(project, scratch: bool) -> tuple[float, bool]:
    from annotation import loop

    t0 = time.perf_counter()
    parent = project.store.current_model
    if scratch:
        project.store.set_current_model(None)  # train_round then trains version N from scratch
    result = loop.train_round(project, steps=None if scratch else project.loop.finetune_steps)
    if scratch and not result.accepted:
        project.store.set_current_model(parent)
    loop.score(project)
    loop.queue(project)
    return time.perf_counter() - t0, bool(result.accepted)


def run(quick: bool) -> list[Result]:
    from annotation import loop
    from annotation.project import Project

    n_images, size, steps, finetune, rounds = (4, 128, 40, 8, 1) if quick else (12, 256, 200, 30, 2)
    rng = np.random.default_rng(0)
    t_ours: list[float] = []
    t_base: list[float] = []
    accepted = []
    with demo_project(n_images, size, steps=steps, finetune_steps=finetune) as root:
        project = Project.open(root)
        loop.train_round(project)  # v1 from pseudo labels, then scored: the state a user starts from
        loop.score(project)
        for i in range(rounds):
            for scratch in ((False, True) if i % 2 == 0 else (True, False)):
                _correct_one(project, rng)
                seconds, ok = _turn(project, scratch)
                (t_base if scratch else t_ours).append(seconds)
                if not scratch:
                    accepted.append(ok)
        project.close()
    ratios = pair_ratios(t_ours, t_base)
    med_ours, med_ratio = spread(t_ours)["median"], spread(ratios)["median"]
    return [Result(
        id="7", what="correction -> fine-tuned model accepted -> queue re-ranked (demo project, CPU)", unit="s",
        ours=spread(t_ours), baseline=spread(t_base), ratio=spread(ratios),
        ratio_def="ours / retrain from scratch (lower is better)", goal="<= 60 s, ratio <= 0.25",
        met=bool(med_ours <= 60 and med_ratio <= 0.25),
        note=f"{n_images} images {size}², fine-tune {finetune} steps vs scratch {steps} steps; fine-tuned model "
             f"accepted in {sum(accepted)}/{len(accepted)} turns; both include the worker start, scoring every "
             "uncorrected image and ranking" + ("; quick mode: smaller project, fewer steps" if quick else ""),
        params={"images": n_images, "size": size, "steps": steps, "finetune_steps": finetune, "rounds": rounds},
    )]

"""The check every new model passes before it replaces the current one, and the record of what decided.

Fair by construction: the images of the check are never trained on in that round, and the parent and the
new model are evaluated by the same function on the same images and pixels (inside the engine worker,
before and after training). Nothing else picks the new model: a round trains a fixed number of steps, so no
"best step" was chosen on the images that then judge it.

Which images, in order of preference:

* ``held-out``: done images held out for the check (every k-th done image, ``loop.val_fraction``); the
  labels a person vouched for everywhere. The new model is accepted if it is not worse than the parent
  (``loop.accept_tolerance``).
* ``rotating``: too few done images for a held-out share: one labelled image, a different one each round,
  is left out of this round's training and judged on its label's trusted pixels (weight > 0). It is taken
  from the images without a correction while there are any: the few corrections are what the round is for,
  and a corrected image left out would not train until the next round. Its label is then a pseudo label,
  so this rule is looser (``loop.fallback_tolerance``); it still catches a broken model. A pseudo label
  also holds back a model that learnt from the corrections: the closer it gets to them, the less it agrees
  with a pseudo label. So once images are done, a child is also accepted when it agrees with the pseudo
  label at least as well as the person's corrected labels agree with their own pseudo labels (the
  ``reference``, within the same tolerance): on the demo recipe a model after one random correction agreed
  0.909 with the left-out pseudo label against its parent's 0.975 (which had learnt the threshold's
  outlines), where the corrected images agreed with theirs at 0.835. The image rotates with every attempt,
  so a rejection does not leave the same image to judge every later round.
* ``training``: a project with a single labelled image: agreement with its own training label — it can
  only catch a broken model, and says so.

Round 0 has no parent: the model must agree with the check labels at least ``loop.min_agreement`` (Dice
of the foreground); a model that learnt nothing (0 steps, diverged, all background) does not.

Denoise projects have no labels: the same rules apply with the Noise2Void judgement instead, the PSNR of
blind-spot predictions of a fixed set of hidden pixels against their noisy values (``blindspot_psnr``,
see :meth:`im2im_engine.Engine.blindspot_psnr`), on an image left out of the round.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .project import LoopSettings
from .trainset import check_entry

#: The metric that compares parent and child, per task (higher is better for all three).
PRIMARY_METRIC = {"semantic": "dice", "instance": "ap50", "regression": "psnr", "denoise": "blindspot_psnr"}

RULE_WORDS = {
    "held-out": "held-out done images",
    "rotating": "an image left out of this round",
    "training": "its own training image (catches only a broken model)",
}


@dataclass
class Check:
    """What a model was checked on, what it scored, and the decision."""

    rule: str
    images: list[str]
    metric: str
    child: float | None = None
    parent: float | None = None
    floor_metric: str = "dice"
    child_floor_value: float | None = None
    pseudo: float | None = None  # the pseudo labels on the same images (held-out done images only)
    reference: float | None = None  # rotating on a pseudo label: done images' corrected vs pseudo agreement
    accepted: bool = False
    reason: str = ""
    per_image: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def choose(train: list[dict], held_out: list[dict], round_no: int) -> tuple[str, list[dict], list[dict]]:
    """(rule, training entries, check entries) for this round; see the module docstring."""
    if held_out:
        return "held-out", train, held_out
    if len(train) >= 2:
        uncorrected = [e for e in train if e.get("version") != "corrected"]
        order = sorted(uncorrected or train, key=lambda e: e["name"])
        pick = order[round_no % len(order)]
        return "rotating", [e for e in train if e is not pick], [check_entry(pick)]
    return "training", train, [check_entry(e) for e in train]


def decide(check: Check, settings: LoopSettings, version: int, parent: int | None,
           source: str = "pseudo labels") -> Check:
    """Fill ``accepted`` and ``reason`` from the measured values (see the module docstring); ``source`` says
    what a first model was trained from."""
    where = f"{RULE_WORDS[check.rule]} ({', '.join(check.images[:3])}{'…' if len(check.images) > 3 else ''})"
    key = check.metric
    if check.child is None:
        check.accepted, check.reason = False, f"kept v{parent}: v{version} could not be evaluated on {where}"
        return check
    floor = settings.min_agreement
    if check.floor_metric in ("dice",) and check.child_floor_value is not None and check.child_floor_value < floor:
        check.accepted = False
        check.reason = (f"v{version} rejected: it agrees with {where} at {check.floor_metric} "
                        f"{check.child_floor_value:.3f} < {floor:.2f}; it did not learn (check the data and "
                        "training.steps)")
        return check
    if parent is None or check.parent is None:
        extra = f"; the pseudo labels score {check.pseudo:.3f}" if check.pseudo is not None else ""
        check.accepted = True
        check.reason = f"v{version} trained from {source}: {key} {check.child:.3f} on {where}{extra}"
        return check
    tolerance = settings.accept_tolerance if check.rule == "held-out" else settings.fallback_tolerance
    if check.child + tolerance >= check.parent:
        check.accepted = True
        check.reason = f"v{version} accepted: {key} {check.child:.3f} vs {check.parent:.3f} for v{parent} on {where}"
    elif check.rule == "rotating" and check.reference is not None and check.child + tolerance >= check.reference:
        check.accepted = True
        check.reason = (f"v{version} accepted: {key} {check.child:.3f} vs {check.parent:.3f} for v{parent} on {where}, "
                        f"a pseudo label, which your corrected images agree with at {check.reference:.3f}: "
                        "closer to your corrections, further from the pseudo labels")
    else:
        check.accepted = False
        check.reason = (f"kept v{parent}: v{version} was worse on {where} "
                        f"({key} {check.child:.3f} < {check.parent:.3f})")
    return check

"""Job worker: ``python -m im2im_engine.worker JOB.json`` runs one train / score / predict job.

Why a subprocess with JSON lines: heavy work never runs in the GUI process, a crash cannot take the app
down, and the same job spec runs on a GPU node. stdout carries only JSON objects, one per line, flushed
at once (anything else a library prints is redirected to stderr). Outputs are written atomically. SIGTERM
(or SIGINT) asks the job to stop: training stops within one step and leaves its last good checkpoint,
scoring stops between images; the worker then prints a ``result`` with ``"cancelled": true`` and exits 130.
Failures print ``{"event": "error", "message": ...}`` and exit 1.

Paths in the spec may be relative to the spec file's folder. If the spec has ``"root"``, every path must
lie under it (a guard against a spec that would read or write elsewhere).

The same worker runs under ``torchrun`` (``python -m torch.distributed.run --nproc_per_node N -m
im2im_engine.worker JOB.json``): training splits each batch over the ranks (see :mod:`.train`); scoring and
prediction deal the images out round robin, each rank writes the ``.npz`` files of its own images, and the
ranks gather the per-image results after every round so rank 0 can report them in order. Only rank 0
prints events (other ranks print only their ``error`` lines) and writes checkpoints and ``metrics.json``.
MC-dropout scores are seeded per image name, so they do not depend on how images were dealt out.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import signal
import sys
import time
import traceback
import zlib
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from . import distributed as dd

EXIT_OK, EXIT_ERROR, EXIT_CANCELLED = 0, 1, 130
_NAME = re.compile(r"^[\w.\- ]+$")


class JobError(ValueError):
    """A job spec problem; the message says which field."""


class Emitter:
    """Writes one JSON object per line to the real stdout and flushes it.

    Under torchrun every rank shares one stdout, so only the main rank speaks; the others print only
    ``error`` lines (tagged with their rank), which is how a failure on rank 1 reaches the caller.
    """

    def __init__(self, stream: TextIO, rank: int = 0):
        self.stream = stream
        self.rank = rank

    def __call__(self, event: str, **fields: Any) -> None:
        if self.rank != 0 and event != "error":
            return
        rec = {"event": event, **fields}
        if self.rank != 0:
            rec["rank"] = self.rank
        self.stream.write(json.dumps(rec, default=_jsonable, allow_nan=False) + "\n")
        self.stream.flush()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _clean(value: Any) -> Any:
    """Replace NaN/inf (not valid JSON) by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


class Job:
    """A parsed job spec with path resolution and the optional root guard."""

    def __init__(self, spec: dict, base: Path):
        if not isinstance(spec, dict):
            raise JobError("job spec must be a JSON object")
        self.spec = spec
        self.base = base
        self.kind = spec.get("kind")
        if self.kind not in ("train", "score", "predict"):
            raise JobError(f"kind: must be one of train, score, predict (got {self.kind!r})")
        root = spec.get("root")
        self.root = self._resolve_raw(root) if root else None
        # images are referenced where the user keeps them (never copied), so they may live outside the
        # root; when ``image_roots`` is given they must lie under one of those folders
        roots = spec.get("image_roots")
        self.image_roots = [self._resolve_raw(r) for r in roots] if roots else None
        if "output_dir" not in spec or not spec["output_dir"]:
            raise JobError("output_dir: required")
        self.output_dir = self.path(spec["output_dir"], "output_dir")

    def _resolve_raw(self, p: str) -> Path:
        path = Path(p).expanduser()
        return (path if path.is_absolute() else self.base / path).resolve()

    def path(self, p: Any, field: str) -> Path:
        if not isinstance(p, str) or not p:
            raise JobError(f"{field}: expected a path string (got {p!r})")
        path = self._resolve_raw(p)
        if self.root is not None and not path.is_relative_to(self.root):
            raise JobError(f"{field}: {path} is outside the job root {self.root}; refused")
        return path

    def image_path(self, p: Any, field: str) -> Path:
        """An input image: checked against ``image_roots`` when given, else against ``root``."""
        if self.image_roots is None:
            return self.path(p, field)
        if not isinstance(p, str) or not p:
            raise JobError(f"{field}: expected a path string (got {p!r})")
        path = self._resolve_raw(p)
        if not any(path.is_relative_to(r) for r in self.image_roots):
            raise JobError(f"{field}: {path} is outside the job's image folders; refused")
        return path

    def entries(self, key: str) -> list[dict]:
        items = self.spec.get(key) or []
        if not isinstance(items, list):
            raise JobError(f"{key}: expected a list")
        for i, item in enumerate(items):
            if not isinstance(item, dict) or "image" not in item:
                raise JobError(f"{key}[{i}]: expected an object with at least 'image'")
            name = str(item.get("name") or Path(item["image"]).stem)
            if not _NAME.match(name) or name in (".", ".."):
                raise JobError(f"{key}[{i}].name: {name!r} is not a safe file name")
            item["name"] = name
        return items


def load_image(path: Path, t: int, spatial_dims: int) -> np.ndarray:
    """A ``.npy`` in engine layout ((C, *sp), or (*sp) for one channel), or any file ``io`` reads."""
    from . import io as eio

    if path.suffix.lower() == ".npy":
        arr = np.load(path, allow_pickle=False)
        return arr[None] if arr.ndim == spatial_dims else arr
    return eio.to_spatial(eio.read_image(path, t=t).data, spatial_dims)


def load_array(path: Path) -> np.ndarray:
    from . import io as eio

    return eio.read_array(path)


def _samples(job: Job, key: str, cfg: Any, with_target: bool, skipped: list[dict] | None = None) -> list:
    """The spec's ``key`` entries as samples. An image that does not fit the model (dimensions, channels,
    target shape) is skipped with the reason when ``skipped`` is given (training goes on without it), and
    is an error naming it otherwise. A spec problem (missing target, path outside the root) is always an
    error."""
    from .data import Sample, check_sample

    out = []
    for i, item in enumerate(job.entries(key)):
        path = job.image_path(item["image"], f"{key}[{i}].image")
        target = weight = None
        if with_target:
            if not item.get("target"):
                raise JobError(f"{key}[{i}].target: required for training")
            target_path = job.path(item["target"], f"{key}[{i}].target")
            weight_path = job.path(item["weight"], f"{key}[{i}].weight") if item.get("weight") else None
        try:
            image = load_image(path, int(item.get("t", 0)), cfg.data.spatial_dims)
            if with_target:
                target = load_array(target_path)
                if weight_path is not None:
                    weight = load_array(weight_path).astype(np.float32)
            sample = Sample(image, target, weight, item["name"])
            check_sample(sample, cfg, with_target)
        except ValueError as exc:
            reason = " ".join(str(exc).split())
            if skipped is None:
                raise JobError(f"{path.name}: {reason}") from None
            skipped.append({"name": item["name"], "file": str(path), "reason": reason})
            continue
        out.append(sample)
    return out


def _steps(spec: dict) -> int | None:
    """The spec's explicit step count: a whole number >= 1 (a boolean or 0 is a caller's bug, refused)."""
    steps = spec.get("steps")
    if steps is None:
        return None
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise JobError(f"steps: must be a whole number >= 1 (got {steps!r})")
    return steps


def evaluate_each(engine: Any, samples: list) -> dict:
    """Mean metrics and per-image metrics, the same function for the parent and the child of a round."""
    per_image = {s.name: engine.evaluate([s]) for s in samples}
    if not per_image:
        return {"mean": {}, "per_image": {}}
    keys = next(iter(per_image.values())).keys()
    return {"mean": {k: float(np.mean([m[k] for m in per_image.values()])) for k in keys}, "per_image": per_image}


def _atomic_npz(path: Path, **arrays: Any) -> None:
    from .checkpoint import atomic_write_bytes

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def _atomic_json(path: Path, data: dict) -> None:
    from .checkpoint import atomic_write_bytes

    atomic_write_bytes(path, json.dumps(_clean(data), indent=2, default=_jsonable).encode())


def _process_image(job: Job, engine: Any, item: dict, index: int, spatial_dims: int) -> dict:
    """Score or predict one image, write its ``.npz`` (atomically); return the ``scored`` event's fields."""
    import torch

    path = job.image_path(item["image"], f"images[{index}].image")
    try:
        image = load_image(path, int(item.get("t", 0)), spatial_dims)
        from .data import as_channel_first

        as_channel_first(image, engine.config)
    except ValueError as exc:  # one image that does not fit must not stop the others
        return {"name": item["name"], "file": str(path), "skipped": " ".join(str(exc).split())}
    out_file = job.output_dir / f"{item['name']}.npz"
    if job.kind == "score":
        # MC dropout draws from torch's generator: seeding per image makes a score independent of which rank
        # (and after which other images) it was computed
        torch.manual_seed(engine.config.training.seed + zlib.crc32(item["name"].encode()))
        unc = engine.uncertainty(image)
        arrays: dict[str, Any] = {
            "output": unc.prediction.output.astype(np.float16),
            "uncertainty": unc.map.astype(np.float16),
            "embedding": np.asarray(unc.embedding, np.float32),
            "score": np.float64(unc.score),
        }
        if unc.prediction.labels is not None:
            arrays["labels"] = unc.prediction.labels.astype(np.int32)
        _atomic_npz(out_file, **arrays)
        return {"name": item["name"], "file": str(out_file), "score": _clean(unc.score),
                "scores": _clean(unc.scores), "method": unc.method}
    pred = engine.predict(image)
    arrays = {"output": pred.output.astype(np.float16), "embedding": np.asarray(pred.embedding, np.float32)}
    if pred.labels is not None:
        arrays["labels"] = pred.labels.astype(np.int32)
    _atomic_npz(out_file, **arrays)
    return {"name": item["name"], "file": str(out_file)}  # no score: predict has no uncertainty


def run_job(job: Job, emit: Emitter, stop: dict) -> int:
    from .api import Engine
    from .config import load_config
    from .train import evaluate_sharded

    spec = job.spec
    cfg_src = spec.get("config")
    if cfg_src is None:
        raise JobError("config: required (a YAML path or an inline object)")
    # an explicit step count (a fine-tuning round) wins over the config's steps or epochs
    steps = _steps(spec)
    overrides = {"training": {"steps": steps, "epochs": None}} if steps is not None else None
    cfg = load_config(cfg_src if isinstance(cfg_src, dict) else job.path(cfg_src, "config"), overrides)
    ckpt = job.path(spec["checkpoint"], "checkpoint") if spec.get("checkpoint") else None
    job.output_dir.mkdir(parents=True, exist_ok=True)
    engine = Engine.from_config(cfg, checkpoint=ckpt, device=dd.device())
    info = dd.info()
    d = cfg.data.spatial_dims
    t0 = time.perf_counter()

    if job.kind == "train":
        steps = _steps(spec)
        skipped: list[dict] = []
        train = _samples(job, "train", cfg, cfg.task.kind != "denoise", skipped)  # N2V: no targets
        for rec in skipped:
            emit("skipped", **rec)
        val = _samples(job, "val", cfg, True)
        check = _samples(job, "check", cfg, cfg.task.kind != "denoise")  # N2V: judged on hidden pixels
        if not train:
            names = ", ".join(r["name"] for r in skipped)
            raise JobError("train: no training image fits the model" + (f" (skipped: {names})" if names else ""))
        emit("start", kind="train", n_train=len(train), n_val=len(val), n_check=len(check),
             steps=steps or cfg.training.steps, device=str(engine.device), ranks=info.world)
        model_path = job.output_dir / "model.pt"
        check_metrics: dict = {}
        parent_path = spec.get("parent_checkpoint")  # a parent of another network: judged with its own config
        if check and (ckpt is not None or parent_path):
            # the starting model on the check images, by the same function that judges the new one
            judge = Engine.load(job.path(parent_path, "parent_checkpoint"), device=engine.device) if parent_path \
                else engine
            check_metrics["parent"] = evaluate_each(judge, check)
            emit("check", model="parent", metrics=_clean(check_metrics["parent"]["mean"]))
        baseline: dict = {}
        if spec.get("evaluate_checkpoint") and ckpt is not None and val:
            baseline = evaluate_sharded(engine, val)
            emit("baseline", metrics=_clean(baseline))

        def progress(p: dict) -> None:
            emit("progress", **_clean(p))
            if p.get("metric") is not None:
                emit("metrics", step=p["step"], metric=p["metric"])

        res = engine.train(train, val, progress=progress, should_stop=lambda: stop["flag"],
                           checkpoint_path=model_path)
        if check and not res.cancelled:
            check_metrics["child"] = evaluate_each(engine, check)
            emit("check", model="child", metrics=_clean(check_metrics["child"]["mean"]))
        metrics = {"steps": res.steps, "best_step": res.best_step, "val_metrics": res.val_metrics,
                   "baseline_metrics": baseline,
                   "check_metrics": {
                       **{k: v["mean"] for k, v in check_metrics.items()},
                       "per_image": {k: v["per_image"] for k, v in check_metrics.items()},
                   },
                   "skipped": skipped,
                   "cancelled": res.cancelled, "stopped_early": res.stopped_early,
                   "duration_s": time.perf_counter() - t0,
                   "final_loss": res.history[-1]["loss"] if res.history else None,
                   "history": [{k: v for k, v in h.items() if k != "metrics"} for h in res.history]}
        if info.is_main:
            _atomic_json(job.output_dir / "metrics.json", metrics)
        emit("result", kind="train", cancelled=res.cancelled, steps=res.steps, best_step=res.best_step,
             val_metrics=_clean(res.val_metrics), baseline_metrics=_clean(baseline),
             check_metrics=_clean(metrics["check_metrics"]), skipped=skipped, checkpoint=str(model_path),
             config=str(job.output_dir / "config.yaml"), metrics=str(job.output_dir / "metrics.json"))
        return EXIT_CANCELLED if res.cancelled else EXIT_OK

    items = job.entries("images")
    emit("start", kind=job.kind, n_images=len(items), device=str(engine.device), ranks=info.world)
    done = 0
    stopped = False
    for first in range(0, len(items), info.world):  # one image per rank and round, then gather
        index = first + info.rank
        asked = bool(stop["flag"])
        record = None
        if index < len(items) and not asked:
            record = _process_image(job, engine, items[index], index, d)
        for rec, rank_asked in dd.gather((record, asked)):
            if rec is not None:
                if "skipped" in rec:
                    emit("skipped", name=rec["name"], file=rec["file"], reason=rec["skipped"])
                else:
                    emit("scored", **rec)
                done += 1
                emit("progress", done=done, total=len(items))
            stopped = stopped or rank_asked
        if stopped:
            break
    cancelled = done < len(items)
    emit("result", kind=job.kind, cancelled=cancelled, done=done, total=len(items),
         duration_s=time.perf_counter() - t0)
    return EXIT_CANCELLED if cancelled else EXIT_OK


def _lower_priority() -> None:
    """``IM2IM_WORKER_NICE=N`` (set by the app's local backend): yield the CPU to the GUI process."""
    try:
        niceness = int(os.environ.get("IM2IM_WORKER_NICE", "0"))
        if niceness > 0:
            os.nice(niceness)
    except (ValueError, OSError):
        pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    _lower_priority()
    real_stdout = sys.stdout
    emit = Emitter(real_stdout, dd.from_env().rank)
    sys.stdout = sys.stderr  # keep stdout pure JSON lines whatever libraries print
    stop = {"flag": False}

    def on_signal(signum, frame):
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if len(argv) != 1:
            raise JobError("usage: python -m im2im_engine.worker JOB.json")
        spec_path = Path(argv[0])
        try:
            spec = json.loads(spec_path.read_text())
        except FileNotFoundError:
            raise JobError(f"{spec_path}: job file does not exist") from None
        except json.JSONDecodeError as exc:
            raise JobError(f"{spec_path}: invalid JSON ({exc})") from None
        job = Job(spec, spec_path.resolve().parent)
        dd.setup()
        return run_job(job, emit, stop)
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        emit("error", message=" ".join(message.split()))
        return EXIT_ERROR
    finally:
        dd.teardown()
        sys.stdout = real_stdout


if __name__ == "__main__":
    sys.exit(main())

"""The training loop: seeded patch batches, weighted loss, validation, best-model keeping, cancellation.

Why the loop owns the checkpoint file: cancellation and early stopping must leave the *last good* model on
disk. A checkpoint is written (atomically) whenever validation improves, and at the end or on cancel the best
state (or, without validation, the state after the last completed step) is written. ``should_stop`` is
polled before every step, so a cancel costs at most one step.

Under ``torchrun`` (see :mod:`im2im_engine.distributed`) the same loop runs on every rank: each rank draws
the same seeded global batch, runs its slice of it through DistributedDataParallel, and the loss is computed
on the gathered global batch, so N processes follow one process step for step (within float rounding;
except dropout masks, and batch norm on CPU, which see only a rank's slice). Validation images are
shared out among the ranks; only rank 0 writes the checkpoint. A stop request on any rank stops all of
them at the same step.

Why the loop keeps the GPU busy: patches are cut ahead in background threads into pinned memory
(:mod:`im2im_engine.pipeline`; on CUDA only by default) and copied asynchronously, and the loss stays on
the device until a host read is due (every ``sync_interval_s``, before validation, at the end): a
``loss.item()`` per step would make the host wait for the GPU every step, with nothing queued behind it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import distributed as dd
from .data import PatchSampler, Sample, as_channel_first, prepare, training_patch
from .losses import compute_loss
from .n2v import Masker
from .pipeline import BatchStream, default_workers

if TYPE_CHECKING:
    from .api import Engine


@dataclass
class TrainResult:
    """What a training run did. ``history``: one dict per step (``step``, ``loss``; ``metric`` when validated)."""

    steps: int
    history: list[dict[str, Any]] = field(default_factory=list)
    val_metrics: dict[str, float] = field(default_factory=dict)
    cancelled: bool = False
    best_step: int | None = None
    stopped_early: bool = False
    checkpoint: str | None = None


PRIMARY_METRIC = {"semantic": "dice", "instance": "ap50", "regression": "psnr", "denoise": "psnr"}


def _optimizer(engine: Engine) -> torch.optim.Optimizer:
    t = engine.config.training
    params = [p for p in engine.net.parameters() if p.requires_grad]
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=0.9, weight_decay=t.weight_decay, nesterov=True)
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)
    return torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)


def _lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    frac = (step - warmup) / max(1, total - warmup)
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(frac, 1.0)))


def split_validation(train: list[Sample], fraction: float, rng: np.random.Generator) -> tuple[list[Sample], list[Sample]]:
    """Hold out ``fraction`` of the training samples (at least one, never all) for validation."""
    if fraction <= 0 or len(train) < 2:
        return train, []
    n_val = min(len(train) - 1, max(1, round(len(train) * fraction)))
    order = rng.permutation(len(train))
    val_idx = set(order[:n_val].tolist())
    return [s for i, s in enumerate(train) if i not in val_idx], [s for i, s in enumerate(train) if i in val_idx]


def evaluate_sharded(engine: Engine, samples: list[Sample]) -> dict[str, float]:
    """``engine.evaluate`` with the images shared out among the ranks (the same means, N times faster).

    Every rank gets the same dict, so decisions taken on it (best model, early stopping) agree.
    """
    if not dd.info().active:
        return engine.evaluate(samples)
    rows = [(i, engine.evaluate([s])) for i, s in dd.shard(list(enumerate(samples)))]
    every = sorted((row for part in dd.gather(rows) for row in part), key=lambda r: r[0])
    if not every:
        return {}
    return {k: float(np.mean([r[k] for _, r in every])) for k in every[0][1]}


def _distributed_model(engine: Engine, batch_size: int) -> tuple[torch.nn.Module, slice, list[int]]:
    """The module to run forward through, this rank's slice of a global batch, and the split sizes."""
    info = dd.info()
    if not info.active:
        return engine.net, slice(0, batch_size), [batch_size]
    if batch_size < info.world:
        raise ValueError(f"training.batch_size ({batch_size}) must be at least the number of processes "
                         f"({info.world}): each process trains on its slice of the batch")
    from torch.nn.parallel import DistributedDataParallel

    dev = engine.device
    if dev.type == "cuda" and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in engine.net.modules()):
        engine.net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(engine.net)  # batch statistics of all ranks
    sizes = dd.split_sizes(batch_size, info.world)
    start = sum(sizes[: info.rank])
    ddp = DistributedDataParallel(engine.net, device_ids=[dev.index] if dev.type == "cuda" else None)
    return ddp, slice(start, start + sizes[info.rank]), sizes


def planned_steps(t, n_images: int) -> int:
    """``training.steps``, or the steps ``training.epochs`` amount to for ``n_images`` training images."""
    if t.epochs is None:
        return t.steps
    return max(1, math.ceil(t.epochs * n_images * t.patches_per_image / t.batch_size))


def _host(values: list[torch.Tensor]) -> list[float]:
    """The only place the loop reads training values back to the host: one transfer (one sync on CUDA)
    for all the losses gathered since the last read."""
    if len(values) == 1:
        return [float(values[0].item())]
    return [float(v) for v in torch.stack(values).tolist()]


def default_sync_interval(device: torch.device) -> float:
    """Seconds between host reads of the loss: 0 (every step) on CPU, where reading a value costs nothing;
    0.5 s on CUDA, where each read waits for the GPU to finish everything queued before it."""
    return 0.5 if device.type == "cuda" else 0.0


def train_loop(
    engine: Engine,
    train: list[Sample],
    val: list[Sample] | None = None,
    steps: int | None = None,
    progress: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    checkpoint_path: str | None = None,
    sync_interval_s: float | None = None,
) -> TrainResult:
    """Train ``engine.net`` in place; see the module docstring.

    Losses stay on the device between host reads, which happen every ``sync_interval_s`` seconds (default
    :func:`default_sync_interval`), before every validation and at the end; each read gives every step
    since the last one its history row and its ``progress`` event (in step order), so callers still get
    one event per step, in bursts on CUDA. A non-finite loss raises :class:`FloatingPointError` naming
    its step when it is read, before the update of the step being read; with an interval > 0 it may
    already have updated the weights (the failed run's weights are not for use; checkpoints are only
    written right after a read, so a saved model never saw a non-finite loss).
    """
    cfg = engine.config
    t = cfg.training
    info = dd.info()
    torch.manual_seed(t.seed + info.rank)  # dropout masks differ per rank; the batch stream (numpy) does not
    rng = np.random.default_rng(t.seed)
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    val = list(val or [])
    if not val and t.val_fraction > 0:
        train, val = split_validation(list(train), t.val_fraction, rng)
    total = int(steps) if steps is not None else planned_steps(t, len(train))
    patch = training_patch(cfg, [as_channel_first(s.image, cfg).shape[1:] for s in train])
    prepared = [prepare(s, cfg, rng, patch) for s in train]  # normalised once, cached for the whole run
    sampler = PatchSampler(prepared, cfg, rng, patch)
    masker = Masker(cfg, t.seed) if cfg.task.kind == "denoise" else None  # N2V blind spots (n2v.py)
    model, part, sizes = _distributed_model(engine, t.batch_size)
    net = engine.net
    dev = engine.device
    interval = default_sync_interval(dev) if sync_interval_s is None else float(sync_interval_s)
    opt = _optimizer(engine)
    use_amp = dev.type == "cuda" and t.amp
    amp_dtype = engine.amp_dtype if use_amp else None
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    channels_last = dev.type == "cuda" and t.channels_last
    mem_format = (torch.channels_last if cfg.data.spatial_dims == 2 else torch.channels_last_3d)
    primary = PRIMARY_METRIC[cfg.task.kind]

    result = TrainResult(steps=0, checkpoint=checkpoint_path)
    best_metric = -math.inf
    best_state: dict[str, torch.Tensor] | None = None
    bad_validations = 0
    t0 = time.perf_counter()
    last_read = t0
    pending: list[tuple[dict, torch.Tensor]] = []  # history rows whose loss is still on the device
    unreported: list[dict] = []  # rows read back whose progress event is not out yet

    def snapshot() -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in net.state_dict().items()}

    def read_back() -> None:
        """Read the pending losses (one host transfer) and check them."""
        nonlocal last_read
        if not pending:
            return
        values = _host([loss for _, loss in pending])
        rows = [row for row, _ in pending]
        pending.clear()
        last_read = time.perf_counter()
        for row, value in zip(rows, values, strict=True):
            if not math.isfinite(value):
                raise FloatingPointError(f"training loss became {value} at step {row['step']}; lower training.lr "
                                         "or check the inputs for NaN/inf values")
            row["loss"] = value
            unreported.append(row)

    def report() -> None:
        """One progress event per step read back, in step order."""
        if progress is not None and unreported:
            rate = unreported[-1]["step"] * t.batch_size / max(time.perf_counter() - t0, 1e-9)
            for row in unreported:
                progress({"step": row["step"], "total": total, "loss": row["loss"], "metric": row.get("metric"),
                          "throughput": rate, "eta_s": (total - row["step"]) * t.batch_size / max(rate, 1e-9)})
        unreported.clear()

    workers = default_workers(dev) if t.loader_workers is None else t.loader_workers
    # N2V masking draws from its own generator: applied in this thread, in stream order (pipeline.py)
    stream = BatchStream(sampler, t.batch_size, workers=workers, pin=dev.type == "cuda", transform=masker)
    try:
        for step in range(total):
            if dd.any_true(should_stop is not None and should_stop()):
                result.cancelled = True
                break
            net.train()
            x, y, w = stream.next()  # the global batch, identical on every rank
            xt = x[part].to(dev, non_blocking=True)
            yt = y.to(dev, non_blocking=True)
            wt = w.to(dev, non_blocking=True)
            if channels_last:
                xt = xt.contiguous(memory_format=mem_format)
            for g in opt.param_groups:
                g["lr"] = t.lr * _lr_factor(step, total, t.warmup_steps, t.schedule)
            opt.zero_grad(set_to_none=True)
            with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = model(xt)
            loss = compute_loss(cfg, dd.gather_batch(logits.float(), sizes), yt, wt)
            record: dict[str, Any] = {"step": step + 1, "loss": None}
            result.history.append(record)
            pending.append((record, loss.detach()))
            validate = bool(val) and ((step + 1) % t.val_every == 0 or step + 1 == total)
            due = validate or step + 1 == total or time.perf_counter() - last_read >= interval
            if due:
                read_back()  # before the update: a non-finite loss that is read never reaches the weights
            scaler.scale(loss).backward()
            if t.grad_clip > 0:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(net.parameters(), t.grad_clip)
            scaler.step(opt)
            scaler.update()
            result.steps = step + 1

            if validate:
                metrics = evaluate_sharded(engine, val)
                record["metric"] = metrics[primary]
                record["metrics"] = metrics
                if metrics[primary] > best_metric:
                    best_metric = metrics[primary]
                    best_state = snapshot()
                    result.best_step = step + 1
                    result.val_metrics = metrics
                    bad_validations = 0
                    if checkpoint_path and info.is_main:
                        engine.save(checkpoint_path, meta={"step": step + 1, "val_metrics": metrics})
                else:
                    bad_validations += 1
            if due:
                report()
            if t.early_stopping_patience and bad_validations >= t.early_stopping_patience:
                result.stopped_early = True
                break
        read_back()
        report()
    finally:
        stream.close()

    if best_state is not None:
        net.load_state_dict(best_state)  # keep the best validated model
    elif val and not result.cancelled and result.steps:
        result.val_metrics = evaluate_sharded(engine, val)
    if checkpoint_path and info.is_main:
        engine.save(checkpoint_path, meta={"step": result.best_step or result.steps, "val_metrics": result.val_metrics,
                                           "cancelled": result.cancelled})
    net.eval()
    return result

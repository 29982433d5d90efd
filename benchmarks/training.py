"""#1 Training throughput (patches/s): ``Engine.train`` against a plain PyTorch loop (CPU) and against the
same network's on-GPU limit (``--device cuda``).

The baseline is the loop anyone would write by hand with the *same* MONAI network (built by
``build_network`` under the same seed), the same loss (``compute_loss``), the same AdamW settings and
gradient clipping, fed by the same ``PatchSampler`` (so data preparation is on both sides). What the
ratio measures is therefore the engine loop's own overhead (LR schedule, finite-loss check, progress,
history); >= 1.0 means the engine costs nothing over a hand-written loop. The first step of every run is
excluded (allocator and oneDNN warm-up).

GPU rows (``--device cuda``, the issue's sizes: 2D 256² batch 16, 3D 64³ batch 4, AMP on): ours is
``Engine.train`` end to end (patches cut by the background threads, copied to the GPU, host reads only
when due), timed by difference of two runs (N and N + S steps, so preparing the images cancels). The
limit is the same network, loss, AdamW, clipping and autocast on *one batch already on the GPU*, no data
pipeline at all: ours / limit >= 0.8 is the goal. The note gives AMP's gain over float32 (ours with
``training.amp`` off), the patch stream's own rate with its default threads and with none, and the GPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from .common import Result, alternate, pair_ratios, spread
from .data import semantic_2d, volume

PRESETS = {2: "resources/configs/semantic_2d.yaml", 3: "resources/configs/semantic_3d.yaml"}


def _config(dims: int, patch: list[int], batch: int):
    from im2im_engine import load_config

    return load_config(PRESETS[dims], overrides={
        "data": {"patch_size": patch},
        "training": {"batch_size": batch, "val_fraction": 0.0, "steps": 10},
        "inference": {"roi_size": patch},
    })


def _samples(dims: int, patch: list[int]):
    from im2im_engine import Sample

    if dims == 2:
        size = max(256, 2 * patch[0])
        out = []
        for seed in range(2):
            img, lab = semantic_2d(size, seed)
            out.append(Sample(img[None], lab, None, f"s{seed}"))
        return out
    img, lab = volume((max(patch[0] * 2, 32), 2 * patch[1], 2 * patch[2]))
    return [Sample(img[None], lab, None, "v")]


def _ours(cfg, samples, steps: int) -> float:
    """Steady-state patches/s of ``Engine.train`` (clock from the end of step 1 to the end of the last)."""
    from im2im_engine import Engine

    eng = Engine.from_config(cfg, device="cpu")
    stamps: list[float] = []
    eng.train(samples, steps=steps + 1, progress=lambda _e: stamps.append(time.perf_counter()))
    return steps * cfg.training.batch_size / (stamps[-1] - stamps[0])


def _plain(cfg, samples, steps: int) -> float:
    """The hand-written loop: same net, loss, optimiser, clipping and sampler."""
    from im2im_engine.data import PatchSampler, prepare
    from im2im_engine.losses import compute_loss
    from im2im_engine.networks import build_network

    t = cfg.training
    torch.manual_seed(t.seed)
    net = build_network(cfg)
    rng = np.random.default_rng(t.seed)
    sampler = PatchSampler([prepare(s, cfg, rng) for s in samples], cfg, rng)
    opt = torch.optim.AdamW(net.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    net.train()
    stamps = []
    for _ in range(steps + 1):
        x, y, w = sampler.batch(t.batch_size)
        opt.zero_grad(set_to_none=True)
        loss = compute_loss(cfg, net(torch.from_numpy(x)), torch.from_numpy(y), torch.from_numpy(w))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), t.grad_clip)
        opt.step()
        stamps.append(time.perf_counter())
    return steps * t.batch_size / (stamps[-1] - stamps[0])


def _one(dims: int, patch: list[int], batch: int, steps: int, repeats: int, quick: bool) -> Result:
    cfg = _config(dims, patch, batch)
    samples = _samples(dims, patch)
    rates_ours: list[float] = []
    rates_base: list[float] = []
    # alternate() times calls; here each call measures its own steady-state rate, so collect those.
    alternate(lambda: rates_ours.append(_ours(cfg, samples, steps)),
              lambda: rates_base.append(_plain(cfg, samples, steps)), repeats, warmup=False)
    ratios = pair_ratios(rates_ours, rates_base)
    shape = "x".join(map(str, patch))
    med = spread(ratios).get("median", 0.0)
    return Result(
        id=f"1.{dims}d", what=f"training throughput {dims}D {shape}, batch {batch} (CPU)", unit="patches/s",
        ours=spread(rates_ours), baseline=spread(rates_base), ratio=spread(ratios),
        ratio_def="ours / plain loop (higher is better)", goal=">= 1.0x on CPU", met=med >= 1.0,
        note=("quick mode: smaller patches, fewer steps" if quick else "full sizes")
        + "; GPU rows: --device cuda",
        params={"patch": patch, "batch": batch, "steps_timed": steps, "repeats": repeats},
    )


def _gpu_rate_ours(cfg, samples, steps: int) -> Callable[[], float]:
    """Patches/s of ``Engine.train`` on CUDA, by difference of a short and a long run (fixed costs cancel)."""
    from im2im_engine import Engine

    eng = Engine.from_config(cfg, device="cuda")
    short = 3

    def once(n: int) -> float:
        t0 = time.perf_counter()
        eng.train(samples, steps=n)
        torch.cuda.synchronize()
        return time.perf_counter() - t0

    once(short)  # warm: cuDNN algorithm search, allocator, threads

    def measure() -> float:
        return steps * cfg.training.batch_size / max(once(short + steps) - once(short), 1e-9)

    return measure


def _gpu_rate_limit(cfg, samples, steps: int) -> Callable[[], float]:
    """Patches/s of the same network, loss, optimiser, clipping and autocast on one batch already on the GPU."""
    from im2im_engine.data import PatchSampler, prepare
    from im2im_engine.losses import compute_loss
    from im2im_engine.networks import build_network

    t = cfg.training
    dev = torch.device("cuda")
    torch.manual_seed(t.seed)
    net = build_network(cfg).to(dev)
    fmt = torch.channels_last if cfg.data.spatial_dims == 2 else torch.channels_last_3d
    if t.channels_last:
        net = net.to(memory_format=fmt)
    rng = np.random.default_rng(t.seed)
    x, y, w = (torch.from_numpy(a).to(dev) for a in
               PatchSampler([prepare(s, cfg, rng, cfg.data.patch_size) for s in samples], cfg, rng).batch(t.batch_size))
    if t.channels_last:
        x = x.contiguous(memory_format=fmt)
    opt = torch.optim.AdamW(net.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    amp = torch.bfloat16 if t.amp and torch.cuda.is_bf16_supported() else None
    net.train()

    def steps_of(n: int) -> None:
        for _ in range(n):
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=amp, enabled=amp is not None):
                logits = net(x)
            loss = compute_loss(cfg, logits.float(), y, w)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), t.grad_clip)
            opt.step()
        torch.cuda.synchronize()

    steps_of(3)

    def measure() -> float:
        t0 = time.perf_counter()
        steps_of(steps)
        return steps * t.batch_size / (time.perf_counter() - t0)

    return measure


def _stream_rate(cfg, samples, workers: int, batches: int) -> float:
    """Patches/s of the training input pipeline alone (cut into pinned memory, not copied)."""
    from im2im_engine.data import PatchSampler, prepare
    from im2im_engine.pipeline import BatchStream

    rng = np.random.default_rng(0)
    sampler = PatchSampler([prepare(s, cfg, rng, cfg.data.patch_size) for s in samples], cfg, rng)
    with BatchStream(sampler, cfg.training.batch_size, workers=workers, pin=True) as stream:
        stream.next()
        t0 = time.perf_counter()
        for _ in range(batches):
            stream.next()
        return batches * cfg.training.batch_size / (time.perf_counter() - t0)


def _gpu_one(dims: int, quick: bool) -> Result:
    from im2im_engine.pipeline import default_workers

    from . import gpu

    patch, batch = ([256, 256], 16) if dims == 2 else ([64, 64, 64], 4)
    steps, repeats = (20, 3) if quick else (60, 5)
    cfg = _config(dims, patch, batch)
    samples = _samples(dims, patch)
    ours_fn, limit_fn = _gpu_rate_ours(cfg, samples, steps), _gpu_rate_limit(cfg, samples, steps)
    ours: list[float] = []
    limit: list[float] = []
    alternate(lambda: ours.append(ours_fn()), lambda: limit.append(limit_fn()), repeats, warmup=False)
    fp32_cfg = cfg.model_copy(deep=True)
    fp32_cfg.training.amp = False
    fp32_fn = _gpu_rate_ours(fp32_cfg, samples, steps)
    fp32 = [fp32_fn() for _ in range(repeats)]
    amp_gain = spread(ours)["median"] / spread(fp32)["median"]
    workers = default_workers(torch.device("cuda"))
    stream = _stream_rate(cfg, samples, workers, 20)
    stream0 = _stream_rate(cfg, samples, 0, 10)
    ratios = pair_ratios(ours, limit)
    med = spread(ratios)["median"]
    from im2im_engine import Engine

    eng = Engine.from_config(cfg, device="cuda")
    profile = gpu.profile_top(lambda: eng.train(samples, steps=5))
    shape = "x".join(map(str, patch))
    return Result(
        id=f"1.{dims}d.gpu", what=f"training throughput {dims}D {shape}, batch {batch}, AMP (GPU)", unit="patches/s",
        ours=spread(ours), baseline=spread(limit), ratio=spread(ratios),
        ratio_def="ours / same network on a batch already on the GPU (higher is better)",
        goal=">= 0.8 of the on-GPU limit; AMP >= 1.5x fp32 where compute-bound", met=bool(med >= 0.8),
        note=(f"{gpu.name()}; AMP (bf16) / fp32 = {amp_gain:.2f}x (ours, fp32 {spread(fp32)['median']:.0f} patches/s); "
              f"patch stream alone {stream:.0f} patches/s with {workers} threads, {stream0:.0f} with none"
              + ("; quick mode: fewer steps" if quick else "")),
        params={"patch": patch, "batch": batch, "steps_timed": steps, "repeats": repeats, "gpu": gpu.name(),
                "fp32": spread(fp32), "amp_gain": amp_gain, "stream_rate": stream, "stream_rate_no_threads": stream0,
                "workers": workers, "profile": profile},
    )


def run(quick: bool, device: str = "cpu") -> list[Result]:
    if device == "cuda":
        from . import gpu

        ok, why = gpu.available()
        if not ok:
            return [gpu.skipped(f"1.{d}d.gpu", f"training throughput {d}D (GPU)", why) for d in (2, 3)]
        return [_gpu_one(2, quick), _gpu_one(3, quick)]
    if quick:  # smaller patches: the full sizes take minutes per repeat on 2 shared cores
        return [_one(2, [128, 128], 8, 2, 3, quick), _one(3, [32, 32, 32], 2, 2, 3, quick)]
    return [_one(2, [256, 256], 8, 8, 5, quick), _one(3, [64, 64, 64], 2, 6, 5, quick)]

"""#1 Training throughput (patches/s): ``Engine.train`` against a plain PyTorch loop.

The baseline is the loop anyone would write by hand with the *same* MONAI network (built by
``build_network`` under the same seed), the same loss (``compute_loss``), the same AdamW settings and
gradient clipping, fed by the same ``PatchSampler`` (so data preparation is on both sides). What the
ratio measures is therefore the engine loop's own overhead (LR schedule, finite-loss check, progress,
history); >= 1.0 means the engine costs nothing over a hand-written loop. The first step of every run is
excluded (allocator and oneDNN warm-up).
"""

from __future__ import annotations

import time

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
        note=("quick mode: smaller patches, fewer steps" if quick else "full sizes") + "; GPU rows (AMP + channels_last >= 2x) not run: no GPU",
        params={"patch": patch, "batch": batch, "steps_timed": steps, "repeats": repeats},
    )


def run(quick: bool) -> list[Result]:
    if quick:  # smaller patches: the full sizes take minutes per repeat on 2 shared cores
        return [_one(2, [128, 128], 8, 2, 3, quick), _one(3, [32, 32, 32], 2, 2, 3, quick)]
    return [_one(2, [256, 256], 8, 8, 5, quick), _one(3, [64, 64, 64], 2, 6, 5, quick)]

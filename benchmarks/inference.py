"""#2 Sliding-window inference (Mpx/s): the engine's predictor against ``monai.inferers.sliding_window_inference``.

Both sides run the same network on the same normalised image with the same ROI, overlap, blending mode,
sigma and window batch; the baseline's window function is ``softmax(net(window))``. The engine's pass
also gathers the embedding (mean backbone features) on the side. Outputs must agree within 1e-5.

GPU rows (``--device cuda``, the issue's sizes: 2D 4096² ``semantic_2d``, 3D 64x256x256 ``semantic_3d``): the
image is normalised on the host and handed over as numpy (ours) / moved to the GPU inside the timed call
(MONAI), both leave the stitched output on the GPU, each call ends in a synchronisation. References in the
same process: MONAI float32 with the preset's window batch (the goal: ours >= 1.3x), and MONAI under bf16
autocast with a window batch of 32 (the issue's fastest MONAI). Ours uses the engine's defaults on CUDA
(bf16 backbone, ~2 M voxels per window batch, stitching on the device); its difference to MONAI float32
is reported, and the float32 engine's too (within 1e-3).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from .common import Result, alternate, pair_ratios, spread
from .data import semantic_2d, volume

PRESETS = {2: "resources/configs/semantic_2d.yaml", 3: "resources/configs/semantic_3d.yaml"}


def engine(dims: int):
    from im2im_engine import Engine, load_config

    return Engine.from_config(load_config(PRESETS[dims]), device="cpu")


def image(dims: int, shape: tuple[int, ...]) -> np.ndarray:
    """A normalised float32 (1, *shape) image."""
    from im2im_engine.data import normalize

    raw = semantic_2d(shape[0])[0] if dims == 2 else volume(shape)[0]  # type: ignore[arg-type]
    from im2im_engine import load_config

    return normalize(raw[None], load_config(PRESETS[dims]).data)


def monai_predict(eng, x: np.ndarray) -> torch.Tensor:
    """The baseline: MONAI's function with the engine's inference settings."""
    from monai.inferers import sliding_window_inference

    inf = eng.config.inference
    with torch.no_grad():
        out = sliding_window_inference(
            torch.from_numpy(x)[None], list(inf.roi_size), inf.sw_batch_size,
            lambda w: torch.softmax(eng.net(w), 1), overlap=inf.overlap, mode=inf.mode,
            sigma_scale=inf.sigma_scale, padding_mode="constant", cval=0.0)
    return out[0]


def _one(dims: int, shape: tuple[int, ...], repeats: int, quick: bool) -> Result:
    torch.manual_seed(0)
    eng = engine(dims)
    x = image(dims, shape)
    ours_out = eng._predictor().run(x, "plain").output
    base_out = monai_predict(eng, x)
    diff = float((ours_out - base_out).abs().max())
    t_ours, t_base = alternate(lambda: eng._predictor().run(x, "plain"), lambda: monai_predict(eng, x), repeats,
                               warmup=False)
    mpx = float(np.prod(shape)) / 1e6
    ours = [mpx / t for t in t_ours]
    base = [mpx / t for t in t_base]
    ratios = pair_ratios(ours, base)
    c_ours, c_base = alternate(lambda: eng._predictor().run(x, "plain"), lambda: monai_predict(eng, x), repeats,
                               warmup=False, clock=time.process_time)
    cpu_ratio = spread(pair_ratios(c_base, c_ours))["median"]
    med = spread(ratios)["median"]
    size = "x".join(map(str, shape))
    return Result(
        id=f"2.{dims}d", what=f"sliding-window inference {dims}D {size}, ROI {list(eng.config.inference.roi_size)}"
        f", overlap {eng.config.inference.overlap}", unit="Mpx/s",
        ours=spread(ours), baseline=spread(base), ratio=spread(ratios),
        ratio_def="ours / MONAI (higher is better)", goal=">= 1.0x on CPU, max |diff| <= 1e-5",
        met=bool(med >= 1.0 and diff <= 1e-5),
        note=(f"max |ours - MONAI| = {diff:.1e}; CPU-time ratio (MONAI CPU s / ours) {cpu_ratio:.2f}" + ("; quick mode: smaller image" if quick else "")
              + "; GPU rows: --device cuda"),
        params={"shape": list(shape), "repeats": repeats, "max_abs_diff": diff, "cpu_time_ratio": cpu_ratio},
    )


def monai_gpu(eng, x: np.ndarray, batch: int, amp: bool) -> torch.Tensor:
    """MONAI on the GPU: the image moved there, windows and stitching there, float32 or bf16 autocast."""
    from monai.inferers import sliding_window_inference

    inf = eng.config.inference
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
        out = sliding_window_inference(
            torch.from_numpy(x)[None].cuda(), list(inf.roi_size), batch,
            lambda w: torch.softmax(eng.net(w).float(), 1), overlap=inf.overlap, mode=inf.mode,
            sigma_scale=inf.sigma_scale, padding_mode="constant", cval=0.0)
    return out[0]


def _gpu_one(dims: int, shape: tuple[int, ...], repeats: int, quick: bool) -> Result:
    from im2im_engine import Engine, load_config

    from . import gpu

    torch.manual_seed(0)
    eng = Engine.from_config(load_config(PRESETS[dims]), device="cuda")
    fp32 = Engine(eng.config, eng.net, eng.device)
    fp32.amp_dtype = None
    x = image(dims, shape)
    inf = eng.config.inference
    ours = gpu.synced(lambda: eng._predictor().run(x, "plain"))
    base = gpu.synced(lambda: monai_gpu(eng, x, inf.sw_batch_size, False))
    fast = gpu.synced(lambda: monai_gpu(eng, x, 32, True))
    ref = base()
    diff = float((ours().output - ref).abs().max())
    diff32 = float((fp32._predictor().run(x, "plain").output - ref).abs().max())
    t_ours, t_base = alternate(ours, base, repeats)
    t_fast, _ = alternate(fast, base, max(2, repeats // 2))
    mpx = float(np.prod(shape)) / 1e6
    r_ours, r_base, r_fast = ([mpx / t for t in ts] for ts in (t_ours, t_base, t_fast))
    ratios = pair_ratios(r_ours, r_base)
    med = spread(ratios)["median"]
    pred = eng._predictor()
    pred.run(x, "plain")
    plan = pred.attempts[-1]
    profile = gpu.profile_top(ours)
    size = "x".join(map(str, shape))
    return Result(
        id=f"2.{dims}d.gpu", what=f"sliding-window inference {dims}D {size}, ROI {list(inf.roi_size)}, overlap {inf.overlap} (GPU)",
        unit="Mpx/s", ours=spread(r_ours), baseline=spread(r_base), ratio=spread(ratios),
        ratio_def="ours / MONAI float32 (higher is better)", goal=">= 1.3x MONAI fp32", met=bool(med >= 1.3),
        note=(f"{gpu.name()}; ours {spread(t_ours)['median']:.3f} s, MONAI fp32 (window batch {inf.sw_batch_size}) "
              f"{spread(t_base)['median']:.3f} s, MONAI bf16 (window batch 32) {spread(t_fast)['median']:.3f} s; "
              f"stitched on {plan[0]}, window batch {plan[1]}; max |ours - MONAI fp32| = {diff:.1e} (bf16), "
              f"float32 engine {diff32:.1e}" + ("; quick mode: fewer repeats" if quick else "")),
        params={"shape": list(shape), "repeats": repeats, "gpu": gpu.name(), "max_abs_diff": diff,
                "max_abs_diff_fp32": diff32, "monai_bf16_bs32": spread(r_fast), "plan": list(plan), "profile": profile},
    )


def run(quick: bool, device: str = "cpu") -> list[Result]:
    if device == "cuda":
        from . import gpu

        ok, why = gpu.available()
        if not ok:
            return [gpu.skipped(f"2.{d}d.gpu", f"sliding-window inference {d}D (GPU)", why) for d in (2, 3)]
        return [_gpu_one(2, (4096, 4096), 3 if quick else 7, quick), _gpu_one(3, (64, 256, 256), 3 if quick else 7, quick)]
    if quick:
        return [_one(2, (512, 512), 3, True), _one(3, (16, 256, 256), 3, True)]
    return [_one(2, (2048, 2048), 5, False), _one(3, (64, 512, 512), 3, False)]

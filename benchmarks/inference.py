"""#2 Sliding-window inference (Mpx/s): the engine's predictor against ``monai.inferers.sliding_window_inference``.

Both sides run the same network on the same normalised image with the same ROI, overlap, blending mode,
sigma and window batch; the baseline's window function is ``softmax(net(window))``. The engine's pass
also gathers the embedding (mean backbone features) on the side. Outputs must agree within 1e-5.
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
              + "; GPU row (>= 1.3x) not run: no GPU"),
        params={"shape": list(shape), "repeats": repeats, "max_abs_diff": diff, "cpu_time_ratio": cpu_ratio},
    )


def run(quick: bool) -> list[Result]:
    if quick:
        return [_one(2, (512, 512), 3, True), _one(3, (16, 256, 256), 3, True)]
    return [_one(2, (2048, 2048), 5, False), _one(3, (64, 512, 512), 3, False)]

"""#3 Uncertainty scoring cost (T = 8) against plain inference, and agreement with naive MC dropout.

Cost: ``Engine.uncertainty(image, "bald")`` (prediction + BALD/entropy/margin/variance maps) against
``Engine.predict(image)`` on the same image, alternating. Naive MC dropout (T full forward passes) would
be about T x plain.

Agreement: the network's only dropout is in its head (backbone -> dropout -> 1x1 conv), so "full MC
dropout" here is the textbook procedure on that network: per window, T complete forward passes of the
whole network with dropout active and fresh per-pixel masks, probabilities averaged; BALD = H(mean) -
mean(H). The engine instead integrates the head analytically (see ``im2im_engine.inference``). The
Spearman correlation of the image scores of both over a set of images is the check; the correlation of
two independent naive runs is reported beside it as the ceiling that sampling noise allows.

Per pixel: :func:`im2im_engine.inference.check_against_sampling` compares the head's statistics with
textbook MC dropout of the head (3000 masks per pixel) on a 128² crop, for the trained head and its weights
x3, with the engine's estimator and with the Gaussian approximation alone; the largest differences are in
the row's note (what the README quotes).

GPU row (``--device cuda``): the same BALD / plain ratio on a 4096² image on the GPU (goal <= 1.5x).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from .common import Result, alternate, pair_ratios, spread
from .data import nuclei_2d


def trained_engine(steps: int):
    """A 2D semantic model trained briefly on demo nuclei, so uncertainties carry a signal."""
    from im2im_engine import Engine, Sample, load_config

    cfg = load_config("resources/configs/semantic_2d.yaml", overrides={
        "training": {"steps": steps, "batch_size": 4, "val_fraction": 0.0, "lr": 0.005},
        "data": {"patch_size": [128, 128]}})
    eng = Engine.from_config(cfg, device="cpu")
    samples = []
    for seed in range(100, 104):
        img, truth = nuclei_2d(256, seed)
        samples.append(Sample(img[None], (truth > 0).astype(np.int32), None, str(seed)))
    eng.train(samples)
    return eng


def score_images(n: int, size: int) -> list[np.ndarray]:
    """Demo images with increasing noise, so the set spans easy to hard."""
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        img, _ = nuclei_2d(size, i)
        noisy = img.astype(np.float32) + rng.normal(0, 40.0 * i, img.shape).astype(np.float32)
        out.append(noisy[None])
    return out


def naive_bald(eng, image: np.ndarray, passes: int, seed: int) -> float:
    """Image BALD score from T full forward passes with (per-pixel) dropout active."""
    from monai.inferers import SlidingWindowInferer

    torch.manual_seed(seed)
    net = eng.net
    x = torch.from_numpy(eng._prepare(image))[None]
    inf = eng.config.inference

    def window(w: torch.Tensor):
        s = torch.zeros(w.shape[0], net.out.out_channels, *w.shape[2:])
        ent = torch.zeros(w.shape[0], 1, *w.shape[2:])
        for _ in range(passes):
            f = net.features(w)
            q = torch.softmax(net.out(F.dropout(f, net.dropout, training=True)), 1)
            s += q
            ent += -(q * torch.log(q.clamp_min(1e-8))).sum(1, keepdim=True)
        return s / passes, ent / passes

    inferer = SlidingWindowInferer(roi_size=list(inf.roi_size), sw_batch_size=inf.sw_batch_size,
                                   overlap=inf.overlap, mode=inf.mode, sigma_scale=inf.sigma_scale)
    net.eval()
    with torch.no_grad():
        mean, ent = inferer(x, window)
    h = -(mean[0] * torch.log(mean[0].clamp_min(1e-8))).sum(0)
    bald = (h - ent[0, 0]).clamp_min(0) / math.log(mean.shape[1])
    return float(bald.mean())


def _spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def pixel_check(eng, image: np.ndarray, crop: int, reference: int) -> dict[str, dict[str, float]]:
    """Largest per-pixel differences to MC dropout with ``reference`` masks (see the module docstring)."""
    import copy

    from im2im_engine.inference import check_against_sampling

    x = torch.from_numpy(eng._prepare(image))[None]
    y0, x0 = (x.shape[-2] - crop) // 2, (x.shape[-1] - crop) // 2
    with torch.no_grad():
        f = eng.net.features(x[..., y0:y0 + crop, x0:x0 + crop].to(eng.device)).float()
    uc = eng.config.uncertainty
    out = {}
    for scale in (1.0, 3.0):
        net = copy.deepcopy(eng.net)
        with torch.no_grad():
            net.out.weight.mul_(scale)
            net.out.bias.mul_(scale)
        for name, sigmas in (("engine", None), ("gaussian_only", 0.0)):
            kw = {} if sigmas is None else {"margin_sigmas": sigmas}
            err = check_against_sampling(net, f, uc.passes, uc.samples, reference,
                                         generator=torch.Generator(device=f.device).manual_seed(0), **kw)
            out[f"x{scale:g}_{name}"] = err
    return out


def _gpu_row(quick: bool) -> Result:
    from im2im_engine import Engine

    from . import gpu
    from .inference import image as make_image

    trained = trained_engine(20 if quick else 120)  # on the CPU, then moved: the same model as the CPU row
    eng = Engine(trained.config, trained.net, torch.device("cuda"))
    x = make_image(2, (4096, 4096))
    repeats = 3 if quick else 7
    unc = gpu.synced(lambda: eng.uncertainty(x, "bald"))
    plain = gpu.synced(lambda: eng.predict(x))
    t_unc, t_plain = alternate(unc, plain, repeats)
    ratios = pair_ratios(t_unc, t_plain)
    med = spread(ratios)["median"]
    profile = gpu.profile_top(unc)
    return Result(
        id="3.gpu", what=f"uncertainty scoring (BALD, T={eng.config.uncertainty.passes}) 4096x4096 vs plain inference (GPU)",
        unit="s", ours=spread(t_unc), baseline=spread(t_plain), ratio=spread(ratios),
        ratio_def="uncertainty time / plain time (lower is better)", goal="<= 1.5x plain", met=bool(med <= 1.5),
        note=f"{gpu.name()}; both include the host side (maps, labels, numpy)" + ("; quick mode" if quick else ""),
        params={"gpu": gpu.name(), "repeats": repeats, "profile": profile},
    )


def run(quick: bool, device: str = "cpu") -> list[Result]:
    from .inference import image as make_image

    if device == "cuda":
        from . import gpu

        ok, why = gpu.available()
        return [_gpu_row(quick) if ok else gpu.skipped("3.gpu", "uncertainty scoring vs plain (GPU)", why)]

    eng = trained_engine(20 if quick else 120)
    passes = eng.config.uncertainty.passes
    size, repeats = (512, 3) if quick else (2048, 5)
    x = make_image(2, (size, size))
    raw = x  # already normalised; normalising again is cheap and the same on both sides
    t_unc, t_plain = alternate(lambda: eng.uncertainty(raw, "bald"), lambda: eng.predict(raw), repeats)
    ratios = pair_ratios(t_unc, t_plain)
    c_unc, c_plain = alternate(lambda: eng.uncertainty(raw, "bald"), lambda: eng.predict(raw), repeats,
                               warmup=False, clock=time.process_time)
    cpu_ratio = spread(pair_ratios(c_unc, c_plain))["median"]

    # naive MC dropout cost on the same image, once (it is the slow thing the engine avoids)
    t0 = time.perf_counter()
    naive_bald(eng, raw, passes, 0)
    naive_ratio = (time.perf_counter() - t0) / spread(t_plain)["median"]

    images = score_images(10 if quick else 16, 256)
    ours = [eng.uncertainty(im, "bald").score for im in images]
    ref = [naive_bald(eng, im, passes, 1) for im in images]
    ref2 = ref if quick else [naive_bald(eng, im, passes, 2) for im in images]  # noise ceiling: full mode only
    rho, ceiling = _spearman(ours, ref), _spearman(ref2, ref)
    med = spread(ratios)["median"]
    check = pixel_check(eng, images[len(images) // 2], 64 if quick else 128, 3000)
    worst = {k: max(v[k] for name, v in check.items() if name.endswith("_engine")) for k in ("mean", "bald", "variance")}
    gauss = {k: max(v[k] for name, v in check.items() if name.endswith("gaussian_only")) for k in ("mean", "bald", "variance")}
    return [
        Result(
            id="3", what=f"uncertainty scoring (BALD, T={passes}) {size}x{size} vs plain inference", unit="s",
            ours=spread(t_unc), baseline=spread(t_plain), ratio=spread(ratios),
            ratio_def="uncertainty time / plain time (lower is better)",
            goal="<= 1.5x plain; Spearman >= 0.8 vs full MC dropout", met=bool(med <= 1.5 and rho >= 0.8),
            note=(f"CPU-time ratio {cpu_ratio:.2f}; naive MC dropout (T full passes) costs {naive_ratio:.1f}x plain; image-score Spearman vs "
                  f"naive MC dropout = {rho:.3f} over {len(images)} images"
                  + ("" if quick else f" (naive vs naive, other seed: {ceiling:.3f})")
                  + "; per pixel vs 3000-mask MC dropout (head x1 and x3), largest |diff| of mean probability / BALD / "
                  f"variance: {worst['mean']:.3f} / {worst['bald']:.3f} / {worst['variance']:.3f} (Gaussian approximation "
                  f"alone: {gauss['mean']:.3f} / {gauss['bald']:.3f} / {gauss['variance']:.3f})"
                  + ("; quick mode: smaller image, shorter training, 64² crop" if quick else "")),
            params={"passes": passes, "size": size, "spearman": rho, "spearman_naive_vs_naive": ceiling,
                    "naive_cost_ratio": naive_ratio, "cpu_time_ratio": cpu_ratio, "scores_ours": ours, "scores_naive": ref,
                    "pixel_check": check},
        )
    ]

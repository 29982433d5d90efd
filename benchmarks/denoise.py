"""#10 Noise2Void: PSNR and time of our N2V / N2V2 against CAREamics' N2V, same image, same training budget.

``python -m benchmarks.denoise [--quick] [--threads N] [--seeds N] [--images demo,cell] [--careamics-n2v2]
[--steps N] [--batch N] [--masked-percent P] [--careamics-masked-percent P] [--no-ceiling] [--json FILE]``;
not part of ``python -m benchmarks``, whose #10 is the queue-diversity benchmark.

Per test image (the demo nuclei rendered without noise, skimage's ``cell``; Poisson–Gaussian noise added,
see :mod:`benchmarks.denoise_data`): PSNR against the clean truth of the noisy input (the floor), of the
Gaussian filter whose sigma is tuned *on the truth* (a baseline that cheats), of ours (the N2V preset, and
N2V2: the preset with ``strategy: median``, ``blur_pool``, no top skip), of CAREamics' N2V, each trained for
the same number of optimiser steps of the same batch of 64² patches on ``--threads`` torch threads (default
2), alternating which side runs first, and the ceiling: the same network and budget trained with the clean
image as its target (supervised, what no N2V user has; ``--no-ceiling`` skips it). ``--seeds N`` trains
every side N times (our seeds 0.., CAREamics' 1..) and reports medians: after 60 steps PSNR varies by a dB or
more with the seed. ``--careamics-n2v2`` also trains CAREamics' N2V2 and makes it the baseline of our N2V2
rows. CAREamics pins its own torch, so it runs in its own venv (``$IM2IM_CAREAMICS_VENV``, default
``.venvs/careamics``; ``--install-careamics`` creates it with ``pip install torch==2.13.0`` then
``careamics``, which may pull another torch: that venv is never ours) through
:mod:`benchmarks.careamics_n2v`; without it its rows say so. Times are training seconds, wall and CPU (CPU
seconds are the steadier figure on a shared machine); prediction is timed apart. Figures:
``benchmarks/README.md`` (#10).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import Result, spread, table
from .denoise_data import add_poisson_gaussian, best_gaussian, cell_clean, demo_clean

ROOT = Path(__file__).resolve().parent.parent
THREADS = 2
#: (name, clean image, peak photons, read noise): noisy PSNR about 19-20 dB.
IMAGES = (("demo", lambda: demo_clean(0, 256), 30.0, 2.0), ("cell", cell_clean, 30.0, 2.0))


def careamics_python(install: bool = False) -> Path | None:
    """The benchmark venv's python with CAREamics importable, or None.

    ``install``: create the venv when missing (``torch==2.13.0`` first, so pip takes the local CPU wheel
    when CAREamics accepts it, then ``careamics``; several GB when it pulls its own torch).
    """
    venv = Path(os.environ.get("IM2IM_CAREAMICS_VENV", ROOT / ".venvs" / "careamics"))
    py = venv / "bin" / "python"
    if not py.exists() and install:
        try:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            pip = [str(py), "-m", "pip", "install", "-q"]
            subprocess.run([*pip, "torch==2.13.0"], check=True)
            subprocess.run([*pip, "careamics"], check=True)
        except (subprocess.CalledProcessError, OSError):
            return None
    if not py.exists():
        return None
    ok = subprocess.run([str(py), "-c", "import careamics"], capture_output=True).returncode == 0
    return py if ok else None


def ours(noisy: np.ndarray, n2v2: bool, steps: int, batch: int, patch: int, threads: int = THREADS,
         seed: int = 0, masked_percent: float | None = None) -> tuple[np.ndarray, dict]:
    """Train our preset on ``noisy`` for ``steps`` x ``batch`` patches; denoised image in raw units + times.

    The image is the preset's prediction (its ``inference.tta``); ``info["one_pass"]`` is the prediction
    with one network pass per window, to tell what the output averaging adds. ``masked_percent``: instead
    of the preset's ``task.n2v.masked_percent``.
    """
    import torch

    from im2im_engine import Engine, Sample, load_config
    from im2im_engine.config import preset_dir
    from im2im_engine.n2v import to_raw_units

    torch.set_num_threads(threads)
    raw = __import__("yaml").safe_load((preset_dir() / "denoise_n2v_2d.yaml").read_text())
    raw.pop("loop", None)
    over: dict = {"training": {"steps": steps, "batch_size": batch, "amp": False, "seed": seed},
                  "data": {"patch_size": [patch, patch]}, "task": {"n2v": {}}}
    if masked_percent is not None:
        over["task"]["n2v"]["masked_percent"] = masked_percent
    if n2v2:
        over["task"]["n2v"]["strategy"] = "median"
        over["model"] = {"blur_pool": True, "top_skip": False}
    cfg = load_config(raw, over)
    eng = Engine.from_config(cfg, device="cpu")
    t0, c0 = time.perf_counter(), time.process_time()
    eng.train([Sample(noisy, None, None, "noisy")])
    train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    out = to_raw_units(eng.predict(noisy[None]).output, noisy[None], cfg)[0]
    predict_s = time.perf_counter() - t0
    one_pass = to_raw_units(eng.predict(noisy[None], tta=False).output, noisy[None], cfg)[0]
    return out, {"train_s": train_s, "train_cpu_s": train_cpu, "predict_s": predict_s, "one_pass": one_pass,
                 "masked_percent": cfg.task.n2v.masked_percent, "tta": cfg.inference.tta}


def supervised(noisy: np.ndarray, truth: np.ndarray, steps: int, batch: int, patch: int,
               threads: int = THREADS, seed: int = 0) -> tuple[np.ndarray, dict]:
    """The ceiling: the same preset, network and budget trained *with* the clean image as its target.

    What no N2V user has (CARE's supervised restoration, ``task.kind: regression``, MSE on every pixel),
    so it bounds what a blind-spot model of this size can reach in this many steps. The target is mapped
    into the noisy image's normalised units (the same affine map ``to_raw_units`` inverts), so the output
    goes back to raw units exactly like ours.
    """
    import torch

    from im2im_engine import Engine, Sample, load_config
    from im2im_engine.config import preset_dir
    from im2im_engine.data import normalize
    from im2im_engine.n2v import to_raw_units

    torch.set_num_threads(threads)
    raw = __import__("yaml").safe_load((preset_dir() / "denoise_n2v_2d.yaml").read_text())
    raw.pop("loop", None)
    raw["task"] = {"kind": "regression", "loss": "mse", "out_channels": 1, "normalize_target": False}
    raw["uncertainty"] = {"method": "variance", "passes": 4, "reduction": "mean"}
    cfg = load_config(raw, {"training": {"steps": steps, "batch_size": batch, "amp": False, "seed": seed},
                            "data": {"patch_size": [patch, patch]}})
    norm = normalize(noisy[None].astype(np.float32), cfg.data)[0].astype(np.float64)
    a = float(((norm - norm.mean()) * (noisy - noisy.mean())).mean() / norm.var())
    target = ((truth - (noisy.mean() - a * norm.mean())) / a).astype(np.float32)
    eng = Engine.from_config(cfg, device="cpu")
    c0 = time.process_time()
    eng.train([Sample(noisy, target, None, "noisy")])
    train_cpu = time.process_time() - c0
    out = to_raw_units(eng.predict(noisy[None]).output, noisy[None], cfg)[0]
    return out, {"train_cpu_s": train_cpu}


def careamics(py: Path, noisy: np.ndarray, steps: int, batch: int, patch: int, n2v2: bool = False,
              threads: int = THREADS, seed: int = 1, masked_percent: float | None = None) -> tuple[np.ndarray, dict]:
    """CAREamics' N2V (or N2V2) on ``noisy`` in its own venv; ``masked_percent`` None: CAREamics' default."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "noisy.npy", Path(tmp) / "out.npy"
        np.save(src, noisy)
        cmd = [str(py), str(Path(__file__).with_name("careamics_n2v.py")), str(src), str(dst), str(steps),
               str(batch), str(patch), "--threads", str(threads), "--seed", str(seed)] + (["--n2v2"] if n2v2 else [])
        if masked_percent is not None:
            cmd += ["--masked-percent", str(masked_percent)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
        if proc.returncode != 0:
            raise RuntimeError(f"CAREamics failed: {proc.stderr.strip().splitlines()[-1:]}")
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        return np.load(dst), info


def run(quick: bool = False, install: bool = False, threads: int = THREADS, images: tuple[str, ...] = (),
        seeds: int = 1, careamics_n2v2: bool = False, steps: int | None = None, batch: int | None = None,
        masked_percent: float | None = None, careamics_masked_percent: float | None = None,
        with_ceiling: bool = True) -> list[Result]:
    """One row per image and N2V variant; with ``seeds`` > 1 every side trains that many times (seeds 0.. for
    ours, 1.. for CAREamics) and the figures are medians (PSNR after 60 steps varies by about 1 dB by seed).
    ``careamics_n2v2``: also train CAREamics' N2V2, the baseline of our N2V2 rows (else CAREamics' N2V).
    ``steps`` / ``batch`` replace the budget's; ``masked_percent`` replaces our preset's masked share,
    ``careamics_masked_percent`` CAREamics' default (0.2 %), so one method choice can be compared alone.
    ``with_ceiling``: also train the same network on the clean truth (:func:`supervised`, seed 0 once per
    image), the ceiling next to the noisy floor."""
    from im2im_engine.metrics import psnr

    steps_, batch_, patch = (60, 8, 64) if quick else (300, 16, 64)
    steps, batch = steps or steps_, batch or batch_
    py = careamics_python(install)
    results: list[Result] = []
    for k, (name, make, peak, read) in enumerate(IMAGES):
        if images and name not in images:
            continue
        noisy, truth = add_poisson_gaussian(make(), peak, read, seed=1)
        rng = float(truth.max() - truth.min())
        noisy_psnr = psnr(noisy, truth, rng)
        gauss_psnr, sigma = best_gaussian(noisy, truth)
        ceiling = None
        if with_ceiling:
            out, info = supervised(noisy, truth, steps, batch, patch, threads)
            ceiling = psnr(out, truth, rng)
            print(f"  {name} supervised on the truth (ceiling): PSNR {ceiling:.2f} dB, "
                  f"train {info['train_cpu_s']:.0f} CPU s", flush=True)
        runs: dict[str, list[tuple[float, dict]]] = {}
        for s in range(seeds):
            order = ["careamics", "n2v", "n2v2", "careamics_n2v2"]
            if (k + s) % 2:
                order.reverse()
            for who in order:
                if who.startswith("careamics"):
                    if py is None or (who == "careamics_n2v2" and not careamics_n2v2):
                        continue
                    out, info = careamics(py, noisy, steps, batch, patch, n2v2=who == "careamics_n2v2",
                                          threads=threads, seed=s + 1, masked_percent=careamics_masked_percent)
                    info["masked_percent"] = careamics_masked_percent or 0.2
                else:
                    out, info = ours(noisy, who == "n2v2", steps, batch, patch, threads, seed=s,
                                     masked_percent=masked_percent)
                    info["one_pass_psnr"] = psnr(info.pop("one_pass"), truth, rng)
                value = psnr(out, truth, rng)
                runs.setdefault(who, []).append((value, info))
                extra = f" (one pass {info['one_pass_psnr']:.2f})" if "one_pass_psnr" in info else ""
                print(f"  {name} {who} seed {s}: PSNR {value:.2f} dB{extra}, train {info['train_s']:.0f} s "
                      f"({info['train_cpu_s']:.0f} CPU s)", flush=True)
        results += [_row(name, who, noisy.shape, runs, noisy_psnr, gauss_psnr, sigma, ceiling,
                         {"steps": steps, "batch": batch, "patch": patch, "threads": threads, "seeds": seeds,
                          "peak_photons": peak, "read_noise": read})
                    for who in ("n2v", "n2v2")]
    return results


def _row(name: str, who: str, shape: tuple[int, ...], runs: dict[str, list[tuple[float, dict]]],
         noisy_psnr: float, gauss_psnr: float, sigma: float, ceiling: float | None, params: dict) -> Result:
    """The table row of our ``who`` (n2v / n2v2) on one image, from every side's runs (medians over seeds)."""

    def med(side: str, key: str | None = None) -> float:
        return float(np.median([v if key is None else i[key] for v, i in runs[side]]))

    ref = "careamics_n2v2" if who == "n2v2" and "careamics_n2v2" in runs else "careamics"
    base = runs.get(ref)
    ref_name = "CAREamics N2V2" if ref == "careamics_n2v2" else "CAREamics N2V"
    first = runs[who][0][1]
    value, cpu = med(who), med(who, "train_cpu_s")
    delta = None if base is None else value - med(ref)
    t_ratio = None if base is None else cpu / max(med(ref, "train_cpu_s"), 1e-9)
    met = (value - noisy_psnr >= 4.0 and value > gauss_psnr
           and (delta is None or (delta >= -0.3 and t_ratio <= 1.0)))
    note = (f"noisy {noisy_psnr:.2f} dB, Gaussian tuned on truth {gauss_psnr:.2f} dB (sigma {sigma}), "
            f"ours {value:.2f} dB ({value - noisy_psnr:+.2f}; one pass per window {med(who, 'one_pass_psnr'):.2f}, "
            f"{first['masked_percent']} % masked); train {med(who, 'train_s'):.0f} s wall / {cpu:.0f} s CPU, "
            f"predict {med(who, 'predict_s'):.1f} s")
    if ceiling is not None:
        note += f"; ceiling (same network and budget supervised on the truth) {ceiling:.2f} dB"
    if base is not None:
        note += (f"; {ref_name} ({base[0][1]['masked_percent']} % masked) {med(ref):.2f} dB, train "
                 f"{med(ref, 'train_s'):.0f} s wall / {med(ref, 'train_cpu_s'):.0f} s CPU (torch {base[0][1].get('torch')})")
        if ref != "careamics" and "careamics" in runs:
            note += f"; CAREamics N2V {med('careamics'):.2f} dB"
    else:
        note += ("; CAREamics not run: no venv with careamics (python -m benchmarks.denoise "
                 "--install-careamics, or set IM2IM_CAREAMICS_VENV)")
    if params["seeds"] > 1:
        note += f"; medians of {params['seeds']} seeds"
    if t_ratio is not None:
        note += f"; train CPU ours/{ref_name} {t_ratio:.2f}"
    return Result(
        id=f"10.{name}.{who}", what=f"{who.upper()} on {name} {shape[0]}x{shape[1]}, {params['steps']} steps x "
        f"{params['batch']} patches {params['patch']}², {params['threads']} thread(s)", unit="dB PSNR",
        ours=spread([v for v, _ in runs[who]]), baseline=None if base is None else spread([v for v, _ in base]),
        ratio=None if delta is None else spread([delta]),
        ratio_def=f"ours - {ref_name} (dB, medians); CPU-time ratio in the note",
        goal=">= +4 dB over noisy, > tuned Gaussian, >= CAREamics - 0.3 dB at <= its time", met=met, note=note,
        params={**params, "noisy_psnr": noisy_psnr, "gaussian_psnr": gauss_psnr, "gaussian_sigma": sigma,
                "ceiling_psnr": ceiling,
                "baseline": ref_name, "ours": [{"psnr": v, **i} for v, i in runs[who]],
                "careamics": {k: [{"psnr": v, **i} for v, i in runs[k]]
                              for k in ("careamics", "careamics_n2v2") if k in runs}})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.denoise", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--install-careamics", action="store_true", help="create CAREamics' venv when missing")
    parser.add_argument("--threads", type=int, default=THREADS, help=f"torch threads per side (default {THREADS})")
    parser.add_argument("--images", default="", help="comma-separated subset of: " + ", ".join(n for n, *_ in IMAGES))
    parser.add_argument("--seeds", type=int, default=1, help="train every side this many times; medians reported")
    parser.add_argument("--careamics-n2v2", action="store_true",
                        help="also train CAREamics' N2V2, as the baseline of our N2V2 rows")
    parser.add_argument("--steps", type=int, help="optimiser steps instead of the budget's (60 quick, 300 full)")
    parser.add_argument("--batch", type=int, help="patches per step instead of the budget's (8 quick, 16 full)")
    parser.add_argument("--masked-percent", type=float, help="ours: instead of the preset's task.n2v.masked_percent")
    parser.add_argument("--careamics-masked-percent", type=float,
                        help="CAREamics: instead of its default masked_pixel_percentage (0.2)")
    parser.add_argument("--no-ceiling", action="store_true",
                        help="skip the ceiling: the same network and budget supervised on the clean truth")
    args = parser.parse_args(argv)
    images = tuple(x.strip() for x in args.images.split(",") if x.strip())
    rows = run(args.quick, args.install_careamics, args.threads, images, args.seeds, args.careamics_n2v2,
               args.steps, args.batch, args.masked_percent, args.careamics_masked_percent,
               not args.no_ceiling)
    print(table(rows))
    for r in rows:
        print(f"- {r.id}: {r.note}")
    if args.json:
        args.json.write_text(json.dumps([r.as_dict() for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

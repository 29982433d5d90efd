"""Model export: TorchScript, ONNX and BioImage Model Zoo packages, each checked against the engine.

Why the exported graph is "network + final activation" and nothing more: what makes the engine's output is
(1) per-image normalisation, (2) the network on overlapping windows with gaussian blending of the softmax
probabilities, (3) task post-processing (argmax, or watershed for instances). Only (2)'s per-window part is
a fixed tensor program; percentiles over a whole image, window stitching and watershed are not (ONNX has no
quantile, and a watershed does not belong in a graph). So the graph is the network in eval mode (the MC
dropout head is off) plus softmax, and the rest is written down in ``export.json``/``README.md`` and done
identically by :class:`im2im_engine.exported.ExportedModel`.

Every export folder holds: the weights, ``config.yaml`` (resolved engine config), ``provenance.json``
(what the caller passes: model version, training-set hash, ... plus engine/torch versions, date and the
numerical checks), ``export.json`` (how to run it), ``README.md``, and ``test_input.npy`` (a raw image
crop, one inference window) / ``test_output.npy`` (the engine's own output on it). Folders are written
to a temp folder beside the target and renamed into place, so a failed export leaves nothing half-written.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from .atomic import follow_umask, replace_dir
from .config import EngineConfig, config_to_dict, dump_config

FORMATS = ("torchscript", "onnx", "bioimageio")
MANIFEST = "export.json"
TORCHSCRIPT_FILE = "model.torchscript.pt"
ONNX_FILE = "model.onnx"
ONNX_OPSET = 17
#: Largest difference between an exported graph and the engine that still counts as "the same model".
TOLERANCE = 1e-4
#: The instance post-processing, word for word what :func:`im2im_engine.targets.classes_to_instances` does
#: (a test follows this text step by step, with the parameters in ``export.json``, and must get the same
#: objects; change both together).
INSTANCE_RULE = (
    "seeded watershed: foreground = P(interior) + P(boundary) > fg_threshold; surface = Gaussian blur "
    "(sigma surface_sigma px, edges repeated) of the Euclidean distance to the background times P(interior); "
    "seeds = connected components (4-/6-connectivity) of the foreground pixels where the surface equals its "
    "maximum over a (2 seed_distance + 1)-wide square/cube, exceeds surface_min and P(interior) > "
    "seed_threshold; watershed of -surface from the seeds inside the foreground; foreground that no seed "
    "reaches becomes objects of its own (its connected components) where they have at least orphan_min_size "
    "px; then objects smaller than min_size px are dropped and ids renumbered 1..N")

Progress = Callable[[int, int, str], None]


class ExportError(ValueError):
    """An export that could not be written or does not reproduce the engine (message says which check)."""


@dataclass
class ExportResult:
    format: str
    path: Path
    files: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)


class Deployable(nn.Module):
    """The network plus its final activation: normalised ``(B, C, *sp)`` -> probabilities or regression.

    Softmax is part of the graph because the engine blends per-window *probabilities*; with it inside,
    a runner that stitches windows of this module's output reproduces the engine exactly.

    Any spatial size goes in: the input is mirrored at its end up to a multiple of the network's stride and
    the output cropped back, exactly as the app fits its window to an image (:func:`.inference.fit_window`),
    so a 390×382 image needs no resizing by the user or by bioimage.io tools, and an image smaller than the
    app's window gives the app's own output in one pass. Sizes already a multiple (every app window) are
    untouched; the padding is traced as shape arithmetic, so it stays dynamic in TorchScript and ONNX.
    """

    def __init__(self, net: nn.Module, classify: bool, multiple: list[int] | None = None):
        super().__init__()
        self.net = net
        self.classify = classify
        self.multiple = [int(m) for m in (multiple or [])]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sizes = [x.shape[2 + i] for i in range(len(self.multiple))]
        pad: list[int] = []
        for n, m in zip(reversed(sizes), reversed(self.multiple), strict=True):  # F.pad lists the last axis first
            pad += [0, (-n) % m]
        if pad:
            x = F.pad(x, pad, mode="reflect")
        y = self.net(x).float()
        y = torch.softmax(y, 1) if self.classify else y
        if pad:
            y = y[(slice(None), slice(None), *(slice(0, n) for n in sizes))]
        return y


# ------------------------------------------------------------------------------------------ helpers
def engine_version() -> str:
    from . import __version__

    return __version__


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def cpu_engine(engine: Any) -> Any:
    """A float32 CPU copy of the engine (no AMP, no channels-last): exports and their checks run here."""
    from .api import Engine

    net = copy.deepcopy(engine.net).to("cpu", dtype=torch.float32)
    net = net.to(memory_format=torch.contiguous_format).eval()
    return Engine(engine.config, net, torch.device("cpu"))


def test_crop(image: np.ndarray | None, cfg: EngineConfig, seed: int = 0) -> np.ndarray:
    """A raw ``(C, *roi)`` float32 crop of ``image`` (centre; reflect-padded when smaller), one window.

    One window exactly: the engine's sliding window on it is a single forward pass, so the graph alone
    must give the engine's output (up to float rounding). No image: seeded noise of the right shape.
    """
    from .data import as_channel_first

    roi = list(cfg.inference.roi_size)
    if image is None:
        rng = np.random.default_rng(seed)
        return rng.normal(100.0, 20.0, (cfg.data.in_channels, *roi)).astype(np.float32)
    arr = as_channel_first(np.asarray(image), cfg).astype(np.float32)
    sl = [slice(None)]
    for n, r in zip(arr.shape[1:], roi, strict=True):
        start = max(0, (n - r) // 2)
        sl.append(slice(start, start + r))
    arr = arr[tuple(sl)]
    pads = [(0, 0)] + [(0, r - n) for n, r in zip(arr.shape[1:], roi, strict=True)]
    if any(p[1] for p in pads):
        arr = np.pad(arr, pads, mode="reflect" if min(arr.shape[1:]) > 1 else "edge")
    return np.ascontiguousarray(arr, np.float32)


def _second_size(cfg: EngineConfig) -> list[int]:
    """Another input size, not a multiple of the stride (roi + stride + 3 per axis): proves the graph takes
    any spatial size (dynamic axes and the padding inside)."""
    from .networks import total_stride

    return [r + s + 3 for r, s in zip(cfg.inference.roi_size, total_stride(cfg), strict=True)]


def _axes(cfg: EngineConfig) -> str:
    return "bc" + ("zyx" if cfg.data.spatial_dims == 3 else "yx")


def channel_names(cfg: EngineConfig) -> list[str]:
    task = cfg.task
    if task.kind == "instance":
        return ["background", "interior", "boundary"]
    if task.kind == "semantic":
        return ["background"] + [f"class{i}" for i in range(1, task.num_classes)]
    return [f"output{i}" for i in range(task.out_channels)]


def manifest(cfg: EngineConfig, fmt: str, model_file: str) -> dict:
    """``export.json``: everything a runner needs besides the weights (read by :mod:`.exported`)."""
    from .networks import total_stride

    task = cfg.task
    post: dict[str, Any]
    if task.kind == "semantic":
        post = {"labels": "argmax over channels -> class ids (int32)"}
    elif task.kind == "instance":
        ic = task.instance
        post = {"labels": INSTANCE_RULE, "fg_threshold": ic.fg_threshold, "seed_threshold": ic.seed_threshold,
                "seed_distance": ic.seed_distance, "min_size": ic.min_size,
                # constants of classes_to_instances (the test of INSTANCE_RULE keeps them honest)
                "surface_sigma": 1.0, "surface_min": 1.0, "orphan_min_size": 4 * max(ic.min_size, 1)}
    else:
        post = {"labels": None, "units": "percentile-normalised" if task.normalize_target else "target units"}
    inf = cfg.inference
    return {
        "format": fmt,
        "model": model_file,
        "config": "config.yaml",
        "engine_version": engine_version(),
        "task": task.kind,
        "spatial_dims": cfg.data.spatial_dims,
        "axes": _axes(cfg),
        "input": {"channels": cfg.data.in_channels, "dtype": "float32",
                  "normalization": cfg.data.normalization, "percentiles": list(cfg.data.percentiles),
                  "size_multiple_of": 1, "padded_inside_to_multiple_of": total_stride(cfg)},
        "output": {"kind": "probabilities" if task.classify else "regression",
                   "channels": channel_names(cfg)},
        "sliding_window": {"roi_size": list(inf.roi_size), "overlap": inf.overlap, "mode": inf.mode,
                           "sigma_scale": inf.sigma_scale,
                           "padding": "none; along an axis where the image is smaller than roi_size the window is "
                                      "the image rounded up to the stride, the image mirrored (reflect) at its end "
                                      "up to it, the output cropped back"},
        "postprocessing": post,
        "test_input": "test_input.npy", "test_output": "test_output.npy",
    }


def readme(cfg: EngineConfig, fmt: str, model_file: str, provenance: dict, checks: dict,
           tiling: Any = None) -> str:
    """Plain-language instructions: enough to run the model with nothing but torch/onnxruntime + numpy."""
    m = manifest(cfg, fmt, model_file)
    axes = m["axes"].upper()
    load = (f"net = torch.jit.load('{model_file}').eval()\n    out = net(torch.from_numpy(x))"
            if model_file.endswith(".pt") else
            f"sess = onnxruntime.InferenceSession('{model_file}')\n    out = sess.run(None, {{'input': x}})[0]")
    norm = cfg.data.normalization
    norm_text = {
        "percentile": f"per channel, (x - p{cfg.data.percentiles[0]}) / max(p{cfg.data.percentiles[1]} - "
                      f"p{cfg.data.percentiles[0]}, 1e-6), percentiles over the whole image",
        "zscore": "per channel, (x - mean) / max(std, 1e-6) over the whole image",
        "minmax": "per channel, (x - min) / max(max - min, 1e-6) over the whole image",
        "none": "none (raw float32)",
    }[norm]
    model = provenance.get("model", {})
    lines = [
        f"# {provenance.get('name', 'im2im-active model')} ({fmt})",
        "",
        f"Exported by im2im-active (engine {engine_version()}) on {provenance.get('exported_at', _now())}.",
        f"Task: **{cfg.task.kind}**, {cfg.data.spatial_dims}D, network {cfg.model.name}.",
    ]
    if model:
        lines.append(f"Model version v{model.get('version')} (round {model.get('round')}, status "
                      f"{model.get('status')}), trained on {model.get('n_corrected')} corrected images; "
                      f"validation metrics: {json.dumps(model.get('metrics') or {})}.")
    lines += [
        "",
        "## Files",
        f"* `{model_file}`: the network in eval mode (dropout off) followed by "
        f"{'softmax' if cfg.task.classify else 'nothing (regression values)'}.",
        "* `config.yaml`: the resolved engine configuration; `provenance.json`: where the model comes from;",
        "  `export.json`: the pre/post-processing below, machine readable.",
        "* `test_input.npy` (raw image crop) / `test_output.npy` (the engine's output on it).",
        "",
        "## Running it",
        f"Input: float32 `{axes}` (batch, {cfg.data.in_channels} channel(s), any spatial size: the graph mirrors "
        f"the end of each axis up to a multiple of {m['input']['padded_inside_to_multiple_of']} and crops the "
        "output back). "
        f"Output: `{axes}` with channels {m['output']['channels']}, same spatial size.",
        "",
        f"1. Normalise: {norm_text}.",
        f"2. Predict in overlapping windows of {list(cfg.inference.roi_size)} (overlap {cfg.inference.overlap},"
        f" {cfg.inference.mode} blending, sigma_scale {cfg.inference.sigma_scale}) — MONAI's "
        "`SlidingWindowInferer` with these settings reproduces the app exactly; where the image is smaller than "
        "the window, the window is the image itself (the graph mirrors it up to the stride). One window:",
        "",
        "    import numpy as np, torch",
        "    x = np.load('test_input.npy')  # raw; normalise as in step 1 first",
        f"    {load}",
        "",
    ]
    if cfg.inference.tta:
        from .tta import symmetries

        n = len(symmetries(cfg))
        lines += [f"   The app averages each window's output over {n} flips / quarter turns of the YX plane "
                  "(`inference.tta`): run the graph on each transformed window, transform each output back, "
                  "take the mean. One pass per window is close, a little noisier.", ""]
    lines += [
        f"3. Post-process: {m['postprocessing']['labels'] or 'none (regression)'}.",
    ]
    if cfg.task.kind == "instance":
        ic = cfg.task.instance
        post = m["postprocessing"]
        lines.append(f"   Parameters: fg_threshold={ic.fg_threshold}, seed_threshold={ic.seed_threshold}, "
                     f"seed_distance={ic.seed_distance}, min_size={ic.min_size}, surface_sigma="
                     f"{post['surface_sigma']}, surface_min={post['surface_min']}, orphan_min_size="
                     f"{post['orphan_min_size']}. The watershed is not part of the graph.")
    if tiling is not None:
        from .bioimage_package import block_advice

        lines += [
            "",
            "## bioimage.io tools",
            f"The package takes any size from {tiling.min_size} (step 1), so `bioimageio predict` runs on whole "
            f"images as they are. For blockwise prediction the output halo is {tiling.halo} px (the network's "
            f"receptive-field radius {tiling.receptive_radius} rounded up to its stride). The network normalises "
            "features per block (instance/group norm), so results depend slightly on the block size; blocks of "
            f"the app's window {list(cfg.inference.roi_size)} come closest to the app: "
            f"`bioimageio predict --blockwise {block_advice(cfg, tiling)} ...`.",
        ]
    lines += [
        "",
        "Or, with im2im-active installed: `im2im-active predict --model THIS_FOLDER --input DIR --output DIR`",
        "(all three steps, identical to the app).",
        "",
        "## Validation",
        "At export the graph was run on `test_input.npy` and compared with the engine's own prediction "
        "(maximum absolute differences below; the export is refused above 1e-3), and on a second input size "
        "to check that the spatial size is dynamic:",
        "```json",
        json.dumps(checks, indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)


def _write_common(folder: Path, engine: Any, fmt: str, model_file: str, provenance: dict, checks: dict,
                  crop: np.ndarray, ref: Any, tiling: Any = None) -> None:
    cfg = engine.config
    np.save(folder / "test_input.npy", crop[None].astype(np.float32))
    np.save(folder / "test_output.npy", ref.output[None].astype(np.float32))
    if ref.labels is not None:
        np.save(folder / "test_labels.npy", ref.labels.astype(np.int32))
    (folder / "config.yaml").write_text(dump_config(cfg))
    prov = {**provenance, "export": {"format": fmt, "exported_at": provenance.get("exported_at", _now()),
                                     "engine_version": engine_version(), "torch_version": torch.__version__,
                                     "checks": checks}}
    prov.setdefault("exported_at", prov["export"]["exported_at"])
    prov.setdefault("engine_version", engine_version())
    prov.setdefault("config", config_to_dict(cfg))
    (folder / "provenance.json").write_text(json.dumps(prov, indent=2, default=str))
    (folder / MANIFEST).write_text(json.dumps(manifest(cfg, fmt, model_file), indent=2))
    (folder / "README.md").write_text(readme(cfg, fmt, model_file, prov, checks, tiling))


# ------------------------------------------------------------------------------------------ writers
def write_torchscript(module: Deployable, crop_norm: np.ndarray, path: Path) -> torch.jit.ScriptModule:
    """Trace (not script): MONAI networks are traceable but not all scriptable; the graph has no
    data-dependent control flow in eval mode, so a trace is exact for every input size."""
    x = torch.from_numpy(crop_norm[None])
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, x, check_trace=False)
        traced.save(str(path))
        return torch.jit.load(str(path), map_location="cpu").eval()  # deprecated in torch 2.10+, still loads


def write_onnx(module: Deployable, crop_norm: np.ndarray, path: Path, spatial_dims: int) -> None:
    """ONNX via the TorchScript-based exporter, with dynamic batch and spatial axes."""
    x = torch.from_numpy(crop_norm[None])
    names = ["z", "y", "x"][3 - spatial_dims:]
    dyn = {0: "batch", **{2 + i: n for i, n in enumerate(names)}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        kwargs: dict[str, Any] = {"input_names": ["input"], "output_names": ["output"],
                                  "dynamic_axes": {"input": dyn, "output": dyn}, "opset_version": ONNX_OPSET}
        try:
            torch.onnx.export(module, (x,), str(path), dynamo=False, **kwargs)
        except TypeError:  # torch < 2.5 has no ``dynamo`` argument
            torch.onnx.export(module, (x,), str(path), **kwargs)


def onnx_session(path: Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def _check(name: str, diff: float, checks: dict) -> None:
    checks[name] = diff
    if not diff <= TOLERANCE * 10:  # catches NaN too
        raise ExportError(f"{name}: exported model differs from the engine by {diff:.3g} (> {TOLERANCE * 10:g})")


def _build(engine: Any, fmt: str, folder: Path, provenance: dict, sample: np.ndarray | None,
           progress: Progress | None, meta: dict) -> dict:
    """Write one format into ``folder``; return the numerical checks."""
    from .data import normalize

    say = progress or (lambda d, t, w: None)
    eng = cpu_engine(engine)
    cfg = eng.config
    classify = cfg.task.classify
    crop = test_crop(sample, cfg)
    ref = eng.predict(crop, tta=False)  # the engine itself, one pass of exactly one window (the graph's job)
    norm = normalize(crop, cfg.data)
    from .networks import total_stride

    module = Deployable(eng.net, classify, total_stride(cfg)).eval()
    with torch.no_grad():
        eager = module(torch.from_numpy(norm[None])).numpy()[0]
    checks: dict[str, Any] = {"test_input_shape": list(crop.shape), "eager_vs_engine_max_abs_diff":
                              _max_diff(eager, ref.output)}
    second = np.random.default_rng(1).normal(0, 1, (cfg.data.in_channels, *_second_size(cfg))).astype(np.float32)
    with torch.no_grad():
        eager2 = module(torch.from_numpy(second[None])).numpy()
    checks["dynamic_size_checked"] = list(second.shape[1:])
    say(1, 4, "reference computed")
    files: dict[str, str] = {}
    if fmt in ("torchscript", "bioimageio"):
        name = TORCHSCRIPT_FILE if fmt == "torchscript" else "weights.torchscript.pt"
        loaded = write_torchscript(module, norm, folder / name)
        with torch.no_grad():
            out = loaded(torch.from_numpy(norm[None])).numpy()[0]
            out2 = loaded(torch.from_numpy(second[None])).numpy()
        _check("torchscript_vs_engine_max_abs_diff", _max_diff(out, ref.output), checks)
        _check("torchscript_dynamic_size_max_abs_diff", _max_diff(out2, eager2), checks)
        if classify:
            checks["torchscript_labels_identical"] = bool(
                np.array_equal(np.argmax(out, 0), np.argmax(ref.output, 0)))
        files["torchscript"] = name
        say(2, 4, "torchscript written")
    if fmt in ("onnx", "bioimageio"):
        name = ONNX_FILE if fmt == "onnx" else "weights.onnx"
        write_onnx(module, norm, folder / name, cfg.data.spatial_dims)
        sess = onnx_session(folder / name)
        out = sess.run(None, {"input": norm[None]})[0][0]
        out2 = sess.run(None, {"input": second[None]})[0]
        _check("onnx_vs_engine_max_abs_diff", _max_diff(out, ref.output), checks)
        _check("onnx_dynamic_size_max_abs_diff", _max_diff(out2, eager2), checks)
        checks["onnx_opset"] = ONNX_OPSET
        files["onnx"] = name
        say(3, 4, "onnx written and checked with onnxruntime")
    model_file = files.get("torchscript") or files["onnx"]
    tile = None
    if fmt == "bioimageio":
        from .bioimage_package import tiling

        tile = tiling(module, eng.net, cfg)
        checks["bioimageio_tiling"] = tile.to_json()
    _write_common(folder, eng, fmt, model_file, provenance, checks, crop, ref, tile)
    if fmt == "bioimageio":
        from .bioimage_package import write_rdf

        write_rdf(folder, cfg, files, provenance, crop, ref, meta, tile, manifest(cfg, fmt, model_file))
    return checks


def export_model(engine: Any, fmt: str, output: str | os.PathLike, *, provenance: dict | None = None,
                 sample: np.ndarray | None = None, overwrite: bool = False, progress: Progress | None = None,
                 meta: dict | None = None) -> ExportResult:
    """Export ``engine`` as ``fmt`` into the folder ``output`` (a ``.zip`` path packs a bioimageio zip).

    ``sample``: a raw image (C, *sp) the test tensors are cut from (a real image makes a meaningful cover
    and check); ``provenance``: the caller's record, stored verbatim in ``provenance.json`` (and rdf.yaml);
    ``meta``: bioimageio extras (name, description, authors, maintainers, license, tags). Raises :class:`ExportError`
    when the target exists (unless ``overwrite``) or the exported graph does not reproduce the engine.
    """
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    out = Path(output)
    as_zip = out.suffix.lower() == ".zip"
    if out.exists() and not overwrite and (out.is_file() or any(out.iterdir())):
        raise ExportError(f"{out}: already exists; choose another output or remove it")
    out.parent.mkdir(parents=True, exist_ok=True)
    provenance = {"exported_at": _now(), **(provenance or {})}
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        checks = _build(engine, fmt, tmp, provenance, sample, progress, meta or {})
        files = sorted(p.name for p in tmp.iterdir())
        if as_zip:
            packed = tmp.with_suffix(".zip.tmp")
            try:
                with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as zf:
                    for name in files:
                        zf.write(tmp / name, name)
                follow_umask(packed)
                os.replace(packed, out)
            finally:
                packed.unlink(missing_ok=True)
        else:
            follow_umask(tmp)  # mkdtemp made it 0700: the published folder follows the umask
            replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if progress:
        progress(4, 4, f"exported to {out}")
    return ExportResult(fmt, out, files, checks)


def read_manifest(folder: Path) -> dict:
    """``export.json`` of an export folder, with a clear error when the folder is not one."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        rdf = Path(folder) / "rdf.yaml"
        if rdf.exists():
            data = yaml.safe_load(rdf.read_text()) or {}
            found = ((data.get("config") or {}).get("im2im_active") or {}).get("manifest")
            if found:
                return found
        raise ExportError(f"{folder}: not an im2im-active export (no {MANIFEST})")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ExportError(f"{path}: unreadable ({exc})") from None

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
import yaml
from torch import nn

from .atomic import replace_dir, sha256
from .config import EngineConfig, config_to_dict, dump_config

FORMATS = ("torchscript", "onnx", "bioimageio")
MANIFEST = "export.json"
TORCHSCRIPT_FILE = "model.torchscript.pt"
ONNX_FILE = "model.onnx"
ONNX_OPSET = 17
#: Largest difference between an exported graph and the engine that still counts as "the same model".
TOLERANCE = 1e-4

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
    """

    def __init__(self, net: nn.Module, classify: bool):
        super().__init__()
        self.net = net
        self.classify = classify

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x).float()
        return torch.softmax(y, 1) if self.classify else y


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
    """Another valid input size (roi + one stride step per axis): proves the graph's spatial size is free."""
    from .networks import total_stride

    return [r + s for r, s in zip(cfg.inference.roi_size, total_stride(cfg), strict=True)]


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
        post = {"labels": "watershed: foreground P(interior)+P(boundary) > fg_threshold, seeds = connected "
                          "components of P(interior) > seed_threshold (>= min_size px), watershed on "
                          "-P(interior) inside the foreground; objects < min_size dropped",
                "fg_threshold": ic.fg_threshold, "seed_threshold": ic.seed_threshold, "min_size": ic.min_size}
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
                  "size_multiple_of": total_stride(cfg)},
        "output": {"kind": "probabilities" if task.classify else "regression",
                   "channels": channel_names(cfg)},
        "sliding_window": {"roi_size": list(inf.roi_size), "overlap": inf.overlap, "mode": inf.mode,
                           "sigma_scale": inf.sigma_scale, "padding": "constant 0"},
        "postprocessing": post,
        "test_input": "test_input.npy", "test_output": "test_output.npy",
    }


def readme(cfg: EngineConfig, fmt: str, model_file: str, provenance: dict, checks: dict) -> str:
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
        f"Input: float32 `{axes}` (batch, {cfg.data.in_channels} channel(s), spatial axes a multiple of "
        f"{m['input']['size_multiple_of']}). Output: `{axes}` with channels {m['output']['channels']}.",
        "",
        f"1. Normalise: {norm_text}.",
        f"2. Predict in overlapping windows of {list(cfg.inference.roi_size)} (overlap {cfg.inference.overlap},"
        f" {cfg.inference.mode} blending, sigma_scale {cfg.inference.sigma_scale}, zero padding) — MONAI's "
        "`SlidingWindowInferer` with these settings reproduces the app exactly. One window:",
        "",
        "    import numpy as np, torch",
        "    x = np.load('test_input.npy')  # raw; normalise as in step 1 first",
        f"    {load}",
        "",
        f"3. Post-process: {m['postprocessing']['labels'] or 'none (regression)'}.",
    ]
    if cfg.task.kind == "instance":
        ic = cfg.task.instance
        lines.append(f"   Thresholds: fg_threshold={ic.fg_threshold}, seed_threshold={ic.seed_threshold}, "
                     f"min_size={ic.min_size}. The watershed is not part of the graph.")
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
                  crop: np.ndarray, ref: Any) -> None:
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
    (folder / "README.md").write_text(readme(cfg, fmt, model_file, prov, checks))


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
    ref = eng.predict(crop)  # the engine itself, sliding window over exactly one window
    norm = normalize(crop, cfg.data)
    module = Deployable(eng.net, classify).eval()
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
    _write_common(folder, eng, fmt, model_file, provenance, checks, crop, ref)
    if fmt == "bioimageio":
        write_rdf(folder, cfg, files, provenance, crop, ref, meta)
    return checks


def export_model(engine: Any, fmt: str, output: str | os.PathLike, *, provenance: dict | None = None,
                 sample: np.ndarray | None = None, overwrite: bool = False, progress: Progress | None = None,
                 meta: dict | None = None) -> ExportResult:
    """Export ``engine`` as ``fmt`` into the folder ``output`` (a ``.zip`` path packs a bioimageio zip).

    ``sample``: a raw image (C, *sp) the test tensors are cut from (a real image makes a meaningful cover
    and check); ``provenance``: the caller's record, stored verbatim in ``provenance.json`` (and rdf.yaml);
    ``meta``: bioimageio extras (name, description, authors, license, tags). Raises :class:`ExportError`
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
            with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as zf:
                for name in files:
                    zf.write(tmp / name, name)
            os.replace(packed, out)
        else:
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


# ------------------------------------------------------------------------------------------ bioimageio
#: Model RDF format written (bioimage.io spec 0.5 family; newer bioimageio.spec versions upgrade it on load).
BIOIMAGEIO_FORMAT_VERSION = "0.5.4"
CITATIONS = [
    {"text": "MONAI Consortium. MONAI: Medical Open Network for AI", "doi": "10.5281/zenodo.4323058"},
    {"text": "Sonneck J. et al. MMV_Im2Im: an open-source microscopy machine vision toolbox for image-to-image "
             "transformation", "url": "https://arxiv.org/abs/2209.02498"},
]


def _cover(folder: Path, crop: np.ndarray, ref: Any) -> str:
    """cover.png (2:1): the test input's middle plane beside the model's labels (or first output channel)."""
    import imageio.v3 as iio

    def plane(a: np.ndarray) -> np.ndarray:
        return a[a.shape[0] // 2] if a.ndim == 3 else a

    def grey(a: np.ndarray) -> np.ndarray:
        lo, hi = np.percentile(a, (1, 99.8))
        g = np.clip((a - lo) / max(hi - lo, 1e-6), 0, 1)
        return np.repeat((g * 255).astype(np.uint8)[..., None], 3, -1)

    left = grey(plane(crop[0]))
    if ref.labels is not None:
        lab = plane(ref.labels).astype(np.int64)
        rng = np.random.default_rng(7)
        lut = rng.integers(60, 255, (int(lab.max()) + 1, 3)).astype(np.uint8)
        lut[0] = 0
        right = lut[lab]
    else:
        right = grey(plane(ref.output[0]))
    img = np.concatenate([left, right], axis=1)
    k = max(1, int(np.ceil(256 / img.shape[0])))
    img = np.repeat(np.repeat(img, k, 0), k, 1)
    iio.imwrite(folder / "cover.png", img)
    return "cover.png"


def _preprocessing(cfg: EngineConfig, axes: list[str]) -> list[dict]:
    """The engine's per-image normalisation in bioimage.io terms (per channel, over the spatial axes)."""
    data = cfg.data
    if data.normalization == "percentile":
        lo, hi = data.percentiles
        return [{"id": "scale_range", "kwargs": {"axes": axes, "min_percentile": float(lo),
                                                 "max_percentile": float(hi), "eps": 1e-6}}]
    if data.normalization == "minmax":
        return [{"id": "scale_range", "kwargs": {"axes": axes, "min_percentile": 0.0, "max_percentile": 100.0,
                                                 "eps": 1e-6}}]
    if data.normalization == "zscore":
        return [{"id": "zero_mean_unit_variance", "kwargs": {"axes": axes, "eps": 1e-6}}]
    return []


def write_rdf(folder: Path, cfg: EngineConfig, files: dict[str, str], provenance: dict, crop: np.ndarray,
              ref: Any, meta: dict) -> Path:
    """``rdf.yaml`` of a bioimage.io model package (spec 0.5): axes, test tensors, weights, provenance.

    The weights take normalised input (the preprocessing entry says how); outputs are probabilities (or
    regression). Instance watershed is not expressible as bioimage.io postprocessing, so it is described
    in the documentation and in ``config.im2im_active.manifest``.
    """
    from .networks import total_stride

    d = cfg.data.spatial_dims
    sp = ["z", "y", "x"][3 - d:]
    stride = total_stride(cfg)
    roi = list(cfg.inference.roi_size)
    in_axes: list[dict] = [{"type": "batch"},
                           {"type": "channel", "channel_names": [f"c{i}" for i in range(cfg.data.in_channels)]}]
    in_axes += [{"type": "space", "id": a, "size": {"min": int(r), "step": int(s)}}
                for a, r, s in zip(sp, roi, stride, strict=True)]
    out_axes: list[dict] = [{"type": "batch"}, {"type": "channel", "channel_names": channel_names(cfg)}]
    out_axes += [{"type": "space", "id": a, "size": {"tensor_id": "raw", "axis_id": a}} for a in sp]
    model = provenance.get("model") or {}
    version = model.get("version")
    task = cfg.task.kind
    name = meta.get("name") or f"im2im-active {task} {d}D model" + (f" v{version}" if version else "")
    what = {"semantic": "semantic segmentation", "instance": "instance segmentation (3-class + watershed)",
            "regression": "image restoration (regression)", "denoise": "self-supervised denoising (N2V)"}[task]
    description = meta.get("description") or (
        f"{cfg.model.name} for {d}D {what}, refined by human-in-the-loop active learning in im2im-active"
        + (f" (model v{version}, {model.get('n_corrected', 0)} corrected images)." if version else "."))
    weights: dict[str, dict] = {}
    if "torchscript" in files:
        weights["torchscript"] = {"source": files["torchscript"], "sha256": sha256(folder / files["torchscript"]),
                                  "pytorch_version": torch.__version__.split("+")[0]}
    if "onnx" in files:
        entry = {"source": files["onnx"], "sha256": sha256(folder / files["onnx"]), "opset_version": ONNX_OPSET}
        if "torchscript" in weights:
            entry["parent"] = "torchscript"
        weights["onnx"] = entry
    cover = _cover(folder, crop, ref)
    import tifffile

    tifffile.imwrite(folder / "sample_input.tif", crop[None].astype(np.float32))
    tifffile.imwrite(folder / "sample_output.tif", ref.output[None].astype(np.float32))
    tags = ["im2im-active", "monai", cfg.model.name.lower(), f"{d}d", "pytorch", "active-learning",
            {"semantic": "semantic-segmentation", "instance": "instance-segmentation",
             "regression": "restoration", "denoise": "denoising"}[task]]
    rdf = {
        "format_version": BIOIMAGEIO_FORMAT_VERSION,
        "type": "model",
        "name": name,
        "description": description[:1000],
        "authors": meta.get("authors") or [{"name": os.environ.get("USER") or "im2im-active user"}],
        "cite": meta.get("cite") or CITATIONS,
        "license": meta.get("license") or "BSD-3-Clause",
        "documentation": "README.md",
        "covers": [cover],
        "tags": meta.get("tags") or tags,
        "timestamp": provenance.get("exported_at") or _now(),
        "attachments": [{"source": f, "sha256": sha256(folder / f)}
                        for f in ("config.yaml", "provenance.json", MANIFEST)],
        "inputs": [{
            "id": "raw",
            "description": f"raw image, {cfg.data.in_channels} channel(s); normalised by the preprocessing",
            "axes": in_axes,
            "test_tensor": {"source": "test_input.npy", "sha256": sha256(folder / "test_input.npy")},
            "sample_tensor": {"source": "sample_input.tif", "sha256": sha256(folder / "sample_input.tif")},
            "data": {"type": "float32"},
            "preprocessing": _preprocessing(cfg, sp),
        }],
        "outputs": [{
            "id": "probabilities" if cfg.task.classify else "prediction",
            "description": {"semantic": "class probabilities (softmax); labels = argmax",
                            "instance": "P(background), P(interior), P(boundary); instances by watershed "
                                        "(see documentation)",
                            "regression": "restored image", "denoise": "denoised image"}[task],
            "axes": out_axes,
            "test_tensor": {"source": "test_output.npy", "sha256": sha256(folder / "test_output.npy")},
            "sample_tensor": {"source": "sample_output.tif", "sha256": sha256(folder / "sample_output.tif")},
            "data": {"type": "float32"},
        }],
        "weights": weights,
        "config": {"im2im_active": {"manifest": json.loads((folder / MANIFEST).read_text()),
                                    "provenance": provenance, "engine_config": config_to_dict(cfg)}},
    }
    path = folder / "rdf.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(rdf, default=str)), sort_keys=False))
    return path


def validate_bioimageio(path: str | os.PathLike) -> dict | None:
    """Validate a package with ``bioimageio.spec`` when it is installed (None when it is not).

    Returns ``{"status": ..., "format_version": ..., "errors": [...]}``; weights are not run here (that is
    bioimageio.core's job), but file hashes, axes and test-tensor shapes are checked.
    """
    try:
        from bioimageio.spec import ValidationContext, load_description
    except ImportError:
        return None
    path = Path(path)
    with ValidationContext(perform_io_checks=True):
        descr = load_description(path / "rdf.yaml" if path.is_dir() else path)
    summary = descr.validation_summary
    errors = [f"{'.'.join(map(str, e.loc))}: {e.msg}" for d in summary.details for e in d.errors]
    return {"status": summary.status, "format_version": str(getattr(descr, "format_version", "")),
            "errors": errors}

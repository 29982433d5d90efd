"""BioImage Model Zoo packages (``rdf.yaml``, spec 0.5): what sizes the graph takes, its halo, the files.

Why the sizes are measured rather than taken from the config: the inference window (``roi_size``) is how the
*app* tiles an image, not a limit of the network. The exported graph pads its input to the network's stride
inside (:class:`im2im_engine.export.Deployable`), so it runs on any size from a small minimum up, with step 1:
``bioimageio predict`` then takes a 200×200 or a 390×382 image as it is.

Why the halo is the receptive field: bioimage.io tools predict large images in blocks and crop ``halo``
pixels from each block's border. A pixel closer than the network's receptive-field radius to a block border
is computed from zero padding instead of its neighbours; with a halo of at least that radius every kept
pixel sees all of its true context, as in the app's overlapping windows. The radius is measured on the
network itself (gradient of one output pixel with the normalisation layers taken out, whose per-window
statistics reach every pixel and would make the field unbounded), rounded up to the stride.

What a halo cannot remove: the default networks normalise features per window (instance or group norm), so
any tiling, the app's own included, depends a little on where the windows fall. The package documentation
says so, recommends blocks of the app's window size, and ``tests/im2im_engine/test_bioimageio_tools.py``
bounds the difference with ``bioimageio.core`` against the app's own window-to-window difference.
"""

from __future__ import annotations

import copy
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from .atomic import sha256
from .config import EngineConfig, config_to_dict

#: Model RDF format written (bioimage.io spec 0.5 family; newer bioimageio.spec versions upgrade it on load).
BIOIMAGEIO_FORMAT_VERSION = "0.5.4"
CITATIONS = [
    {"text": "MONAI Consortium. MONAI: Medical Open Network for AI", "doi": "10.5281/zenodo.4323058"},
    {"text": "Sonneck J. et al. MMV_Im2Im: an open-source microscopy machine vision toolbox for image-to-image "
             "transformation", "url": "https://arxiv.org/abs/2209.02498"},
]
_NORMS = (nn.modules.instancenorm._InstanceNorm, nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm,
          nn.LocalResponseNorm)


@dataclass(frozen=True)
class Tiling:
    """Per spatial axis: the smallest input the package declares, its step, and the output halo."""

    min_size: list[int]
    step: list[int]
    halo: list[int]
    receptive_radius: list[int]

    def to_json(self) -> dict[str, Any]:
        return {"min_size": self.min_size, "step": self.step, "halo": self.halo,
                "receptive_radius": self.receptive_radius}


def _without_norms(module: nn.Module) -> nn.Module:
    for name, child in module.named_children():
        if isinstance(child, _NORMS):
            setattr(module, name, nn.Identity())
        else:
            _without_norms(child)
    return module


def receptive_radius(net: nn.Module, cfg: EngineConfig, stride: list[int]) -> list[int]:
    """How far (pixels, per axis) an output pixel's value reaches into the input, normalisation aside.

    The gradient of the centre output pixel, in float64 on a random input, is non-zero exactly on its
    receptive field. The probe grows until the field no longer touches its border (at most 4 doublings).
    """
    probe = _without_norms(copy.deepcopy(net)).to("cpu", torch.float64).eval()
    size = [max(int(r), 8 * int(s)) for r, s in zip(cfg.inference.roi_size, stride, strict=True)]
    rng = torch.Generator().manual_seed(0)
    radius = [0] * len(size)
    for _ in range(5):
        size = [int(math.ceil(n / s) * s) for n, s in zip(size, stride, strict=True)]
        x = torch.randn((1, cfg.data.in_channels, *size), generator=rng, dtype=torch.float64, requires_grad=True)
        centre = tuple(n // 2 for n in size)
        out = probe(x)
        out[(0, slice(None), *centre)].sum().backward()
        nonzero = (x.grad[0].abs().sum(0) > 0).nonzero()
        radius = [int((nonzero[:, i] - c).abs().max()) if len(nonzero) else 0 for i, c in enumerate(centre)]
        if all(r < n // 2 - 1 for r, n in zip(radius, size, strict=True)):
            return radius
        size = [2 * n for n in size]
    return radius  # still touching: the largest measured (a very deep network); the halo covers that much


def tiling(module: nn.Module, net: nn.Module, cfg: EngineConfig) -> Tiling:
    """Sizes for the rdf: halo = receptive radius rounded up to the stride; min = the smallest size that both
    leaves one pixel inside the halo (the spec's rule) and runs (checked on ``module``, the exported graph)."""
    from .networks import total_stride

    stride = total_stride(cfg)
    radius = receptive_radius(net, cfg, stride)
    halo = [int(math.ceil(r / s) * s) for r, s in zip(radius, stride, strict=True)]
    minimum = [2 * h + 1 for h in halo]
    for _ in range(64):  # tiny inputs can fail (instance norm needs > 1 value per channel at the bottleneck)
        try:
            with torch.no_grad():
                module(torch.zeros((1, cfg.data.in_channels, *minimum)))
            break
        except (RuntimeError, ValueError):
            minimum = [m + s for m, s in zip(minimum, stride, strict=True)]
    return Tiling(minimum, [1] * len(minimum), halo, radius)


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


def _people(entries: Any, need_github: bool) -> list[dict]:
    """Authors/maintainers as the spec wants them: known keys only, empty values dropped."""
    keys = ("name", "github_user", "affiliation", "email", "orcid")
    out = []
    for entry in entries or []:
        person = {k: str(entry[k]) for k in keys if isinstance(entry, dict) and entry.get(k)}
        if need_github and "github_user" not in person:
            continue
        if person.get("name") or person.get("github_user"):
            out.append(person)
    return out


def block_advice(cfg: EngineConfig, tile: Tiling) -> str:
    """The ``--blockwise`` value whose blocks are the app's window (what the documentation recommends)."""
    n = [max(r - m, 0) for r, m in zip(cfg.inference.roi_size, tile.min_size, strict=True)]
    return str(n[0]) if len(set(n)) == 1 else json.dumps(n)


def write_rdf(folder: Path, cfg: EngineConfig, files: dict[str, str], provenance: dict, crop: np.ndarray,
              ref: Any, meta: dict, tile: Tiling, manifest: dict) -> Path:
    """``rdf.yaml`` of a bioimage.io model package (spec 0.5): axes, halo, test tensors, weights, provenance.

    The weights take normalised input (the preprocessing entry says how); outputs are probabilities (or
    regression). Instance watershed is not expressible as bioimage.io postprocessing, so it is described
    in the documentation and in ``config.im2im_active.manifest``. Every file of the folder is listed
    (weights, tensors, cover, documentation, attachments), so ``bioimageio package`` keeps them all.
    """
    from .export import channel_names

    d = cfg.data.spatial_dims
    sp = ["z", "y", "x"][3 - d:]
    in_axes: list[dict] = [{"type": "batch"},
                           {"type": "channel", "channel_names": [f"c{i}" for i in range(cfg.data.in_channels)]}]
    in_axes += [{"type": "space", "id": a, "size": {"min": int(m), "step": int(s)}}
                for a, m, s in zip(sp, tile.min_size, tile.step, strict=True)]
    out_axes: list[dict] = [{"type": "batch"}, {"type": "channel", "channel_names": channel_names(cfg)}]
    for a, h in zip(sp, tile.halo, strict=True):
        axis: dict[str, Any] = {"type": "space", "id": a, "size": {"tensor_id": "raw", "axis_id": a}}
        if h:
            axis["halo"] = int(h)
        out_axes.append(axis)
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
        from .export import ONNX_OPSET

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
    authors = _people(meta.get("authors"), need_github=False) or \
        [{"name": os.environ.get("USER") or "im2im-active user"}]
    maintainers = _people(meta.get("maintainers"), need_github=True) or _people(authors, need_github=True)
    attachments = ["config.yaml", "provenance.json", "export.json"]
    if (folder / "test_labels.npy").exists():
        attachments.append("test_labels.npy")
    rdf: dict[str, Any] = {
        "format_version": BIOIMAGEIO_FORMAT_VERSION,
        "type": "model",
        "name": name,
        "description": description[:1000],
        "authors": authors,
        "cite": meta.get("cite") or CITATIONS,
        "license": meta.get("license") or "BSD-3-Clause",
        "documentation": "README.md",
        "covers": [cover],
        "tags": meta.get("tags") or tags,
        "timestamp": provenance.get("exported_at"),
        "attachments": [{"source": f, "sha256": sha256(folder / f)} for f in attachments],
        "inputs": [{
            "id": "raw",
            "description": f"raw image, {cfg.data.in_channels} channel(s); normalised by the preprocessing; any "
                           f"size from {tile.min_size} (padded inside to the network's stride)",
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
        "config": {"im2im_active": {"manifest": manifest, "provenance": provenance,
                                    "engine_config": config_to_dict(cfg), "tiling": tile.to_json(),
                                    "blockwise": block_advice(cfg, tile)}},
    }
    if maintainers:
        rdf["maintainers"] = maintainers
    if not rdf["timestamp"]:
        del rdf["timestamp"]
    path = folder / "rdf.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(rdf, default=str)), sort_keys=False, allow_unicode=True))
    return path

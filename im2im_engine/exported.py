"""Running an exported model without a project: the same normalisation, windows and post-processing.

Why a separate runner instead of "just load the TorchScript file": the graph alone is one window of the
network. The app's prediction is percentile normalisation -> gaussian-blended sliding windows ->
argmax/watershed. :class:`ExportedModel` does exactly those steps with the settings stored in the export
(``config.yaml`` + ``export.json``), so ``im2im-active predict --model EXPORTED`` gives what the app gives.
"""

from __future__ import annotations

import functools
import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import tta
from .api import Prediction
from .config import EngineConfig, load_config
from .data import as_channel_first, normalize
from .export import ExportError, onnx_session, read_manifest
from .targets import labels_from_output as task_labels

Progress = Callable[[int, int, str], None]


def labels_from_output(output: np.ndarray, cfg: EngineConfig) -> np.ndarray | None:
    """Task post-processing of stitched outputs; the same rule as ``Engine.predict``."""
    return task_labels(output, cfg.task)


def sliding_window(cfg: EngineConfig, fn: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray,
                   device: torch.device) -> np.ndarray:
    """Stitch ``fn`` over a normalised (C, *sp) image with the engine's inferer settings (CPU stitching).

    The window is fitted to the image as the app fits it (:func:`im2im_engine.inference.fit_window`: cut to
    an image smaller than ``roi_size``, mirrored up to the stride), so small images match ``Engine.predict``.
    """
    from monai.inferers import SlidingWindowInferer

    from .inference import fit_window

    inf = cfg.inference
    roi, padded = fit_window(np.asarray(x, np.float32), cfg)
    inferer = SlidingWindowInferer(
        roi_size=roi, sw_batch_size=inf.sw_batch_size, overlap=inf.overlap, mode=inf.mode,
        sigma_scale=inf.sigma_scale, padding_mode="constant", cval=0.0, sw_device=device,
        device=torch.device("cpu"),
    )
    with torch.no_grad():
        out = inferer(torch.from_numpy(np.ascontiguousarray(padded, np.float32))[None], fn)
    crop = (slice(None), *(slice(0, n) for n in x.shape[1:]))
    return out[0][crop].numpy().astype(np.float32)


class ExportedModel:
    """An export folder (torchscript, onnx or bioimageio; a bioimageio ``.zip`` is unpacked) ready to predict.

    ``config`` is the engine config stored with it; :meth:`predict` has ``Engine.predict``'s contract
    (without the embedding, which the exported graph does not expose).
    """

    def __init__(self, path: str | os.PathLike, device: str | torch.device | None = None,
                 backend: str | None = None):
        self.path = Path(path)
        if not self.path.exists():
            raise ExportError(f"{self.path}: exported model does not exist")
        self._tmp: tempfile.TemporaryDirectory | None = None
        folder = self.path
        if self.path.is_file():
            if not zipfile.is_zipfile(self.path):
                raise ExportError(f"{self.path}: give the export folder (or a bioimageio .zip), not a file")
            self._tmp = tempfile.TemporaryDirectory(prefix="im2im-export-")
            with zipfile.ZipFile(self.path) as zf:
                zf.extractall(self._tmp.name)
            folder = Path(self._tmp.name)
        self.folder = folder
        self.manifest = read_manifest(folder)
        self.format = self.manifest.get("format", "")
        cfg_file = folder / self.manifest.get("config", "config.yaml")
        self.config = load_config(cfg_file)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.backend = backend or ("onnx" if self.format == "onnx" else "torchscript")
        self._load()

    def _load(self) -> None:
        folder = self.folder
        if self.backend == "onnx":
            name = self.manifest["model"] if self.format == "onnx" else "weights.onnx"
            self._session = onnx_session(folder / name)
            self._net = None
        else:
            name = self.manifest["model"] if self.format == "torchscript" else "weights.torchscript.pt"
            try:
                with warnings.catch_warnings():  # torch.jit is deprecated in torch >= 2.10 but still loads
                    warnings.simplefilter("ignore", DeprecationWarning)
                    self._net = torch.jit.load(str(folder / name), map_location=self.device).eval()
            except Exception as exc:
                raise ExportError(f"{folder / name}: not a loadable TorchScript model ({exc})") from None
            self._session = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One batch of normalised windows -> probabilities / regression (the exported graph)."""
        if self._session is not None:
            return torch.from_numpy(self._session.run(None, {"input": x.cpu().numpy()})[0])
        return self._net(x.to(self.device))

    def predict(self, image: np.ndarray) -> Prediction:
        """Sliding-window prediction of a raw (C, *sp) image: outputs and labels as ``Engine.predict``."""
        cfg = self.config
        x = normalize(as_channel_first(image, cfg), cfg.data)
        device = self.device if self._session is None else torch.device("cpu")
        fn = self.forward
        if cfg.inference.tta:  # the app's output average over the trained flips / quarter turns
            syms = tta.symmetries(cfg)
            fn = functools.partial(tta.average, self.forward, syms=syms)
        out = sliding_window(cfg, fn, x, device)
        return Prediction(out, labels_from_output(out, cfg), None)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


# -------------------------------------------------------------------------------------- folder prediction
@dataclass
class FolderPrediction:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, problem)
    n_images: int = 0
    notes: list[tuple[str, str]] = field(default_factory=list)  # (file, what was left out), e.g. a calibration


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def output_names(image: Path, input_dir: Path, output_dir: Path) -> tuple[Path, Path]:
    """(labels file, probabilities/output file): the input's sub-folders are mirrored under ``output_dir``."""
    base = _output_base(image, input_dir, output_dir)
    return base.with_name(base.name + "_labels.ome.tif"), base.with_name(base.name + "_probabilities.ome.tif")


def denoised_name(image: Path, input_dir: Path, output_dir: Path) -> Path:
    """``NAME_denoised.ome.tif``: what a denoise model writes for ``image`` (sub-folders mirrored)."""
    base = _output_base(image, input_dir, output_dir)
    return base.with_name(base.name + "_denoised.ome.tif")


def _output_base(image: Path, input_dir: Path, output_dir: Path) -> Path:
    return output_dir / image.parent.relative_to(input_dir) / _stem(image)


def write_denoised(path: str | os.PathLike, output: np.ndarray, image: np.ndarray, channel_names: list[str],
                   cfg: EngineConfig, **sizes: Any) -> Path:
    """A denoise model's ``output`` for ``image`` (the spatial array it was given) as float32 OME-TIFF in
    the image's own units (:func:`im2im_engine.n2v.to_raw_units`); the source's channel names are kept when
    they still fit, ``sizes`` are the writer's pixel-size arguments. The file opens beside the raw one at one
    contrast: what ``predict`` and a denoise project's ``denoised`` export write."""
    from . import io
    from .n2v import to_raw_units

    out = to_raw_units(output, image, cfg)
    channels = channel_names if len(channel_names) == len(out) else None
    return io.write_ome_tiff(path, out, dim_order="CZYX" if out.ndim == 4 else "CYX", channel_names=channels,
                             **sizes)


def predict_folder(model: Any, input_dir: str | os.PathLike, output_dir: str | os.PathLike, *,
                   probabilities: bool = False, progress: Progress | None = None,
                   should_stop: Callable[[], bool] | None = None) -> FolderPrediction:
    """Predict every image under ``input_dir`` with ``model`` (an ``Engine`` or :class:`ExportedModel`).

    Writes ``NAME_labels.ome.tif`` (int32 class or instance ids, like the app's predictions) and, when
    ``probabilities`` (always for regression), ``NAME_probabilities.ome.tif`` (float32, C[Z]YX). A denoise
    model writes ``NAME_denoised.ome.tif`` instead: float32 in the input's own units (the normalisation
    undone, :func:`im2im_engine.n2v.to_raw_units`), so it opens beside the raw image at one contrast. Timepoint 0
    of each file; physical pixel sizes are carried over with their units as the input states them, and none
    is written where the input has none (:mod:`.calibration`). Files follow the user's umask. A file that
    cannot be read or does not fit the model is reported in ``failed`` and the rest continue.
    """
    from . import io
    from .calibration import UNCALIBRATED, CalibrationError, read_pixel_sizes

    input_dir, output_dir = Path(input_dir), Path(output_dir)
    images = io.find_images(input_dir)
    result = FolderPrediction(n_images=len(images))
    cfg = model.config
    names = [f"c{i}" for i in range(cfg.task.output_channels)]
    for i, path in enumerate(images):
        if should_stop is not None and should_stop():
            break
        if progress:
            progress(i, len(images), path.name)
        try:
            img = io.read_image(path)
            x = io.to_spatial(img.data, cfg.data.spatial_dims)
            pred = model.predict(x)
        except (io.ImageReadError, ValueError) as exc:
            result.failed.append((str(path), str(exc)))
            continue
        labels_file, prob_file = output_names(path, input_dir, output_dir)
        try:
            sizes = read_pixel_sizes(path)
        except CalibrationError as exc:
            sizes = UNCALIBRATED
            result.notes.append((str(path), f"pixel size not written: {exc}"))
        keep = sizes.writer_kwargs() if cfg.data.spatial_dims == 3 else sizes.planar().writer_kwargs()
        if cfg.task.kind == "denoise":
            result.written.append(write_denoised(denoised_name(path, input_dir, output_dir), pred.output, x,
                                                 img.info.channel_names, cfg, **keep))
            continue
        if pred.labels is not None:
            result.written.append(io.write_ome_tiff(labels_file, pred.labels.astype(np.int32), **keep))
        if probabilities or pred.labels is None:
            order = "CZYX" if pred.output.ndim == 4 else "CYX"
            result.written.append(io.write_ome_tiff(prob_file, pred.output.astype(np.float32), dim_order=order,
                                                    channel_names=names, **keep))
    if progress:
        progress(len(images), len(images), "done")
    return result

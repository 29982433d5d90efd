"""The ``Engine`` facade: the short API the app, the worker and notebooks use.

    cfg = load_config("resources/configs/semantic_2d.yaml", overrides={"training": {"steps": 50}})
    eng = Engine.from_config(cfg)
    eng.train([Sample(image, target, weight, "a")], val=[...])
    pred = eng.predict(image)          # Prediction(output, labels, embedding)
    unc = eng.uncertainty(image)       # UncertaintyResult(prediction, map, score, embedding, scores)
    eng.save("models/v1/model.pt"); Engine.load("models/v1/model.pt")

Images are channel-first numpy arrays ((C, Y, X) or (C, Z, Y, X), any dtype); the engine normalises them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .checkpoint import CheckpointError, check_compatible, load_checkpoint, save_checkpoint
from .config import ConfigError, EngineConfig, config_to_dict, load_config, save_config
from .data import Sample, as_channel_first, normalize, prepare_target
from .inference import SlidingPredictor, reduce_map, uncertainty_maps
from .metrics import ap50, dice, iou, mean_class_dice, psnr, ssim
from .networks import build_network, check_sizes
from .targets import labels_from_output
from .train import TrainResult, train_loop


@dataclass
class Prediction:
    """``output``: (C, *sp) float32 probabilities (or regression values, in normalised units);
    ``labels``: (*sp) int32 class ids / instance ids, None for regression; ``embedding``: (D,) float32."""

    output: np.ndarray
    labels: np.ndarray | None
    embedding: np.ndarray | None = None


@dataclass
class UncertaintyResult:
    """``map``: (*sp) float32 per-pixel uncertainty of ``method``; ``score``: its mean (or top-k % mean);
    ``scores``: image scores of every measure computable from the same pass (entropy, margin, ...)."""

    prediction: Prediction
    map: np.ndarray
    score: float
    embedding: np.ndarray | None
    scores: dict[str, float] = field(default_factory=dict)
    method: str = ""


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Engine:
    """A configured network on a device, with training, inference, uncertainty and checkpoint I/O."""

    def __init__(self, config: EngineConfig, net: torch.nn.Module, device: torch.device):
        self.config = config
        self.net = net.to(device)
        self.device = device
        self.amp_dtype: torch.dtype | None = None
        if device.type == "cuda" and config.training.amp:
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cuda" and config.training.channels_last:
            fmt = torch.channels_last if config.data.spatial_dims == 2 else torch.channels_last_3d
            self.net = self.net.to(memory_format=fmt)
        self.net.eval()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, config: EngineConfig | dict | str | os.PathLike, checkpoint: str | os.PathLike | None = None,
                    device: str | torch.device | None = None) -> Engine:
        """Build the network from a config (object, dict or YAML path); optionally load weights to fine-tune.

        The network is initialised under ``training.seed`` so two engines from one config are identical.
        A checkpoint whose tensors do not fit the config raises :class:`CheckpointError` naming file and key.
        """
        cfg = config if isinstance(config, EngineConfig) else load_config(config)
        check_sizes(cfg)
        torch.manual_seed(cfg.training.seed)
        net = build_network(cfg)
        if checkpoint is not None:
            payload = load_checkpoint(checkpoint)
            state = payload["state_dict"]
            check_compatible(checkpoint, net.state_dict(), state)
            net.load_state_dict(state)
        dev = torch.device(device) if device is not None else default_device()
        return cls(cfg, net, dev)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device | None = None) -> Engine:
        """Load a checkpoint written by :meth:`save` (config from the payload, else ``config.yaml`` beside)."""
        path = Path(path)
        payload = load_checkpoint(path)
        cfg_data = payload.get("config")
        try:
            if isinstance(cfg_data, dict):
                cfg = load_config(cfg_data)
            elif (path.parent / "config.yaml").exists():
                cfg = load_config(path.parent / "config.yaml")
            else:
                raise CheckpointError(f"{path}: checkpoint has no config and no config.yaml beside it")
        except CheckpointError:
            raise
        except ConfigError as exc:
            raise CheckpointError(f"{path}: stored config is invalid: {exc}") from None
        check_sizes(cfg)
        net = build_network(cfg)
        check_compatible(path, net.state_dict(), payload["state_dict"])
        net.load_state_dict(payload["state_dict"])
        dev = torch.device(device) if device is not None else default_device()
        return cls(cfg, net, dev)

    def save(self, path: str | os.PathLike, meta: dict | None = None) -> Path:
        """Write the checkpoint atomically and the resolved ``config.yaml`` beside it."""
        path = Path(path)
        cfg = config_to_dict(self.config)
        out = save_checkpoint(path, self.net.state_dict(), cfg, meta)
        save_config(self.config, path.parent / "config.yaml")
        return out

    # ------------------------------------------------------------------ training
    def train(self, train: list[Sample], val: list[Sample] | None = None, steps: int | None = None,
              progress: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None,
              checkpoint_path: str | os.PathLike | None = None, sync_interval_s: float | None = None) -> TrainResult:
        """Train (or fine-tune) in place; see :func:`im2im_engine.train.train_loop` for the semantics."""
        return train_loop(self, list(train), val, steps, progress, should_stop,
                          str(checkpoint_path) if checkpoint_path else None, sync_interval_s)

    # ------------------------------------------------------------------ inference
    def _prepare(self, image: np.ndarray) -> np.ndarray:
        return normalize(as_channel_first(image, self.config), self.config.data)

    def _predictor(self, tta_output: bool | None = None) -> SlidingPredictor:
        return SlidingPredictor(self.net, self.config, self.device, self.amp_dtype, tta_output=tta_output)

    def _labels(self, output: np.ndarray) -> np.ndarray | None:
        return labels_from_output(output, self.config.task)

    def predict(self, image: np.ndarray, tta: bool | None = None) -> Prediction:
        """Sliding-window prediction of one image (C, *sp): probabilities/regression, labels, embedding.

        ``tta``: average the output over the trained flips and quarter turns (default ``inference.tta``;
        :mod:`im2im_engine.tta`); False gives one network pass per window, what an exported graph computes.
        """
        stats = self._predictor(tta).run(self._prepare(image), "plain")
        out = stats.output.cpu().numpy().astype(np.float32)
        return Prediction(out, self._labels(out), stats.embedding)

    def uncertainty(self, image: np.ndarray, method: str | None = None) -> UncertaintyResult:
        """Prediction plus per-pixel uncertainty (``uncertainty.method`` unless ``method`` is given).

        entropy / margin / least_confidence: one plain pass. bald / variance: the backbone once per window and
        the dropout head's distribution — regression variance exact; classification by a Gaussian
        approximation integrated at about ``uncertainty.passes`` nodes, with ``uncertainty.samples`` dropout
        masks where it is not trusted (see :mod:`im2im_engine.inference`). tta: full passes on flipped inputs.
        """
        uc = self.config.uncertainty
        method = method or uc.method
        classify = self.config.task.classify
        mode = {"bald": "mc", "variance": "mc", "tta": "tta"}.get(method, "plain")
        if mode == "mc" and self.config.model.dropout <= 0:
            raise ConfigError(f"uncertainty.method {method} needs model.dropout > 0 (MC dropout)")
        if not classify and method not in ("variance", "tta"):
            raise ConfigError(f"uncertainty.method: must be one of variance, tta for regression (got {method!r})")
        stats = self._predictor().run(self._prepare(image), mode, uc.passes)
        maps = {k: v.cpu() for k, v in uncertainty_maps(stats, classify).items()}  # computed where stitched
        key = ("entropy" if classify else "variance") if method == "tta" else method
        umap = maps[key].numpy().astype(np.float32)
        out = stats.output.cpu().numpy().astype(np.float32)
        pred = Prediction(out, self._labels(out), stats.embedding)
        scores = {k: reduce_map(v.numpy(), uc.reduction, uc.topk_percent) for k, v in maps.items()}
        score = scores[key]
        return UncertaintyResult(pred, umap, score, stats.embedding, scores, method)

    def embedding(self, image: np.ndarray) -> np.ndarray:
        """Global mean of backbone features over all windows: a cheap descriptor for diversity sampling."""
        emb = self.predict(image).embedding
        assert emb is not None
        return emb

    # ------------------------------------------------------------------ evaluation
    def blindspot_psnr(self, image: np.ndarray, name: str = "") -> float:
        """Denoising without clean truth, judged the Noise2Void way: hide a fixed stratified set of pixels
        (the training masking, seeded by the image's name so every model sees the same), predict them from
        their neighbours, and take the PSNR of the predictions against the hidden noisy values (normalised
        units). Pixel-wise independent noise adds the same constant error to every model, so a higher value
        is a better denoiser of this image; it compares models on the same image, it is not a PSNR to truth.
        """
        import zlib

        from .n2v import Masker

        x = self._prepare(image)[None]
        masked, mask = Masker(self.config, seed=zlib.crc32(name.encode())).mask(x)
        out = self._predictor().run(masked[0], "plain").output.cpu().numpy()  # stitched on the GPU when it fits
        hidden = mask[0] > 0
        mse = float(np.mean((out[hidden] - x[0][hidden]) ** 2)) if hidden.any() else 0.0
        value_range = float(x.max() - x.min()) or 1.0
        return float(10 * np.log10(value_range**2 / max(mse, 1e-12)))

    def evaluate(self, samples: list[Sample]) -> dict[str, float]:
        """Mean task metrics over samples: dice/iou (semantic), dice/ap50 (instance), psnr/ssim (regression;
        denoise against a clean target, in raw image units).

        Pixels with weight 0 are excluded from dice/iou (ignored regions carry no truth).
        """
        task = self.config.task
        rows: list[dict[str, float]] = []
        for s in samples:
            if s.target is None and task.kind == "denoise":
                rows.append({"blindspot_psnr": self.blindspot_psnr(s.image, s.name)})
                continue
            if s.target is None:
                raise ValueError(f"sample {s.name!r}: evaluation needs a target")
            pred = self.predict(s.image)
            mask = None if s.weight is None else np.asarray(s.weight) > 0
            truth = np.asarray(s.target)
            if task.kind == "semantic":
                row = {"dice": dice(pred.labels, truth, mask), "iou": iou(pred.labels, truth, mask)}
                if task.num_classes > 2:
                    row["mean_class_dice"] = mean_class_dice(pred.labels, truth, task.num_classes, mask)
            elif task.kind == "instance":
                row = {"dice": dice(pred.labels, truth, mask), "iou": iou(pred.labels, truth, mask),
                       "ap50": ap50(pred.labels, truth)}
            elif task.kind == "denoise":  # against clean truth, in the image's raw units
                from .n2v import to_raw_units

                out = to_raw_units(pred.output, s.image, self.config)
                t = truth.astype(np.float32).reshape(out.shape)
                rng = float(t.max() - t.min()) or 1.0
                row = {"psnr": psnr(out, t, rng), "ssim": ssim(out, t, rng)}
            else:
                t = prepare_target(truth, self.config)
                rng = float(t.max() - t.min()) or 1.0
                row = {"psnr": psnr(pred.output, t, rng), "ssim": ssim(pred.output, t, rng)}
            rows.append(row)
        if not rows:
            return {}
        return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}

"""Network builder: a MONAI backbone (or CAREUNet, :mod:`im2im_engine.n2v_nets`) by name plus a small dropout head.

Why the split into backbone and head: uncertainty by MC dropout normally costs T full forward passes. Here
the MONAI network ends in ``head_features`` channels, then activation -> dropout -> 1x1 conv. The expensive
backbone runs once per window; only the (tiny) dropout + 1x1 conv head runs T times. The backbone's
features also give a cheap per-image embedding (their global mean) for diversity sampling.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import ConfigError, EngineConfig

#: Small defaults per network (CPU-friendly); ``model.params`` override them key by key.
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "UNet": {"channels": [16, 32, 64], "strides": [2, 2], "num_res_units": 1},
    "BasicUNet": {"features": [16, 16, 32, 64, 128, 16]},
    "AttentionUnet": {"channels": [16, 32, 64], "strides": [2, 2]},
    "SegResNet": {"init_filters": 8, "blocks_down": [1, 2, 2], "blocks_up": [1, 1]},
    "DynUNet": {"kernel_size": [3, 3, 3], "strides": [1, 2, 2], "upsample_kernel_size": [2, 2],
                "filters": [16, 32, 64]},
    "CAREUNet": {"depth": 2, "num_channels_init": 32, "use_batch_norm": True, "pool": 2},
}


def resolved_params(cfg: EngineConfig) -> dict[str, Any]:
    """Defaults of the chosen network merged with ``model.params``."""
    params = dict(DEFAULT_PARAMS[cfg.model.name])
    params.update(cfg.model.params)
    return params


def total_stride(cfg: EngineConfig) -> list[int]:
    """Per spatial axis, the factor input sizes must be divisible by (product of down-sampling strides)."""
    d = cfg.data.spatial_dims
    p = resolved_params(cfg)
    name = cfg.model.name
    if name == "BasicUNet":
        return [16] * d
    if name == "SegResNet":
        return [2 ** (len(p.get("blocks_down", (1, 2, 2, 4))) - 1)] * d
    if name == "CAREUNet":
        pool = p["pool"]
        per_axis = [pool] * d if isinstance(pool, int) else list(pool)
        return [int(a) ** int(p["depth"]) for a in per_axis]
    strides = p.get("strides", [])
    out = [1] * d
    for s in strides:
        per_axis = list(s) if isinstance(s, (list, tuple)) else [s] * d
        out = [o * int(a) for o, a in zip(out, per_axis, strict=False)]
    return out


class Im2ImNet(nn.Module):
    """Backbone -> activation -> dropout -> 1x1 conv head.

    ``features(x)`` runs the backbone once; ``head(f, mc=True)`` applies dropout regardless of train/eval
    mode, so MC sampling never flips batch-norm layers into training mode.
    """

    def __init__(self, backbone: nn.Module, spatial_dims: int, head_features: int, out_channels: int,
                 dropout: float):
        super().__init__()
        self.backbone = backbone
        self.spatial_dims = spatial_dims
        self.dropout = float(dropout)
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.act = nn.LeakyReLU(0.01)
        self.out = conv(head_features, out_channels, kernel_size=1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.backbone(x))

    def head(self, f: torch.Tensor, mc: bool = False) -> torch.Tensor:
        if self.dropout > 0 and (mc or self.training):
            f = F.dropout(f, self.dropout, training=True)
        return self.out(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_network(cfg: EngineConfig) -> Im2ImNet:
    """Build the configured network; a bad parameter combination raises :class:`ConfigError`."""
    from . import n2v_nets  # denoising options: N2V2 UNet changes, channels denoised one by one

    d = cfg.data.spatial_dims
    name = cfg.model.name
    params = resolved_params(cfg)
    if name == "DynUNet":
        # DynUNet wants per-level kernel/stride lists; one int per level means isotropic.
        params.setdefault("filters", None)
    in_channels = 1 if n2v_nets.folds_channels(cfg) else cfg.data.in_channels
    kwargs = dict(spatial_dims=d, in_channels=in_channels, out_channels=cfg.model.head_features)
    try:
        backbone = n2v_nets.backbone_class(cfg)(**kwargs, **params)
    except Exception as exc:
        raise ConfigError(f"model.params: {name} cannot be built with {params} ({type(exc).__name__}: {exc})") from None
    return n2v_nets.wrap(backbone, cfg)


def check_sizes(cfg: EngineConfig) -> None:
    """Patch and ROI sizes must be divisible by the network's down-sampling, or skip connections break."""
    div = total_stride(cfg)
    for key, sizes in (("data.patch_size", cfg.data.patch_size), ("inference.roi_size", cfg.inference.roi_size)):
        bad = [s for s, k in zip(sizes, div, strict=False) if s % k]
        if bad:
            raise ConfigError(f"{key}: every size must be divisible by {div} for this {cfg.model.name} (got {sizes})")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def round_up(n: int, k: int) -> int:
    return int(math.ceil(n / k) * k)
